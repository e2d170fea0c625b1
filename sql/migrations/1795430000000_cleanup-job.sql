-- Up Migration
--
-- One call for the whole periodic cleanup, safe to start from every instance at
-- once: a transaction-level advisory lock lets one caller work while the others
-- return at once with no row. Runs the two cleanup procedures in one transaction.

CREATE FUNCTION activity.sp_run_cleanup(p_unverified_hours integer, p_audit_retention_days integer,
                                        p_attempt_retention_hours integer DEFAULT 24)
RETURNS TABLE (item text, deleted bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
#variable_conflict use_column
BEGIN
  -- Class 8152 is this job's alone (8151 keys refresh-token families).
  IF NOT pg_try_advisory_xact_lock(8152, 0) THEN
    RETURN;
  END IF;
  RETURN QUERY SELECT c.item, c.deleted
                 FROM activity.sp_cleanup_expired(p_audit_retention_days, p_attempt_retention_hours) c;
  RETURN QUERY SELECT 'unverified_users'::text, activity.sp_cleanup_unverified_users(p_unverified_hours)::bigint;
END
$$;
COMMENT ON FUNCTION activity.sp_run_cleanup(integer, integer, integer) IS 'Periodic cleanup under an advisory lock: sp_cleanup_expired, then sp_cleanup_unverified_users; one row per item. No row at all when another caller holds the lock. AU007 on retention < 1. Audit cleanup (by the procedures it calls).';
REVOKE ALL ON FUNCTION activity.sp_run_cleanup(integer, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_run_cleanup(integer, integer, integer) TO auth_api_user;

-- Down Migration

DROP FUNCTION activity.sp_run_cleanup(integer, integer, integer);
