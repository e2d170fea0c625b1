-- Up Migration
--
-- The email-token purposes are one enum type, the one place they are listed in
-- SQL (the TypeScript union EmailTokenPurpose in src/db/procedures.ts is held equal
-- to it by test/db/vocabularies.test.ts). The column takes the type instead of its
-- CHECK; the procedures keep their text parameters and check them through
-- fn_require_email_token_purpose (AU007, never a 22P02). sp_create_email_token
-- checks its arguments with fn_check_email_token_args, like the other issuers.

CREATE TYPE activity.email_token_purpose AS ENUM ('verify_email', 'reset_password');
COMMENT ON TYPE activity.email_token_purpose IS 'What a one-time email token is for.';

ALTER TABLE activity.email_tokens DROP CONSTRAINT email_tokens_purpose_check;
ALTER TABLE activity.email_tokens
  ALTER COLUMN purpose TYPE activity.email_token_purpose USING purpose::activity.email_token_purpose;

-- Checked against the labels rather than by a failing cast: no subtransaction per call.
CREATE FUNCTION activity.fn_require_email_token_purpose(p_purpose text)
RETURNS activity.email_token_purpose
LANGUAGE plpgsql STABLE SET search_path = activity, pg_temp
AS $$
BEGIN
  IF p_purpose IS NULL OR NOT p_purpose = ANY (enum_range(NULL::activity.email_token_purpose)::text[]) THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown email token purpose';
  END IF;
  RETURN p_purpose::activity.email_token_purpose;
