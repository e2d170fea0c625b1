-- Up Migration
--
-- Services on the same database without Redis read the outbox themselves, woken by
-- LISTEN activity_events (docs/events.md). They page by the cursor (tx_id, id) of
-- the last row they handled, and see only rows whose transaction id is below their
-- snapshot's xmin: those transactions have all ended, and any still running or yet
-- to start has a transaction id at or above it, so no event can ever commit behind a
-- cursor (see activity.events.tx_id). write_api_user (the other services' role) may
-- call it.

CREATE FUNCTION activity.sp_events_after(p_after_tx bigint, p_after_id bigint, p_limit integer)
RETURNS TABLE (tx_id bigint, id bigint, type text, version smallint, user_id uuid, session_id uuid, payload jsonb, created_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = activity, pg_temp
AS $$
#variable_conflict use_column
BEGIN
  IF p_after_tx IS NULL OR p_after_tx < 0 OR p_after_id IS NULL OR p_after_id < 0
     OR p_limit IS NULL OR p_limit < 1 OR p_limit > 10000 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'cursor parts must be >= 0 and limit 1..10000';
  END IF;
  RETURN QUERY
    SELECT e.tx_id::text::bigint, e.id, e.type, e.version, e.user_id, e.session_id, e.payload, e.created_at
      FROM activity.events e
     WHERE (e.tx_id, e.id) > (p_after_tx::text::xid8, p_after_id)
       AND e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
     ORDER BY e.tx_id, e.id
     LIMIT p_limit;
END
$$;
COMMENT ON FUNCTION activity.sp_events_after(bigint, bigint, integer) IS 'Events after the cursor (tx_id, id), in that order, at most p_limit, published or not; only from transactions below the snapshot xmin, so no event can later commit behind a cursor. Start from (0, 0). AU007 when a cursor part is < 0 or p_limit is not 1..10000.';
REVOKE ALL ON FUNCTION activity.sp_events_after(bigint, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_events_after(bigint, bigint, integer) TO auth_api_user;
GRANT EXECUTE ON FUNCTION activity.sp_events_after(bigint, bigint, integer) TO write_api_user;

-- Down Migration

DROP FUNCTION activity.sp_events_after(bigint, bigint, integer);
