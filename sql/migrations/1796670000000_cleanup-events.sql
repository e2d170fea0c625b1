-- Up Migration
--
-- Published events are kept EVENTS_RETENTION_HOURS for consumers reading with
-- sp_events_after, then deleted by the periodic cleanup. Unpublished ones stay while
-- a publisher runs (they still have to go out); where none runs (no Redis), nothing
-- ever marks them, so p_unpublished_too lets retention apply to them as well.

CREATE FUNCTION activity.sp_cleanup_events(p_retention_hours integer, p_unpublished_too boolean DEFAULT false)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = activity, pg_temp
AS $$
DECLARE
  v_deleted integer;
BEGIN
  IF p_retention_hours IS NULL OR p_retention_hours < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'retention_hours must be >= 1';
  END IF;
  DELETE FROM activity.events e
   WHERE (e.published_at < now() - make_interval(hours => p_retention_hours))
      OR (p_unpublished_too AND e.published_at IS NULL AND e.created_at < now() - make_interval(hours => p_retention_hours));
  GET DIAGNOSTICS v_deleted = ROW_COUNT;
  PERFORM activity.fn_audit('cleanup', NULL, '{}',
    jsonb_build_object('item', 'events', 'deleted', v_deleted, 'retention_hours', p_retention_hours,
                       'unpublished_too', COALESCE(p_unpublished_too, false)));
  RETURN v_deleted;
END
$$;
COMMENT ON FUNCTION activity.sp_cleanup_events(integer, boolean) IS 'Deletes events published more than p_retention_hours ago, and with p_unpublished_too (no publisher runs) unpublished ones created that long ago; returns the count. AU007 when hours < 1. Audit cleanup.';
REVOKE ALL ON FUNCTION activity.sp_cleanup_events(integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_cleanup_events(integer, boolean) TO auth_api_user;

-- Down Migration

DROP FUNCTION activity.sp_cleanup_events(integer, boolean);
