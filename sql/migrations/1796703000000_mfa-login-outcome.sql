-- Up Migration
--
-- A wrong second-factor code (issue 17) counts toward the lockout like a wrong password:
-- the service reserves the attempt with sp_begin_login (by user id) before checking the
-- code and ends it here. It gets its own outcome, so the audit row (and the mfa.failed
-- event) tells a guessed code from a guessed password. Only the accepted outcomes change.

CREATE OR REPLACE FUNCTION activity.sp_end_login_attempt(p_email text, p_ip text, p_device_hash text, p_outcome text, p_threshold integer, p_ip_threshold integer, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(failed_count integer, locked_until timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
#variable_conflict use_column
DECLARE
  v_email    text := left(lower(btrim(p_email)), 255);
  v_ip       text := left(NULLIF(btrim(p_ip), ''), 255);
  v_user_id  uuid;
  v_count    integer;
  v_lock     timestamptz;
  v_ip_count integer;
  v_ip_lock  timestamptz;
BEGIN
  IF p_outcome IS NULL OR p_outcome NOT IN ('password_ok', 'login_failed', 'reauth_failed', 'mfa_failed') THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown login outcome';
  END IF;
  IF v_email IS NULL OR v_email = '' OR p_threshold IS NULL OR p_threshold < 1 OR p_ip_threshold IS NULL OR p_ip_threshold < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'email and thresholds are required';
  END IF;
  -- Users row first (lock order), so this cannot deadlock with a successful login.
  SELECT u.id INTO v_user_id FROM activity.users u WHERE u.email = v_email FOR NO KEY UPDATE;

  IF p_outcome = 'password_ok' THEN
    -- The password was right: the reservation was no failure.
    IF p_device_hash IS NOT NULL THEN
      PERFORM activity.fn_release_attempt('device', p_device_hash, p_threshold);
    ELSE
      PERFORM activity.fn_release_attempt('email', v_email, p_threshold);
      IF v_ip IS NOT NULL THEN
        PERFORM activity.fn_release_attempt('ip', v_ip, p_ip_threshold);
      END IF;
    END IF;
    RETURN QUERY SELECT 0, NULL::timestamptz;
    RETURN;
  END IF;

  -- A failure: the attempt was counted when it was reserved; report and mirror it.
  IF p_device_hash IS NOT NULL THEN
    SELECT a.failed_count, a.locked_until INTO v_count, v_lock
      FROM activity.login_attempts a WHERE a.scope = 'device' AND a.key = p_device_hash;
  ELSE
    SELECT a.failed_count, a.locked_until INTO v_count, v_lock
      FROM activity.login_attempts a WHERE a.scope = 'email' AND a.key = v_email;
    IF v_ip IS NOT NULL THEN
      SELECT a.failed_count, a.locked_until INTO v_ip_count, v_ip_lock
        FROM activity.login_attempts a WHERE a.scope = 'ip' AND a.key = v_ip;
    END IF;
    -- Mirror onto the account; runs (matching no row) when there is none: same work.
    UPDATE activity.users u
       SET failed_login_attempts = COALESCE(v_count, 0), locked_until = v_lock
     WHERE u.email = v_email;
  END IF;
  v_lock := CASE WHEN v_lock > now() THEN v_lock END;
  v_ip_lock := CASE WHEN v_ip_lock > now() THEN v_ip_lock END;

  PERFORM activity.fn_audit(p_outcome, v_user_id, p_ctx,
    jsonb_build_object('email', v_email, 'count', v_count, 'ip_count', v_ip_count, 'trusted_device', p_device_hash IS NOT NULL));
  IF v_count >= p_threshold AND v_lock IS NOT NULL THEN
    PERFORM activity.fn_audit(CASE WHEN p_device_hash IS NULL THEN 'account_locked' ELSE 'device_locked' END, v_user_id, p_ctx,
      jsonb_build_object('email', v_email, 'count', v_count, 'locked_until', v_lock));
  END IF;
  IF v_ip_count >= p_ip_threshold AND v_ip_lock IS NOT NULL THEN
    PERFORM activity.fn_audit('ip_locked', v_user_id, p_ctx,
      jsonb_build_object('ip', v_ip, 'count', v_ip_count, 'locked_until', v_ip_lock));
  END IF;
  RETURN QUERY SELECT COALESCE(v_count, 0), greatest(v_lock, v_ip_lock);
END
$$;

COMMENT ON FUNCTION activity.sp_end_login_attempt(p_email text, p_ip text, p_device_hash text, p_outcome text, p_threshold integer, p_ip_threshold integer, p_ctx jsonb) IS 'Ends a password check begun by sp_begin_login that did not start a session. password_ok (a right password that starts no session: a re-authentication, an unverified login) gives the reservation back; login_failed / reauth_failed / mfa_failed (a wrong second-factor code) keep it counted, mirror it onto the account and audit it (+ account_locked, device_locked, ip_locked at the thresholds). p_device_hash only when the attempt came from a trusted device. Returns the count and the running lock. AU007 bad outcome or arguments.';

-- Down Migration

CREATE OR REPLACE FUNCTION activity.sp_end_login_attempt(p_email text, p_ip text, p_device_hash text, p_outcome text, p_threshold integer, p_ip_threshold integer, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(failed_count integer, locked_until timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
#variable_conflict use_column
DECLARE
  v_email    text := left(lower(btrim(p_email)), 255);
  v_ip       text := left(NULLIF(btrim(p_ip), ''), 255);
  v_user_id  uuid;
  v_count    integer;
  v_lock     timestamptz;
  v_ip_count integer;
  v_ip_lock  timestamptz;
BEGIN
  IF p_outcome IS NULL OR p_outcome NOT IN ('password_ok', 'login_failed', 'reauth_failed') THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown login outcome';
  END IF;
  IF v_email IS NULL OR v_email = '' OR p_threshold IS NULL OR p_threshold < 1 OR p_ip_threshold IS NULL OR p_ip_threshold < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'email and thresholds are required';
  END IF;
  -- Users row first (lock order), so this cannot deadlock with a successful login.
  SELECT u.id INTO v_user_id FROM activity.users u WHERE u.email = v_email FOR NO KEY UPDATE;

  IF p_outcome = 'password_ok' THEN
    -- The password was right: the reservation was no failure.
    IF p_device_hash IS NOT NULL THEN
      PERFORM activity.fn_release_attempt('device', p_device_hash, p_threshold);
    ELSE
      PERFORM activity.fn_release_attempt('email', v_email, p_threshold);
      IF v_ip IS NOT NULL THEN
        PERFORM activity.fn_release_attempt('ip', v_ip, p_ip_threshold);
      END IF;
    END IF;
    RETURN QUERY SELECT 0, NULL::timestamptz;
    RETURN;
  END IF;

  -- A failure: the attempt was counted when it was reserved; report and mirror it.
  IF p_device_hash IS NOT NULL THEN
    SELECT a.failed_count, a.locked_until INTO v_count, v_lock
      FROM activity.login_attempts a WHERE a.scope = 'device' AND a.key = p_device_hash;
  ELSE
    SELECT a.failed_count, a.locked_until INTO v_count, v_lock
      FROM activity.login_attempts a WHERE a.scope = 'email' AND a.key = v_email;
    IF v_ip IS NOT NULL THEN
      SELECT a.failed_count, a.locked_until INTO v_ip_count, v_ip_lock
        FROM activity.login_attempts a WHERE a.scope = 'ip' AND a.key = v_ip;
    END IF;
    -- Mirror onto the account; runs (matching no row) when there is none: same work.
    UPDATE activity.users u
       SET failed_login_attempts = COALESCE(v_count, 0), locked_until = v_lock
     WHERE u.email = v_email;
  END IF;
  v_lock := CASE WHEN v_lock > now() THEN v_lock END;
  v_ip_lock := CASE WHEN v_ip_lock > now() THEN v_ip_lock END;

  PERFORM activity.fn_audit(p_outcome, v_user_id, p_ctx,
    jsonb_build_object('email', v_email, 'count', v_count, 'ip_count', v_ip_count, 'trusted_device', p_device_hash IS NOT NULL));
  IF v_count >= p_threshold AND v_lock IS NOT NULL THEN
    PERFORM activity.fn_audit(CASE WHEN p_device_hash IS NULL THEN 'account_locked' ELSE 'device_locked' END, v_user_id, p_ctx,
      jsonb_build_object('email', v_email, 'count', v_count, 'locked_until', v_lock));
  END IF;
  IF v_ip_count >= p_ip_threshold AND v_ip_lock IS NOT NULL THEN
    PERFORM activity.fn_audit('ip_locked', v_user_id, p_ctx,
      jsonb_build_object('ip', v_ip, 'count', v_ip_count, 'locked_until', v_ip_lock));
  END IF;
  RETURN QUERY SELECT COALESCE(v_count, 0), greatest(v_lock, v_ip_lock);
END
$$;

COMMENT ON FUNCTION activity.sp_end_login_attempt(p_email text, p_ip text, p_device_hash text, p_outcome text, p_threshold integer, p_ip_threshold integer, p_ctx jsonb) IS 'Ends a password check begun by sp_begin_login that did not start a session. password_ok (a right password that starts no session: a re-authentication, an unverified login) gives the reservation back; login_failed / reauth_failed keep it counted, mirror it onto the account and audit it (+ account_locked, device_locked, ip_locked at the thresholds). p_device_hash only when the attempt came from a trusted device. Returns the count and the running lock. AU007 bad outcome or arguments.';
