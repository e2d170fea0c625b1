-- Up Migration
--
-- Services on the same database without Redis read the outbox themselves: page by
-- id from their own cursor, woken by LISTEN activity_events (docs/events.md). A
-- page ends at the last settled id (activity.events.settled_xid): a transaction
-- still running may yet commit a lower id, which a cursor already past it would
-- never see. write_api_user (the other services' role) may call it.

CREATE FUNCTION activity.sp_events_after(p_cursor bigint, p_limit integer)
RETURNS TABLE (id bigint, type text, version smallint, user_id uuid, session_id uuid, payload jsonb, created_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = activity, pg_temp
AS $$
#variable_conflict use_column
BEGIN
  IF p_cursor IS NULL OR p_cursor < 0 OR p_limit IS NULL OR p_limit < 1 OR p_limit > 10000 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'cursor must be >= 0 and limit 1..10000';
  END IF;
  RETURN QUERY
    WITH batch AS MATERIALIZED (
      SELECT e.id, e.type, e.version, e.user_id, e.session_id, e.payload, e.created_at, e.settled_xid
        FROM activity.events e
       WHERE e.id > p_cursor
       ORDER BY e.id
       LIMIT p_limit
    )
    SELECT b.id, b.type, b.version, b.user_id, b.session_id, b.payload, b.created_at
      FROM batch b
     WHERE b.id <= (SELECT max(s.id) FROM batch s WHERE s.settled_xid <= pg_snapshot_xmin(pg_current_snapshot()))
     ORDER BY b.id;
END
$$;
COMMENT ON FUNCTION activity.sp_events_after(bigint, integer) IS 'Events with id > p_cursor, in id order, at most p_limit, published or not; stops before any id a running transaction could still precede, so a cursor never skips an event. AU007 when p_cursor < 0 or p_limit is not 1..10000.';
REVOKE ALL ON FUNCTION activity.sp_events_after(bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_events_after(bigint, integer) TO auth_api_user;
GRANT EXECUTE ON FUNCTION activity.sp_events_after(bigint, integer) TO write_api_user;

-- Down Migration

DROP FUNCTION activity.sp_events_after(bigint, integer);
