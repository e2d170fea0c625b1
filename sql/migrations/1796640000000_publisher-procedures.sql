-- Up Migration
--
-- What the publisher in the service needs (issue 15): claim a batch of unpublished
-- events, mark the published ones, and read the lag for /metrics. Class 8153 is the
-- publisher's alone (8151 keys refresh-token families, 8152 the cleanup): one
-- instance publishes at a time, so the stream keeps the outbox order (per user,
-- too); the others get no row and retry. An event that commits later with a lower id
-- is claimed by the next batch: the claim takes every unpublished row, it keeps no
-- cursor. A user's events that depend on each other (a session's start and end, a
-- password change and the sessions it ends) cannot overtake each other: the later
-- waits on the users or family row lock until the earlier commits (CONVENTIONS.md).

CREATE FUNCTION activity.sp_claim_events(p_limit integer)
RETURNS TABLE (id bigint, type text, version smallint, user_id uuid, session_id uuid, payload jsonb, created_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = activity, pg_temp
AS $$
#variable_conflict use_column
BEGIN
  IF p_limit IS NULL OR p_limit < 1 OR p_limit > 10000 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'limit must be 1..10000';
  END IF;
  IF NOT pg_try_advisory_xact_lock(8153, 0) THEN
    RETURN;
  END IF;
  RETURN QUERY
    SELECT e.id, e.type, e.version, e.user_id, e.session_id, e.payload, e.created_at
      FROM activity.events e
     WHERE e.published_at IS NULL
     ORDER BY e.id
     LIMIT p_limit
       FOR UPDATE SKIP LOCKED;
END
$$;
COMMENT ON FUNCTION activity.sp_claim_events(integer) IS 'Publisher: up to p_limit unpublished events, oldest first, locked (FOR UPDATE SKIP LOCKED) until the caller''s transaction ends; call it in the transaction that publishes and marks them. No row when another caller holds the publisher lock (advisory 8153). AU007 when p_limit is not 1..10000.';
REVOKE ALL ON FUNCTION activity.sp_claim_events(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_claim_events(integer) TO auth_api_user;

CREATE FUNCTION activity.sp_mark_events_published(p_ids bigint[])
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = activity, pg_temp
AS $$
DECLARE
  v_marked integer;
BEGIN
  UPDATE activity.events e SET published_at = now()
   WHERE e.id = ANY (p_ids) AND e.published_at IS NULL;
  GET DIAGNOSTICS v_marked = ROW_COUNT;
  RETURN v_marked;
END
$$;
COMMENT ON FUNCTION activity.sp_mark_events_published(bigint[]) IS 'Publisher: marks the events published; returns how many were not yet. Unknown or already published ids are ignored.';
REVOKE ALL ON FUNCTION activity.sp_mark_events_published(bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_mark_events_published(bigint[]) TO auth_api_user;

CREATE FUNCTION activity.sp_events_lag()
RETURNS TABLE (unpublished bigint, oldest_created_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = activity, pg_temp
AS $$
  SELECT count(*), min(e.created_at)
    FROM activity.events e
   WHERE e.published_at IS NULL
$$;
COMMENT ON FUNCTION activity.sp_events_lag() IS 'Publisher metrics: one row, the number of unpublished events and the creation time of the oldest (NULL when none).';
REVOKE ALL ON FUNCTION activity.sp_events_lag() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_events_lag() TO auth_api_user;

-- Down Migration

DROP FUNCTION activity.sp_events_lag();
DROP FUNCTION activity.sp_mark_events_published(bigint[]);
DROP FUNCTION activity.sp_claim_events(integer);
