-- Up Migration
--
-- A revoke-all must tell which sessions it ended: each one becomes a
-- session.revoked event (issue 15) and the event is derived from the audit row.
-- fn_revoke_user_families now returns the ended family ids instead of their
-- count; a return type cannot change in place, so it is dropped and created
-- again, and its four callers change with it (same transaction: no caller ever
-- sees the other shape). Each caller returns and audits the same count as
-- before, and its audit details gain family_ids.

DROP FUNCTION activity.fn_revoke_user_families(uuid, uuid, text);
CREATE FUNCTION activity.fn_revoke_user_families(p_user_id uuid, p_except_family_id uuid, p_reason text) RETURNS uuid[]
    LANGUAGE plpgsql
    SET search_path TO 'activity', 'pg_temp'
    AS $$
DECLARE
  v_ended uuid[];
BEGIN
  -- Lock order users -> family -> token rows, like every family-level change.
  PERFORM pg_advisory_xact_lock(8151, hashtext(f.family_id::text))
     FROM (SELECT DISTINCT t.family_id
             FROM activity.refresh_tokens t
            WHERE t.user_id = p_user_id AND activity.fn_refresh_token_is_live(t.revoked, t.expires_at, t.family_expires_at)
              AND t.family_id IS DISTINCT FROM p_except_family_id
            ORDER BY t.family_id) f;

  WITH ended AS (
    UPDATE activity.refresh_tokens t
       SET revoked = true, revoked_at = now(), revoked_reason = p_reason::activity.revoke_reason
     WHERE t.user_id = p_user_id AND activity.fn_refresh_token_is_live(t.revoked, t.expires_at, t.family_expires_at)
       AND t.family_id IS DISTINCT FROM p_except_family_id
    RETURNING t.family_id
  )
  SELECT COALESCE(array_agg(DISTINCT e.family_id ORDER BY e.family_id), '{}') INTO v_ended FROM ended e;
  RETURN v_ended;
END
$$;

