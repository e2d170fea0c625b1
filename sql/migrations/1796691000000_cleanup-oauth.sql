-- Up Migration
--
-- OAuth states and exchange codes (issue 16) live minutes; the periodic cleanup removes
-- the expired ones, each its own item (oauth_states, oauth_codes). Same signature: the
-- grants stay.

CREATE OR REPLACE FUNCTION activity.sp_cleanup_expired(p_audit_retention_days integer, p_attempt_retention_hours integer DEFAULT 24) RETURNS TABLE(item text, deleted bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
#variable_conflict use_column
DECLARE
  v_tokens   bigint;
  v_email    bigint;
  v_attempts bigint;
  v_audit    bigint;
  v_devices  bigint;
  v_mail     bigint;
  v_states   bigint;
  v_codes    bigint;
BEGIN
  IF p_audit_retention_days IS NULL OR p_audit_retention_days < 1
     OR p_attempt_retention_hours IS NULL OR p_attempt_retention_hours < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'retention must be >= 1';
  END IF;
  -- Whole families only: while any token of a family is live, its rotated tokens
  -- stay so that presenting one is still recognised as reuse.
  DELETE FROM activity.refresh_tokens t
   WHERE t.family_id IN (
     SELECT d.family_id FROM activity.refresh_tokens d
      GROUP BY d.family_id
     HAVING bool_and(NOT activity.fn_refresh_token_is_live(d.revoked, d.expires_at, d.family_expires_at)));
  GET DIAGNOSTICS v_tokens = ROW_COUNT;
  DELETE FROM activity.email_tokens e WHERE e.used_at IS NOT NULL OR e.expires_at <= now();
  GET DIAGNOSTICS v_email = ROW_COUNT;
  DELETE FROM activity.login_attempts a
   WHERE (a.locked_until IS NULL OR a.locked_until <= now())
     AND a.last_failed_at < now() - make_interval(hours => p_attempt_retention_hours);
  GET DIAGNOSTICS v_attempts = ROW_COUNT;
  DELETE FROM activity.audit_logs l WHERE l.created_at < now() - make_interval(days => p_audit_retention_days);
  GET DIAGNOSTICS v_audit = ROW_COUNT;
  DELETE FROM activity.trusted_devices d WHERE d.expires_at <= now();
  GET DIAGNOSTICS v_devices = ROW_COUNT;
  -- Mail windows are at most hours long: a row older than the attempt retention is spent.
  DELETE FROM activity.mail_budget b WHERE b.window_start < now() - make_interval(hours => p_attempt_retention_hours);
  GET DIAGNOSTICS v_mail = ROW_COUNT;
  DELETE FROM activity.oauth_states s WHERE s.expires_at <= now();
  GET DIAGNOSTICS v_states = ROW_COUNT;
  DELETE FROM activity.oauth_codes c WHERE c.expires_at <= now();
  GET DIAGNOSTICS v_codes = ROW_COUNT;
  PERFORM activity.fn_audit('cleanup', NULL, '{}',
    jsonb_build_object('refresh_tokens', v_tokens, 'email_tokens', v_email,
                       'login_attempts', v_attempts, 'audit_logs', v_audit,
                       'trusted_devices', v_devices, 'mail_budget', v_mail,
                       'oauth_states', v_states, 'oauth_codes', v_codes));
  RETURN QUERY VALUES ('refresh_tokens'::text, v_tokens), ('email_tokens', v_email),
                      ('login_attempts', v_attempts), ('audit_logs', v_audit),
                      ('trusted_devices', v_devices), ('mail_budget', v_mail),
                      ('oauth_states', v_states), ('oauth_codes', v_codes);
END
$$;
COMMENT ON FUNCTION activity.sp_cleanup_expired(integer, integer) IS 'Deletes dead refresh token families, used or expired email tokens, stale unlocked login attempts, old audit rows, expired trusted devices, spent mail-budget windows, expired OAuth states and exchange codes; one row per item. AU007 on retention < 1. Audit cleanup.';

-- Down Migration

CREATE OR REPLACE FUNCTION activity.sp_cleanup_expired(p_audit_retention_days integer, p_attempt_retention_hours integer DEFAULT 24) RETURNS TABLE(item text, deleted bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
#variable_conflict use_column
DECLARE
  v_tokens   bigint;
  v_email    bigint;
  v_attempts bigint;
  v_audit    bigint;
  v_devices  bigint;
  v_mail     bigint;
BEGIN
  IF p_audit_retention_days IS NULL OR p_audit_retention_days < 1
     OR p_attempt_retention_hours IS NULL OR p_attempt_retention_hours < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'retention must be >= 1';
  END IF;
  -- Whole families only: while any token of a family is live, its rotated tokens
  -- stay so that presenting one is still recognised as reuse.
  DELETE FROM activity.refresh_tokens t
   WHERE t.family_id IN (
     SELECT d.family_id FROM activity.refresh_tokens d
      GROUP BY d.family_id
     HAVING bool_and(NOT activity.fn_refresh_token_is_live(d.revoked, d.expires_at, d.family_expires_at)));
  GET DIAGNOSTICS v_tokens = ROW_COUNT;
  DELETE FROM activity.email_tokens e WHERE e.used_at IS NOT NULL OR e.expires_at <= now();
  GET DIAGNOSTICS v_email = ROW_COUNT;
  DELETE FROM activity.login_attempts a
   WHERE (a.locked_until IS NULL OR a.locked_until <= now())
     AND a.last_failed_at < now() - make_interval(hours => p_attempt_retention_hours);
  GET DIAGNOSTICS v_attempts = ROW_COUNT;
  DELETE FROM activity.audit_logs l WHERE l.created_at < now() - make_interval(days => p_audit_retention_days);
  GET DIAGNOSTICS v_audit = ROW_COUNT;
  DELETE FROM activity.trusted_devices d WHERE d.expires_at <= now();
  GET DIAGNOSTICS v_devices = ROW_COUNT;
  -- Mail windows are at most hours long: a row older than the attempt retention is spent.
  DELETE FROM activity.mail_budget b WHERE b.window_start < now() - make_interval(hours => p_attempt_retention_hours);
  GET DIAGNOSTICS v_mail = ROW_COUNT;
  PERFORM activity.fn_audit('cleanup', NULL, '{}',
    jsonb_build_object('refresh_tokens', v_tokens, 'email_tokens', v_email,
                       'login_attempts', v_attempts, 'audit_logs', v_audit,
                       'trusted_devices', v_devices, 'mail_budget', v_mail));
  RETURN QUERY VALUES ('refresh_tokens'::text, v_tokens), ('email_tokens', v_email),
                      ('login_attempts', v_attempts), ('audit_logs', v_audit),
                      ('trusted_devices', v_devices), ('mail_budget', v_mail);
END
$$;
COMMENT ON FUNCTION activity.sp_cleanup_expired(integer, integer) IS 'Deletes dead refresh token families, used or expired email tokens, stale unlocked login attempts, old audit rows, expired trusted devices and spent mail-budget windows; one row per item. AU007 on retention < 1. Audit cleanup.';