END
$$;
COMMENT ON FUNCTION activity.fn_require_email_token_purpose(text) IS 'Internal: the text as an email_token_purpose; AU007 when NULL or not one of its labels.';
REVOKE ALL ON FUNCTION activity.fn_require_email_token_purpose(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION activity.fn_check_email_token_args(p_purpose text, p_token_hash text, p_ttl_seconds integer)
 RETURNS void
 LANGUAGE plpgsql
 IMMUTABLE
 SET search_path TO 'activity', 'pg_temp'
AS $function$
BEGIN
  PERFORM activity.fn_require_email_token_purpose(p_purpose);
  IF p_ttl_seconds IS NULL OR p_ttl_seconds <= 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'ttl must be > 0';
  ELSIF p_token_hash IS NULL OR p_token_hash !~ '^[0-9a-f]{64}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash must be lowercase hex SHA-256';
  END IF;
END
$function$

;

CREATE OR REPLACE FUNCTION activity.fn_issue_email_token(p_user_id uuid, p_email text, p_purpose text, p_token_hash text, p_ttl_seconds integer, p_ctx jsonb)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO 'activity', 'pg_temp'
AS $function$
DECLARE
  v_id bigint;
BEGIN
  UPDATE activity.email_tokens e SET used_at = now()
   WHERE e.user_id = p_user_id AND e.purpose = p_purpose::activity.email_token_purpose AND e.used_at IS NULL;
  BEGIN
    INSERT INTO activity.email_tokens (user_id, purpose, token_hash, email, expires_at)
    VALUES (p_user_id, p_purpose::activity.email_token_purpose, p_token_hash, p_email, now() + make_interval(secs => p_ttl_seconds))
    RETURNING id INTO v_id;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash already used';
  END;
  PERFORM activity.fn_audit('email_token_created', p_user_id, p_ctx, jsonb_build_object('purpose', p_purpose, 'token_id', v_id));
END
$function$

;

CREATE OR REPLACE FUNCTION activity.sp_create_email_token(p_user_id uuid, p_purpose text, p_token_hash text, p_ttl_seconds integer, p_ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS TABLE(id bigint, email text, expires_at timestamp with time zone)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'activity', 'pg_temp'
AS $function$
#variable_conflict use_column
DECLARE
  v_user  activity.users%ROWTYPE;
  v_token activity.email_tokens%ROWTYPE;
BEGIN
  PERFORM activity.fn_check_email_token_args(p_purpose, p_token_hash, p_ttl_seconds);
  -- The user row lock serialises concurrent requests: only the newest link works.
  SELECT * INTO v_user FROM activity.users u WHERE u.id = p_user_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
  ELSIF NOT v_user.is_active THEN
    RAISE EXCEPTION USING ERRCODE = 'AU003', MESSAGE = 'user is inactive';
  ELSIF p_purpose = 'verify_email' AND v_user.is_verified THEN
    RAISE EXCEPTION USING ERRCODE = 'AU009', MESSAGE = 'email already verified';
  END IF;
  UPDATE activity.email_tokens e SET used_at = now()
   WHERE e.user_id = p_user_id AND e.purpose = p_purpose::activity.email_token_purpose AND e.used_at IS NULL;
  BEGIN
    INSERT INTO activity.email_tokens (user_id, purpose, token_hash, email, expires_at)
    VALUES (p_user_id, p_purpose::activity.email_token_purpose, p_token_hash, v_user.email, now() + make_interval(secs => p_ttl_seconds))
    RETURNING * INTO v_token;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash already used';
  END;
  PERFORM activity.fn_audit('email_token_created', p_user_id, p_ctx,
    jsonb_build_object('purpose', p_purpose, 'token_id', v_token.id));
  RETURN QUERY SELECT v_token.id, v_token.email::text, v_token.expires_at;
END
$function$

;

CREATE OR REPLACE FUNCTION activity.sp_consume_email_token(p_token_hash text, p_purpose text, p_new_hashed_password text DEFAULT NULL::text, p_ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS TABLE(user_id uuid, email text)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'activity', 'pg_temp'
AS $function$
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
$function$

;

CREATE OR REPLACE FUNCTION activity.sp_get_used_email_token(p_token_hash text, p_purpose text, p_window_seconds integer)
 RETURNS TABLE(is_verified boolean, hashed_password text)
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'activity', 'pg_temp'
AS $function$
#variable_conflict use_column
BEGIN
  PERFORM activity.fn_require_email_token_purpose(p_purpose);
  IF p_window_seconds IS NULL OR p_window_seconds < 1 OR p_window_seconds > 3600 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'window must be 1..3600 seconds';
  END IF;
  IF p_token_hash IS NULL OR p_token_hash !~ '^[0-9a-f]{64}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash must be 64 lowercase hex characters';
  END IF;

  RETURN QUERY
  SELECT u.is_verified,
         CASE
           WHEN e.purpose = 'reset_password'
            AND e.used_at > now() - make_interval(secs => p_window_seconds)
            AND u.password_changed_at = e.used_at
            AND EXISTS (SELECT 1 FROM activity.audit_logs l
                         WHERE l.user_id = u.id AND l.action = 'password_reset' AND l.created_at = e.used_at)
           THEN u.hashed_password::text
         END
    FROM activity.email_tokens e
    JOIN activity.users u ON u.id = e.user_id
   WHERE e.token_hash = p_token_hash::bpchar
     AND e.purpose = p_purpose::activity.email_token_purpose
     AND e.used_at IS NOT NULL
     AND u.is_active;
END
$function$

;

-- Down Migration

CREATE OR REPLACE FUNCTION activity.fn_check_email_token_args(p_purpose text, p_token_hash text, p_ttl_seconds integer)
 RETURNS void
 LANGUAGE plpgsql
 IMMUTABLE
 SET search_path TO 'activity', 'pg_temp'
AS $function$
BEGIN
  IF p_purpose IS NULL OR p_purpose NOT IN ('verify_email', 'reset_password') THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown email token purpose';
  ELSIF p_ttl_seconds IS NULL OR p_ttl_seconds <= 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'ttl must be > 0';
  ELSIF p_token_hash IS NULL OR p_token_hash !~ '^[0-9a-f]{64}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash must be lowercase hex SHA-256';
  END IF;
END
$function$

;

CREATE OR REPLACE FUNCTION activity.fn_issue_email_token(p_user_id uuid, p_email text, p_purpose text, p_token_hash text, p_ttl_seconds integer, p_ctx jsonb)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO 'activity', 'pg_temp'
AS $function$
DECLARE
  v_id bigint;
BEGIN
  UPDATE activity.email_tokens e SET used_at = now()
   WHERE e.user_id = p_user_id AND e.purpose = p_purpose AND e.used_at IS NULL;
  BEGIN
    INSERT INTO activity.email_tokens (user_id, purpose, token_hash, email, expires_at)
    VALUES (p_user_id, p_purpose, p_token_hash, p_email, now() + make_interval(secs => p_ttl_seconds))
    RETURNING id INTO v_id;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash already used';
  END;
  PERFORM activity.fn_audit('email_token_created', p_user_id, p_ctx, jsonb_build_object('purpose', p_purpose, 'token_id', v_id));
END
$function$

;

CREATE OR REPLACE FUNCTION activity.sp_create_email_token(p_user_id uuid, p_purpose text, p_token_hash text, p_ttl_seconds integer, p_ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS TABLE(id bigint, email text, expires_at timestamp with time zone)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'activity', 'pg_temp'
AS $function$
#variable_conflict use_column
DECLARE
  v_user  activity.users%ROWTYPE;
  v_token activity.email_tokens%ROWTYPE;
BEGIN
  IF p_purpose IS NULL OR p_purpose NOT IN ('verify_email', 'reset_password') THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown email token purpose';
  END IF;
  IF p_ttl_seconds IS NULL OR p_ttl_seconds <= 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'ttl must be > 0';
  END IF;
  IF p_token_hash IS NULL OR p_token_hash !~ '^[0-9a-f]{64}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash must be lowercase hex SHA-256';
  END IF;
  -- The user row lock serialises concurrent requests: only the newest link works.
  SELECT * INTO v_user FROM activity.users u WHERE u.id = p_user_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
  ELSIF NOT v_user.is_active THEN
    RAISE EXCEPTION USING ERRCODE = 'AU003', MESSAGE = 'user is inactive';
  ELSIF p_purpose = 'verify_email' AND v_user.is_verified THEN
    RAISE EXCEPTION USING ERRCODE = 'AU009', MESSAGE = 'email already verified';
  END IF;
  UPDATE activity.email_tokens e SET used_at = now()
   WHERE e.user_id = p_user_id AND e.purpose = p_purpose AND e.used_at IS NULL;
  BEGIN
    INSERT INTO activity.email_tokens (user_id, purpose, token_hash, email, expires_at)
    VALUES (p_user_id, p_purpose, p_token_hash, v_user.email, now() + make_interval(secs => p_ttl_seconds))
    RETURNING * INTO v_token;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash already used';
  END;
  PERFORM activity.fn_audit('email_token_created', p_user_id, p_ctx,
    jsonb_build_object('purpose', p_purpose, 'token_id', v_token.id));
  RETURN QUERY SELECT v_token.id, v_token.email::text, v_token.expires_at;
END
$function$

;

CREATE OR REPLACE FUNCTION activity.sp_consume_email_token(p_token_hash text, p_purpose text, p_new_hashed_password text DEFAULT NULL::text, p_ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS TABLE(user_id uuid, email text)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'activity', 'pg_temp'
AS $function$
#variable_conflict use_column
DECLARE
  v_user_id uuid;
  v_token   activity.email_tokens%ROWTYPE;
  v_user    activity.users%ROWTYPE;
  v_ended   integer;
BEGIN
  IF p_purpose IS NULL OR p_purpose NOT IN ('verify_email', 'reset_password') THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown email token purpose';
  END IF;
  IF p_purpose = 'reset_password' AND (p_new_hashed_password IS NULL OR p_new_hashed_password NOT LIKE '$argon2%'
                                       OR length(p_new_hashed_password) > 255) THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'reset_password needs a new argon2 password hash';
  END IF;

  SELECT e.user_id INTO v_user_id FROM activity.email_tokens e
   WHERE e.token_hash = p_token_hash::bpchar AND e.purpose = p_purpose;
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
$function$

;

CREATE OR REPLACE FUNCTION activity.sp_get_used_email_token(p_token_hash text, p_purpose text, p_window_seconds integer)
 RETURNS TABLE(is_verified boolean, hashed_password text)
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'activity', 'pg_temp'
AS $function$
#variable_conflict use_column
BEGIN
  IF p_purpose IS NULL OR p_purpose NOT IN ('verify_email', 'reset_password') THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown email token purpose';
  END IF;
  IF p_window_seconds IS NULL OR p_window_seconds < 1 OR p_window_seconds > 3600 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'window must be 1..3600 seconds';
  END IF;
  IF p_token_hash IS NULL OR p_token_hash !~ '^[0-9a-f]{64}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash must be 64 lowercase hex characters';
  END IF;

  RETURN QUERY
  SELECT u.is_verified,
         CASE
           WHEN e.purpose = 'reset_password'
            AND e.used_at > now() - make_interval(secs => p_window_seconds)
            AND u.password_changed_at = e.used_at
            AND EXISTS (SELECT 1 FROM activity.audit_logs l
                         WHERE l.user_id = u.id AND l.action = 'password_reset' AND l.created_at = e.used_at)
           THEN u.hashed_password::text
         END
    FROM activity.email_tokens e
    JOIN activity.users u ON u.id = e.user_id
   WHERE e.token_hash = p_token_hash::bpchar
     AND e.purpose = p_purpose
     AND e.used_at IS NOT NULL
     AND u.is_active;
END
$function$

;

DROP FUNCTION activity.fn_require_email_token_purpose(text);

ALTER TABLE activity.email_tokens ALTER COLUMN purpose TYPE text USING purpose::text;
ALTER TABLE activity.email_tokens ADD CONSTRAINT email_tokens_purpose_check CHECK (purpose IN ('verify_email', 'reset_password'));

DROP TYPE activity.email_token_purpose;