COMMENT ON FUNCTION activity.fn_revoke_user_families(uuid, uuid, text) IS 'Internal: revokes all live sessions of a user except one family; returns the ids of the sessions (families) ended, sorted. Caller must hold the users row FOR UPDATE.';
REVOKE ALL ON FUNCTION activity.fn_revoke_user_families(uuid, uuid, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION activity.sp_revoke_user_sessions(p_user_id uuid, p_except_family_id uuid DEFAULT NULL::uuid, p_reason text DEFAULT 'logout_all'::text, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
DECLARE
  v_ended uuid[];
BEGIN
  -- 'rotated' is the rotation's own mark: a revoke-all must not pass for one.
  IF activity.fn_require_revoke_reason(p_reason) = 'rotated' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown revocation reason';
  END IF;
  PERFORM FROM activity.users u WHERE u.id = p_user_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
  END IF;
  v_ended := activity.fn_revoke_user_families(p_user_id, p_except_family_id, p_reason);
  PERFORM activity.fn_audit('sessions_revoked', p_user_id, p_ctx,
    jsonb_build_object('reason', p_reason, 'sessions_ended', cardinality(v_ended), 'family_ids', to_jsonb(v_ended), 'kept_family_id', p_except_family_id));
  RETURN cardinality(v_ended);
END
$$;

CREATE OR REPLACE FUNCTION activity.sp_update_password(p_user_id uuid, p_hashed_password text, p_end_sessions boolean DEFAULT true, p_keep_family_id uuid DEFAULT NULL::uuid, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $_$
DECLARE
  v_active boolean;
  v_ended  uuid[] := '{}';
  v_burnt  integer;
BEGIN
  IF p_hashed_password IS NULL OR p_hashed_password NOT LIKE '$argon2%' OR length(p_hashed_password) > 255 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'hashed_password must be an argon2 PHC string';
  END IF;
  IF COALESCE(p_end_sessions, true) THEN
    -- FOR UPDATE: blocks new sessions (they take FOR KEY SHARE) until we commit.
    SELECT u.is_active INTO v_active FROM activity.users u WHERE u.id = p_user_id FOR UPDATE;
  ELSE
    SELECT u.is_active INTO v_active FROM activity.users u WHERE u.id = p_user_id FOR NO KEY UPDATE;
  END IF;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
  ELSIF NOT v_active THEN
    RAISE EXCEPTION USING ERRCODE = 'AU003', MESSAGE = 'user is inactive';
  END IF;

  IF COALESCE(p_end_sessions, true) THEN
    UPDATE activity.users u
       SET hashed_password = p_hashed_password, password_changed_at = now(), updated_at = now()
     WHERE u.id = p_user_id;
    v_ended := activity.fn_revoke_user_families(p_user_id, p_keep_family_id, 'password_changed');
    -- A link mailed before the change (a reset asked for by whoever knew the old
    -- password, or read the mailbox) must not outlive it.
    UPDATE activity.email_tokens e SET used_at = now() WHERE e.user_id = p_user_id AND e.used_at IS NULL;
    GET DIAGNOSTICS v_burnt = ROW_COUNT;
    PERFORM activity.fn_audit('password_changed', p_user_id, p_ctx,
      jsonb_build_object('sessions_ended', cardinality(v_ended), 'family_ids', to_jsonb(v_ended), 'kept_family_id', p_keep_family_id, 'email_tokens_burnt', v_burnt));
  ELSE
    -- A rehash with new parameters: same password, so password_changed_at stays.
    UPDATE activity.users u
       SET hashed_password = p_hashed_password, updated_at = now()
     WHERE u.id = p_user_id;
    PERFORM activity.fn_audit('password_rehashed', p_user_id, p_ctx, '{}');
  END IF;
  RETURN cardinality(v_ended);
END
$_$;

CREATE OR REPLACE FUNCTION activity.sp_consume_email_token(p_token_hash text, p_purpose text, p_new_hashed_password text DEFAULT NULL::text, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(user_id uuid, email text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $_$
#variable_conflict use_column
DECLARE
  v_user_id uuid;
  v_token   activity.email_tokens%ROWTYPE;
  v_user    activity.users%ROWTYPE;
  v_ended   uuid[];
BEGIN
  PERFORM activity.fn_require_email_token_purpose(p_purpose);
  IF p_purpose = 'reset_password' AND (p_new_hashed_password IS NULL OR p_new_hashed_password NOT LIKE '$argon2%'
                                       OR length(p_new_hashed_password) > 255) THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'reset_password needs a new argon2 password hash';
  END IF;

  SELECT e.user_id INTO v_user_id FROM activity.email_tokens e
   WHERE e.token_hash = p_token_hash::bpchar AND e.purpose = p_purpose::activity.email_token_purpose;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU004', MESSAGE = 'unknown token';
  END IF;
  -- Lock order: users row (FOR UPDATE: a reset revokes all sessions), then the token row.
  SELECT * INTO v_user FROM activity.users u WHERE u.id = v_user_id FOR UPDATE;
  SELECT * INTO v_token FROM activity.email_tokens e WHERE e.token_hash = p_token_hash::bpchar FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU004', MESSAGE = 'unknown token';
  ELSIF v_token.used_at IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'AU006', MESSAGE = 'token already used';
  ELSIF v_token.expires_at <= now() THEN
    RAISE EXCEPTION USING ERRCODE = 'AU005', MESSAGE = 'token expired';
  ELSIF NOT v_user.is_active THEN
    RAISE EXCEPTION USING ERRCODE = 'AU003', MESSAGE = 'user is inactive';
  END IF;

  UPDATE activity.email_tokens e SET used_at = now() WHERE e.id = v_token.id;

  IF p_purpose = 'verify_email' THEN
    UPDATE activity.users u SET is_verified = true, verified_at = now(), updated_at = now()
     WHERE u.id = v_user.id AND NOT u.is_verified;
    PERFORM activity.fn_audit('email_verified', v_user.id, p_ctx,
      jsonb_build_object('email', v_user.email, 'already_verified', v_user.is_verified));
  ELSE
    -- Following the link proves control of the mailbox: the address counts as
    -- verified and the account's failed-login lock is lifted.
    UPDATE activity.users u
       SET hashed_password = p_new_hashed_password, password_changed_at = now(), updated_at = now(),
           is_verified = true, verified_at = COALESCE(u.verified_at, now()),
           failed_login_attempts = 0, locked_until = NULL
     WHERE u.id = v_user.id;
    DELETE FROM activity.login_attempts a WHERE a.scope = 'email' AND a.key = v_user.email;
    v_ended := activity.fn_revoke_user_families(v_user.id, NULL, 'password_reset');
    -- Every other outstanding link (of either purpose) dies with the old password.
    UPDATE activity.email_tokens e SET used_at = now()
     WHERE e.user_id = v_user.id AND e.used_at IS NULL;
    PERFORM activity.fn_audit('password_reset', v_user.id, p_ctx, jsonb_build_object('sessions_ended', cardinality(v_ended), 'family_ids', to_jsonb(v_ended)));
  END IF;
  RETURN QUERY SELECT v_user.id, v_user.email::text;
END
$_$;

CREATE OR REPLACE FUNCTION activity.sp_deactivate_user(p_user_id uuid, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
DECLARE
  v_active boolean;
  v_ended  uuid[];
BEGIN
  SELECT u.is_active INTO v_active FROM activity.users u WHERE u.id = p_user_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
  ELSIF NOT v_active THEN
    RAISE EXCEPTION USING ERRCODE = 'AU003', MESSAGE = 'user is already inactive';
  END IF;
  UPDATE activity.users u SET is_active = false, updated_at = now() WHERE u.id = p_user_id;
  v_ended := activity.fn_revoke_user_families(p_user_id, NULL, 'user_deactivated');
  UPDATE activity.email_tokens e SET used_at = now() WHERE e.user_id = p_user_id AND e.used_at IS NULL;
  PERFORM activity.fn_audit('user_deactivated', p_user_id, p_ctx, jsonb_build_object('sessions_ended', cardinality(v_ended), 'family_ids', to_jsonb(v_ended)));
END
$$;

-- Down Migration

DROP FUNCTION activity.fn_revoke_user_families(uuid, uuid, text);
CREATE FUNCTION activity.fn_revoke_user_families(p_user_id uuid, p_except_family_id uuid, p_reason text) RETURNS integer
    LANGUAGE plpgsql
    SET search_path TO 'activity', 'pg_temp'
    AS $$
DECLARE
  v_ended integer;
BEGIN
  -- Lock order users -> family -> token rows, like every family-level change.
  PERFORM pg_advisory_xact_lock(8151, hashtext(f.family_id::text))
     FROM (SELECT DISTINCT t.family_id
             FROM activity.refresh_tokens t
            WHERE t.user_id = p_user_id AND activity.fn_refresh_token_is_live(t.revoked, t.expires_at, t.family_expires_at)
              AND t.family_id IS DISTINCT FROM p_except_family_id
            ORDER BY t.family_id) f;

  WITH ended AS (
    UPDATE activity.refresh_tokens t
       SET revoked = true, revoked_at = now(), revoked_reason = p_reason::activity.revoke_reason
     WHERE t.user_id = p_user_id AND activity.fn_refresh_token_is_live(t.revoked, t.expires_at, t.family_expires_at)
       AND t.family_id IS DISTINCT FROM p_except_family_id
    RETURNING t.family_id
  )
  SELECT count(DISTINCT e.family_id) INTO v_ended FROM ended e;
  RETURN v_ended;
END
$$;

COMMENT ON FUNCTION activity.fn_revoke_user_families(uuid, uuid, text) IS 'Internal: revokes all live sessions of a user except one family; returns the number of live sessions ended. Caller must hold the users row FOR UPDATE.';
REVOKE ALL ON FUNCTION activity.fn_revoke_user_families(uuid, uuid, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION activity.sp_revoke_user_sessions(p_user_id uuid, p_except_family_id uuid DEFAULT NULL::uuid, p_reason text DEFAULT 'logout_all'::text, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
DECLARE
  v_ended integer;
BEGIN
  -- 'rotated' is the rotation's own mark: a revoke-all must not pass for one.
  IF activity.fn_require_revoke_reason(p_reason) = 'rotated' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown revocation reason';
  END IF;
  PERFORM FROM activity.users u WHERE u.id = p_user_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
  END IF;
  v_ended := activity.fn_revoke_user_families(p_user_id, p_except_family_id, p_reason);
  PERFORM activity.fn_audit('sessions_revoked', p_user_id, p_ctx,
    jsonb_build_object('reason', p_reason, 'sessions_ended', v_ended, 'kept_family_id', p_except_family_id));
  RETURN v_ended;
END
$$;

CREATE OR REPLACE FUNCTION activity.sp_update_password(p_user_id uuid, p_hashed_password text, p_end_sessions boolean DEFAULT true, p_keep_family_id uuid DEFAULT NULL::uuid, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $_$
DECLARE
  v_active boolean;
  v_ended  integer := 0;
  v_burnt  integer;
BEGIN
  IF p_hashed_password IS NULL OR p_hashed_password NOT LIKE '$argon2%' OR length(p_hashed_password) > 255 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'hashed_password must be an argon2 PHC string';
  END IF;
  IF COALESCE(p_end_sessions, true) THEN
    -- FOR UPDATE: blocks new sessions (they take FOR KEY SHARE) until we commit.
    SELECT u.is_active INTO v_active FROM activity.users u WHERE u.id = p_user_id FOR UPDATE;
  ELSE
    SELECT u.is_active INTO v_active FROM activity.users u WHERE u.id = p_user_id FOR NO KEY UPDATE;
  END IF;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
  ELSIF NOT v_active THEN
    RAISE EXCEPTION USING ERRCODE = 'AU003', MESSAGE = 'user is inactive';
  END IF;

  IF COALESCE(p_end_sessions, true) THEN
    UPDATE activity.users u
       SET hashed_password = p_hashed_password, password_changed_at = now(), updated_at = now()
     WHERE u.id = p_user_id;
    v_ended := activity.fn_revoke_user_families(p_user_id, p_keep_family_id, 'password_changed');
    -- A link mailed before the change (a reset asked for by whoever knew the old
    -- password, or read the mailbox) must not outlive it.
    UPDATE activity.email_tokens e SET used_at = now() WHERE e.user_id = p_user_id AND e.used_at IS NULL;
    GET DIAGNOSTICS v_burnt = ROW_COUNT;
    PERFORM activity.fn_audit('password_changed', p_user_id, p_ctx,
      jsonb_build_object('sessions_ended', v_ended, 'kept_family_id', p_keep_family_id, 'email_tokens_burnt', v_burnt));
  ELSE
    -- A rehash with new parameters: same password, so password_changed_at stays.
    UPDATE activity.users u
       SET hashed_password = p_hashed_password, updated_at = now()
     WHERE u.id = p_user_id;
    PERFORM activity.fn_audit('password_rehashed', p_user_id, p_ctx, '{}');
  END IF;
  RETURN v_ended;
END
$_$;

CREATE OR REPLACE FUNCTION activity.sp_consume_email_token(p_token_hash text, p_purpose text, p_new_hashed_password text DEFAULT NULL::text, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(user_id uuid, email text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $_$
#variable_conflict use_column
DECLARE
  v_user_id uuid;
  v_token   activity.email_tokens%ROWTYPE;
  v_user    activity.users%ROWTYPE;
  v_ended   integer;
BEGIN
  PERFORM activity.fn_require_email_token_purpose(p_purpose);
  IF p_purpose = 'reset_password' AND (p_new_hashed_password IS NULL OR p_new_hashed_password NOT LIKE '$argon2%'
                                       OR length(p_new_hashed_password) > 255) THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'reset_password needs a new argon2 password hash';
  END IF;

  SELECT e.user_id INTO v_user_id FROM activity.email_tokens e
   WHERE e.token_hash = p_token_hash::bpchar AND e.purpose = p_purpose::activity.email_token_purpose;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU004', MESSAGE = 'unknown token';
  END IF;
  -- Lock order: users row (FOR UPDATE: a reset revokes all sessions), then the token row.
  SELECT * INTO v_user FROM activity.users u WHERE u.id = v_user_id FOR UPDATE;
  SELECT * INTO v_token FROM activity.email_tokens e WHERE e.token_hash = p_token_hash::bpchar FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU004', MESSAGE = 'unknown token';
  ELSIF v_token.used_at IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'AU006', MESSAGE = 'token already used';
  ELSIF v_token.expires_at <= now() THEN
    RAISE EXCEPTION USING ERRCODE = 'AU005', MESSAGE = 'token expired';
  ELSIF NOT v_user.is_active THEN
    RAISE EXCEPTION USING ERRCODE = 'AU003', MESSAGE = 'user is inactive';
  END IF;

  UPDATE activity.email_tokens e SET used_at = now() WHERE e.id = v_token.id;

  IF p_purpose = 'verify_email' THEN
    UPDATE activity.users u SET is_verified = true, verified_at = now(), updated_at = now()
     WHERE u.id = v_user.id AND NOT u.is_verified;
    PERFORM activity.fn_audit('email_verified', v_user.id, p_ctx,
      jsonb_build_object('email', v_user.email, 'already_verified', v_user.is_verified));
  ELSE
    -- Following the link proves control of the mailbox: the address counts as
    -- verified and the account's failed-login lock is lifted.
    UPDATE activity.users u
       SET hashed_password = p_new_hashed_password, password_changed_at = now(), updated_at = now(),
           is_verified = true, verified_at = COALESCE(u.verified_at, now()),
           failed_login_attempts = 0, locked_until = NULL
     WHERE u.id = v_user.id;
    DELETE FROM activity.login_attempts a WHERE a.scope = 'email' AND a.key = v_user.email;
    v_ended := activity.fn_revoke_user_families(v_user.id, NULL, 'password_reset');
    -- Every other outstanding link (of either purpose) dies with the old password.
    UPDATE activity.email_tokens e SET used_at = now()
     WHERE e.user_id = v_user.id AND e.used_at IS NULL;
    PERFORM activity.fn_audit('password_reset', v_user.id, p_ctx, jsonb_build_object('sessions_ended', v_ended));
  END IF;
  RETURN QUERY SELECT v_user.id, v_user.email::text;
END
$_$;

CREATE OR REPLACE FUNCTION activity.sp_deactivate_user(p_user_id uuid, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
DECLARE
  v_active boolean;
  v_ended  integer;
BEGIN
  SELECT u.is_active INTO v_active FROM activity.users u WHERE u.id = p_user_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
  ELSIF NOT v_active THEN
    RAISE EXCEPTION USING ERRCODE = 'AU003', MESSAGE = 'user is already inactive';
  END IF;
  UPDATE activity.users u SET is_active = false, updated_at = now() WHERE u.id = p_user_id;
  v_ended := activity.fn_revoke_user_families(p_user_id, NULL, 'user_deactivated');
  UPDATE activity.email_tokens e SET used_at = now() WHERE e.user_id = p_user_id AND e.used_at IS NULL;
  PERFORM activity.fn_audit('user_deactivated', p_user_id, p_ctx, jsonb_build_object('sessions_ended', v_ended));
END
$$;
