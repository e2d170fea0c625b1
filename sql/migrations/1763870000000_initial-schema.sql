-- Up Migration
--
-- Initial schema of activity-auth: tables, internal helpers (fn_*), the API
-- procedures (sp_*), the admin views and every grant. Runs in one transaction as
-- activity_owner with no search_path: every name is qualified. Rules: sql/CONVENTIONS.md.

-- ---------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------

CREATE TABLE activity.users (
  id                    uuid         NOT NULL DEFAULT gen_random_uuid(),
  email                 varchar(255) NOT NULL,
  hashed_password       varchar(255) NOT NULL,
  is_verified           boolean      NOT NULL DEFAULT false,
  is_active             boolean      NOT NULL DEFAULT true,
  created_at            timestamptz  NOT NULL DEFAULT now(),
  verified_at           timestamptz,
  last_login_at         timestamptz,
  updated_at            timestamptz  NOT NULL DEFAULT now(),
  password_changed_at   timestamptz  NOT NULL DEFAULT now(),
  last_login_ip         inet,
  failed_login_attempts integer      NOT NULL DEFAULT 0,
  locked_until          timestamptz,
  CONSTRAINT users_pkey PRIMARY KEY (id),
  CONSTRAINT users_email_key UNIQUE (email),
  CONSTRAINT users_email_lowercase_check CHECK (email = lower(email)),
  CONSTRAINT users_email_format_check CHECK (email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
  CONSTRAINT users_hashed_password_check CHECK (hashed_password LIKE '$argon2%'),
  CONSTRAINT users_verified_at_check CHECK (is_verified = (verified_at IS NOT NULL)),
  CONSTRAINT users_failed_login_attempts_check CHECK (failed_login_attempts >= 0)
);
COMMENT ON TABLE activity.users IS 'Accounts. email is stored normalised (lower, trimmed); hashed_password is an argon2 PHC string.';
-- Cleanup of unverified accounts scans only these.
CREATE INDEX users_created_at_idx ON activity.users (created_at) WHERE NOT is_verified;

CREATE TABLE activity.refresh_tokens (
  id                serial       NOT NULL,
  user_id           uuid         NOT NULL,
  token             varchar(500) NOT NULL,
  jti               varchar(50)  NOT NULL,
  expires_at        timestamptz  NOT NULL,
  created_at        timestamptz  NOT NULL DEFAULT now(),
  revoked           boolean      NOT NULL DEFAULT false,
  family_id         uuid         NOT NULL,
  family_expires_at timestamptz  NOT NULL,
  replaced_by       integer,
  revoked_at        timestamptz,
  revoked_reason    text,
  last_used_at      timestamptz,
  user_agent        varchar(512),
  ip                inet,
  CONSTRAINT refresh_tokens_pkey PRIMARY KEY (id),
  CONSTRAINT refresh_tokens_user_id_fkey FOREIGN KEY (user_id) REFERENCES activity.users (id) ON DELETE CASCADE,
  CONSTRAINT refresh_tokens_replaced_by_fkey FOREIGN KEY (replaced_by) REFERENCES activity.refresh_tokens (id) ON DELETE SET NULL,
  CONSTRAINT refresh_tokens_token_key UNIQUE (token),
  CONSTRAINT refresh_tokens_jti_key UNIQUE (jti),
  CONSTRAINT refresh_tokens_token_check CHECK (token ~ '^[0-9a-f]{64}$'),
  CONSTRAINT refresh_tokens_expires_at_check CHECK (expires_at > created_at),
  CONSTRAINT refresh_tokens_family_expires_at_check CHECK (family_expires_at > created_at),
  CONSTRAINT refresh_tokens_revoked_at_check CHECK (revoked = (revoked_at IS NOT NULL)),
  CONSTRAINT refresh_tokens_revoked_reason_check CHECK (revoked_reason IN (
    'rotated', 'logout', 'logout_all', 'session_ended', 'reuse_detected',
    'password_changed', 'password_reset', 'user_deactivated'))
);
COMMENT ON TABLE activity.refresh_tokens IS 'Refresh tokens, stored as the SHA-256 (lowercase hex) of the token, never the token. One family = one login session.';
CREATE INDEX refresh_tokens_family_id_idx ON activity.refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_id_idx ON activity.refresh_tokens (user_id) WHERE NOT revoked;
CREATE INDEX refresh_tokens_expires_at_idx ON activity.refresh_tokens (expires_at);
-- sp_check_session runs on every authenticated request: answered from this small
-- covering index even when a long-lived family holds thousands of rotated rows.
CREATE INDEX refresh_tokens_family_id_live_idx ON activity.refresh_tokens (family_id)
  INCLUDE (user_id, expires_at, family_expires_at) WHERE NOT revoked;
-- ON DELETE SET NULL of replaced_by looks rows up by it when cleanup deletes tokens.
CREATE INDEX refresh_tokens_replaced_by_idx ON activity.refresh_tokens (replaced_by);

CREATE TABLE activity.login_attempts (
  scope           text         NOT NULL,
  key             varchar(255) NOT NULL,
  failed_count    integer      NOT NULL,
  first_failed_at timestamptz  NOT NULL DEFAULT now(),
  last_failed_at  timestamptz  NOT NULL DEFAULT now(),
  locked_until    timestamptz,
  CONSTRAINT login_attempts_pkey PRIMARY KEY (scope, key),
  CONSTRAINT login_attempts_scope_check CHECK (scope IN ('email', 'ip')),
  CONSTRAINT login_attempts_failed_count_check CHECK (failed_count >= 0)
);
COMMENT ON TABLE activity.login_attempts IS 'Failed-login counters and locks per normalised email (account or not) and per client IP.';
CREATE INDEX login_attempts_last_failed_at_idx ON activity.login_attempts (last_failed_at);

CREATE TABLE activity.email_tokens (
  id         bigserial    NOT NULL,
  user_id    uuid         NOT NULL,
  purpose    text         NOT NULL,
  token_hash char(64)     NOT NULL,
  email      varchar(255) NOT NULL,
  created_at timestamptz  NOT NULL DEFAULT now(),
  expires_at timestamptz  NOT NULL,
  used_at    timestamptz,
  CONSTRAINT email_tokens_pkey PRIMARY KEY (id),
  CONSTRAINT email_tokens_user_id_fkey FOREIGN KEY (user_id) REFERENCES activity.users (id) ON DELETE CASCADE,
  CONSTRAINT email_tokens_token_hash_key UNIQUE (token_hash),
  CONSTRAINT email_tokens_token_hash_check CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  CONSTRAINT email_tokens_purpose_check CHECK (purpose IN ('verify_email', 'reset_password')),
  CONSTRAINT email_tokens_expires_at_check CHECK (expires_at > created_at)
);
COMMENT ON TABLE activity.email_tokens IS 'One-time tokens mailed for email verification and password reset, stored as SHA-256 hex.';
CREATE INDEX email_tokens_user_id_purpose_idx ON activity.email_tokens (user_id, purpose) WHERE used_at IS NULL;
CREATE INDEX email_tokens_expires_at_idx ON activity.email_tokens (expires_at);

CREATE TABLE activity.audit_logs (
  id         bigserial    NOT NULL,
  action     varchar(64)  NOT NULL,
  user_id    uuid,
  ip         inet,
  user_agent varchar(512),
  request_id varchar(128),
  details    jsonb        NOT NULL DEFAULT '{}',
  created_at timestamptz  NOT NULL DEFAULT now(),
  CONSTRAINT audit_logs_pkey PRIMARY KEY (id),
  CONSTRAINT audit_logs_user_id_fkey FOREIGN KEY (user_id) REFERENCES activity.users (id) ON DELETE SET NULL
);
COMMENT ON TABLE activity.audit_logs IS 'Security events, written by the procedures themselves. Never holds a password or token hash.';
CREATE INDEX audit_logs_created_at_idx ON activity.audit_logs (created_at);
CREATE INDEX audit_logs_user_id_created_at_idx ON activity.audit_logs (user_id, created_at);
CREATE INDEX audit_logs_action_created_at_idx ON activity.audit_logs (action, created_at);

-- ---------------------------------------------------------------------------
-- Internal helpers (granted to nobody)
-- ---------------------------------------------------------------------------

-- The request address as inet, or NULL when PostgreSQL cannot parse it (a forged
-- X-Forwarded-For, an IPv6 zone id): a bad address must never fail a login.
CREATE FUNCTION activity.fn_inet(p_ip text)
RETURNS inet
LANGUAGE plpgsql IMMUTABLE SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
BEGIN
  RETURN NULLIF(btrim(p_ip), '')::inet;
EXCEPTION WHEN invalid_text_representation THEN
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION activity.fn_inet(text) IS 'Internal: text to inet, NULL when empty or unparsable.';
REVOKE ALL ON FUNCTION activity.fn_inet(text) FROM PUBLIC;

CREATE FUNCTION activity.fn_audit(p_action text, p_user_id uuid, p_ctx jsonb, p_details jsonb)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
BEGIN
  INSERT INTO activity.audit_logs (action, user_id, ip, user_agent, request_id, details)
  VALUES (p_action, p_user_id,
          activity.fn_inet(p_ctx->>'ip'),
          left(NULLIF(p_ctx->>'userAgent', ''), 512),
          left(NULLIF(p_ctx->>'requestId', ''), 128),
          COALESCE(p_details, '{}'));
END
$$;
COMMENT ON FUNCTION activity.fn_audit(text, uuid, jsonb, jsonb) IS 'Internal: appends one audit_logs row; ip, userAgent, requestId come from the request context.';
REVOKE ALL ON FUNCTION activity.fn_audit(text, uuid, jsonb, jsonb) FROM PUBLIC;

-- Revokes every live refresh token of a user (all families but p_except_family_id).
-- The caller holds the users row FOR UPDATE, so no session can start meanwhile and
-- the UPDATE (a fresh snapshot) sees every session committed before the lock.
-- Dead rows (expired) are left alone: cleanup deletes them without lock conflicts.
CREATE FUNCTION activity.fn_revoke_user_families(p_user_id uuid, p_except_family_id uuid, p_reason text)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
DECLARE
  v_ended integer;
BEGIN
  -- Lock order users -> family -> token rows, like every family-level change.
  PERFORM pg_advisory_xact_lock(8151, hashtext(f.family_id::text))
     FROM (SELECT DISTINCT t.family_id
             FROM activity.refresh_tokens t
            WHERE t.user_id = p_user_id AND NOT t.revoked
              AND t.expires_at > now() AND t.family_expires_at > now()
              AND t.family_id IS DISTINCT FROM p_except_family_id
            ORDER BY t.family_id) f;

  WITH ended AS (
    UPDATE activity.refresh_tokens t
       SET revoked = true, revoked_at = now(), revoked_reason = p_reason
     WHERE t.user_id = p_user_id AND NOT t.revoked
       AND t.expires_at > now() AND t.family_expires_at > now()
       AND t.family_id IS DISTINCT FROM p_except_family_id
    RETURNING t.family_id
  )
  SELECT count(DISTINCT e.family_id) INTO v_ended FROM ended e;
  RETURN v_ended;
END
$$;
COMMENT ON FUNCTION activity.fn_revoke_user_families(uuid, uuid, text) IS 'Internal: revokes all live sessions of a user except one family; returns the number of live sessions ended. Caller must hold the users row FOR UPDATE.';
REVOKE ALL ON FUNCTION activity.fn_revoke_user_families(uuid, uuid, text) FROM PUBLIC;

-- Lock end for a counter: none below the threshold, then base * 2^(count - threshold)
-- seconds, capped (the exponent is capped too, so huge counts cannot overflow).
CREATE FUNCTION activity.fn_lock_until(p_count integer, p_threshold integer, p_base_seconds integer, p_max_seconds integer)
RETURNS timestamptz
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
  SELECT CASE WHEN p_count >= p_threshold THEN
    now() + make_interval(secs => least(p_base_seconds::float8 * power(2, least(p_count - p_threshold, 40)), p_max_seconds::float8))
  END
$$;
COMMENT ON FUNCTION activity.fn_lock_until(integer, integer, integer, integer) IS 'Internal: lockout end for a failure count (exponential backoff, capped), NULL below the threshold.';
REVOKE ALL ON FUNCTION activity.fn_lock_until(integer, integer, integer, integer) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Users
-- ---------------------------------------------------------------------------

CREATE FUNCTION activity.sp_create_user(p_email text, p_hashed_password text, p_ctx jsonb DEFAULT '{}')
RETURNS TABLE (id uuid, email text, is_verified boolean, is_active boolean, created_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  v_email text := lower(btrim(p_email));
  v_user  activity.users%ROWTYPE;
BEGIN
  IF v_email IS NULL OR length(v_email) > 255 OR v_email !~ '^[^@\s]+@[^@\s]+\.[^@\s]+$' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU008', MESSAGE = 'invalid email address';
  END IF;
  IF p_hashed_password IS NULL OR p_hashed_password NOT LIKE '$argon2%' OR length(p_hashed_password) > 255 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'hashed_password must be an argon2 PHC string';
  END IF;
  BEGIN
    INSERT INTO activity.users (email, hashed_password)
    VALUES (v_email, p_hashed_password)
    RETURNING * INTO v_user;
  EXCEPTION WHEN unique_violation THEN
    -- Also settles two concurrent signups for the same address.
    RAISE EXCEPTION USING ERRCODE = 'AU001', MESSAGE = 'email already registered';
  END;
  PERFORM activity.fn_audit('user_created', v_user.id, p_ctx, jsonb_build_object('email', v_user.email));
  RETURN QUERY SELECT v_user.id, v_user.email::text, v_user.is_verified, v_user.is_active, v_user.created_at;
END
$$;
COMMENT ON FUNCTION activity.sp_create_user(text, text, jsonb) IS 'Creates an unverified user. AU008 bad email, AU001 taken (any letter case, also under a race), AU007 bad hash. Audit user_created.';
REVOKE ALL ON FUNCTION activity.sp_create_user(text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_create_user(text, text, jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_get_user_by_email(p_email text)
RETURNS TABLE (id uuid, email text, hashed_password text, is_verified boolean, is_active boolean,
               created_at timestamptz, verified_at timestamptz, last_login_at timestamptz,
               password_changed_at timestamptz, locked_until timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
  SELECT u.id, u.email::text, u.hashed_password::text, u.is_verified, u.is_active, u.created_at,
         u.verified_at, u.last_login_at, u.password_changed_at, u.locked_until
    FROM activity.users u
   WHERE u.email = lower(btrim(p_email))
$$;
COMMENT ON FUNCTION activity.sp_get_user_by_email(text) IS 'The user with this (normalised) email, active or not; no row when unknown.';
REVOKE ALL ON FUNCTION activity.sp_get_user_by_email(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_get_user_by_email(text) TO auth_api_user;

CREATE FUNCTION activity.sp_get_user_by_id(p_user_id uuid)
RETURNS TABLE (id uuid, email text, hashed_password text, is_verified boolean, is_active boolean,
               created_at timestamptz, verified_at timestamptz, last_login_at timestamptz,
               password_changed_at timestamptz, locked_until timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
  SELECT u.id, u.email::text, u.hashed_password::text, u.is_verified, u.is_active, u.created_at,
         u.verified_at, u.last_login_at, u.password_changed_at, u.locked_until
    FROM activity.users u
   WHERE u.id = p_user_id
$$;
COMMENT ON FUNCTION activity.sp_get_user_by_id(uuid) IS 'The user with this id, active or not; no row when unknown.';
REVOKE ALL ON FUNCTION activity.sp_get_user_by_id(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_get_user_by_id(uuid) TO auth_api_user;

CREATE FUNCTION activity.sp_verify_user_email(p_user_id uuid, p_ctx jsonb DEFAULT '{}')
RETURNS TABLE (id uuid, email text, verified_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  v_user activity.users%ROWTYPE;
BEGIN
  SELECT * INTO v_user FROM activity.users u WHERE u.id = p_user_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
  ELSIF NOT v_user.is_active THEN
    RAISE EXCEPTION USING ERRCODE = 'AU003', MESSAGE = 'user is inactive';
  ELSIF v_user.is_verified THEN
    RAISE EXCEPTION USING ERRCODE = 'AU009', MESSAGE = 'email already verified';
  END IF;
  UPDATE activity.users u
     SET is_verified = true, verified_at = now(), updated_at = now()
   WHERE u.id = p_user_id
  RETURNING * INTO v_user;
  PERFORM activity.fn_audit('email_verified', p_user_id, p_ctx, jsonb_build_object('email', v_user.email));
  RETURN QUERY SELECT v_user.id, v_user.email::text, v_user.verified_at;
END
$$;
COMMENT ON FUNCTION activity.sp_verify_user_email(uuid, jsonb) IS 'Marks the user verified. AU002 unknown, AU003 inactive, AU009 already verified. Audit email_verified.';
REVOKE ALL ON FUNCTION activity.sp_verify_user_email(uuid, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_verify_user_email(uuid, jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_update_last_login(p_user_id uuid, p_ip text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
BEGIN
  UPDATE activity.users u
     SET last_login_at = now(), last_login_ip = activity.fn_inet(p_ip)
   WHERE u.id = p_user_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
  END IF;
END
$$;
COMMENT ON FUNCTION activity.sp_update_last_login(uuid, text) IS 'Seed compatibility: sets last_login_at/last_login_ip. AU002 unknown. The service uses sp_record_successful_login (which also audits).';
REVOKE ALL ON FUNCTION activity.sp_update_last_login(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_update_last_login(uuid, text) TO auth_api_user;

CREATE FUNCTION activity.sp_update_password(p_user_id uuid, p_hashed_password text, p_end_sessions boolean DEFAULT true,
                                            p_keep_family_id uuid DEFAULT NULL, p_ctx jsonb DEFAULT '{}')
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
DECLARE
  v_active boolean;
  v_ended  integer := 0;
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
    PERFORM activity.fn_audit('password_changed', p_user_id, p_ctx,
      jsonb_build_object('sessions_ended', v_ended, 'kept_family_id', p_keep_family_id));
  ELSE
    -- A rehash with new parameters: same password, so password_changed_at stays.
    UPDATE activity.users u
       SET hashed_password = p_hashed_password, updated_at = now()
     WHERE u.id = p_user_id;
    PERFORM activity.fn_audit('password_rehashed', p_user_id, p_ctx, '{}');
  END IF;
  RETURN v_ended;
END
$$;
COMMENT ON FUNCTION activity.sp_update_password(uuid, text, boolean, uuid, jsonb) IS 'Sets a new password hash. With p_end_sessions revokes every session but p_keep_family_id (password_changed) and returns how many ended; without, a rehash. AU002/AU003/AU007.';
REVOKE ALL ON FUNCTION activity.sp_update_password(uuid, text, boolean, uuid, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_update_password(uuid, text, boolean, uuid, jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_deactivate_user(p_user_id uuid, p_ctx jsonb DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
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
COMMENT ON FUNCTION activity.sp_deactivate_user(uuid, jsonb) IS 'Deactivates the user, ends all sessions (user_deactivated), burns unused email tokens. AU002 unknown, AU003 already inactive. Audit user_deactivated.';
REVOKE ALL ON FUNCTION activity.sp_deactivate_user(uuid, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_deactivate_user(uuid, jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_cleanup_unverified_users(p_older_than_hours integer DEFAULT 168)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
DECLARE
  v_deleted integer;
BEGIN
  IF p_older_than_hours IS NULL OR p_older_than_hours < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'older_than_hours must be >= 1';
  END IF;
  -- READ COMMITTED re-checks the WHERE on a row verified meanwhile: it is kept.
  DELETE FROM activity.users u
   WHERE NOT u.is_verified AND u.created_at < now() - make_interval(hours => p_older_than_hours);
  GET DIAGNOSTICS v_deleted = ROW_COUNT;
  PERFORM activity.fn_audit('cleanup', NULL, '{}',
    jsonb_build_object('item', 'unverified_users', 'deleted', v_deleted, 'older_than_hours', p_older_than_hours));
  RETURN v_deleted;
END
$$;
COMMENT ON FUNCTION activity.sp_cleanup_unverified_users(integer) IS 'Deletes unverified users created more than p_older_than_hours ago; returns the count. AU007 when hours < 1. Audit cleanup.';
REVOKE ALL ON FUNCTION activity.sp_cleanup_unverified_users(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_cleanup_unverified_users(integer) TO auth_api_user;

-- ---------------------------------------------------------------------------
-- Refresh tokens and sessions
-- ---------------------------------------------------------------------------

CREATE FUNCTION activity.sp_save_refresh_token(p_user_id uuid, p_token_hash text, p_jti text, p_idle_ttl_seconds integer,
                                               p_family_ttl_seconds integer, p_ctx jsonb DEFAULT '{}')
RETURNS TABLE (id integer, family_id uuid, expires_at timestamptz, family_expires_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  v_active boolean;
  v_token  activity.refresh_tokens%ROWTYPE;
  v_family_expires timestamptz;
BEGIN
  IF p_idle_ttl_seconds IS NULL OR p_idle_ttl_seconds <= 0 OR p_family_ttl_seconds IS NULL OR p_family_ttl_seconds <= 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'ttl must be > 0';
  END IF;
  IF p_token_hash IS NULL OR p_token_hash !~ '^[0-9a-f]{64}$' OR p_jti IS NULL OR length(p_jti) NOT BETWEEN 1 AND 50 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash must be lowercase hex SHA-256 and jti 1-50 characters';
  END IF;
  -- FOR KEY SHARE: a concurrent revoke-all (FOR UPDATE) either sees this session or runs first.
  SELECT u.is_active INTO v_active FROM activity.users u WHERE u.id = p_user_id FOR KEY SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
  ELSIF NOT v_active THEN
    RAISE EXCEPTION USING ERRCODE = 'AU003', MESSAGE = 'user is inactive';
  END IF;
  v_family_expires := now() + make_interval(secs => p_family_ttl_seconds);
  BEGIN
    INSERT INTO activity.refresh_tokens (user_id, token, jti, expires_at, family_id, family_expires_at, user_agent, ip)
    VALUES (p_user_id, p_token_hash, p_jti,
            least(now() + make_interval(secs => p_idle_ttl_seconds), v_family_expires),
            gen_random_uuid(), v_family_expires,
            left(NULLIF(p_ctx->>'userAgent', ''), 512), activity.fn_inet(p_ctx->>'ip'))
    RETURNING * INTO v_token;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash or jti already used';
  END;
  PERFORM activity.fn_audit('session_started', p_user_id, p_ctx, jsonb_build_object('family_id', v_token.family_id));
  RETURN QUERY SELECT v_token.id, v_token.family_id, v_token.expires_at, v_token.family_expires_at;
END
$$;
COMMENT ON FUNCTION activity.sp_save_refresh_token(uuid, text, text, integer, integer, jsonb) IS 'Starts a session: a new refresh token family. AU002/AU003; AU007 for ttl <= 0, a malformed hash or a hash/jti already used. Audit session_started.';
REVOKE ALL ON FUNCTION activity.sp_save_refresh_token(uuid, text, text, integer, integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_save_refresh_token(uuid, text, text, integer, integer, jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_revoke_refresh_token(p_token_hash text, p_reason text DEFAULT 'logout', p_ctx jsonb DEFAULT '{}')
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
DECLARE
  v_user_id   uuid;
  v_family_id uuid;
  v_live      integer;
BEGIN
  IF p_reason IS NULL OR p_reason NOT IN ('rotated', 'logout', 'logout_all', 'session_ended', 'reuse_detected',
                                          'password_changed', 'password_reset', 'user_deactivated') THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown revocation reason';
  END IF;
  SELECT t.user_id, t.family_id INTO v_user_id, v_family_id FROM activity.refresh_tokens t WHERE t.token = p_token_hash;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  -- Lock order users -> family -> token rows (the audit row's foreign key needs the
  -- users row too: taking it last could deadlock with a revoke-all).
  PERFORM FROM activity.users u WHERE u.id = v_user_id FOR KEY SHARE;
  PERFORM pg_advisory_xact_lock(8151, hashtext(v_family_id::text));
  WITH ended AS (
    UPDATE activity.refresh_tokens t
       SET revoked = true, revoked_at = now(), revoked_reason = p_reason
     WHERE t.family_id = v_family_id AND NOT t.revoked
       AND t.expires_at > now() AND t.family_expires_at > now()
    RETURNING t.id
  )
  SELECT count(*) INTO v_live FROM ended e;
  IF v_live = 0 THEN
    RETURN false;
  END IF;
  PERFORM activity.fn_audit('logout', v_user_id, p_ctx, jsonb_build_object('family_id', v_family_id, 'reason', p_reason));
  RETURN true;
END
$$;
COMMENT ON FUNCTION activity.sp_revoke_refresh_token(text, text, jsonb) IS 'Ends the session (whole family) the token belongs to; false when the token is unknown or its session already ended. AU007 bad reason. Audit logout.';
REVOKE ALL ON FUNCTION activity.sp_revoke_refresh_token(text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_revoke_refresh_token(text, text, jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_get_valid_refresh_token(p_token_hash text)
RETURNS TABLE (id integer, user_id uuid, family_id uuid, jti text, expires_at timestamptz,
               family_expires_at timestamptz, created_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
  SELECT t.id, t.user_id, t.family_id, t.jti::text, t.expires_at, t.family_expires_at, t.created_at
    FROM activity.refresh_tokens t
    JOIN activity.users u ON u.id = t.user_id
   WHERE t.token = p_token_hash
     AND NOT t.revoked AND t.expires_at > now() AND t.family_expires_at > now()
     AND u.is_active
$$;
COMMENT ON FUNCTION activity.sp_get_valid_refresh_token(text) IS 'The token when not revoked, not expired (idle and family) and its user active; else no row.';
REVOKE ALL ON FUNCTION activity.sp_get_valid_refresh_token(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_get_valid_refresh_token(text) TO auth_api_user;

CREATE FUNCTION activity.sp_rotate_refresh_token(p_token_hash text, p_new_token_hash text, p_new_jti text,
                                                 p_idle_ttl_seconds integer, p_grace_seconds integer,
                                                 p_ctx jsonb DEFAULT '{}')
RETURNS TABLE (status text, user_id uuid, family_id uuid, token_id integer, expires_at timestamptz,
               family_expires_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  v_user_id   uuid;
  v_family_id uuid;
  v_active    boolean;
  v_old       activity.refresh_tokens%ROWTYPE;
  v_next      activity.refresh_tokens%ROWTYPE;
  v_new       activity.refresh_tokens%ROWTYPE;
  v_status    text;
  v_ended     integer;
BEGIN
  IF p_idle_ttl_seconds IS NULL OR p_idle_ttl_seconds <= 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'ttl must be > 0';
  END IF;
  IF p_grace_seconds IS NULL OR p_grace_seconds < 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'grace must be >= 0';
  END IF;
  IF p_new_token_hash IS NULL OR p_new_token_hash !~ '^[0-9a-f]{64}$' OR p_new_jti IS NULL OR length(p_new_jti) NOT BETWEEN 1 AND 50 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash must be lowercase hex SHA-256 and jti 1-50 characters';
  END IF;

  SELECT t.user_id, t.family_id INTO v_user_id, v_family_id FROM activity.refresh_tokens t WHERE t.token = p_token_hash;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::integer, NULL::timestamptz, NULL::timestamptz;
    RETURN;
  END IF;

  -- Lock order: users row (KEY SHARE: we may insert) -> family -> token row.
  SELECT u.is_active INTO v_active FROM activity.users u WHERE u.id = v_user_id FOR KEY SHARE;
  IF NOT FOUND OR NOT v_active THEN
    RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::integer, NULL::timestamptz, NULL::timestamptz;
    RETURN;
  END IF;
  PERFORM pg_advisory_xact_lock(8151, hashtext(v_family_id::text));
  -- Re-read under the locks: a concurrent rotation of the same token has committed by now.
  SELECT * INTO v_old FROM activity.refresh_tokens t WHERE t.token = p_token_hash FOR UPDATE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::integer, NULL::timestamptz, NULL::timestamptz;
    RETURN;
  END IF;

  IF v_old.revoked THEN
    -- Grace: the same token presented twice within seconds (a client retry or two
    -- tabs racing) while the token it was rotated into is still live.
    IF v_old.revoked_reason = 'rotated' AND p_grace_seconds > 0
       AND v_old.revoked_at > now() - make_interval(secs => p_grace_seconds)
       AND v_old.family_expires_at > now() THEN
      SELECT * INTO v_next FROM activity.refresh_tokens t WHERE t.id = v_old.replaced_by;
      IF FOUND AND NOT v_next.revoked AND v_next.expires_at > now() AND v_next.family_expires_at > now() THEN
        v_status := 'grace';
      END IF;
    END IF;
    IF v_status IS NULL THEN
      WITH ended AS (
        UPDATE activity.refresh_tokens t
           SET revoked = true, revoked_at = now(), revoked_reason = 'reuse_detected'
         WHERE t.family_id = v_old.family_id AND NOT t.revoked
           AND t.expires_at > now() AND t.family_expires_at > now()
        RETURNING t.id
      )
      SELECT count(*) INTO v_ended FROM ended;
      PERFORM activity.fn_audit('refresh_token_reuse', v_old.user_id, p_ctx,
        jsonb_build_object('family_id', v_old.family_id, 'token_id', v_old.id,
                           'revoked_reason', v_old.revoked_reason, 'tokens_revoked', v_ended));
      RETURN QUERY SELECT 'reuse_detected'::text, v_old.user_id, v_old.family_id, NULL::integer, NULL::timestamptz, v_old.family_expires_at;
      RETURN;
    END IF;
  ELSIF v_old.expires_at <= now() OR v_old.family_expires_at <= now() THEN
    RETURN QUERY SELECT 'expired'::text, v_old.user_id, v_old.family_id, NULL::integer, v_old.expires_at, v_old.family_expires_at;
    RETURN;
  ELSE
    v_status := 'rotated';
  END IF;

  BEGIN
    INSERT INTO activity.refresh_tokens (user_id, token, jti, expires_at, family_id, family_expires_at, user_agent, ip)
    VALUES (v_old.user_id, p_new_token_hash, p_new_jti,
            least(now() + make_interval(secs => p_idle_ttl_seconds), v_old.family_expires_at),
            v_old.family_id, v_old.family_expires_at,
            left(NULLIF(p_ctx->>'userAgent', ''), 512), activity.fn_inet(p_ctx->>'ip'))
    RETURNING * INTO v_new;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash or jti already used';
  END;

  IF v_status = 'rotated' THEN
    UPDATE activity.refresh_tokens t
       SET revoked = true, revoked_at = now(), revoked_reason = 'rotated', replaced_by = v_new.id, last_used_at = now()
     WHERE t.id = v_old.id;
  ELSE
    UPDATE activity.refresh_tokens t SET last_used_at = now() WHERE t.id = v_old.id;
  END IF;
  PERFORM activity.fn_audit('refresh_token_rotated', v_old.user_id, p_ctx,
    jsonb_build_object('family_id', v_old.family_id, 'token_id', v_new.id, 'status', v_status));
  RETURN QUERY SELECT v_status, v_new.user_id, v_new.family_id, v_new.id, v_new.expires_at, v_new.family_expires_at;
END
$$;
COMMENT ON FUNCTION activity.sp_rotate_refresh_token(text, text, text, integer, integer, jsonb) IS 'Rotates a refresh token in one transaction. status rotated | grace | reuse_detected (family revoked, audit refresh_token_reuse) | expired | invalid; never raises for these so a revocation commits. AU007 for bad ttl, grace or new hash/jti.';
REVOKE ALL ON FUNCTION activity.sp_rotate_refresh_token(text, text, text, integer, integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_rotate_refresh_token(text, text, text, integer, integer, jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_revoke_user_sessions(p_user_id uuid, p_except_family_id uuid DEFAULT NULL,
                                                 p_reason text DEFAULT 'logout_all', p_ctx jsonb DEFAULT '{}')
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
DECLARE
  v_ended integer;
BEGIN
  IF p_reason IS NULL OR p_reason NOT IN ('logout', 'logout_all', 'session_ended', 'reuse_detected',
                                          'password_changed', 'password_reset', 'user_deactivated') THEN
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
COMMENT ON FUNCTION activity.sp_revoke_user_sessions(uuid, uuid, text, jsonb) IS 'Ends every live session of the user except p_except_family_id; returns how many ended. AU002 unknown, AU007 bad reason. Audit sessions_revoked.';
REVOKE ALL ON FUNCTION activity.sp_revoke_user_sessions(uuid, uuid, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_revoke_user_sessions(uuid, uuid, text, jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_revoke_user_session(p_user_id uuid, p_family_id uuid, p_ctx jsonb DEFAULT '{}')
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
DECLARE
  v_live integer;
BEGIN
  -- Lock order users -> family -> token rows.
  PERFORM FROM activity.users u WHERE u.id = p_user_id FOR KEY SHARE;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM pg_advisory_xact_lock(8151, hashtext(p_family_id::text));
  WITH ended AS (
    UPDATE activity.refresh_tokens t
       SET revoked = true, revoked_at = now(), revoked_reason = 'session_ended'
     WHERE t.family_id = p_family_id AND t.user_id = p_user_id AND NOT t.revoked
       AND t.expires_at > now() AND t.family_expires_at > now()
    RETURNING t.id
  )
  SELECT count(*) INTO v_live FROM ended e;
  IF v_live = 0 THEN
    RETURN false;
  END IF;
  PERFORM activity.fn_audit('session_ended', p_user_id, p_ctx, jsonb_build_object('family_id', p_family_id));
  RETURN true;
END
$$;
COMMENT ON FUNCTION activity.sp_revoke_user_session(uuid, uuid, jsonb) IS 'Ends one session (family) of the user; false when it is not theirs or already ended. Audit session_ended.';
REVOKE ALL ON FUNCTION activity.sp_revoke_user_session(uuid, uuid, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_revoke_user_session(uuid, uuid, jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_list_user_sessions(p_user_id uuid)
RETURNS TABLE (family_id uuid, created_at timestamptz, last_used_at timestamptz, expires_at timestamptz,
               ip text, user_agent text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
  SELECT l.family_id, f.created_at, f.last_used_at, l.expires_at, host(l.ip), l.user_agent::text
    FROM (SELECT DISTINCT ON (t.family_id) t.family_id, t.expires_at, t.ip, t.user_agent
            FROM activity.refresh_tokens t
            JOIN activity.users u ON u.id = t.user_id AND u.is_active
           WHERE t.user_id = p_user_id AND NOT t.revoked
             AND t.expires_at > now() AND t.family_expires_at > now()
           ORDER BY t.family_id, t.id DESC) l
   CROSS JOIN LATERAL (
         SELECT min(a.created_at) AS created_at, max(COALESCE(a.last_used_at, a.created_at)) AS last_used_at
           FROM activity.refresh_tokens a
          WHERE a.family_id = l.family_id) f
   ORDER BY f.created_at DESC, l.family_id
$$;
COMMENT ON FUNCTION activity.sp_list_user_sessions(uuid) IS 'Live sessions of the user, one row per family, newest first: started, last used, current token expiry, ip and user agent of its latest token.';
REVOKE ALL ON FUNCTION activity.sp_list_user_sessions(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_list_user_sessions(uuid) TO auth_api_user;

CREATE FUNCTION activity.sp_check_session(p_user_id uuid, p_family_id uuid)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
  SELECT EXISTS (
    SELECT 1
      FROM activity.refresh_tokens t
      JOIN activity.users u ON u.id = t.user_id
     WHERE t.family_id = p_family_id AND t.user_id = p_user_id AND NOT t.revoked
       AND t.expires_at > now() AND t.family_expires_at > now()
       AND u.is_active)
$$;
COMMENT ON FUNCTION activity.sp_check_session(uuid, uuid) IS 'True when the user is active and the session (family) has a live token. Per-request check, served by refresh_tokens_family_id_live_idx.';
REVOKE ALL ON FUNCTION activity.sp_check_session(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_check_session(uuid, uuid) TO auth_api_user;

-- ---------------------------------------------------------------------------
-- Login throttling
-- ---------------------------------------------------------------------------

CREATE FUNCTION activity.sp_check_login_lock(p_email text, p_ip text)
RETURNS TABLE (locked_until timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
  SELECT max(a.locked_until)
    FROM activity.login_attempts a
   WHERE a.locked_until > now()
     AND ((a.scope = 'email' AND a.key = left(lower(btrim(p_email)), 255))
       OR (a.scope = 'ip' AND a.key = left(btrim(p_ip), 255)))
$$;
COMMENT ON FUNCTION activity.sp_check_login_lock(text, text) IS 'One row: the later of the email lock and the ip lock when in the future, else NULL. Works for addresses with no account.';
REVOKE ALL ON FUNCTION activity.sp_check_login_lock(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_check_login_lock(text, text) TO auth_api_user;

-- One failed attempt for a key (an email or an ip): an atomic upsert, so concurrent
-- failures each count exactly once. A counter idle for longer than the window
-- restarts at 1; a running lock is never shortened.
CREATE FUNCTION activity.fn_count_failure(p_scope text, p_key text, p_threshold integer, p_base_seconds integer,
                                          p_max_seconds integer, p_window_seconds integer)
RETURNS TABLE (failed_count integer, locked_until timestamptz)
LANGUAGE sql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
  INSERT INTO activity.login_attempts AS a (scope, key, failed_count, first_failed_at, last_failed_at, locked_until)
  VALUES (p_scope, p_key, 1, now(), now(), activity.fn_lock_until(1, p_threshold, p_base_seconds, p_max_seconds))
  ON CONFLICT (scope, key) DO UPDATE SET
    failed_count    = CASE WHEN a.last_failed_at < now() - make_interval(secs => p_window_seconds) THEN 1 ELSE a.failed_count + 1 END,
    first_failed_at = CASE WHEN a.last_failed_at < now() - make_interval(secs => p_window_seconds) THEN now() ELSE a.first_failed_at END,
    last_failed_at  = now(),
    locked_until    = greatest(
      activity.fn_lock_until(
        CASE WHEN a.last_failed_at < now() - make_interval(secs => p_window_seconds) THEN 1 ELSE a.failed_count + 1 END,
        p_threshold, p_base_seconds, p_max_seconds),
      CASE WHEN a.locked_until > now() THEN a.locked_until END)
  RETURNING a.failed_count, a.locked_until
$$;
COMMENT ON FUNCTION activity.fn_count_failure(text, text, integer, integer, integer, integer) IS 'Internal: counts one failed login for an email or ip key and returns the count and lock.';
REVOKE ALL ON FUNCTION activity.fn_count_failure(text, text, integer, integer, integer, integer) FROM PUBLIC;

CREATE FUNCTION activity.sp_record_failed_login(p_email text, p_ip text, p_threshold integer, p_base_seconds integer,
                                                p_max_seconds integer, p_ip_threshold integer, p_window_seconds integer,
                                                p_ctx jsonb DEFAULT '{}')
RETURNS TABLE (failed_count integer, locked_until timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  v_email      text := left(lower(btrim(p_email)), 255);
  v_ip         text := left(NULLIF(btrim(p_ip), ''), 255);
  v_user_id    uuid;
  v_count      integer;
  v_lock       timestamptz;
  v_ip_count   integer;
  v_ip_lock    timestamptz;
BEGIN
  IF v_email IS NULL OR v_email = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'email is required';
  END IF;
  IF p_threshold IS NULL OR p_threshold < 1 OR p_ip_threshold IS NULL OR p_ip_threshold < 1
     OR p_base_seconds IS NULL OR p_base_seconds < 1 OR p_max_seconds IS NULL OR p_max_seconds < p_base_seconds
     OR p_window_seconds IS NULL OR p_window_seconds < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'invalid lockout policy';
  END IF;

  -- Users row first (lock order), so this cannot deadlock with a successful login.
  SELECT u.id INTO v_user_id FROM activity.users u WHERE u.email = v_email FOR NO KEY UPDATE;

  SELECT f.failed_count, f.locked_until INTO v_count, v_lock
    FROM activity.fn_count_failure('email', v_email, p_threshold, p_base_seconds, p_max_seconds, p_window_seconds) f;

  IF v_ip IS NOT NULL THEN
    SELECT f.failed_count, f.locked_until INTO v_ip_count, v_ip_lock
      FROM activity.fn_count_failure('ip', v_ip, p_ip_threshold, p_base_seconds, p_max_seconds, p_window_seconds) f;
  END IF;

  -- Mirror onto the account; runs (matching no row) when there is none: same work.
  UPDATE activity.users u
     SET failed_login_attempts = v_count, locked_until = v_lock
   WHERE u.email = v_email;

  PERFORM activity.fn_audit('login_failed', v_user_id, p_ctx,
    jsonb_build_object('email', v_email, 'count', v_count, 'ip_count', v_ip_count));
  -- Logins are refused while locked, so a failure at or past the threshold starts a lock.
  IF v_count >= p_threshold THEN
    PERFORM activity.fn_audit('account_locked', v_user_id, p_ctx,
      jsonb_build_object('email', v_email, 'count', v_count, 'locked_until', v_lock));
  END IF;
  IF v_ip_count >= p_ip_threshold THEN
    PERFORM activity.fn_audit('ip_locked', v_user_id, p_ctx,
      jsonb_build_object('ip', v_ip, 'count', v_ip_count, 'locked_until', v_ip_lock));
  END IF;

  RETURN QUERY SELECT v_count, greatest(v_lock, v_ip_lock);
END
$$;
COMMENT ON FUNCTION activity.sp_record_failed_login(text, text, integer, integer, integer, integer, integer, jsonb) IS 'Counts a failed login per email and per ip (exact under concurrency), locks with capped exponential backoff at the thresholds, mirrors onto the account. Returns the email count and the later lock. Audit login_failed, account_locked, ip_locked.';
REVOKE ALL ON FUNCTION activity.sp_record_failed_login(text, text, integer, integer, integer, integer, integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_record_failed_login(text, text, integer, integer, integer, integer, integer, jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_record_successful_login(p_user_id uuid, p_ctx jsonb DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
DECLARE
  v_email  text;
  v_active boolean;
BEGIN
  SELECT u.email, u.is_active INTO v_email, v_active FROM activity.users u WHERE u.id = p_user_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
  ELSIF NOT v_active THEN
    RAISE EXCEPTION USING ERRCODE = 'AU003', MESSAGE = 'user is inactive';
  END IF;
  UPDATE activity.users u
     SET last_login_at = now(), last_login_ip = activity.fn_inet(p_ctx->>'ip'),
         failed_login_attempts = 0, locked_until = NULL
   WHERE u.id = p_user_id;
  DELETE FROM activity.login_attempts a WHERE a.scope = 'email' AND a.key = v_email;
  PERFORM activity.fn_audit('login_success', p_user_id, p_ctx, '{}');
END
$$;
COMMENT ON FUNCTION activity.sp_record_successful_login(uuid, jsonb) IS 'Records a successful login: last_login_at/ip, clears the failure counter and the email lock. AU002/AU003. Audit login_success.';
REVOKE ALL ON FUNCTION activity.sp_record_successful_login(uuid, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_record_successful_login(uuid, jsonb) TO auth_api_user;

-- ---------------------------------------------------------------------------
-- Email tokens
-- ---------------------------------------------------------------------------

CREATE FUNCTION activity.sp_create_email_token(p_user_id uuid, p_purpose text, p_token_hash text, p_ttl_seconds integer,
                                               p_ctx jsonb DEFAULT '{}')
RETURNS TABLE (id bigint, email text, expires_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION activity.sp_create_email_token(uuid, text, text, integer, jsonb) IS 'Issues a one-time email token (earlier unused ones of the same purpose are burnt). AU002/AU003/AU007; AU009 for verify_email on a verified user. Audit email_token_created.';
REVOKE ALL ON FUNCTION activity.sp_create_email_token(uuid, text, text, integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_create_email_token(uuid, text, text, integer, jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_consume_email_token(p_token_hash text, p_purpose text, p_new_hashed_password text DEFAULT NULL,
                                                p_ctx jsonb DEFAULT '{}')
RETURNS TABLE (user_id uuid, email text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
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
    UPDATE activity.email_tokens e SET used_at = now()
     WHERE e.user_id = v_user.id AND e.purpose = 'reset_password' AND e.used_at IS NULL;
    PERFORM activity.fn_audit('password_reset', v_user.id, p_ctx, jsonb_build_object('sessions_ended', v_ended));
  END IF;
  RETURN QUERY SELECT v_user.id, v_user.email::text;
END
$$;
COMMENT ON FUNCTION activity.sp_consume_email_token(text, text, text, jsonb) IS 'Uses a one-time email token: verify_email marks the address verified; reset_password sets the new hash, ends all sessions (password_reset). AU004 unknown/other purpose, AU006 used, AU005 expired, AU003 inactive, AU007 bad purpose or missing hash. Audit email_verified / password_reset.';
REVOKE ALL ON FUNCTION activity.sp_consume_email_token(text, text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_consume_email_token(text, text, text, jsonb) TO auth_api_user;

-- ---------------------------------------------------------------------------
-- Maintenance and readiness
-- ---------------------------------------------------------------------------

CREATE FUNCTION activity.sp_cleanup_expired(p_audit_retention_days integer, p_attempt_retention_hours integer DEFAULT 24)
RETURNS TABLE (item text, deleted bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  v_tokens   bigint;
  v_email    bigint;
  v_attempts bigint;
  v_audit    bigint;
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
     HAVING bool_and(d.revoked OR d.expires_at <= now() OR d.family_expires_at <= now()));
  GET DIAGNOSTICS v_tokens = ROW_COUNT;
  DELETE FROM activity.email_tokens e WHERE e.used_at IS NOT NULL OR e.expires_at <= now();
  GET DIAGNOSTICS v_email = ROW_COUNT;
  DELETE FROM activity.login_attempts a
   WHERE (a.locked_until IS NULL OR a.locked_until <= now())
     AND a.last_failed_at < now() - make_interval(hours => p_attempt_retention_hours);
  GET DIAGNOSTICS v_attempts = ROW_COUNT;
  DELETE FROM activity.audit_logs l WHERE l.created_at < now() - make_interval(days => p_audit_retention_days);
  GET DIAGNOSTICS v_audit = ROW_COUNT;
  PERFORM activity.fn_audit('cleanup', NULL, '{}',
    jsonb_build_object('refresh_tokens', v_tokens, 'email_tokens', v_email,
                       'login_attempts', v_attempts, 'audit_logs', v_audit));
  RETURN QUERY VALUES ('refresh_tokens'::text, v_tokens), ('email_tokens', v_email),
                      ('login_attempts', v_attempts), ('audit_logs', v_audit);
END
$$;
COMMENT ON FUNCTION activity.sp_cleanup_expired(integer, integer) IS 'Deletes dead refresh token families, used or expired email tokens, stale unlocked login attempts and old audit rows; one row per item. AU007 on retention < 1. Audit cleanup.';
REVOKE ALL ON FUNCTION activity.sp_cleanup_expired(integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_cleanup_expired(integer, integer) TO auth_api_user;

CREATE FUNCTION activity.sp_schema_migrations()
RETURNS TABLE (name text, run_on timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
  SELECT m.name::text, m.run_on::timestamptz FROM activity.pgmigrations m ORDER BY m.run_on, m.id
$$;
COMMENT ON FUNCTION activity.sp_schema_migrations() IS 'Applied migrations (node-pg-migrate bookkeeping), for readiness checks without table privileges.';
REVOKE ALL ON FUNCTION activity.sp_schema_migrations() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_schema_migrations() TO auth_api_user, activity_readonly;

-- ---------------------------------------------------------------------------
-- Views for operators (owner rights, no secrets)
-- ---------------------------------------------------------------------------

CREATE VIEW activity.active_users AS
  SELECT u.id, u.email, u.is_verified, u.created_at, u.verified_at, u.last_login_at, u.locked_until
    FROM activity.users u
   WHERE u.is_active;
COMMENT ON VIEW activity.active_users IS 'Active accounts, without password hashes.';
GRANT SELECT ON activity.active_users TO activity_readonly;

CREATE VIEW activity.active_sessions AS
  SELECT l.family_id, l.user_id, u.email, f.created_at, f.last_used_at, l.expires_at, l.ip, l.user_agent
    FROM (SELECT DISTINCT ON (t.family_id) t.family_id, t.user_id, t.expires_at, t.ip, t.user_agent
            FROM activity.refresh_tokens t
           WHERE NOT t.revoked AND t.expires_at > now() AND t.family_expires_at > now()
           ORDER BY t.family_id, t.id DESC) l
    JOIN activity.users u ON u.id = l.user_id AND u.is_active
   CROSS JOIN LATERAL (
         SELECT min(a.created_at) AS created_at, max(COALESCE(a.last_used_at, a.created_at)) AS last_used_at
           FROM activity.refresh_tokens a
          WHERE a.family_id = l.family_id) f;
COMMENT ON VIEW activity.active_sessions IS 'Live sessions (refresh token families), one row each, without token hashes.';
GRANT SELECT ON activity.active_sessions TO activity_readonly;

CREATE VIEW activity.recent_audit_events AS
  SELECT l.id, l.action, l.user_id, u.email, l.ip, l.request_id, l.details, l.created_at
    FROM activity.audit_logs l
    LEFT JOIN activity.users u ON u.id = l.user_id
   WHERE l.created_at > now() - interval '7 days';
COMMENT ON VIEW activity.recent_audit_events IS 'Audit events of the last 7 days with the user''s email.';
GRANT SELECT ON activity.recent_audit_events TO activity_readonly;

-- Down Migration

DROP VIEW activity.recent_audit_events;
DROP VIEW activity.active_sessions;
DROP VIEW activity.active_users;

DROP FUNCTION activity.sp_schema_migrations();
DROP FUNCTION activity.sp_cleanup_expired(integer, integer);
DROP FUNCTION activity.sp_consume_email_token(text, text, text, jsonb);
DROP FUNCTION activity.sp_create_email_token(uuid, text, text, integer, jsonb);
DROP FUNCTION activity.sp_record_successful_login(uuid, jsonb);
DROP FUNCTION activity.sp_record_failed_login(text, text, integer, integer, integer, integer, integer, jsonb);
DROP FUNCTION activity.sp_check_login_lock(text, text);
DROP FUNCTION activity.sp_check_session(uuid, uuid);
DROP FUNCTION activity.sp_list_user_sessions(uuid);
DROP FUNCTION activity.sp_revoke_user_session(uuid, uuid, jsonb);
DROP FUNCTION activity.sp_revoke_user_sessions(uuid, uuid, text, jsonb);
DROP FUNCTION activity.sp_rotate_refresh_token(text, text, text, integer, integer, jsonb);
DROP FUNCTION activity.sp_get_valid_refresh_token(text);
DROP FUNCTION activity.sp_revoke_refresh_token(text, text, jsonb);
DROP FUNCTION activity.sp_save_refresh_token(uuid, text, text, integer, integer, jsonb);
DROP FUNCTION activity.sp_cleanup_unverified_users(integer);
DROP FUNCTION activity.sp_deactivate_user(uuid, jsonb);
DROP FUNCTION activity.sp_update_password(uuid, text, boolean, uuid, jsonb);
DROP FUNCTION activity.sp_update_last_login(uuid, text);
DROP FUNCTION activity.sp_verify_user_email(uuid, jsonb);
DROP FUNCTION activity.sp_get_user_by_id(uuid);
DROP FUNCTION activity.sp_get_user_by_email(text);
DROP FUNCTION activity.sp_create_user(text, text, jsonb);
DROP FUNCTION activity.fn_count_failure(text, text, integer, integer, integer, integer);
DROP FUNCTION activity.fn_lock_until(integer, integer, integer, integer);
DROP FUNCTION activity.fn_revoke_user_families(uuid, uuid, text);
DROP FUNCTION activity.fn_audit(text, uuid, jsonb, jsonb);
DROP FUNCTION activity.fn_inet(text);

DROP TABLE activity.audit_logs;
DROP TABLE activity.email_tokens;
DROP TABLE activity.login_attempts;
DROP TABLE activity.refresh_tokens;
DROP TABLE activity.users;
