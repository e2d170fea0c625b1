--
-- Name: activity; Type: SCHEMA; Schema: -; Owner: activity_owner
--

CREATE SCHEMA activity;

ALTER SCHEMA activity OWNER TO activity_owner;

--
-- Name: email_token_purpose; Type: TYPE; Schema: activity; Owner: activity_owner
--

CREATE TYPE activity.email_token_purpose AS ENUM (
    'verify_email',
    'reset_password',
    'change_email'
);

ALTER TYPE activity.email_token_purpose OWNER TO activity_owner;

--
-- Name: TYPE email_token_purpose; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON TYPE activity.email_token_purpose IS 'What a one-time email token is for.';

--
-- Name: oauth_provider; Type: TYPE; Schema: activity; Owner: activity_owner
--

CREATE TYPE activity.oauth_provider AS ENUM (
    'google',
    'github'
);

ALTER TYPE activity.oauth_provider OWNER TO activity_owner;

--
-- Name: TYPE oauth_provider; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON TYPE activity.oauth_provider IS 'An external identity provider a user may sign in with.';

--
-- Name: revoke_reason; Type: TYPE; Schema: activity; Owner: activity_owner
--

CREATE TYPE activity.revoke_reason AS ENUM (
    'rotated',
    'logout',
    'logout_all',
    'session_ended',
    'reuse_detected',
    'password_changed',
    'password_reset',
    'user_deactivated',
    'email_changed'
);

ALTER TYPE activity.revoke_reason OWNER TO activity_owner;

--
-- Name: TYPE revoke_reason; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON TYPE activity.revoke_reason IS 'Why a refresh token was revoked.';

--
-- Name: fn_amr_is_valid(text[]); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_amr_is_valid(p_amr text[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $$
  SELECT p_amr IS NULL
      OR (array_position(p_amr, NULL) IS NULL
          AND cardinality(p_amr) BETWEEN 1 AND 2
          AND p_amr[1] IN ('pwd', 'fed')
          AND (cardinality(p_amr) = 1 OR p_amr[2] = 'otp'))
$$;

ALTER FUNCTION activity.fn_amr_is_valid(p_amr text[]) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_amr_is_valid(p_amr text[]); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_amr_is_valid(p_amr text[]) IS 'Internal: whether an amr (RFC 8176) is one this service issues: {pwd}, {fed}, {pwd,otp}, {fed,otp}, or NULL (not stated).';

--
-- Name: fn_audit(text, uuid, jsonb, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_audit(p_action text, p_user_id uuid, p_ctx jsonb, p_details jsonb) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'activity', 'pg_temp'
    AS $$
DECLARE
  v_event record;
  v_wrote boolean := false;
BEGIN
  INSERT INTO activity.audit_logs (action, user_id, ip, user_agent, request_id, details)
  VALUES (p_action, p_user_id,
          activity.fn_inet(p_ctx->>'ip'),
          left(NULLIF(p_ctx->>'userAgent', ''), 512),
          left(NULLIF(p_ctx->>'requestId', ''), 128),
          COALESCE(p_details, '{}'));
  FOR v_event IN SELECT e.type, e.version, e.session_id, e.payload
                   FROM activity.fn_event_for_audit(p_action, p_user_id, COALESCE(p_details, '{}')) e
  LOOP
    INSERT INTO activity.events (type, version, user_id, session_id, payload)
    VALUES (v_event.type, v_event.version, p_user_id, v_event.session_id, v_event.payload);
    v_wrote := true;
  END LOOP;
  IF v_wrote THEN
    -- The payload is the user: the session caches of every instance drop that user's
    -- entries (src/auth/session-cache.ts); the publisher ignores it.
    PERFORM pg_notify('activity_events', COALESCE(p_user_id::text, ''));
  END IF;
END
$$;

ALTER FUNCTION activity.fn_audit(p_action text, p_user_id uuid, p_ctx jsonb, p_details jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_audit(p_action text, p_user_id uuid, p_ctx jsonb, p_details jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_audit(p_action text, p_user_id uuid, p_ctx jsonb, p_details jsonb) IS 'Internal: appends one audit_logs row (ip, userAgent, requestId come from the request context) and the outbox events it stands for (fn_event_for_audit), then NOTIFY activity_events with the user id as payload when there was one.';

--
-- Name: fn_check_email_token_args(text, text, integer); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_check_email_token_args(p_purpose text, p_token_hash text, p_ttl_seconds integer) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'activity', 'pg_temp'
    AS $_$
BEGIN
  PERFORM activity.fn_require_email_token_purpose(p_purpose);
  IF p_ttl_seconds IS NULL OR p_ttl_seconds <= 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'ttl must be > 0';
  ELSIF p_token_hash IS NULL OR p_token_hash !~ '^[0-9a-f]{64}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash must be lowercase hex SHA-256';
  END IF;
END
$_$;

ALTER FUNCTION activity.fn_check_email_token_args(p_purpose text, p_token_hash text, p_ttl_seconds integer) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_check_email_token_args(p_purpose text, p_token_hash text, p_ttl_seconds integer); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_check_email_token_args(p_purpose text, p_token_hash text, p_ttl_seconds integer) IS 'Internal: AU007 for an unknown purpose, a ttl <= 0 or a malformed token hash.';

--
-- Name: fn_check_lockout_policy(integer, integer, integer, integer, integer); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_check_lockout_policy(p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_ip_threshold integer, p_window_seconds integer) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'activity', 'pg_temp'
    AS $$
BEGIN
  IF p_threshold IS NULL OR p_threshold < 1 OR p_ip_threshold IS NULL OR p_ip_threshold < 1
     OR p_base_seconds IS NULL OR p_base_seconds < 1 OR p_max_seconds IS NULL OR p_max_seconds < p_base_seconds
     OR p_window_seconds IS NULL OR p_window_seconds < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'invalid lockout policy';
  END IF;
END
$$;

ALTER FUNCTION activity.fn_check_lockout_policy(p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_ip_threshold integer, p_window_seconds integer) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_check_lockout_policy(p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_ip_threshold integer, p_window_seconds integer); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_check_lockout_policy(p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_ip_threshold integer, p_window_seconds integer) IS 'Internal: AU007 for an invalid lockout policy.';

--
-- Name: fn_check_mail_policy(integer, integer); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_check_mail_policy(p_mail_max integer, p_mail_window_seconds integer) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'activity', 'pg_temp'
    AS $$
BEGIN
  IF p_mail_max IS NULL OR p_mail_max < 1 OR p_mail_window_seconds IS NULL OR p_mail_window_seconds < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'mail budget must be >= 1 per window of >= 1 second';
  END IF;
END
$$;

ALTER FUNCTION activity.fn_check_mail_policy(p_mail_max integer, p_mail_window_seconds integer) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_check_mail_policy(p_mail_max integer, p_mail_window_seconds integer); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_check_mail_policy(p_mail_max integer, p_mail_window_seconds integer) IS 'Internal: AU007 unless the mail budget arguments are >= 1.';

--
-- Name: fn_check_recovery_hashes(text[]); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_check_recovery_hashes(p_hashes text[]) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'activity', 'pg_temp'
    AS $_$
BEGIN
  IF p_hashes IS NULL OR cardinality(p_hashes) NOT BETWEEN 1 AND 20
     OR EXISTS (SELECT 1 FROM unnest(p_hashes) h WHERE h IS NULL OR h !~ '^[0-9a-f]{64}$')
     OR (SELECT count(DISTINCT h) FROM unnest(p_hashes) h) <> cardinality(p_hashes) THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'recovery code hashes must be 1-20 distinct lowercase hex SHA-256';
  END IF;
END
$_$;

ALTER FUNCTION activity.fn_check_recovery_hashes(p_hashes text[]) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_check_recovery_hashes(p_hashes text[]); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_check_recovery_hashes(p_hashes text[]) IS 'Internal: AU007 unless the array holds 1 to 20 distinct lowercase hex SHA-256 values.';

--
-- Name: fn_check_sha256_hex(text, text); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_check_sha256_hex(p_value text, p_what text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'activity', 'pg_temp'
    AS $_$
BEGIN
  IF p_value IS NULL OR p_value !~ '^[0-9a-f]{64}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = p_what || ' must be lowercase hex SHA-256';
  END IF;
END
$_$;

ALTER FUNCTION activity.fn_check_sha256_hex(p_value text, p_what text) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_check_sha256_hex(p_value text, p_what text); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_check_sha256_hex(p_value text, p_what text) IS 'Internal: AU007 unless the value is a lowercase hex SHA-256 (64 characters); p_what names it in the message.';

--
-- Name: fn_count_failure(text, text, integer, integer, integer, integer); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_count_failure(p_scope text, p_key text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_window_seconds integer) RETURNS TABLE(failed_count integer, locked_until timestamp with time zone)
    LANGUAGE sql
    SET search_path TO 'activity', 'pg_temp'
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

ALTER FUNCTION activity.fn_count_failure(p_scope text, p_key text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_window_seconds integer) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_count_failure(p_scope text, p_key text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_window_seconds integer); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_count_failure(p_scope text, p_key text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_window_seconds integer) IS 'Internal: counts one failed login for an email or ip key and returns the count and lock.';

--
-- Name: fn_event_for_audit(text, uuid, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_event_for_audit(p_action text, p_user_id uuid, p_details jsonb) RETURNS TABLE(type text, version smallint, session_id uuid, payload jsonb)
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'activity', 'pg_temp'
    AS $$
DECLARE
  v_ended_reason text := CASE p_action
                           WHEN 'password_changed' THEN 'password_changed'
                           WHEN 'password_reset' THEN 'password_reset'
                           WHEN 'user_deactivated' THEN 'user_deactivated'
                           WHEN 'sessions_revoked' THEN p_details->>'reason'
                           WHEN 'email_changed' THEN 'email_changed'
                         END;
BEGIN
  -- Events are about accounts: a lock on an address without one, or a cleanup, has none.
  IF p_user_id IS NULL THEN
    RETURN;
  END IF;
  version := 1;
  session_id := NULL;
  CASE p_action
    WHEN 'user_created' THEN
      type := 'user.created';
      payload := jsonb_build_object('email', p_details->>'email');
      RETURN NEXT;
    WHEN 'email_verified' THEN
      -- A verify link followed after the address was verified changes nothing.
      IF COALESCE((p_details->>'already_verified')::boolean, false) THEN
        RETURN;
      END IF;
      type := 'user.verified';
      payload := jsonb_build_object('email', p_details->>'email');
      RETURN NEXT;
    WHEN 'password_changed' THEN
      type := 'user.password_changed';
      payload := jsonb_build_object('sessionsEnded', COALESCE((p_details->>'sessions_ended')::int, 0),
                                    'keptSessionId', p_details->'kept_family_id');
      RETURN NEXT;
    WHEN 'password_reset' THEN
      type := 'user.password_reset';
      payload := jsonb_build_object('sessionsEnded', COALESCE((p_details->>'sessions_ended')::int, 0));
      RETURN NEXT;
    WHEN 'user_deactivated' THEN
      type := 'user.deactivated';
      payload := jsonb_build_object('sessionsEnded', COALESCE((p_details->>'sessions_ended')::int, 0));
      RETURN NEXT;
    WHEN 'session_started' THEN
      type := 'session.created';
      session_id := (p_details->>'family_id')::uuid;
      payload := '{}';
      RETURN NEXT;
    WHEN 'logout' THEN
      type := 'session.revoked';
      session_id := (p_details->>'family_id')::uuid;
      payload := jsonb_build_object('reason', COALESCE(p_details->>'reason', 'logout'));
      RETURN NEXT;
    WHEN 'session_ended' THEN
      type := 'session.revoked';
      session_id := (p_details->>'family_id')::uuid;
      payload := jsonb_build_object('reason', 'session_ended');
      RETURN NEXT;
    WHEN 'refresh_token_reuse' THEN
      type := 'session.reuse_detected';
      session_id := (p_details->>'family_id')::uuid;
      payload := jsonb_build_object('tokensRevoked', COALESCE((p_details->>'tokens_revoked')::int, 0));
      RETURN NEXT;
    WHEN 'account_locked' THEN
      type := 'account.locked';
      payload := jsonb_build_object('lockedUntil', p_details->'locked_until',
                                    'failedCount', COALESCE((p_details->>'count')::int, 0));
      RETURN NEXT;
    WHEN 'oauth_linked' THEN
      type := 'oauth.linked';
      payload := jsonb_build_object('provider', p_details->>'provider');
      RETURN NEXT;
    WHEN 'profile_updated' THEN
      type := 'user.profile_updated';
      payload := jsonb_build_object('fields', COALESCE(p_details->'fields', '[]'));
      RETURN NEXT;
    WHEN 'email_changed' THEN
      type := 'user.email_changed';
      payload := jsonb_build_object('email', p_details->>'email', 'previousEmail', p_details->>'old_email',
                                    'sessionsEnded', COALESCE((p_details->>'sessions_ended')::int, 0));
      RETURN NEXT;
    WHEN 'oauth_unlinked' THEN
      type := 'oauth.unlinked';
      payload := jsonb_build_object('provider', p_details->>'provider');
      RETURN NEXT;
    WHEN 'mfa_enabled' THEN
      type := 'mfa.enabled';
      payload := '{}';
      RETURN NEXT;
    WHEN 'mfa_disabled' THEN
      type := 'mfa.disabled';
      payload := '{}';
      RETURN NEXT;
    WHEN 'mfa_recovery_code_used' THEN
      type := 'mfa.recovery_code_used';
      payload := jsonb_build_object('remaining', COALESCE((p_details->>'remaining')::int, 0));
      RETURN NEXT;
    WHEN 'mfa_failed' THEN
      type := 'mfa.failed';
      payload := jsonb_build_object('failedCount', COALESCE((p_details->>'count')::int, 0));
      RETURN NEXT;
    ELSE
      NULL;
  END CASE;
  -- Sessions ended together with an account change, or by a revoke-all.
  IF v_ended_reason IS NOT NULL THEN
    type := 'session.revoked';
    payload := jsonb_build_object('reason', v_ended_reason);
    FOR session_id IN
      SELECT f.id::uuid FROM jsonb_array_elements_text(COALESCE(p_details->'family_ids', '[]')) AS f(id)
    LOOP
      RETURN NEXT;
    END LOOP;
  END IF;
END
$$;

ALTER FUNCTION activity.fn_event_for_audit(p_action text, p_user_id uuid, p_details jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_event_for_audit(p_action text, p_user_id uuid, p_details jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_event_for_audit(p_action text, p_user_id uuid, p_details jsonb) IS 'Internal: the outbox events (type, version, session id, payload) an audit row stands for; none for actions that are no event or rows without a user.';

--
-- Name: fn_inet(text); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_inet(p_ip text) RETURNS inet
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'activity', 'pg_temp'
    AS $$
BEGIN
  RETURN NULLIF(btrim(p_ip), '')::inet;
EXCEPTION WHEN invalid_text_representation THEN
  RETURN NULL;
END
$$;

ALTER FUNCTION activity.fn_inet(p_ip text) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_inet(p_ip text); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_inet(p_ip text) IS 'Internal: text to inet, NULL when empty or unparsable.';

--
-- Name: fn_issue_email_token(uuid, text, text, text, integer, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_issue_email_token(p_user_id uuid, p_email text, p_purpose text, p_token_hash text, p_ttl_seconds integer, p_ctx jsonb) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'activity', 'pg_temp'
    AS $$
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
$$;

ALTER FUNCTION activity.fn_issue_email_token(p_user_id uuid, p_email text, p_purpose text, p_token_hash text, p_ttl_seconds integer, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_issue_email_token(p_user_id uuid, p_email text, p_purpose text, p_token_hash text, p_ttl_seconds integer, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_issue_email_token(p_user_id uuid, p_email text, p_purpose text, p_token_hash text, p_ttl_seconds integer, p_ctx jsonb) IS 'Internal: burns the user''s unused tokens of the purpose and stores a new one. AU007 when the hash is taken. Audit email_token_created.';

--
-- Name: fn_issue_oauth_code(uuid, activity.oauth_provider, text, integer); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_issue_oauth_code(p_user_id uuid, p_provider activity.oauth_provider, p_code_hash text, p_ttl_seconds integer) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'activity', 'pg_temp'
    AS $$
BEGIN
  INSERT INTO activity.oauth_codes (code_hash, user_id, provider, expires_at)
  VALUES (p_code_hash, p_user_id, p_provider, now() + make_interval(secs => p_ttl_seconds))
  ON CONFLICT (code_hash) DO NOTHING;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'code hash already used';
  END IF;
END
$$;

ALTER FUNCTION activity.fn_issue_oauth_code(p_user_id uuid, p_provider activity.oauth_provider, p_code_hash text, p_ttl_seconds integer) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_issue_oauth_code(p_user_id uuid, p_provider activity.oauth_provider, p_code_hash text, p_ttl_seconds integer); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_issue_oauth_code(p_user_id uuid, p_provider activity.oauth_provider, p_code_hash text, p_ttl_seconds integer) IS 'Internal: stores a one-time exchange code (its hash) for the user; AU007 when the hash is already stored.';

--
-- Name: users; Type: TABLE; Schema: activity; Owner: activity_owner
--

CREATE TABLE activity.users (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    email character varying(255) NOT NULL,
    hashed_password character varying(255),
    is_verified boolean DEFAULT false NOT NULL,
    is_active boolean DEFAULT true NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    verified_at timestamp with time zone,
    last_login_at timestamp with time zone,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    password_changed_at timestamp with time zone DEFAULT now() NOT NULL,
    last_login_ip inet,
    failed_login_attempts integer DEFAULT 0 NOT NULL,
    locked_until timestamp with time zone,
    mfa_enabled boolean DEFAULT false NOT NULL,
    username character varying(32),
    first_name character varying(100),
    last_name character varying(100),
    phone character varying(16),
    CONSTRAINT users_email_format_check CHECK (((email)::text ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'::text)),
    CONSTRAINT users_email_lowercase_check CHECK (((email)::text = lower((email)::text))),
    CONSTRAINT users_failed_login_attempts_check CHECK ((failed_login_attempts >= 0)),
    CONSTRAINT users_first_name_check CHECK ((((first_name)::text = btrim((first_name)::text)) AND ((first_name)::text <> ''::text))),
    CONSTRAINT users_hashed_password_check CHECK (((hashed_password)::text ~~ '$argon2%'::text)),
    CONSTRAINT users_last_name_check CHECK ((((last_name)::text = btrim((last_name)::text)) AND ((last_name)::text <> ''::text))),
    CONSTRAINT users_phone_format_check CHECK (((phone)::text ~ '^\+[1-9][0-9]{4,14}$'::text)),
    CONSTRAINT users_username_format_check CHECK (((username)::text ~ '^[A-Za-z0-9_.]{3,32}$'::text)),
    CONSTRAINT users_verified_at_check CHECK ((is_verified = (verified_at IS NOT NULL)))
);

ALTER TABLE activity.users OWNER TO activity_owner;

--
-- Name: TABLE users; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON TABLE activity.users IS 'Accounts. email is stored normalised (lower, trimmed); hashed_password is an argon2 PHC string, or NULL: no password (the user signs in only through a linked provider, activity.oauth_providers). No procedure sets it to NULL, and sp_unlink_oauth_provider never removes the last way in, so an active user always keeps one.';

--
-- Name: COLUMN users.mfa_enabled; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON COLUMN activity.users.mfa_enabled IS 'Two-factor sign-in is on: a confirmed TOTP secret exists (activity.mfa_totp); set and cleared only by the mfa procedures.';

--
-- Name: COLUMN users.username; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON COLUMN activity.users.username IS 'Optional sign-in name, 3..32 of [A-Za-z0-9_.], stored as given, unique case-insensitively (users_username_lower_idx); reserved names are refused by fn_require_username.';

--
-- Name: COLUMN users.phone; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON COLUMN activity.users.phone IS 'E.164 (+ and up to 15 digits), validated by the service with libphonenumber-js.';

--
-- Name: fn_lock_mfa_user(uuid); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_lock_mfa_user(p_user_id uuid) RETURNS activity.users
    LANGUAGE plpgsql
    SET search_path TO 'activity', 'pg_temp'
    AS $$
DECLARE
  v_user activity.users%ROWTYPE;
BEGIN
  -- NO KEY UPDATE: the changes below touch mfa_enabled only, so sessions (KEY SHARE) go on.
  SELECT * INTO v_user FROM activity.users u WHERE u.id = p_user_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
  ELSIF NOT v_user.is_active THEN
    RAISE EXCEPTION USING ERRCODE = 'AU003', MESSAGE = 'user is inactive';
  END IF;
  RETURN v_user;
END
$$;

ALTER FUNCTION activity.fn_lock_mfa_user(p_user_id uuid) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_lock_mfa_user(p_user_id uuid); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_lock_mfa_user(p_user_id uuid) IS 'Internal: the users row locked FOR NO KEY UPDATE for a two-factor change. AU002 unknown, AU003 inactive.';

--
-- Name: fn_lock_until(integer, integer, integer, integer); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_lock_until(p_count integer, p_threshold integer, p_base_seconds integer, p_max_seconds integer) RETURNS timestamp with time zone
    LANGUAGE sql STABLE
    AS $$
  SELECT CASE WHEN p_count >= p_threshold THEN
    now() + make_interval(secs => least(p_base_seconds::float8 * power(2, least(p_count - p_threshold, 40)), p_max_seconds::float8))
  END
$$;

ALTER FUNCTION activity.fn_lock_until(p_count integer, p_threshold integer, p_base_seconds integer, p_max_seconds integer) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_lock_until(p_count integer, p_threshold integer, p_base_seconds integer, p_max_seconds integer); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_lock_until(p_count integer, p_threshold integer, p_base_seconds integer, p_max_seconds integer) IS 'Internal: lockout end for a failure count (exponential backoff, capped), NULL below the threshold.';

--
-- Name: fn_refresh_token_is_live(boolean, timestamp with time zone, timestamp with time zone); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_refresh_token_is_live(p_revoked boolean, p_expires_at timestamp with time zone, p_family_expires_at timestamp with time zone) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
  SELECT NOT p_revoked AND p_expires_at > now() AND p_family_expires_at > now()
$$;

ALTER FUNCTION activity.fn_refresh_token_is_live(p_revoked boolean, p_expires_at timestamp with time zone, p_family_expires_at timestamp with time zone) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_refresh_token_is_live(p_revoked boolean, p_expires_at timestamp with time zone, p_family_expires_at timestamp with time zone); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_refresh_token_is_live(p_revoked boolean, p_expires_at timestamp with time zone, p_family_expires_at timestamp with time zone) IS 'Internal: whether a refresh token row is live (not revoked, neither it nor its family expired). Inlined by the planner.';

--
-- Name: fn_release_attempt(text, text, integer); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_release_attempt(p_scope text, p_key text, p_threshold integer) RETURNS void
    LANGUAGE sql
    SET search_path TO 'activity', 'pg_temp'
    AS $$
  UPDATE activity.login_attempts a
     SET failed_count = greatest(a.failed_count - 1, 0),
         locked_until = CASE WHEN a.failed_count - 1 >= p_threshold THEN a.locked_until END
   WHERE a.scope = p_scope AND a.key = p_key
$$;

ALTER FUNCTION activity.fn_release_attempt(p_scope text, p_key text, p_threshold integer) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_release_attempt(p_scope text, p_key text, p_threshold integer); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_release_attempt(p_scope text, p_key text, p_threshold integer) IS 'Internal: takes back one reserved attempt of a login_attempts key.';

--
-- Name: fn_require_email_token_purpose(text); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_require_email_token_purpose(p_purpose text) RETURNS activity.email_token_purpose
    LANGUAGE plpgsql STABLE
    SET search_path TO 'activity', 'pg_temp'
    AS $$
BEGIN
  IF p_purpose IS NULL OR p_purpose = 'change_email'
     OR NOT p_purpose = ANY (enum_range(NULL::activity.email_token_purpose)::text[]) THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown email token purpose';
  END IF;
  RETURN p_purpose::activity.email_token_purpose;
END
$$;

ALTER FUNCTION activity.fn_require_email_token_purpose(p_purpose text) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_require_email_token_purpose(p_purpose text); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_require_email_token_purpose(p_purpose text) IS 'Internal: the text as an email_token_purpose of the generic link procedures; AU007 when NULL, not one of its labels, or change_email (handled only by the email-change procedures).';

--
-- Name: fn_require_oauth_provider(text); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_require_oauth_provider(p_provider text) RETURNS activity.oauth_provider
    LANGUAGE plpgsql STABLE
    SET search_path TO 'activity', 'pg_temp'
    AS $$
BEGIN
  IF p_provider IS NULL OR NOT p_provider = ANY (enum_range(NULL::activity.oauth_provider)::text[]) THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown oauth provider';
  END IF;
  RETURN p_provider::activity.oauth_provider;
END
$$;

ALTER FUNCTION activity.fn_require_oauth_provider(p_provider text) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_require_oauth_provider(p_provider text); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_require_oauth_provider(p_provider text) IS 'Internal: the text as an oauth_provider; AU007 when NULL or not one of its labels.';

--
-- Name: fn_require_person_name(text); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_require_person_name(p_name text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'activity', 'pg_temp'
    AS $$
DECLARE
  v_name text := NULLIF(btrim(p_name), '');
BEGIN
  IF char_length(v_name) > 100 OR v_name ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU014', MESSAGE = 'names are at most 100 characters, without control characters';
  END IF;
  RETURN v_name;
END
$$;

ALTER FUNCTION activity.fn_require_person_name(p_name text) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_require_person_name(p_name text); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_require_person_name(p_name text) IS 'Internal: the name trimmed, NULL when empty; AU014 when longer than 100 characters or holding a control character.';

--
-- Name: fn_require_revoke_reason(text); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_require_revoke_reason(p_reason text) RETURNS activity.revoke_reason
    LANGUAGE plpgsql STABLE
    SET search_path TO 'activity', 'pg_temp'
    AS $$
BEGIN
  IF p_reason IS NULL OR NOT p_reason = ANY (enum_range(NULL::activity.revoke_reason)::text[]) THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown revocation reason';
  END IF;
  RETURN p_reason::activity.revoke_reason;
END
$$;

ALTER FUNCTION activity.fn_require_revoke_reason(p_reason text) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_require_revoke_reason(p_reason text); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_require_revoke_reason(p_reason text) IS 'Internal: the text as a revoke_reason; AU007 when NULL or not one of its labels.';

--
-- Name: fn_require_username(text); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_require_username(p_username text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'activity', 'pg_temp'
    AS $_$
BEGIN
  IF p_username IS NULL OR p_username !~ '^[A-Za-z0-9_.]{3,32}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU012', MESSAGE = 'username must be 3..32 letters, digits, _ or .';
  ELSIF activity.fn_username_is_reserved(p_username) THEN
    RAISE EXCEPTION USING ERRCODE = 'AU011', MESSAGE = 'username is reserved';
  END IF;
  RETURN p_username;
END
$_$;

ALTER FUNCTION activity.fn_require_username(p_username text) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_require_username(p_username text); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_require_username(p_username text) IS 'Internal: the username when it is 3..32 of [A-Za-z0-9_.] (AU012 otherwise) and not reserved (AU011).';

--
-- Name: fn_reserve_attempt(text, text, integer, integer, integer, integer); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_reserve_attempt(p_scope text, p_key text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_window_seconds integer) RETURNS timestamp with time zone
    LANGUAGE plpgsql
    SET search_path TO 'activity', 'pg_temp'
    AS $$
DECLARE
  v_reserved boolean;
  v_lock     timestamptz;
BEGIN
  INSERT INTO activity.login_attempts AS a (scope, key, failed_count, first_failed_at, last_failed_at, locked_until)
  VALUES (p_scope, p_key, 1, now(), now(), activity.fn_lock_until(1, p_threshold, p_base_seconds, p_max_seconds))
  ON CONFLICT (scope, key) DO UPDATE SET
    failed_count    = CASE WHEN a.last_failed_at < now() - make_interval(secs => p_window_seconds) THEN 1 ELSE a.failed_count + 1 END,
    first_failed_at = CASE WHEN a.last_failed_at < now() - make_interval(secs => p_window_seconds) THEN now() ELSE a.first_failed_at END,
    last_failed_at  = now(),
    locked_until    = activity.fn_lock_until(
      CASE WHEN a.last_failed_at < now() - make_interval(secs => p_window_seconds) THEN 1 ELSE a.failed_count + 1 END,
      p_threshold, p_base_seconds, p_max_seconds)
  WHERE a.locked_until IS NULL OR a.locked_until <= now()
  RETURNING true INTO v_reserved;
  IF v_reserved THEN
    RETURN NULL;
  END IF;
  SELECT a.locked_until INTO v_lock FROM activity.login_attempts a WHERE a.scope = p_scope AND a.key = p_key;
  -- Refused: never answer with a lock in the past (it may have been lifted meanwhile).
  RETURN greatest(v_lock, now() + interval '1 second');
END
$$;

ALTER FUNCTION activity.fn_reserve_attempt(p_scope text, p_key text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_window_seconds integer) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_reserve_attempt(p_scope text, p_key text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_window_seconds integer); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_reserve_attempt(p_scope text, p_key text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_window_seconds integer) IS 'Internal: counts one attempt for a login_attempts key unless it is locked; NULL when reserved, else the lock end.';

--
-- Name: fn_revoke_user_families(uuid, uuid, text); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

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

ALTER FUNCTION activity.fn_revoke_user_families(p_user_id uuid, p_except_family_id uuid, p_reason text) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_revoke_user_families(p_user_id uuid, p_except_family_id uuid, p_reason text); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_revoke_user_families(p_user_id uuid, p_except_family_id uuid, p_reason text) IS 'Internal: revokes all live sessions of a user except one family; returns the ids of the sessions (families) ended, sorted. Caller must hold the users row FOR UPDATE.';

--
-- Name: refresh_tokens; Type: TABLE; Schema: activity; Owner: activity_owner
--

CREATE TABLE activity.refresh_tokens (
    id integer NOT NULL,
    user_id uuid NOT NULL,
    token character varying(500) NOT NULL,
    jti character varying(50) NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    revoked boolean DEFAULT false NOT NULL,
    family_id uuid NOT NULL,
    family_expires_at timestamp with time zone NOT NULL,
    replaced_by integer,
    revoked_at timestamp with time zone,
    revoked_reason activity.revoke_reason,
    last_used_at timestamp with time zone,
    user_agent character varying(512),
    ip inet,
    amr text[],
    CONSTRAINT refresh_tokens_amr_check CHECK (activity.fn_amr_is_valid(amr)),
    CONSTRAINT refresh_tokens_expires_at_check CHECK ((expires_at > created_at)),
    CONSTRAINT refresh_tokens_family_expires_at_check CHECK ((family_expires_at > created_at)),
    CONSTRAINT refresh_tokens_revoked_at_check CHECK ((revoked = (revoked_at IS NOT NULL))),
    CONSTRAINT refresh_tokens_token_check CHECK (((token)::text ~ '^[0-9a-f]{64}$'::text))
);

ALTER TABLE activity.refresh_tokens OWNER TO activity_owner;

--
-- Name: TABLE refresh_tokens; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON TABLE activity.refresh_tokens IS 'Refresh tokens, stored as the SHA-256 (lowercase hex) of the token, never the token. One family = one login session.';

--
-- Name: fn_rotation_moved(activity.refresh_tokens, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_rotation_moved(p_old activity.refresh_tokens, p_ctx jsonb) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
  SELECT p_old.ip IS DISTINCT FROM activity.fn_inet(p_ctx->>'ip')
      OR p_old.user_agent IS DISTINCT FROM left(NULLIF(p_ctx->>'userAgent', ''), 512)
$$;

ALTER FUNCTION activity.fn_rotation_moved(p_old activity.refresh_tokens, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_rotation_moved(p_old activity.refresh_tokens, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_rotation_moved(p_old activity.refresh_tokens, p_ctx jsonb) IS 'Internal: whether a refresh token is presented from another address or user agent than the one it was issued to (the same normalisation as the insert).';

--
-- Name: fn_take_mail_budget(text, text, integer, integer); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_take_mail_budget(p_recipient text, p_kind text, p_max integer, p_window_seconds integer) RETURNS boolean
    LANGUAGE sql
    SET search_path TO 'activity', 'pg_temp'
    AS $$
  INSERT INTO activity.mail_budget AS b (recipient, kind, window_start, sent)
  VALUES (left(p_recipient, 255), p_kind, now(), 1)
  ON CONFLICT (recipient, kind) DO UPDATE SET
    window_start = CASE WHEN b.window_start <= now() - make_interval(secs => p_window_seconds) THEN now() ELSE b.window_start END,
    sent         = CASE WHEN b.window_start <= now() - make_interval(secs => p_window_seconds) THEN 1 ELSE b.sent + 1 END
  RETURNING b.sent <= p_max
$$;

ALTER FUNCTION activity.fn_take_mail_budget(p_recipient text, p_kind text, p_max integer, p_window_seconds integer) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_take_mail_budget(p_recipient text, p_kind text, p_max integer, p_window_seconds integer); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_take_mail_budget(p_recipient text, p_kind text, p_max integer, p_window_seconds integer) IS 'Internal: counts one mail of a kind to an address; true while within p_max per window.';

--
-- Name: fn_username_is_reserved(text); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.fn_username_is_reserved(p_username text) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $$
  SELECT lower(p_username) = ANY (ARRAY[
    'admin', 'administrator', 'root', 'support', 'help', 'system', 'sysadmin', 'api', 'auth', 'oauth',
    'me', 'null', 'undefined', 'nobody', 'anonymous', 'owner', 'staff', 'security', 'moderator',
    'postmaster', 'webmaster', 'hostmaster', 'abuse', 'noreply', 'no-reply', 'info', 'activity',
    'login', 'logout', 'signup', 'account', 'settings', 'profile', 'user', 'users', 'test'])
$$;

ALTER FUNCTION activity.fn_username_is_reserved(p_username text) OWNER TO activity_owner;

--
-- Name: FUNCTION fn_username_is_reserved(p_username text); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.fn_username_is_reserved(p_username text) IS 'Internal: whether a username is reserved (any letter case); the one list of reserved names. Inlined by the planner.';

--
-- Name: sp_begin_login(text, uuid, text, text, integer, integer, integer, integer, integer, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_begin_login(p_identifier text, p_user_id uuid, p_ip text, p_device_hash text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_ip_threshold integer, p_window_seconds integer, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(allowed boolean, locked_until timestamp with time zone, trusted boolean, user_id uuid, email text, hashed_password text, is_active boolean, is_verified boolean)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
#variable_conflict use_column
DECLARE
  v_key     text := left(lower(btrim(p_identifier)), 255);
  v_ip      text := left(NULLIF(btrim(p_ip), ''), 255);
  v_user    activity.users%ROWTYPE;
  v_trusted boolean := false;
  v_lock    timestamptz;
BEGIN
  PERFORM activity.fn_check_lockout_policy(p_threshold, p_base_seconds, p_max_seconds, p_ip_threshold, p_window_seconds);
  IF p_device_hash IS NOT NULL THEN
    PERFORM activity.fn_check_sha256_hex(p_device_hash, 'device hash');
  END IF;
  IF p_user_id IS NOT NULL THEN
    -- Re-authentication of a signed-in user: the account's own counter.
    SELECT * INTO v_user FROM activity.users u WHERE u.id = p_user_id;
    IF NOT FOUND THEN
      RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
    END IF;
    v_key := v_user.email;
  ELSE
    IF v_key IS NULL OR v_key = '' THEN
      RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'identifier is required';
    END IF;
    -- No username has an @: an identifier with one is an address.
    IF strpos(v_key, '@') > 0 THEN
      SELECT * INTO v_user FROM activity.users u WHERE u.email = v_key;
    ELSE
      SELECT * INTO v_user FROM activity.users u WHERE lower(u.username) = v_key;
    END IF;
    -- The account's counter is keyed by its address whichever name was typed; an
    -- unknown username keeps its own key (it cannot collide with an address), so it
    -- locks after as many guesses as a real one.
    v_key := COALESCE(v_user.email, v_key);
  END IF;

  IF p_device_hash IS NOT NULL AND v_user.id IS NOT NULL THEN
    v_trusted := EXISTS (SELECT 1 FROM activity.trusted_devices d
                          WHERE d.token_hash = p_device_hash::bpchar AND d.user_id = v_user.id AND d.expires_at > now());
  END IF;

  IF v_trusted THEN
    -- A device that signed in before: only its own guesses count against it.
    v_lock := activity.fn_reserve_attempt('device', p_device_hash, p_threshold, p_base_seconds, p_max_seconds, p_window_seconds);
  ELSE
    IF v_ip IS NOT NULL THEN
      v_lock := activity.fn_reserve_attempt('ip', v_ip, p_ip_threshold, p_base_seconds, p_max_seconds, p_window_seconds);
    END IF;
    IF v_lock IS NULL THEN
      v_lock := activity.fn_reserve_attempt('email', v_key, p_threshold, p_base_seconds, p_max_seconds, p_window_seconds);
      -- Refused by the account: the address did nothing the ip must pay for.
      IF v_lock IS NOT NULL AND v_ip IS NOT NULL THEN
        PERFORM activity.fn_release_attempt('ip', v_ip, p_ip_threshold);
      END IF;
    END IF;
  END IF;

  IF v_lock IS NOT NULL THEN
    PERFORM activity.fn_audit('login_refused', v_user.id, p_ctx,
      jsonb_build_object('email', v_key, 'locked_until', v_lock, 'trusted_device', v_trusted,
                         'reauth', p_user_id IS NOT NULL));
    RETURN QUERY SELECT false, v_lock, v_trusted, NULL::uuid, NULL::text, NULL::text, NULL::boolean, NULL::boolean;
    RETURN;
  END IF;
  RETURN QUERY SELECT true, NULL::timestamptz, v_trusted, v_user.id, v_user.email::text, v_user.hashed_password::text,
                      v_user.is_active, v_user.is_verified;
END
$$;

ALTER FUNCTION activity.sp_begin_login(p_identifier text, p_user_id uuid, p_ip text, p_device_hash text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_ip_threshold integer, p_window_seconds integer, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_begin_login(p_identifier text, p_user_id uuid, p_ip text, p_device_hash text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_ip_threshold integer, p_window_seconds integer, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_begin_login(p_identifier text, p_user_id uuid, p_ip text, p_device_hash text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_ip_threshold integer, p_window_seconds integer, p_ctx jsonb) IS 'Starts a password check for an identifier (an address when it holds an @, else a username, any letter case): reserves (counts) the attempt before the password is verified, per trusted device, or per ip and the account''s normalised address (an unknown identifier: itself, normalised); refuses while locked (allowed false, locked_until, audit login_refused). With p_user_id it is a re-authentication of that user (AU002 unknown). Returns the user row (null for an unknown identifier) when allowed; sp_end_login_attempt then takes the account''s email, or the unknown identifier itself. AU007 bad policy, identifier or device hash.';

--
-- Name: sp_begin_mfa_enrolment(uuid, text, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_begin_mfa_enrolment(p_user_id uuid, p_secret_ciphertext text, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
DECLARE
  v_user activity.users%ROWTYPE;
BEGIN
  IF p_secret_ciphertext IS NULL OR length(p_secret_ciphertext) NOT BETWEEN 1 AND 1024 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'secret ciphertext must be 1-1024 characters';
  END IF;
  v_user := activity.fn_lock_mfa_user(p_user_id);
  IF v_user.mfa_enabled THEN
    RETURN false;
  END IF;
  INSERT INTO activity.mfa_totp AS t (user_id, secret_ciphertext)
  VALUES (p_user_id, p_secret_ciphertext)
  ON CONFLICT (user_id) DO UPDATE
     SET secret_ciphertext = EXCLUDED.secret_ciphertext, confirmed_at = NULL, last_used_step = 0, created_at = now();
  PERFORM activity.fn_audit('mfa_enrolment_started', p_user_id, p_ctx, '{}');
  RETURN true;
END
$$;

ALTER FUNCTION activity.sp_begin_mfa_enrolment(p_user_id uuid, p_secret_ciphertext text, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_begin_mfa_enrolment(p_user_id uuid, p_secret_ciphertext text, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_begin_mfa_enrolment(p_user_id uuid, p_secret_ciphertext text, p_ctx jsonb) IS 'Stores a new, unconfirmed TOTP secret (encrypted by the caller), replacing an unconfirmed one; true when stored, false when two-factor is already on (nothing changes). AU002/AU003, AU007 bad ciphertext. Audit mfa_enrolment_started.';

--
-- Name: sp_check_login_lock(text, text); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_check_login_lock(p_email text, p_ip text) RETURNS TABLE(locked_until timestamp with time zone)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
  SELECT max(a.locked_until)
    FROM activity.login_attempts a
   WHERE a.locked_until > now()
     AND ((a.scope = 'email' AND a.key = left(lower(btrim(p_email)), 255))
       OR (a.scope = 'ip' AND a.key = left(btrim(p_ip), 255)))
$$;

ALTER FUNCTION activity.sp_check_login_lock(p_email text, p_ip text) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_check_login_lock(p_email text, p_ip text); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_check_login_lock(p_email text, p_ip text) IS 'One row: the later of the email lock and the ip lock when in the future, else NULL. Works for addresses with no account.';

--
-- Name: sp_check_session(uuid, uuid); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_check_session(p_user_id uuid, p_family_id uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
  SELECT EXISTS (
    SELECT 1
      FROM activity.refresh_tokens t
      JOIN activity.users u ON u.id = t.user_id
     WHERE t.family_id = p_family_id AND t.user_id = p_user_id AND activity.fn_refresh_token_is_live(t.revoked, t.expires_at, t.family_expires_at)
       AND u.is_active)
$$;

ALTER FUNCTION activity.sp_check_session(p_user_id uuid, p_family_id uuid) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_check_session(p_user_id uuid, p_family_id uuid); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_check_session(p_user_id uuid, p_family_id uuid) IS 'True when the user is active and the session (family) has a live token. Per-request check, served by refresh_tokens_family_id_live_idx.';

--
-- Name: sp_claim_events(integer); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_claim_events(p_limit integer) RETURNS TABLE(id bigint, type text, version smallint, user_id uuid, session_id uuid, payload jsonb, created_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
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

ALTER FUNCTION activity.sp_claim_events(p_limit integer) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_claim_events(p_limit integer); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_claim_events(p_limit integer) IS 'Publisher: up to p_limit unpublished events, oldest first, locked (FOR UPDATE SKIP LOCKED) until the caller''s transaction ends; call it in the transaction that publishes and marks them. No row when another caller holds the publisher lock (advisory 8153). AU007 when p_limit is not 1..10000.';

--
-- Name: sp_cleanup_events(integer, boolean); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_cleanup_events(p_retention_hours integer, p_unpublished_too boolean DEFAULT false) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
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

ALTER FUNCTION activity.sp_cleanup_events(p_retention_hours integer, p_unpublished_too boolean) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_cleanup_events(p_retention_hours integer, p_unpublished_too boolean); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_cleanup_events(p_retention_hours integer, p_unpublished_too boolean) IS 'Deletes events published more than p_retention_hours ago, and with p_unpublished_too (no publisher runs) unpublished ones created that long ago; returns the count. AU007 when hours < 1. Audit cleanup.';

--
-- Name: sp_cleanup_expired(integer, integer); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_cleanup_expired(p_audit_retention_days integer, p_attempt_retention_hours integer DEFAULT 24) RETURNS TABLE(item text, deleted bigint)
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

ALTER FUNCTION activity.sp_cleanup_expired(p_audit_retention_days integer, p_attempt_retention_hours integer) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_cleanup_expired(p_audit_retention_days integer, p_attempt_retention_hours integer); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_cleanup_expired(p_audit_retention_days integer, p_attempt_retention_hours integer) IS 'Deletes dead refresh token families, used or expired email tokens, stale unlocked login attempts, old audit rows, expired trusted devices, spent mail-budget windows, expired OAuth states and exchange codes; one row per item. AU007 on retention < 1. Audit cleanup.';

--
-- Name: sp_cleanup_unverified_users(integer); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_cleanup_unverified_users(p_older_than_hours integer DEFAULT 168) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
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

ALTER FUNCTION activity.sp_cleanup_unverified_users(p_older_than_hours integer) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_cleanup_unverified_users(p_older_than_hours integer); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_cleanup_unverified_users(p_older_than_hours integer) IS 'Deletes unverified users created more than p_older_than_hours ago; returns the count. AU007 when hours < 1. Audit cleanup.';

--
-- Name: sp_complete_login(uuid, text, text, text, integer, integer, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_complete_login(p_user_id uuid, p_ip text, p_device_hash text, p_new_device_hash text, p_device_ttl_seconds integer, p_ip_threshold integer, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(device_hash text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $_$
#variable_conflict use_column
DECLARE
  v_email  text;
  v_active boolean;
  v_ip     text := left(NULLIF(btrim(p_ip), ''), 255);
  v_device text;
BEGIN
  IF p_device_ttl_seconds IS NULL OR p_device_ttl_seconds <= 0 OR p_ip_threshold IS NULL OR p_ip_threshold < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'device ttl and ip threshold must be > 0';
  END IF;
  IF (p_device_hash IS NOT NULL AND p_device_hash !~ '^[0-9a-f]{64}$')
     OR (p_device_hash IS NULL AND (p_new_device_hash IS NULL OR p_new_device_hash !~ '^[0-9a-f]{64}$')) THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'a trusted device hash or a new one (lowercase hex SHA-256) is required';
  END IF;
  SELECT u.email, u.is_active INTO v_email, v_active FROM activity.users u WHERE u.id = p_user_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
  ELSIF NOT v_active THEN
    RAISE EXCEPTION USING ERRCODE = 'AU003', MESSAGE = 'user is inactive';
  END IF;

  IF p_device_hash IS NOT NULL THEN
    -- A trusted device: its own counter clears; the account's counter (guesses
    -- from elsewhere) is left as it is, so an attacker gets no fresh budget.
    DELETE FROM activity.login_attempts a WHERE a.scope = 'device' AND a.key = p_device_hash;
    UPDATE activity.trusted_devices d
       SET last_used_at = now(), expires_at = greatest(d.expires_at, now() + make_interval(secs => p_device_ttl_seconds))
     WHERE d.token_hash = p_device_hash::bpchar AND d.user_id = p_user_id
    RETURNING d.token_hash INTO v_device;
  END IF;
  IF v_device IS NULL THEN
    DELETE FROM activity.login_attempts a WHERE a.scope = 'email' AND a.key = v_email;
    UPDATE activity.users u SET failed_login_attempts = 0, locked_until = NULL WHERE u.id = p_user_id;
    IF v_ip IS NOT NULL THEN
      PERFORM activity.fn_release_attempt('ip', v_ip, p_ip_threshold);
    END IF;
    BEGIN
      INSERT INTO activity.trusted_devices (user_id, token_hash, expires_at)
      VALUES (p_user_id, COALESCE(p_new_device_hash, p_device_hash), now() + make_interval(secs => p_device_ttl_seconds))
      RETURNING token_hash INTO v_device;
    EXCEPTION WHEN unique_violation THEN
      RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'device hash already used';
    END;
    -- Keep the newest ten devices of the user.
    DELETE FROM activity.trusted_devices d
     WHERE d.user_id = p_user_id
       AND d.id NOT IN (SELECT k.id FROM activity.trusted_devices k WHERE k.user_id = p_user_id
                         ORDER BY k.last_used_at DESC, k.id DESC LIMIT 10);
  END IF;
  UPDATE activity.users u SET last_login_at = now(), last_login_ip = activity.fn_inet(p_ctx->>'ip') WHERE u.id = p_user_id;
  PERFORM activity.fn_audit('login_success', p_user_id, p_ctx, jsonb_build_object('trusted_device', p_device_hash IS NOT NULL));
  RETURN QUERY SELECT v_device;
END
$_$;

ALTER FUNCTION activity.sp_complete_login(p_user_id uuid, p_ip text, p_device_hash text, p_new_device_hash text, p_device_ttl_seconds integer, p_ip_threshold integer, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_complete_login(p_user_id uuid, p_ip text, p_device_hash text, p_new_device_hash text, p_device_ttl_seconds integer, p_ip_threshold integer, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_complete_login(p_user_id uuid, p_ip text, p_device_hash text, p_new_device_hash text, p_device_ttl_seconds integer, p_ip_threshold integer, p_ctx jsonb) IS 'Records a successful password check: last_login_at/ip; from a trusted device (p_device_hash) clears that device''s counter and extends it, otherwise clears the account counter, gives the ip reservation back and trusts a new device (p_new_device_hash; ten per user). Returns the device hash in effect. AU002/AU003/AU007. Audit login_success.';

--
-- Name: sp_confirm_email_change(text, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_confirm_email_change(p_token_hash text, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(user_id uuid, old_email text, new_email text, sessions_ended integer)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
#variable_conflict use_column
DECLARE
  v_user_id uuid;
  v_token   activity.email_tokens%ROWTYPE;
  v_user    activity.users%ROWTYPE;
  v_ended   uuid[];
BEGIN
  PERFORM activity.fn_check_sha256_hex(p_token_hash, 'token hash');
  SELECT e.user_id INTO v_user_id FROM activity.email_tokens e
   WHERE e.token_hash = p_token_hash::bpchar AND e.purpose = 'change_email';
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU004', MESSAGE = 'unknown token';
  END IF;
  -- Lock order: users row (FOR UPDATE: every session ends), then the token row.
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

  BEGIN
    -- Following the link proves control of the new mailbox: it counts as verified.
    UPDATE activity.users u
       SET email = v_token.email, is_verified = true, verified_at = now(), updated_at = now()
     WHERE u.id = v_user.id;
  EXCEPTION WHEN unique_violation THEN
    -- Someone signed up with the address since the link was sent.
    RAISE EXCEPTION USING ERRCODE = 'AU001', MESSAGE = 'email already registered';
  END;
  v_ended := activity.fn_revoke_user_families(v_user.id, NULL, 'email_changed');
  -- This link and every other outstanding one (sent to the old address) die with the change.
  UPDATE activity.email_tokens e SET used_at = now() WHERE e.user_id = v_user.id AND e.used_at IS NULL;
  PERFORM activity.fn_audit('email_changed', v_user.id, p_ctx,
    jsonb_build_object('old_email', v_user.email, 'email', v_token.email,
                       'sessions_ended', cardinality(v_ended), 'family_ids', to_jsonb(v_ended)));
  RETURN QUERY SELECT v_user.id, v_user.email::text, v_token.email::text, cardinality(v_ended);
END
$$;

ALTER FUNCTION activity.sp_confirm_email_change(p_token_hash text, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_confirm_email_change(p_token_hash text, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_confirm_email_change(p_token_hash text, p_ctx jsonb) IS 'Uses a change_email token: the account takes the new address (verified), every session ends (email_changed), every other unused email token is burnt. Returns the user, both addresses and the sessions ended. AU004 unknown or other purpose, AU006 used, AU005 expired, AU003 inactive, AU001 the address was taken meanwhile, AU007 bad hash format. Audit email_changed.';

--
-- Name: sp_confirm_mfa_totp(uuid, bigint, text[], jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_confirm_mfa_totp(p_user_id uuid, p_step bigint, p_recovery_hashes text[], p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
DECLARE
  v_user activity.users%ROWTYPE;
BEGIN
  IF p_step IS NULL OR p_step < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'step must be >= 1';
  END IF;
  PERFORM activity.fn_check_recovery_hashes(p_recovery_hashes);
  v_user := activity.fn_lock_mfa_user(p_user_id);
  IF v_user.mfa_enabled THEN
    RETURN false;
  END IF;
  UPDATE activity.mfa_totp t
     SET confirmed_at = now(), last_used_step = p_step
   WHERE t.user_id = p_user_id AND t.confirmed_at IS NULL AND t.last_used_step < p_step;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  UPDATE activity.users u SET mfa_enabled = true, updated_at = now() WHERE u.id = p_user_id;
  DELETE FROM activity.mfa_recovery_codes c WHERE c.user_id = p_user_id;
  INSERT INTO activity.mfa_recovery_codes (user_id, code_hash) SELECT p_user_id, h FROM unnest(p_recovery_hashes) h;
  PERFORM activity.fn_audit('mfa_enabled', p_user_id, p_ctx,
    jsonb_build_object('recovery_codes', cardinality(p_recovery_hashes)));
  RETURN true;
END
$$;

ALTER FUNCTION activity.sp_confirm_mfa_totp(p_user_id uuid, p_step bigint, p_recovery_hashes text[], p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_confirm_mfa_totp(p_user_id uuid, p_step bigint, p_recovery_hashes text[], p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_confirm_mfa_totp(p_user_id uuid, p_step bigint, p_recovery_hashes text[], p_ctx jsonb) IS 'Confirms the pending TOTP enrolment with the step of the code the caller checked: two-factor on, that step used, the recovery codes (hashes) stored in place of any old ones. False (nothing changes) when there is no pending enrolment, two-factor is already on, or the step is not newer than the last used. AU002/AU003, AU007 bad step or hashes. Audit mfa_enabled.';

--
-- Name: sp_consume_email_token(text, text, text, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_consume_email_token(p_token_hash text, p_purpose text, p_new_hashed_password text DEFAULT NULL::text, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(user_id uuid, email text)
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

ALTER FUNCTION activity.sp_consume_email_token(p_token_hash text, p_purpose text, p_new_hashed_password text, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_consume_email_token(p_token_hash text, p_purpose text, p_new_hashed_password text, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_consume_email_token(p_token_hash text, p_purpose text, p_new_hashed_password text, p_ctx jsonb) IS 'Uses a one-time email token: verify_email marks the address verified; reset_password sets the new hash, lifts the account lock, ends all sessions (password_reset) and burns every other unused email token. AU004 unknown/other purpose, AU006 used, AU005 expired, AU003 inactive, AU007 bad purpose or missing hash. Audit email_verified / password_reset.';

--
-- Name: sp_consume_mfa_challenge(text, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_consume_mfa_challenge(p_token_hash text, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(user_id uuid, amr text[], device_hash text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
#variable_conflict use_column
BEGIN
  PERFORM activity.fn_check_sha256_hex(p_token_hash, 'challenge hash');
  -- Parallel callers wait on the row and evaluate used_at again: exactly one gets it.
  RETURN QUERY
    UPDATE activity.mfa_challenges c SET used_at = now()
      FROM activity.users u
     WHERE c.token_hash = p_token_hash AND c.used_at IS NULL AND c.expires_at > now()
       AND u.id = c.user_id AND u.is_active
    RETURNING c.user_id, c.amr, c.device_hash;
END
$$;

ALTER FUNCTION activity.sp_consume_mfa_challenge(p_token_hash text, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_consume_mfa_challenge(p_token_hash text, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_consume_mfa_challenge(p_token_hash text, p_ctx jsonb) IS 'Spends a live challenge once its second factor is proven: one row (user_id, amr, device_hash) for exactly one of parallel callers; no row when unknown, used, expired or its user inactive. AU007 bad hash. Not audited (the session that follows is).';

--
-- Name: sp_consume_oauth_code(text, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_consume_oauth_code(p_code_hash text, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(user_id uuid, provider text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
#variable_conflict use_column
BEGIN
  PERFORM activity.fn_check_sha256_hex(p_code_hash, 'code hash');
  -- Deleted whenever presented (also expired, or of a deactivated user): single use.
  -- The DELETE settles parallel trades: the others find no row.
  RETURN QUERY
  WITH used AS (
    DELETE FROM activity.oauth_codes c WHERE c.code_hash = p_code_hash
    RETURNING c.user_id, c.provider, c.expires_at
  )
  SELECT d.user_id, d.provider::text
    FROM used d JOIN activity.users u ON u.id = d.user_id
   WHERE d.expires_at > now() AND u.is_active;
END
$$;

ALTER FUNCTION activity.sp_consume_oauth_code(p_code_hash text, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_consume_oauth_code(p_code_hash text, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_consume_oauth_code(p_code_hash text, p_ctx jsonb) IS 'Trades a one-time exchange code: deletes it and returns (user_id, provider); no row when unknown, used, expired or its user inactive. Exactly one of parallel callers gets the row. AU007 bad hash format. Not audited (the sign-in and the session that follows are).';

--
-- Name: sp_consume_oauth_state(text, text, text); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_consume_oauth_state(p_state_hash text, p_binding_hash text, p_provider text) RETURNS TABLE(status text, redirect_to text, link_user_id uuid)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
#variable_conflict use_column
DECLARE
  v_provider activity.oauth_provider;
  v_state    activity.oauth_states%ROWTYPE;
BEGIN
  v_provider := activity.fn_require_oauth_provider(p_provider);
  PERFORM activity.fn_check_sha256_hex(p_state_hash, 'state hash');
  PERFORM activity.fn_check_sha256_hex(p_binding_hash, 'binding hash');
  -- The DELETE settles parallel callbacks: the others find no row.
  DELETE FROM activity.oauth_states s WHERE s.state_hash = p_state_hash RETURNING s.* INTO v_state;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'invalid'::text, NULL::text, NULL::uuid;
  ELSIF v_state.binding_hash <> p_binding_hash OR v_state.provider <> v_provider THEN
    -- Another browser (or a forged callback): where the flow was going is not its business.
    RETURN QUERY SELECT 'mismatch'::text, NULL::text, NULL::uuid;
  ELSIF v_state.expires_at <= now() THEN
    RETURN QUERY SELECT 'expired'::text, v_state.redirect_to, NULL::uuid;
  ELSE
    RETURN QUERY SELECT 'ok'::text, v_state.redirect_to, v_state.link_user_id;
  END IF;
END
$$;

ALTER FUNCTION activity.sp_consume_oauth_state(p_state_hash text, p_binding_hash text, p_provider text) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_consume_oauth_state(p_state_hash text, p_binding_hash text, p_provider text); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_consume_oauth_state(p_state_hash text, p_binding_hash text, p_provider text) IS 'Consumes a stored OAuth state (deleted whenever found, so it never works twice). One row: status ok (redirect_to, link_user_id), invalid (unknown or already used), mismatch (other binding or provider; nothing revealed), expired (redirect_to only). AU007 bad provider or hash format. Not audited.';

--
-- Name: sp_create_email_token(uuid, text, text, integer, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_create_email_token(p_user_id uuid, p_purpose text, p_token_hash text, p_ttl_seconds integer, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(id bigint, email text, expires_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
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
$$;

ALTER FUNCTION activity.sp_create_email_token(p_user_id uuid, p_purpose text, p_token_hash text, p_ttl_seconds integer, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_create_email_token(p_user_id uuid, p_purpose text, p_token_hash text, p_ttl_seconds integer, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_create_email_token(p_user_id uuid, p_purpose text, p_token_hash text, p_ttl_seconds integer, p_ctx jsonb) IS 'Issues a one-time email token (earlier unused ones of the same purpose are burnt). AU002/AU003/AU007; AU009 for verify_email on a verified user. Audit email_token_created.';

--
-- Name: sp_create_mfa_challenge(text, uuid, text[], text, integer, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_create_mfa_challenge(p_token_hash text, p_user_id uuid, p_amr text[], p_device_hash text, p_ttl_seconds integer, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
DECLARE
  v_active boolean;
BEGIN
  PERFORM activity.fn_check_sha256_hex(p_token_hash, 'challenge hash');
  IF p_device_hash IS NOT NULL THEN
    PERFORM activity.fn_check_sha256_hex(p_device_hash, 'device hash');
  END IF;
  IF p_amr IS NULL OR NOT (p_amr = ARRAY['pwd'] OR p_amr = ARRAY['fed']) THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'amr must be {pwd} or {fed}';
  END IF;
  IF p_ttl_seconds IS NULL OR p_ttl_seconds NOT BETWEEN 1 AND 900 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'ttl must be 1-900 seconds';
  END IF;
  SELECT u.is_active INTO v_active FROM activity.users u WHERE u.id = p_user_id FOR KEY SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
  ELSIF NOT v_active THEN
    RAISE EXCEPTION USING ERRCODE = 'AU003', MESSAGE = 'user is inactive';
  END IF;
  -- The user's dead challenges go with each new one: a few rows per user at most.
  DELETE FROM activity.mfa_challenges c WHERE c.user_id = p_user_id AND (c.used_at IS NOT NULL OR c.expires_at <= now());
  BEGIN
    INSERT INTO activity.mfa_challenges (token_hash, user_id, amr, device_hash, expires_at)
    VALUES (p_token_hash, p_user_id, p_amr, p_device_hash, now() + make_interval(secs => p_ttl_seconds));
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'challenge hash already used';
  END;
  PERFORM activity.fn_audit('mfa_challenged', p_user_id, p_ctx, jsonb_build_object('amr', p_amr));
END
$$;

ALTER FUNCTION activity.sp_create_mfa_challenge(p_token_hash text, p_user_id uuid, p_amr text[], p_device_hash text, p_ttl_seconds integer, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_create_mfa_challenge(p_token_hash text, p_user_id uuid, p_amr text[], p_device_hash text, p_ttl_seconds integer, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_create_mfa_challenge(p_token_hash text, p_user_id uuid, p_amr text[], p_device_hash text, p_ttl_seconds integer, p_ctx jsonb) IS 'Stores a login waiting for its second factor: the SHA-256 of the mfaToken, the first factor (amr {pwd} or {fed}), the trusted device of the login (hash, or NULL), valid p_ttl_seconds (1..900); sweeps the user''s dead challenges. AU002/AU003, AU007 bad hash, amr or ttl, or a hash already stored. Audit mfa_challenged.';

--
-- Name: sp_create_oauth_state(text, text, text, text, uuid, integer, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_create_oauth_state(p_state_hash text, p_binding_hash text, p_provider text, p_redirect_to text, p_link_user_id uuid, p_ttl_seconds integer, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
DECLARE
  v_provider activity.oauth_provider;
  v_active   boolean;
BEGIN
  v_provider := activity.fn_require_oauth_provider(p_provider);
  PERFORM activity.fn_check_sha256_hex(p_state_hash, 'state hash');
  PERFORM activity.fn_check_sha256_hex(p_binding_hash, 'binding hash');
  IF p_ttl_seconds IS NULL OR p_ttl_seconds < 1 OR p_ttl_seconds > 3600 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'ttl must be 1..3600 seconds';
  ELSIF p_redirect_to IS NULL OR length(p_redirect_to) NOT BETWEEN 1 AND 2048 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'redirect_to must be 1..2048 characters';
  END IF;
  IF p_link_user_id IS NOT NULL THEN
    SELECT u.is_active INTO v_active FROM activity.users u WHERE u.id = p_link_user_id FOR KEY SHARE;
    IF NOT FOUND THEN
      RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
    ELSIF NOT v_active THEN
      RAISE EXCEPTION USING ERRCODE = 'AU003', MESSAGE = 'user is inactive';
    END IF;
  END IF;
  INSERT INTO activity.oauth_states (state_hash, binding_hash, provider, redirect_to, link_user_id, expires_at)
  VALUES (p_state_hash, p_binding_hash, v_provider, p_redirect_to, p_link_user_id, now() + make_interval(secs => p_ttl_seconds))
  ON CONFLICT (state_hash) DO NOTHING;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'state hash already used';
  END IF;
END
$$;

ALTER FUNCTION activity.sp_create_oauth_state(p_state_hash text, p_binding_hash text, p_provider text, p_redirect_to text, p_link_user_id uuid, p_ttl_seconds integer, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_create_oauth_state(p_state_hash text, p_binding_hash text, p_provider text, p_redirect_to text, p_link_user_id uuid, p_ttl_seconds integer, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_create_oauth_state(p_state_hash text, p_binding_hash text, p_provider text, p_redirect_to text, p_link_user_id uuid, p_ttl_seconds integer, p_ctx jsonb) IS 'Stores a pending OAuth flow: the hashes of the state and of the browser binding, the provider, where to go afterwards, and for a link flow the signed-in user. AU007 bad provider, hash, ttl (1..3600) or redirect (1..2048 characters), or a state hash already stored; AU002/AU003 unknown or inactive link user. Not audited (no security event).';

--
-- Name: sp_create_user(text, text, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_create_user(p_email text, p_hashed_password text, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(id uuid, email text, is_verified boolean, is_active boolean, created_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $_$
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
$_$;

ALTER FUNCTION activity.sp_create_user(p_email text, p_hashed_password text, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_create_user(p_email text, p_hashed_password text, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_create_user(p_email text, p_hashed_password text, p_ctx jsonb) IS 'Creates an unverified user. AU008 bad email, AU001 taken (any letter case, also under a race), AU007 bad hash. Audit user_created.';

--
-- Name: sp_deactivate_user(uuid, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_deactivate_user(p_user_id uuid, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS void
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

ALTER FUNCTION activity.sp_deactivate_user(p_user_id uuid, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_deactivate_user(p_user_id uuid, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_deactivate_user(p_user_id uuid, p_ctx jsonb) IS 'Deactivates the user, ends all sessions (user_deactivated), burns unused email tokens. AU002 unknown, AU003 already inactive. Audit user_deactivated.';

--
-- Name: sp_disable_mfa(uuid, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_disable_mfa(p_user_id uuid, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
DECLARE
  v_user activity.users%ROWTYPE;
BEGIN
  v_user := activity.fn_lock_mfa_user(p_user_id);
  -- A pending enrolment goes too: nothing of the second factor is left.
  DELETE FROM activity.mfa_totp t WHERE t.user_id = p_user_id;
  DELETE FROM activity.mfa_recovery_codes c WHERE c.user_id = p_user_id;
  DELETE FROM activity.mfa_challenges c WHERE c.user_id = p_user_id;
  IF NOT v_user.mfa_enabled THEN
    RETURN false;
  END IF;
  UPDATE activity.users u SET mfa_enabled = false, updated_at = now() WHERE u.id = p_user_id;
  PERFORM activity.fn_audit('mfa_disabled', p_user_id, p_ctx, '{}');
  RETURN true;
END
$$;

ALTER FUNCTION activity.sp_disable_mfa(p_user_id uuid, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_disable_mfa(p_user_id uuid, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_disable_mfa(p_user_id uuid, p_ctx jsonb) IS 'Turns two-factor off: deletes the TOTP secret (also a pending one), the recovery codes and open challenges; true when it was on. AU002/AU003. Audit mfa_disabled.';

--
-- Name: sp_end_login_attempt(text, text, text, text, integer, integer, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_end_login_attempt(p_email text, p_ip text, p_device_hash text, p_outcome text, p_threshold integer, p_ip_threshold integer, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(failed_count integer, locked_until timestamp with time zone)
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

ALTER FUNCTION activity.sp_end_login_attempt(p_email text, p_ip text, p_device_hash text, p_outcome text, p_threshold integer, p_ip_threshold integer, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_end_login_attempt(p_email text, p_ip text, p_device_hash text, p_outcome text, p_threshold integer, p_ip_threshold integer, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_end_login_attempt(p_email text, p_ip text, p_device_hash text, p_outcome text, p_threshold integer, p_ip_threshold integer, p_ctx jsonb) IS 'Ends a password check begun by sp_begin_login that did not start a session. password_ok (a right password that starts no session: a re-authentication, an unverified login) gives the reservation back; login_failed / reauth_failed / mfa_failed (a wrong second-factor code) keep it counted, mirror it onto the account and audit it (+ account_locked, device_locked, ip_locked at the thresholds). p_device_hash only when the attempt came from a trusted device. Returns the count and the running lock. AU007 bad outcome or arguments.';

--
-- Name: sp_events_after(bigint, bigint, integer); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_events_after(p_after_tx bigint, p_after_id bigint, p_limit integer) RETURNS TABLE(tx_id bigint, id bigint, type text, version smallint, user_id uuid, session_id uuid, payload jsonb, created_at timestamp with time zone)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
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

ALTER FUNCTION activity.sp_events_after(p_after_tx bigint, p_after_id bigint, p_limit integer) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_events_after(p_after_tx bigint, p_after_id bigint, p_limit integer); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_events_after(p_after_tx bigint, p_after_id bigint, p_limit integer) IS 'Events after the cursor (tx_id, id), in that order, at most p_limit, published or not; only from transactions below the snapshot xmin, so no event can later commit behind a cursor. Start from (0, 0). AU007 when a cursor part is < 0 or p_limit is not 1..10000.';

--
-- Name: sp_events_lag(); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_events_lag() RETURNS TABLE(unpublished bigint, oldest_created_at timestamp with time zone)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
  SELECT count(*), min(e.created_at)
    FROM activity.events e
   WHERE e.published_at IS NULL
$$;

ALTER FUNCTION activity.sp_events_lag() OWNER TO activity_owner;

--
-- Name: FUNCTION sp_events_lag(); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_events_lag() IS 'Publisher metrics: one row, the number of unpublished events and the creation time of the oldest (NULL when none).';

--
-- Name: sp_get_mfa_challenge(text); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_get_mfa_challenge(p_token_hash text) RETURNS TABLE(user_id uuid, amr text[], device_hash text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
#variable_conflict use_column
BEGIN
  PERFORM activity.fn_check_sha256_hex(p_token_hash, 'challenge hash');
  RETURN QUERY
    SELECT c.user_id, c.amr, c.device_hash
      FROM activity.mfa_challenges c
      JOIN activity.users u ON u.id = c.user_id
     WHERE c.token_hash = p_token_hash AND c.used_at IS NULL AND c.expires_at > now() AND u.is_active;
END
$$;

ALTER FUNCTION activity.sp_get_mfa_challenge(p_token_hash text) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_get_mfa_challenge(p_token_hash text); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_get_mfa_challenge(p_token_hash text) IS 'A live challenge (unused, unexpired, its user active): user_id, amr, device_hash; no row otherwise. AU007 bad hash. Writes nothing: a wrong code leaves the challenge for another try (the lockout counts the tries).';

--
-- Name: sp_get_mfa_totp(uuid); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_get_mfa_totp(p_user_id uuid) RETURNS TABLE(mfa_enabled boolean, secret_ciphertext text, confirmed boolean, last_used_step bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
  SELECT u.mfa_enabled, t.secret_ciphertext, t.confirmed_at IS NOT NULL, t.last_used_step
    FROM activity.users u
    LEFT JOIN activity.mfa_totp t ON t.user_id = u.id
   WHERE u.id = p_user_id AND u.is_active
$$;

ALTER FUNCTION activity.sp_get_mfa_totp(p_user_id uuid) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_get_mfa_totp(p_user_id uuid); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_get_mfa_totp(p_user_id uuid) IS 'The two-factor state of an active user: mfa_enabled, and the TOTP secret (ciphertext), whether it is confirmed and the last step accepted (NULL, false, NULL when there is none). No row for an unknown or inactive user. Writes nothing.';

--
-- Name: sp_get_profile(uuid); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_get_profile(p_user_id uuid) RETURNS TABLE(username text, first_name text, last_name text, phone text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
  SELECT u.username::text, u.first_name::text, u.last_name::text, u.phone::text
    FROM activity.users u
   WHERE u.id = p_user_id
$$;

ALTER FUNCTION activity.sp_get_profile(p_user_id uuid) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_get_profile(p_user_id uuid); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_get_profile(p_user_id uuid) IS 'The profile fields of the user (username, first and last name, phone), active or not; no row when unknown. Writes nothing.';

--
-- Name: sp_get_used_email_token(text, text, integer); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_get_used_email_token(p_token_hash text, p_purpose text, p_window_seconds integer) RETURNS TABLE(is_verified boolean, hashed_password text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $_$
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
$_$;

ALTER FUNCTION activity.sp_get_used_email_token(p_token_hash text, p_purpose text, p_window_seconds integer) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_get_used_email_token(p_token_hash text, p_purpose text, p_window_seconds integer); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_get_used_email_token(p_token_hash text, p_purpose text, p_window_seconds integer) IS 'What a used email token of the purpose achieved: its owner''s is_verified, and for a reset_password token used in the last p_window_seconds whose reset set the current password, the owner''s current hash (else NULL). No row when the token is unknown, unused, of another purpose or its owner inactive. AU007 bad purpose, window (1..3600) or hash format. Writes nothing.';

--
-- Name: sp_get_user_by_email(text); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_get_user_by_email(p_email text) RETURNS TABLE(id uuid, email text, hashed_password text, is_verified boolean, is_active boolean, created_at timestamp with time zone, verified_at timestamp with time zone, last_login_at timestamp with time zone, password_changed_at timestamp with time zone, locked_until timestamp with time zone)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
  SELECT u.id, u.email::text, u.hashed_password::text, u.is_verified, u.is_active, u.created_at,
         u.verified_at, u.last_login_at, u.password_changed_at, u.locked_until
    FROM activity.users u
   WHERE u.email = lower(btrim(p_email))
$$;

ALTER FUNCTION activity.sp_get_user_by_email(p_email text) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_get_user_by_email(p_email text); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_get_user_by_email(p_email text) IS 'The user with this (normalised) email, active or not; no row when unknown.';

--
-- Name: sp_get_user_by_id(uuid); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_get_user_by_id(p_user_id uuid) RETURNS TABLE(id uuid, email text, hashed_password text, is_verified boolean, is_active boolean, created_at timestamp with time zone, verified_at timestamp with time zone, last_login_at timestamp with time zone, password_changed_at timestamp with time zone, locked_until timestamp with time zone)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
  SELECT u.id, u.email::text, u.hashed_password::text, u.is_verified, u.is_active, u.created_at,
         u.verified_at, u.last_login_at, u.password_changed_at, u.locked_until
    FROM activity.users u
   WHERE u.id = p_user_id
$$;

ALTER FUNCTION activity.sp_get_user_by_id(p_user_id uuid) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_get_user_by_id(p_user_id uuid); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_get_user_by_id(p_user_id uuid) IS 'The user with this id, active or not; no row when unknown.';

--
-- Name: sp_get_valid_refresh_token(text); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_get_valid_refresh_token(p_token_hash text) RETURNS TABLE(id integer, user_id uuid, family_id uuid, jti text, expires_at timestamp with time zone, family_expires_at timestamp with time zone, created_at timestamp with time zone)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
  SELECT t.id, t.user_id, t.family_id, t.jti::text, t.expires_at, t.family_expires_at, t.created_at
    FROM activity.refresh_tokens t
    JOIN activity.users u ON u.id = t.user_id
   WHERE t.token = p_token_hash
     AND activity.fn_refresh_token_is_live(t.revoked, t.expires_at, t.family_expires_at)
     AND u.is_active
$$;

ALTER FUNCTION activity.sp_get_valid_refresh_token(p_token_hash text) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_get_valid_refresh_token(p_token_hash text); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_get_valid_refresh_token(p_token_hash text) IS 'The token when not revoked, not expired (idle and family) and its user active; else no row.';

--
-- Name: sp_link_oauth_provider(uuid, text, text, text, boolean, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_link_oauth_provider(p_user_id uuid, p_provider text, p_provider_user_id text, p_email text, p_email_verified boolean, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $_$
DECLARE
  v_provider activity.oauth_provider;
  v_email    text := lower(btrim(p_email));
  v_user     activity.users%ROWTYPE;
  v_owner    uuid;
  v_status   text;
BEGIN
  v_provider := activity.fn_require_oauth_provider(p_provider);
  IF p_provider_user_id IS NULL OR length(p_provider_user_id) NOT BETWEEN 1 AND 255 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'provider_user_id must be 1..255 characters';
  ELSIF v_email IS NOT NULL AND (length(v_email) > 255 OR v_email !~ '^[^@\s]+@[^@\s]+\.[^@\s]+$') THEN
    RAISE EXCEPTION USING ERRCODE = 'AU008', MESSAGE = 'invalid email address';
  END IF;
  PERFORM pg_advisory_xact_lock(8154, hashtext(p_provider || ':' || p_provider_user_id));
  SELECT * INTO v_user FROM activity.users u WHERE u.id = p_user_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
  ELSIF NOT v_user.is_active THEN
    RAISE EXCEPTION USING ERRCODE = 'AU003', MESSAGE = 'user is inactive';
  END IF;

  SELECT p.user_id INTO v_owner FROM activity.oauth_providers p
   WHERE p.provider = v_provider AND p.provider_user_id = p_provider_user_id;
  IF v_owner = p_user_id THEN
    RETURN 'already_linked';
  END IF;
  v_status := CASE
                WHEN NOT v_user.is_verified THEN 'unverified_account'
                WHEN v_owner IS NOT NULL THEN 'identity_taken'
                WHEN EXISTS (SELECT 1 FROM activity.oauth_providers p
                              WHERE p.user_id = p_user_id AND p.provider = v_provider) THEN 'provider_in_use'
              END;
  IF v_status IS NOT NULL THEN
    PERFORM activity.fn_audit('oauth_link_refused', p_user_id, p_ctx, jsonb_build_object('provider', v_provider, 'reason', v_status));
    RETURN v_status;
  END IF;
  INSERT INTO activity.oauth_providers (user_id, provider, provider_user_id, email, email_verified)
  VALUES (p_user_id, v_provider, p_provider_user_id, v_email, COALESCE(p_email_verified, false));
  PERFORM activity.fn_audit('oauth_linked', p_user_id, p_ctx, jsonb_build_object('provider', v_provider, 'auto', false));
  RETURN 'linked';
END
$_$;

ALTER FUNCTION activity.sp_link_oauth_provider(p_user_id uuid, p_provider text, p_provider_user_id text, p_email text, p_email_verified boolean, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_link_oauth_provider(p_user_id uuid, p_provider text, p_provider_user_id text, p_email text, p_email_verified boolean, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_link_oauth_provider(p_user_id uuid, p_provider text, p_provider_user_id text, p_email text, p_email_verified boolean, p_ctx jsonb) IS 'Links a provider identity to a signed-in user. Returns linked (audit oauth_linked), already_linked (this identity on this user; nothing written), unverified_account (the user''s address is not verified), identity_taken (linked to another user), provider_in_use (the user has another identity of this provider); the refusals audit oauth_link_refused. AU002/AU003 unknown or inactive user, AU007 bad provider or provider_user_id (1..255), AU008 bad email (NULL allowed).';

--
-- Name: sp_list_oauth_providers(uuid); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_list_oauth_providers(p_user_id uuid) RETURNS TABLE(provider text, email text, email_verified boolean, created_at timestamp with time zone, last_login_at timestamp with time zone)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
  SELECT p.provider::text, p.email::text, p.email_verified, p.created_at, p.last_login_at
    FROM activity.oauth_providers p
   WHERE p.user_id = p_user_id
   ORDER BY p.provider
$$;

ALTER FUNCTION activity.sp_list_oauth_providers(p_user_id uuid) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_list_oauth_providers(p_user_id uuid); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_list_oauth_providers(p_user_id uuid) IS 'The identities linked to the user, in the order of the oauth_provider type (google, github); none for an unknown user. Writes nothing.';

--
-- Name: sp_list_user_sessions(uuid); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_list_user_sessions(p_user_id uuid) RETURNS TABLE(family_id uuid, created_at timestamp with time zone, last_used_at timestamp with time zone, expires_at timestamp with time zone, ip text, user_agent text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
  SELECT l.family_id, f.created_at, f.last_used_at, l.expires_at, host(l.ip), l.user_agent::text
    FROM (SELECT DISTINCT ON (t.family_id) t.family_id, t.expires_at, t.ip, t.user_agent
            FROM activity.refresh_tokens t
            JOIN activity.users u ON u.id = t.user_id AND u.is_active
           WHERE t.user_id = p_user_id AND activity.fn_refresh_token_is_live(t.revoked, t.expires_at, t.family_expires_at)
           ORDER BY t.family_id, t.id DESC) l
   CROSS JOIN LATERAL (
         SELECT min(a.created_at) AS created_at, max(COALESCE(a.last_used_at, a.created_at)) AS last_used_at
           FROM activity.refresh_tokens a
          WHERE a.family_id = l.family_id) f
   ORDER BY f.created_at DESC, l.family_id
$$;

ALTER FUNCTION activity.sp_list_user_sessions(p_user_id uuid) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_list_user_sessions(p_user_id uuid); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_list_user_sessions(p_user_id uuid) IS 'Live sessions of the user, one row per family, newest first: started, last used, current token expiry, ip and user agent of its latest token.';

--
-- Name: sp_mark_events_published(bigint[]); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_mark_events_published(p_ids bigint[]) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
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

ALTER FUNCTION activity.sp_mark_events_published(p_ids bigint[]) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_mark_events_published(p_ids bigint[]); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_mark_events_published(p_ids bigint[]) IS 'Publisher: marks the events published; returns how many were not yet. Unknown or already published ids are ignored.';

--
-- Name: sp_oauth_sign_in(text, text, text, boolean, text, integer, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_oauth_sign_in(p_provider text, p_provider_user_id text, p_email text, p_email_verified boolean, p_code_hash text, p_code_ttl_seconds integer, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(status text, user_id uuid, email text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $_$
#variable_conflict use_column
DECLARE
  v_provider activity.oauth_provider;
  v_email    text := lower(btrim(p_email));
  v_verified boolean := COALESCE(p_email_verified, false);
  v_link     activity.oauth_providers%ROWTYPE;
  v_user     activity.users%ROWTYPE;
  v_reason   text;
BEGIN
  v_provider := activity.fn_require_oauth_provider(p_provider);
  IF p_provider_user_id IS NULL OR length(p_provider_user_id) NOT BETWEEN 1 AND 255 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'provider_user_id must be 1..255 characters';
  ELSIF v_email IS NULL OR length(v_email) > 255 OR v_email !~ '^[^@\s]+@[^@\s]+\.[^@\s]+$' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU008', MESSAGE = 'invalid email address';
  ELSIF p_code_ttl_seconds IS NULL OR p_code_ttl_seconds < 1 OR p_code_ttl_seconds > 600 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'code ttl must be 1..600 seconds';
  END IF;
  PERFORM activity.fn_check_sha256_hex(p_code_hash, 'code hash');

  PERFORM pg_advisory_xact_lock(8154, hashtext(p_provider || ':' || p_provider_user_id));
  -- At most one pass starts over (a user created meanwhile, a link removed meanwhile).
  FOR v_try IN 1..3 LOOP
    SELECT * INTO v_link FROM activity.oauth_providers p
     WHERE p.provider = v_provider AND p.provider_user_id = p_provider_user_id;
    IF FOUND THEN
      SELECT * INTO v_user FROM activity.users u WHERE u.id = v_link.user_id FOR KEY SHARE;
      -- An unlink may have committed while we waited for the users row.
      CONTINUE WHEN NOT EXISTS (SELECT 1 FROM activity.oauth_providers p WHERE p.id = v_link.id);
      IF NOT v_user.is_active THEN
        PERFORM activity.fn_audit('oauth_login_refused', v_user.id, p_ctx,
          jsonb_build_object('provider', v_provider, 'reason', 'inactive'));
        RETURN QUERY SELECT 'inactive'::text, v_user.id, v_user.email::text;
        RETURN;
      END IF;
      UPDATE activity.oauth_providers p SET email = v_email, email_verified = v_verified, last_login_at = now()
       WHERE p.id = v_link.id;
      PERFORM activity.fn_issue_oauth_code(v_user.id, v_provider, p_code_hash, p_code_ttl_seconds);
      PERFORM activity.fn_audit('oauth_login', v_user.id, p_ctx, jsonb_build_object('provider', v_provider));
      RETURN QUERY SELECT 'signed_in'::text, v_user.id, v_user.email::text;
      RETURN;
    END IF;

    SELECT * INTO v_user FROM activity.users u WHERE u.email = v_email FOR KEY SHARE;
    IF FOUND THEN
      IF NOT v_user.is_active THEN
        PERFORM activity.fn_audit('oauth_login_refused', v_user.id, p_ctx,
          jsonb_build_object('provider', v_provider, 'reason', 'inactive'));
        RETURN QUERY SELECT 'inactive'::text, v_user.id, v_user.email::text;
        RETURN;
      END IF;
      v_reason := CASE
                    WHEN NOT v_verified THEN 'unverified_provider_email'
                    WHEN NOT v_user.is_verified THEN 'unverified_account'
                    -- The account already has another identity of this provider.
                    WHEN EXISTS (SELECT 1 FROM activity.oauth_providers p
                                  WHERE p.user_id = v_user.id AND p.provider = v_provider) THEN 'provider_in_use'
                  END;
      IF v_reason IS NOT NULL THEN
        PERFORM activity.fn_audit('oauth_link_refused', v_user.id, p_ctx,
          jsonb_build_object('provider', v_provider, 'reason', v_reason));
        RETURN QUERY SELECT 'link_required'::text, v_user.id, v_user.email::text;
        RETURN;
      END IF;
      INSERT INTO activity.oauth_providers (user_id, provider, provider_user_id, email, email_verified, last_login_at)
      VALUES (v_user.id, v_provider, p_provider_user_id, v_email, v_verified, now())
      ON CONFLICT DO NOTHING;
      -- Only (user_id, provider) can collide (the identity is ours under 8154): another
      -- identity of this provider was linked meanwhile; the next pass says provider_in_use.
      CONTINUE WHEN NOT FOUND;
      PERFORM activity.fn_audit('oauth_linked', v_user.id, p_ctx, jsonb_build_object('provider', v_provider, 'auto', true));
      PERFORM activity.fn_issue_oauth_code(v_user.id, v_provider, p_code_hash, p_code_ttl_seconds);
      RETURN QUERY SELECT 'linked'::text, v_user.id, v_user.email::text;
      RETURN;
    END IF;

    IF NOT v_verified THEN
      RETURN QUERY SELECT 'unverified_email'::text, NULL::uuid, NULL::text;
      RETURN;
    END IF;
    INSERT INTO activity.users (email, hashed_password, is_verified, verified_at)
    VALUES (v_email, NULL, true, now())
    ON CONFLICT (email) DO NOTHING
    RETURNING * INTO v_user;
    -- Another identity created this address meanwhile: it is an existing user now.
    CONTINUE WHEN NOT FOUND;
    PERFORM activity.fn_audit('user_created', v_user.id, p_ctx, jsonb_build_object('email', v_user.email, 'provider', v_provider));
    PERFORM activity.fn_audit('email_verified', v_user.id, p_ctx, jsonb_build_object('email', v_user.email, 'provider', v_provider));
    INSERT INTO activity.oauth_providers (user_id, provider, provider_user_id, email, email_verified, last_login_at)
    VALUES (v_user.id, v_provider, p_provider_user_id, v_email, v_verified, now());
    PERFORM activity.fn_audit('oauth_linked', v_user.id, p_ctx, jsonb_build_object('provider', v_provider, 'auto', true));
    PERFORM activity.fn_issue_oauth_code(v_user.id, v_provider, p_code_hash, p_code_ttl_seconds);
    RETURN QUERY SELECT 'created'::text, v_user.id, v_user.email::text;
    RETURN;
  END LOOP;
  -- Unreachable in practice; 40001 makes the caller run the whole call again.
  RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'oauth sign-in did not settle';
END
$_$;

ALTER FUNCTION activity.sp_oauth_sign_in(p_provider text, p_provider_user_id text, p_email text, p_email_verified boolean, p_code_hash text, p_code_ttl_seconds integer, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_oauth_sign_in(p_provider text, p_provider_user_id text, p_email text, p_email_verified boolean, p_code_hash text, p_code_ttl_seconds integer, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_oauth_sign_in(p_provider text, p_provider_user_id text, p_email text, p_email_verified boolean, p_code_hash text, p_code_ttl_seconds integer, p_ctx jsonb) IS 'Sign-in with a provider identity; one row (status, user_id, email). signed_in: the identity is linked (link refreshed, audit oauth_login); linked: not linked, an active verified user has the address and the provider verified it (link added, audit oauth_linked); created: no user has the address and the provider verified it (a verified user without password, audits user_created, email_verified, oauth_linked). These three store the exchange code. link_required: a user has the address but one side is unverified or the user has another identity of the provider (audit oauth_link_refused); inactive: the user is deactivated (audit oauth_login_refused); unverified_email: no such user and the provider did not verify the address (nothing written, no user id). Safe under concurrency: one user and one link per identity. AU007 bad provider, provider_user_id (1..255), code hash or ttl (1..600) or a code hash already stored; AU008 bad email.';

--
-- Name: sp_record_failed_login(text, text, integer, integer, integer, integer, integer, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_record_failed_login(p_email text, p_ip text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_ip_threshold integer, p_window_seconds integer, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(failed_count integer, locked_until timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
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

ALTER FUNCTION activity.sp_record_failed_login(p_email text, p_ip text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_ip_threshold integer, p_window_seconds integer, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_record_failed_login(p_email text, p_ip text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_ip_threshold integer, p_window_seconds integer, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_record_failed_login(p_email text, p_ip text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_ip_threshold integer, p_window_seconds integer, p_ctx jsonb) IS 'Counts a failed login per email and per ip (exact under concurrency), locks with capped exponential backoff at the thresholds, mirrors onto the account. Returns the email count and the later lock. Audit login_failed, account_locked, ip_locked.';

--
-- Name: sp_record_successful_login(uuid, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_record_successful_login(p_user_id uuid, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
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

ALTER FUNCTION activity.sp_record_successful_login(p_user_id uuid, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_record_successful_login(p_user_id uuid, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_record_successful_login(p_user_id uuid, p_ctx jsonb) IS 'Records a successful login: last_login_at/ip, clears the failure counter and the email lock. AU002/AU003. Audit login_success.';

--
-- Name: sp_replace_mfa_recovery_codes(uuid, text[], jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_replace_mfa_recovery_codes(p_user_id uuid, p_recovery_hashes text[], p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
DECLARE
  v_user activity.users%ROWTYPE;
BEGIN
  PERFORM activity.fn_check_recovery_hashes(p_recovery_hashes);
  v_user := activity.fn_lock_mfa_user(p_user_id);
  IF NOT v_user.mfa_enabled THEN
    RETURN false;
  END IF;
  DELETE FROM activity.mfa_recovery_codes c WHERE c.user_id = p_user_id;
  INSERT INTO activity.mfa_recovery_codes (user_id, code_hash) SELECT p_user_id, h FROM unnest(p_recovery_hashes) h;
  PERFORM activity.fn_audit('mfa_recovery_codes_replaced', p_user_id, p_ctx,
    jsonb_build_object('recovery_codes', cardinality(p_recovery_hashes)));
  RETURN true;
END
$$;

ALTER FUNCTION activity.sp_replace_mfa_recovery_codes(p_user_id uuid, p_recovery_hashes text[], p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_replace_mfa_recovery_codes(p_user_id uuid, p_recovery_hashes text[], p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_replace_mfa_recovery_codes(p_user_id uuid, p_recovery_hashes text[], p_ctx jsonb) IS 'Replaces every recovery code of the user (spent or not) with new ones (hashes); false when two-factor is off (nothing changes). AU002/AU003, AU007 bad hashes. Audit mfa_recovery_codes_replaced.';

--
-- Name: sp_request_email_change(uuid, text, text, integer, integer, integer, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_request_email_change(p_user_id uuid, p_new_email text, p_token_hash text, p_ttl_seconds integer, p_mail_max integer, p_mail_window_seconds integer, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(status text, old_email text, new_email text, mail_new boolean, mail_old boolean)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $_$
#variable_conflict use_column
DECLARE
  v_email  text := lower(btrim(p_new_email));
  v_user   activity.users%ROWTYPE;
  v_taken  boolean;
  v_new    boolean;
  v_old    boolean;
BEGIN
  IF v_email IS NULL OR length(v_email) > 255 OR v_email !~ '^[^@\s]+@[^@\s]+\.[^@\s]+$' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU008', MESSAGE = 'invalid email address';
  END IF;
  PERFORM activity.fn_check_sha256_hex(p_token_hash, 'token hash');
  IF p_ttl_seconds IS NULL OR p_ttl_seconds <= 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'ttl must be > 0';
  END IF;
  PERFORM activity.fn_check_mail_policy(p_mail_max, p_mail_window_seconds);
  -- The users row lock serialises concurrent requests: only the newest link works.
  SELECT * INTO v_user FROM activity.users u WHERE u.id = p_user_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
  ELSIF NOT v_user.is_active THEN
    RAISE EXCEPTION USING ERRCODE = 'AU003', MESSAGE = 'user is inactive';
  END IF;
  IF v_email = v_user.email THEN
    -- The caller already knows their own address: nothing to hide, nothing to send.
    RETURN QUERY SELECT 'unchanged'::text, v_user.email::text, v_email, false, false;
    RETURN;
  END IF;

  v_taken := EXISTS (SELECT 1 FROM activity.users o WHERE o.email = v_email);
  v_old := activity.fn_take_mail_budget(v_user.email, 'email_change_notice', p_mail_max, p_mail_window_seconds);
  IF v_taken THEN
    v_new := activity.fn_take_mail_budget(v_email, 'email_in_use', p_mail_max, p_mail_window_seconds);
  ELSE
    v_new := activity.fn_take_mail_budget(v_email, 'change_email', p_mail_max, p_mail_window_seconds);
    IF v_new THEN
      PERFORM activity.fn_issue_email_token(v_user.id, v_email, 'change_email', p_token_hash, p_ttl_seconds, p_ctx);
    END IF;
  END IF;
  PERFORM activity.fn_audit('email_change_requested', v_user.id, p_ctx,
    jsonb_build_object('email', v_user.email, 'new_email', v_email, 'taken', v_taken, 'mailed', v_new));
  RETURN QUERY SELECT CASE WHEN v_taken THEN 'taken' ELSE 'link' END, v_user.email::text, v_email, v_new, v_old;
END
$_$;

ALTER FUNCTION activity.sp_request_email_change(p_user_id uuid, p_new_email text, p_token_hash text, p_ttl_seconds integer, p_mail_max integer, p_mail_window_seconds integer, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_request_email_change(p_user_id uuid, p_new_email text, p_token_hash text, p_ttl_seconds integer, p_mail_max integer, p_mail_window_seconds integer, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_request_email_change(p_user_id uuid, p_new_email text, p_token_hash text, p_ttl_seconds integer, p_mail_max integer, p_mail_window_seconds integer, p_ctx jsonb) IS 'Asks to move the account to a new address (the caller has re-authenticated). status link: the address is free, a change_email token (its hash, the new address in email_tokens.email) is stored when mail_new (the new address within its mail budget); taken: another account has it, mail_new says whether to send it a notice; unchanged: it is the current address, nothing happens. mail_old: send the notice to the current address (link and taken, within its budget). AU002/AU003, AU007 bad hash, ttl or mail policy, AU008 bad email. Audit email_change_requested (+ email_token_created).';

--
-- Name: sp_request_email_link(text, text, text, integer, integer, integer, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_request_email_link(p_email text, p_purpose text, p_token_hash text, p_ttl_seconds integer, p_mail_max integer, p_mail_window_seconds integer, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(send boolean, email text, suppressed boolean)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
#variable_conflict use_column
DECLARE
  v_email    text := left(lower(btrim(p_email)), 255);
  v_user     activity.users%ROWTYPE;
  v_budget   boolean;
  v_eligible boolean;
BEGIN
  PERFORM activity.fn_check_email_token_args(p_purpose, p_token_hash, p_ttl_seconds);
  PERFORM activity.fn_check_mail_policy(p_mail_max, p_mail_window_seconds);
  IF v_email IS NULL OR v_email = '' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'email is required';
  END IF;
  -- Counted for every address, account or not: the same write on both paths.
  v_budget := activity.fn_take_mail_budget(v_email, p_purpose, p_mail_max, p_mail_window_seconds);
  -- The users row lock serialises concurrent requests: only the newest link works.
  SELECT * INTO v_user FROM activity.users u WHERE u.email = v_email FOR NO KEY UPDATE;
  v_eligible := FOUND AND v_user.is_active AND (p_purpose = 'reset_password' OR NOT v_user.is_verified);
  IF v_eligible AND v_budget THEN
    PERFORM activity.fn_issue_email_token(v_user.id, v_user.email, p_purpose, p_token_hash, p_ttl_seconds, p_ctx);
    RETURN QUERY SELECT true, v_user.email::text, false;
    RETURN;
  END IF;
  IF v_eligible THEN
    PERFORM activity.fn_audit('mail_suppressed', v_user.id, p_ctx, jsonb_build_object('purpose', p_purpose));
  END IF;
  RETURN QUERY SELECT false, NULL::text, v_eligible;
END
$$;

ALTER FUNCTION activity.sp_request_email_link(p_email text, p_purpose text, p_token_hash text, p_ttl_seconds integer, p_mail_max integer, p_mail_window_seconds integer, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_request_email_link(p_email text, p_purpose text, p_token_hash text, p_ttl_seconds integer, p_mail_max integer, p_mail_window_seconds integer, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_request_email_link(p_email text, p_purpose text, p_token_hash text, p_ttl_seconds integer, p_mail_max integer, p_mail_window_seconds integer, p_ctx jsonb) IS 'Forgot-password / resend-verification in one call, the same path for every address: counts the mail budget, and when an active user may get the link (reset: any; verify: unverified) and the budget allows, stores the token (send, email). suppressed = a link was due but over budget (audit mail_suppressed). AU007 bad purpose, ttl, hash, policy or empty email. Audit email_token_created.';

--
-- Name: sp_revoke_refresh_token(text, text, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_revoke_refresh_token(p_token_hash text, p_reason text DEFAULT 'logout'::text, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
DECLARE
  v_user_id   uuid;
  v_family_id uuid;
  v_live      integer;
  v_reason    activity.revoke_reason := activity.fn_require_revoke_reason(p_reason);
BEGIN
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
       SET revoked = true, revoked_at = now(), revoked_reason = v_reason
     WHERE t.family_id = v_family_id AND activity.fn_refresh_token_is_live(t.revoked, t.expires_at, t.family_expires_at)
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

ALTER FUNCTION activity.sp_revoke_refresh_token(p_token_hash text, p_reason text, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_revoke_refresh_token(p_token_hash text, p_reason text, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_revoke_refresh_token(p_token_hash text, p_reason text, p_ctx jsonb) IS 'Ends the session (whole family) the token belongs to; false when the token is unknown or its session already ended. AU007 bad reason. Audit logout.';

--
-- Name: sp_revoke_user_session(uuid, uuid, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_revoke_user_session(p_user_id uuid, p_family_id uuid, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
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
     WHERE t.family_id = p_family_id AND t.user_id = p_user_id AND activity.fn_refresh_token_is_live(t.revoked, t.expires_at, t.family_expires_at)
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

ALTER FUNCTION activity.sp_revoke_user_session(p_user_id uuid, p_family_id uuid, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_revoke_user_session(p_user_id uuid, p_family_id uuid, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_revoke_user_session(p_user_id uuid, p_family_id uuid, p_ctx jsonb) IS 'Ends one session (family) of the user; false when it is not theirs or already ended. Audit session_ended.';

--
-- Name: sp_revoke_user_sessions(uuid, uuid, text, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_revoke_user_sessions(p_user_id uuid, p_except_family_id uuid DEFAULT NULL::uuid, p_reason text DEFAULT 'logout_all'::text, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS integer
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

ALTER FUNCTION activity.sp_revoke_user_sessions(p_user_id uuid, p_except_family_id uuid, p_reason text, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_revoke_user_sessions(p_user_id uuid, p_except_family_id uuid, p_reason text, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_revoke_user_sessions(p_user_id uuid, p_except_family_id uuid, p_reason text, p_ctx jsonb) IS 'Ends every live session of the user except p_except_family_id; returns how many ended. AU002 unknown, AU007 bad reason. Audit sessions_revoked.';

--
-- Name: sp_rotate_refresh_token(text, text, text, integer, integer, jsonb, boolean); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_rotate_refresh_token(p_token_hash text, p_new_token_hash text, p_new_jti text, p_idle_ttl_seconds integer, p_grace_seconds integer, p_ctx jsonb DEFAULT '{}'::jsonb, p_audit_every_rotation boolean DEFAULT true) RETURNS TABLE(status text, user_id uuid, family_id uuid, token_id integer, expires_at timestamp with time zone, family_expires_at timestamp with time zone, amr text[])
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $_$
#variable_conflict use_column
DECLARE
  v_user_id   uuid;
  v_family_id uuid;
  v_active    boolean;
  v_old       activity.refresh_tokens%ROWTYPE;
  v_next      activity.refresh_tokens%ROWTYPE;
  v_new       activity.refresh_tokens%ROWTYPE;
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
    RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::integer, NULL::timestamptz, NULL::timestamptz, NULL::text[];
    RETURN;
  END IF;

  -- Lock order: users row (KEY SHARE: we may insert) -> family -> token row.
  SELECT u.is_active INTO v_active FROM activity.users u WHERE u.id = v_user_id FOR KEY SHARE;
  IF NOT FOUND OR NOT v_active THEN
    RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::integer, NULL::timestamptz, NULL::timestamptz, NULL::text[];
    RETURN;
  END IF;
  -- Every presentation of a token of this family waits here for the one before it,
  -- so the reads below see its outcome (READ COMMITTED: each statement a fresh snapshot).
  PERFORM pg_advisory_xact_lock(8151, hashtext(v_family_id::text));
  SELECT * INTO v_old FROM activity.refresh_tokens t WHERE t.token = p_token_hash FOR UPDATE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::integer, NULL::timestamptz, NULL::timestamptz, NULL::text[];
    RETURN;
  END IF;

  IF NOT v_old.revoked THEN
    IF NOT activity.fn_refresh_token_is_live(v_old.revoked, v_old.expires_at, v_old.family_expires_at) THEN
      RETURN QUERY SELECT 'expired'::text, v_old.user_id, v_old.family_id, NULL::integer, v_old.expires_at, v_old.family_expires_at, v_old.amr;
      RETURN;
    END IF;
    BEGIN
      INSERT INTO activity.refresh_tokens (user_id, token, jti, expires_at, family_id, family_expires_at, user_agent, ip, amr)
      VALUES (v_old.user_id, p_new_token_hash, p_new_jti,
              least(now() + make_interval(secs => p_idle_ttl_seconds), v_old.family_expires_at),
              v_old.family_id, v_old.family_expires_at,
              left(NULLIF(p_ctx->>'userAgent', ''), 512), activity.fn_inet(p_ctx->>'ip'), v_old.amr)
      RETURNING * INTO v_new;
    EXCEPTION WHEN unique_violation THEN
      RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash or jti already used';
    END;
    UPDATE activity.refresh_tokens t
       SET revoked = true, revoked_at = now(), revoked_reason = 'rotated', replaced_by = v_new.id, last_used_at = now()
     WHERE t.id = v_old.id;
    IF p_audit_every_rotation OR activity.fn_rotation_moved(v_old, p_ctx) THEN
      PERFORM activity.fn_audit('refresh_token_rotated', v_old.user_id, p_ctx,
        jsonb_build_object('family_id', v_old.family_id, 'token_id', v_new.id, 'status', 'rotated'));
    END IF;
    RETURN QUERY SELECT 'rotated'::text, v_new.user_id, v_new.family_id, v_new.id, v_new.expires_at, v_new.family_expires_at, v_new.amr;
    RETURN;
  END IF;

  -- Revoked by anything but a rotation: its session was ended on purpose (or by an
  -- earlier reuse detection). Refused, but not a new reuse.
  IF v_old.revoked_reason IS DISTINCT FROM 'rotated' THEN
    RETURN QUERY SELECT 'revoked'::text, v_old.user_id, v_old.family_id, NULL::integer, NULL::timestamptz, v_old.family_expires_at, v_old.amr;
    RETURN;
  END IF;

  -- Grace: a rotated token presented again within seconds (a client retry after a
  -- lost answer, two tabs racing) while its successor is unused gets that same
  -- successor back. Nothing is inserted: the session keeps one live token.
  IF p_grace_seconds > 0 AND v_old.revoked_at > now() - make_interval(secs => p_grace_seconds)
     AND v_old.family_expires_at > now() THEN
    SELECT * INTO v_next FROM activity.refresh_tokens t WHERE t.id = v_old.replaced_by;
    IF FOUND AND activity.fn_refresh_token_is_live(v_next.revoked, v_next.expires_at, v_next.family_expires_at) THEN
      IF v_next.token <> p_new_token_hash THEN
        -- The successor was not derived from this token the way the caller derives it
        -- (rotated by an older release, or under another pepper): the caller cannot hand
        -- it out. Refused, and nothing changes: not a reuse, the session stays as it is.
        RETURN QUERY SELECT 'invalid'::text, v_old.user_id, v_old.family_id, NULL::integer, NULL::timestamptz, NULL::timestamptz, NULL::text[];
        RETURN;
      END IF;
      UPDATE activity.refresh_tokens t SET last_used_at = now() WHERE t.id = v_old.id;
      IF p_audit_every_rotation OR activity.fn_rotation_moved(v_old, p_ctx) THEN
        PERFORM activity.fn_audit('refresh_token_rotated', v_old.user_id, p_ctx,
          jsonb_build_object('family_id', v_old.family_id, 'token_id', v_next.id, 'status', 'grace'));
      END IF;
      RETURN QUERY SELECT 'grace'::text, v_next.user_id, v_next.family_id, v_next.id, v_next.expires_at, v_next.family_expires_at, v_next.amr;
      RETURN;
    END IF;
  END IF;

  -- Reuse: a rotated token outside the grace window, or whose successor was used.
  -- The whole family is revoked. Nothing live to revoke: the session had already
  -- ended (logout, an earlier reuse, expiry), so this is no new reuse either.
  WITH ended AS (
    UPDATE activity.refresh_tokens t
       SET revoked = true, revoked_at = now(), revoked_reason = 'reuse_detected'
     WHERE t.family_id = v_old.family_id AND activity.fn_refresh_token_is_live(t.revoked, t.expires_at, t.family_expires_at)
    RETURNING t.id
  )
  SELECT count(*) INTO v_ended FROM ended;
  IF v_ended = 0 THEN
    RETURN QUERY SELECT 'revoked'::text, v_old.user_id, v_old.family_id, NULL::integer, NULL::timestamptz, v_old.family_expires_at, v_old.amr;
    RETURN;
  END IF;
  PERFORM activity.fn_audit('refresh_token_reuse', v_old.user_id, p_ctx,
    jsonb_build_object('family_id', v_old.family_id, 'token_id', v_old.id,
                       'revoked_reason', v_old.revoked_reason, 'tokens_revoked', v_ended));
  RETURN QUERY SELECT 'reuse_detected'::text, v_old.user_id, v_old.family_id, NULL::integer, NULL::timestamptz, v_old.family_expires_at, v_old.amr;
END
$_$;

ALTER FUNCTION activity.sp_rotate_refresh_token(p_token_hash text, p_new_token_hash text, p_new_jti text, p_idle_ttl_seconds integer, p_grace_seconds integer, p_ctx jsonb, p_audit_every_rotation boolean) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_rotate_refresh_token(p_token_hash text, p_new_token_hash text, p_new_jti text, p_idle_ttl_seconds integer, p_grace_seconds integer, p_ctx jsonb, p_audit_every_rotation boolean); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_rotate_refresh_token(p_token_hash text, p_new_token_hash text, p_new_jti text, p_idle_ttl_seconds integer, p_grace_seconds integer, p_ctx jsonb, p_audit_every_rotation boolean) IS 'Rotates a refresh token in one transaction; a rotated or grace answer writes audit refresh_token_rotated when p_audit_every_rotation, or when the caller''s address or user agent differs from the presented token''s (fn_rotation_moved); reuse is always audited; the successor keeps the session''s amr, returned with it (NULL when the session did not state one); p_new_token_hash is the successor''s hash, derived by the caller from the presented token (a retry passes the same). status: rotated (successor inserted) | grace (rotated less than p_grace_seconds ago and its successor, whose hash equals p_new_token_hash, is unused: that successor is returned, nothing inserted) | reuse_detected (a rotated token outside grace or with a used successor: family revoked, audit refresh_token_reuse) | revoked (revoked by logout, session end, password change, reuse detection ..., or its session already ended: nothing changes, no audit) | expired | invalid (unknown token or inactive user; with user_id set: a grace successor with another hash, nothing changes). Never raises for these so a revocation commits. AU007 for bad ttl, grace or new hash/jti.';

--
-- Name: sp_run_cleanup(integer, integer, integer); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_run_cleanup(p_unverified_hours integer, p_audit_retention_days integer, p_attempt_retention_hours integer DEFAULT 24) RETURNS TABLE(item text, deleted bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
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

ALTER FUNCTION activity.sp_run_cleanup(p_unverified_hours integer, p_audit_retention_days integer, p_attempt_retention_hours integer) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_run_cleanup(p_unverified_hours integer, p_audit_retention_days integer, p_attempt_retention_hours integer); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_run_cleanup(p_unverified_hours integer, p_audit_retention_days integer, p_attempt_retention_hours integer) IS 'Periodic cleanup under an advisory lock: sp_cleanup_expired, then sp_cleanup_unverified_users; one row per item. No row at all when another caller holds the lock. AU007 on retention < 1. Audit cleanup (by the procedures it calls).';

--
-- Name: sp_save_refresh_token(uuid, text, text, integer, integer, text[], jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_save_refresh_token(p_user_id uuid, p_token_hash text, p_jti text, p_idle_ttl_seconds integer, p_family_ttl_seconds integer, p_amr text[] DEFAULT NULL::text[], p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(id integer, family_id uuid, expires_at timestamp with time zone, family_expires_at timestamp with time zone, amr text[])
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $_$
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
  IF NOT activity.fn_amr_is_valid(p_amr) THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'amr must hold pwd or fed, optionally otp';
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
    INSERT INTO activity.refresh_tokens (user_id, token, jti, expires_at, family_id, family_expires_at, user_agent, ip, amr)
    VALUES (p_user_id, p_token_hash, p_jti,
            least(now() + make_interval(secs => p_idle_ttl_seconds), v_family_expires),
            gen_random_uuid(), v_family_expires,
            left(NULLIF(p_ctx->>'userAgent', ''), 512), activity.fn_inet(p_ctx->>'ip'), p_amr)
    RETURNING * INTO v_token;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash or jti already used';
  END;
  PERFORM activity.fn_audit('session_started', p_user_id, p_ctx, jsonb_build_object('family_id', v_token.family_id));
  RETURN QUERY SELECT v_token.id, v_token.family_id, v_token.expires_at, v_token.family_expires_at, v_token.amr;
END
$_$;

ALTER FUNCTION activity.sp_save_refresh_token(p_user_id uuid, p_token_hash text, p_jti text, p_idle_ttl_seconds integer, p_family_ttl_seconds integer, p_amr text[], p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_save_refresh_token(p_user_id uuid, p_token_hash text, p_jti text, p_idle_ttl_seconds integer, p_family_ttl_seconds integer, p_amr text[], p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_save_refresh_token(p_user_id uuid, p_token_hash text, p_jti text, p_idle_ttl_seconds integer, p_family_ttl_seconds integer, p_amr text[], p_ctx jsonb) IS 'Starts a session: a new refresh token family, remembering how the user authenticated (p_amr, RFC 8176: {pwd}, {fed}, {pwd,otp}, {fed,otp}; NULL: not stated) for every token the session will rotate to. AU002/AU003; AU007 for ttl <= 0, a bad amr, a malformed hash or a hash/jti already used. Audit session_started.';

--
-- Name: sp_schema_migrations(); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_schema_migrations() RETURNS TABLE(name text, run_on timestamp with time zone)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
  SELECT m.name::text, m.run_on::timestamptz FROM activity.pgmigrations m ORDER BY m.run_on, m.id
$$;

ALTER FUNCTION activity.sp_schema_migrations() OWNER TO activity_owner;

--
-- Name: FUNCTION sp_schema_migrations(); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_schema_migrations() IS 'Applied migrations (node-pg-migrate bookkeeping), for readiness checks without table privileges.';

--
-- Name: sp_session_is_live(uuid); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_session_is_live(p_session_id uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
  SELECT EXISTS (
    SELECT 1
      FROM activity.refresh_tokens t
      JOIN activity.users u ON u.id = t.user_id
     WHERE t.family_id = p_session_id AND activity.fn_refresh_token_is_live(t.revoked, t.expires_at, t.family_expires_at)
       AND u.is_active)
$$;

ALTER FUNCTION activity.sp_session_is_live(p_session_id uuid) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_session_is_live(p_session_id uuid); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_session_is_live(p_session_id uuid) IS 'True when the session (refresh token family, the sid claim) has a live token and its user is active; false otherwise, also for an unknown id. For other services: served by refresh_tokens_family_id_live_idx.';

--
-- Name: sp_signup(text, text, text, integer, integer, integer, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_signup(p_email text, p_hashed_password text, p_token_hash text, p_ttl_seconds integer, p_mail_max integer, p_mail_window_seconds integer, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(status text, user_id uuid, email text, send boolean)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $_$
#variable_conflict use_column
DECLARE
  v_email  text := lower(btrim(p_email));
  v_id     uuid;
  v_budget boolean;
BEGIN
  IF v_email IS NULL OR length(v_email) > 255 OR v_email !~ '^[^@\s]+@[^@\s]+\.[^@\s]+$' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU008', MESSAGE = 'invalid email address';
  END IF;
  IF p_hashed_password IS NULL OR p_hashed_password NOT LIKE '$argon2%' OR length(p_hashed_password) > 255 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'hashed_password must be an argon2 PHC string';
  END IF;
  PERFORM activity.fn_check_email_token_args('verify_email', p_token_hash, p_ttl_seconds);
  PERFORM activity.fn_check_mail_policy(p_mail_max, p_mail_window_seconds);

  -- ON CONFLICT instead of catching unique_violation: a taken address costs no
  -- subtransaction and no error, the same work as a new one.
  INSERT INTO activity.users AS u (email, hashed_password) VALUES (v_email, p_hashed_password)
  ON CONFLICT (email) DO NOTHING
  RETURNING u.id INTO v_id;
  IF v_id IS NOT NULL THEN
    PERFORM activity.fn_audit('user_created', v_id, p_ctx, jsonb_build_object('email', v_email));
    v_budget := activity.fn_take_mail_budget(v_email, 'verify_email', p_mail_max, p_mail_window_seconds);
    IF v_budget THEN
      PERFORM activity.fn_issue_email_token(v_id, v_email, 'verify_email', p_token_hash, p_ttl_seconds, p_ctx);
    END IF;
    RETURN QUERY SELECT 'created'::text, v_id, v_email, v_budget;
    RETURN;
  END IF;
  -- Taken (also when a concurrent signup won the race): the owner gets a notice.
  SELECT u.id INTO v_id FROM activity.users u WHERE u.email = v_email;
  v_budget := activity.fn_take_mail_budget(v_email, 'account_exists', p_mail_max, p_mail_window_seconds);
  PERFORM activity.fn_audit('signup_existing', v_id, p_ctx, jsonb_build_object('email', v_email, 'notice', v_budget));
  RETURN QUERY SELECT 'taken'::text, v_id, v_email, v_budget;
END
$_$;

ALTER FUNCTION activity.sp_signup(p_email text, p_hashed_password text, p_token_hash text, p_ttl_seconds integer, p_mail_max integer, p_mail_window_seconds integer, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_signup(p_email text, p_hashed_password text, p_token_hash text, p_ttl_seconds integer, p_mail_max integer, p_mail_window_seconds integer, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_signup(p_email text, p_hashed_password text, p_token_hash text, p_ttl_seconds integer, p_mail_max integer, p_mail_window_seconds integer, p_ctx jsonb) IS 'Signup in one call: a new address gets an unverified user and a verify_email token (status created); a taken one nothing but a notice (status taken). send = within the mail budget of that address and kind. AU008 bad email, AU007 bad hash, token or policy. Audit user_created + email_token_created / signup_existing.';

--
-- Name: sp_unlink_oauth_provider(uuid, text, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_unlink_oauth_provider(p_user_id uuid, p_provider text, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
DECLARE
  v_provider activity.oauth_provider;
  v_user     activity.users%ROWTYPE;
BEGIN
  v_provider := activity.fn_require_oauth_provider(p_provider);
  SELECT * INTO v_user FROM activity.users u WHERE u.id = p_user_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
  ELSIF NOT v_user.is_active THEN
    RAISE EXCEPTION USING ERRCODE = 'AU003', MESSAGE = 'user is inactive';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM activity.oauth_providers p WHERE p.user_id = p_user_id AND p.provider = v_provider) THEN
    RETURN 'not_linked';
  END IF;
  IF v_user.hashed_password IS NULL
     AND NOT EXISTS (SELECT 1 FROM activity.oauth_providers p WHERE p.user_id = p_user_id AND p.provider <> v_provider) THEN
    PERFORM activity.fn_audit('oauth_unlink_refused', p_user_id, p_ctx, jsonb_build_object('provider', v_provider, 'reason', 'last_way_in'));
    RETURN 'last_way_in';
  END IF;
  DELETE FROM activity.oauth_providers p WHERE p.user_id = p_user_id AND p.provider = v_provider;
  -- A code issued through this identity and not yet traded dies with the link.
  DELETE FROM activity.oauth_codes c WHERE c.user_id = p_user_id AND c.provider = v_provider;
  PERFORM activity.fn_audit('oauth_unlinked', p_user_id, p_ctx, jsonb_build_object('provider', v_provider));
  RETURN 'unlinked';
END
$$;

ALTER FUNCTION activity.sp_unlink_oauth_provider(p_user_id uuid, p_provider text, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_unlink_oauth_provider(p_user_id uuid, p_provider text, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_unlink_oauth_provider(p_user_id uuid, p_provider text, p_ctx jsonb) IS 'Removes the user''s identity of a provider (and its untraded exchange codes). Returns unlinked (audit oauth_unlinked), not_linked, or last_way_in: the user has no password and no other link, nothing removed (audit oauth_unlink_refused). AU002/AU003 unknown or inactive user, AU007 bad provider.';

--
-- Name: sp_update_last_login(uuid, text); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_update_last_login(p_user_id uuid, p_ip text DEFAULT NULL::text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
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

ALTER FUNCTION activity.sp_update_last_login(p_user_id uuid, p_ip text) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_update_last_login(p_user_id uuid, p_ip text); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_update_last_login(p_user_id uuid, p_ip text) IS 'Seed compatibility: sets last_login_at/last_login_ip. AU002 unknown. The service uses sp_record_successful_login (which also audits).';

--
-- Name: sp_update_password(uuid, text, boolean, uuid, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_update_password(p_user_id uuid, p_hashed_password text, p_end_sessions boolean DEFAULT true, p_keep_family_id uuid DEFAULT NULL::uuid, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS integer
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

ALTER FUNCTION activity.sp_update_password(p_user_id uuid, p_hashed_password text, p_end_sessions boolean, p_keep_family_id uuid, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_update_password(p_user_id uuid, p_hashed_password text, p_end_sessions boolean, p_keep_family_id uuid, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_update_password(p_user_id uuid, p_hashed_password text, p_end_sessions boolean, p_keep_family_id uuid, p_ctx jsonb) IS 'Sets a new password hash. With p_end_sessions revokes every session but p_keep_family_id (password_changed), burns every unused email token, and returns how many sessions ended; without, a rehash. AU002/AU003/AU007.';

--
-- Name: sp_update_profile(uuid, jsonb, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_update_profile(p_user_id uuid, p_changes jsonb, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(username text, first_name text, last_name text, phone text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $_$
#variable_conflict use_column
DECLARE
  v_old     activity.users%ROWTYPE;
  v_new     activity.users%ROWTYPE;
  v_key     text;
  v_changed text[] := '{}';
BEGIN
  IF p_changes IS NULL OR jsonb_typeof(p_changes) <> 'object' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'changes must be a JSON object';
  END IF;
  FOR v_key IN SELECT k FROM jsonb_object_keys(p_changes) AS k LOOP
    IF v_key NOT IN ('username', 'first_name', 'last_name', 'phone') THEN
      RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown profile field ' || v_key;
    ELSIF jsonb_typeof(p_changes->v_key) NOT IN ('string', 'null') THEN
      RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = v_key || ' must be a string or null';
    END IF;
  END LOOP;

  SELECT * INTO v_old FROM activity.users u WHERE u.id = p_user_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
  ELSIF NOT v_old.is_active THEN
    RAISE EXCEPTION USING ERRCODE = 'AU003', MESSAGE = 'user is inactive';
  END IF;
  v_new := v_old;
  IF p_changes ? 'username' THEN
    v_new.username := CASE WHEN p_changes->>'username' IS NOT NULL THEN activity.fn_require_username(p_changes->>'username') END;
  END IF;
  IF p_changes ? 'first_name' THEN
    v_new.first_name := activity.fn_require_person_name(p_changes->>'first_name');
  END IF;
  IF p_changes ? 'last_name' THEN
    v_new.last_name := activity.fn_require_person_name(p_changes->>'last_name');
  END IF;
  IF p_changes ? 'phone' THEN
    IF p_changes->>'phone' !~ '^\+[1-9][0-9]{4,14}$' THEN
      RAISE EXCEPTION USING ERRCODE = 'AU013', MESSAGE = 'phone must be E.164';
    END IF;
    v_new.phone := p_changes->>'phone';
  END IF;

  -- Only what differs is written, audited and announced (a case change of the username counts).
  SELECT COALESCE(array_agg(f ORDER BY f), '{}') INTO v_changed
    FROM unnest(ARRAY[
      CASE WHEN v_new.username IS DISTINCT FROM v_old.username THEN 'username' END,
      CASE WHEN v_new.first_name IS DISTINCT FROM v_old.first_name THEN 'first_name' END,
      CASE WHEN v_new.last_name IS DISTINCT FROM v_old.last_name THEN 'last_name' END,
      CASE WHEN v_new.phone IS DISTINCT FROM v_old.phone THEN 'phone' END]) AS f
   WHERE f IS NOT NULL;
  IF cardinality(v_changed) > 0 THEN
    BEGIN
      UPDATE activity.users u
         SET username = v_new.username, first_name = v_new.first_name, last_name = v_new.last_name,
             phone = v_new.phone, updated_at = now()
       WHERE u.id = p_user_id;
    EXCEPTION WHEN unique_violation THEN
      -- Also settles parallel claims of one name: the index lets exactly one through.
      RAISE EXCEPTION USING ERRCODE = 'AU010', MESSAGE = 'username taken';
    END;
    -- Field names only: a profile value (a phone number) is personal data the audit log does not need.
    PERFORM activity.fn_audit('profile_updated', p_user_id, p_ctx, jsonb_build_object('fields', to_jsonb(v_changed)));
  END IF;
  RETURN QUERY SELECT v_new.username::text, v_new.first_name::text, v_new.last_name::text, v_new.phone::text;
END
$_$;

ALTER FUNCTION activity.sp_update_profile(p_user_id uuid, p_changes jsonb, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_update_profile(p_user_id uuid, p_changes jsonb, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_update_profile(p_user_id uuid, p_changes jsonb, p_ctx jsonb) IS 'Sets the profile fields present in p_changes (keys username, first_name, last_name, phone; a null clears); returns the profile after. Names are trimmed (empty clears). Writes and audits profile_updated {fields} only when something differs. AU002/AU003 unknown or inactive user, AU007 not an object, unknown key or non-string value, AU010 username taken (any letter case, also under a race), AU011 username reserved, AU012 bad username, AU013 phone not E.164, AU014 name too long.';

--
-- Name: sp_use_mfa_recovery_code(uuid, text, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_use_mfa_recovery_code(p_user_id uuid, p_code_hash text, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(used boolean, remaining integer)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
#variable_conflict use_column
DECLARE
  v_used      boolean;
  v_remaining integer;
BEGIN
  PERFORM activity.fn_check_sha256_hex(p_code_hash, 'recovery code hash');
  PERFORM 1 FROM activity.users u WHERE u.id = p_user_id AND u.is_active AND u.mfa_enabled FOR KEY SHARE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT false, 0;
    RETURN;
  END IF;
  UPDATE activity.mfa_recovery_codes c SET used_at = now()
   WHERE c.user_id = p_user_id AND c.code_hash = p_code_hash AND c.used_at IS NULL;
  v_used := FOUND;
  SELECT count(*) INTO v_remaining FROM activity.mfa_recovery_codes c WHERE c.user_id = p_user_id AND c.used_at IS NULL;
  IF v_used THEN
    PERFORM activity.fn_audit('mfa_recovery_code_used', p_user_id, p_ctx, jsonb_build_object('remaining', v_remaining));
  END IF;
  RETURN QUERY SELECT v_used, v_remaining;
END
$$;

ALTER FUNCTION activity.sp_use_mfa_recovery_code(p_user_id uuid, p_code_hash text, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_use_mfa_recovery_code(p_user_id uuid, p_code_hash text, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_use_mfa_recovery_code(p_user_id uuid, p_code_hash text, p_ctx jsonb) IS 'Spends a recovery code (its hash) once: used true and the unused codes left; used false when unknown, already spent (also under parallel calls), two-factor off or the user inactive. AU007 bad hash. Audit mfa_recovery_code_used.';

--
-- Name: sp_use_mfa_totp_step(uuid, bigint, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_use_mfa_totp_step(p_user_id uuid, p_step bigint, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $$
BEGIN
  IF p_step IS NULL OR p_step < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'step must be >= 1';
  END IF;
  -- Users row first (lock order; the audit row's foreign key takes it anyway).
  PERFORM 1 FROM activity.users u WHERE u.id = p_user_id AND u.is_active AND u.mfa_enabled FOR KEY SHARE;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  -- Parallel presentations of one code wait on the row; the WHERE is evaluated again
  -- on the newest version, so exactly one of them moves the step.
  UPDATE activity.mfa_totp t SET last_used_step = p_step
   WHERE t.user_id = p_user_id AND t.confirmed_at IS NOT NULL AND t.last_used_step < p_step;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM activity.fn_audit('mfa_verified', p_user_id, p_ctx, jsonb_build_object('method', 'totp', 'step', p_step));
  RETURN true;
END
$$;

ALTER FUNCTION activity.sp_use_mfa_totp_step(p_user_id uuid, p_step bigint, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_use_mfa_totp_step(p_user_id uuid, p_step bigint, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_use_mfa_totp_step(p_user_id uuid, p_step bigint, p_ctx jsonb) IS 'Records that a TOTP code of this step was accepted: true once per step and only for a step newer than the last accepted (a code replayed within its window, or an older one, gives false), also under parallel calls; false when two-factor is off or the user inactive. AU007 bad step. Audit mfa_verified.';

--
-- Name: sp_verify_user_email(uuid, jsonb); Type: FUNCTION; Schema: activity; Owner: activity_owner
--

CREATE FUNCTION activity.sp_verify_user_email(p_user_id uuid, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(id uuid, email text, verified_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
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

ALTER FUNCTION activity.sp_verify_user_email(p_user_id uuid, p_ctx jsonb) OWNER TO activity_owner;

--
-- Name: FUNCTION sp_verify_user_email(p_user_id uuid, p_ctx jsonb); Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON FUNCTION activity.sp_verify_user_email(p_user_id uuid, p_ctx jsonb) IS 'Marks the user verified. AU002 unknown, AU003 inactive, AU009 already verified. Audit email_verified.';

--
-- Name: active_sessions; Type: VIEW; Schema: activity; Owner: activity_owner
--

CREATE VIEW activity.active_sessions AS
 SELECT l.family_id,
    l.user_id,
    u.email,
    f.created_at,
    f.last_used_at,
    l.expires_at,
    l.ip,
    l.user_agent
   FROM ((( SELECT DISTINCT ON (t.family_id) t.family_id,
            t.user_id,
            t.expires_at,
            t.ip,
            t.user_agent
           FROM activity.refresh_tokens t
          WHERE ((NOT t.revoked) AND (t.expires_at > now()) AND (t.family_expires_at > now()))
          ORDER BY t.family_id, t.id DESC) l
     JOIN activity.users u ON (((u.id = l.user_id) AND u.is_active)))
     CROSS JOIN LATERAL ( SELECT min(a.created_at) AS created_at,
            max(COALESCE(a.last_used_at, a.created_at)) AS last_used_at
           FROM activity.refresh_tokens a
          WHERE (a.family_id = l.family_id)) f);

ALTER TABLE activity.active_sessions OWNER TO activity_owner;

--
-- Name: VIEW active_sessions; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON VIEW activity.active_sessions IS 'Live sessions (refresh token families), one row each, without token hashes.';

--
-- Name: active_users; Type: VIEW; Schema: activity; Owner: activity_owner
--

CREATE VIEW activity.active_users AS
 SELECT u.id,
    u.email,
    u.is_verified,
    u.created_at,
    u.verified_at,
    u.last_login_at,
    u.locked_until,
    (u.hashed_password IS NOT NULL) AS has_password,
    u.username,
    u.first_name,
    u.last_name,
    u.phone,
    u.mfa_enabled
   FROM activity.users u
  WHERE u.is_active;

ALTER TABLE activity.active_users OWNER TO activity_owner;

--
-- Name: VIEW active_users; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON VIEW activity.active_users IS 'Active accounts with their profile fields and whether two-factor sign-in is on, without password hashes or second-factor secrets; has_password false: the account signs in through a linked provider only.';

--
-- Name: audit_logs; Type: TABLE; Schema: activity; Owner: activity_owner
--

CREATE TABLE activity.audit_logs (
    id bigint NOT NULL,
    action character varying(64) NOT NULL,
    user_id uuid,
    ip inet,
    user_agent character varying(512),
    request_id character varying(128),
    details jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE activity.audit_logs OWNER TO activity_owner;

--
-- Name: TABLE audit_logs; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON TABLE activity.audit_logs IS 'Security events, written by the procedures themselves. Never holds a password or token hash.';

--
-- Name: audit_logs_id_seq; Type: SEQUENCE; Schema: activity; Owner: activity_owner
--

CREATE SEQUENCE activity.audit_logs_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER TABLE activity.audit_logs_id_seq OWNER TO activity_owner;

--
-- Name: audit_logs_id_seq; Type: SEQUENCE OWNED BY; Schema: activity; Owner: activity_owner
--

ALTER SEQUENCE activity.audit_logs_id_seq OWNED BY activity.audit_logs.id;

--
-- Name: email_tokens; Type: TABLE; Schema: activity; Owner: activity_owner
--

CREATE TABLE activity.email_tokens (
    id bigint NOT NULL,
    user_id uuid NOT NULL,
    purpose activity.email_token_purpose NOT NULL,
    token_hash character(64) NOT NULL,
    email character varying(255) NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    used_at timestamp with time zone,
    CONSTRAINT email_tokens_expires_at_check CHECK ((expires_at > created_at)),
    CONSTRAINT email_tokens_token_hash_check CHECK ((token_hash ~ '^[0-9a-f]{64}$'::text))
);

ALTER TABLE activity.email_tokens OWNER TO activity_owner;

--
-- Name: TABLE email_tokens; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON TABLE activity.email_tokens IS 'One-time tokens mailed for email verification and password reset, stored as SHA-256 hex.';

--
-- Name: email_tokens_id_seq; Type: SEQUENCE; Schema: activity; Owner: activity_owner
--

CREATE SEQUENCE activity.email_tokens_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER TABLE activity.email_tokens_id_seq OWNER TO activity_owner;

--
-- Name: email_tokens_id_seq; Type: SEQUENCE OWNED BY; Schema: activity; Owner: activity_owner
--

ALTER SEQUENCE activity.email_tokens_id_seq OWNED BY activity.email_tokens.id;

--
-- Name: events; Type: TABLE; Schema: activity; Owner: activity_owner
--

CREATE TABLE activity.events (
    id bigint NOT NULL,
    type text NOT NULL,
    version smallint NOT NULL,
    user_id uuid,
    session_id uuid,
    payload jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    published_at timestamp with time zone,
    tx_id xid8 DEFAULT pg_current_xact_id() NOT NULL,
    CONSTRAINT events_payload_check CHECK ((jsonb_typeof(payload) = 'object'::text)),
    CONSTRAINT events_type_check CHECK ((type ~ '^[a-z_]+\.[a-z_]+$'::text)),
    CONSTRAINT events_version_check CHECK ((version >= 1))
);

ALTER TABLE activity.events OWNER TO activity_owner;

--
-- Name: TABLE events; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON TABLE activity.events IS 'Outbox of security events (docs/events.md), written by fn_audit in the transaction of the change; published_at set once the publisher delivered the row.';

--
-- Name: COLUMN events.tx_id; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON COLUMN activity.events.tx_id IS 'The writer''s transaction id: readers page by (tx_id, id) below their snapshot xmin, so no event can commit behind a cursor.';

--
-- Name: events_id_seq; Type: SEQUENCE; Schema: activity; Owner: activity_owner
--

ALTER TABLE activity.events ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (
    SEQUENCE NAME activity.events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: login_attempts; Type: TABLE; Schema: activity; Owner: activity_owner
--

CREATE TABLE activity.login_attempts (
    scope text NOT NULL,
    key character varying(255) NOT NULL,
    failed_count integer NOT NULL,
    first_failed_at timestamp with time zone DEFAULT now() NOT NULL,
    last_failed_at timestamp with time zone DEFAULT now() NOT NULL,
    locked_until timestamp with time zone,
    CONSTRAINT login_attempts_failed_count_check CHECK ((failed_count >= 0)),
    CONSTRAINT login_attempts_scope_check CHECK ((scope = ANY (ARRAY['email'::text, 'ip'::text, 'device'::text])))
);

ALTER TABLE activity.login_attempts OWNER TO activity_owner;

--
-- Name: TABLE login_attempts; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON TABLE activity.login_attempts IS 'Login attempt counters and locks per normalised email (account or not), per client IP and per trusted device (key: the device token hash). An attempt is counted before its password is checked.';

--
-- Name: mail_budget; Type: TABLE; Schema: activity; Owner: activity_owner
--

CREATE TABLE activity.mail_budget (
    recipient character varying(255) NOT NULL,
    kind text NOT NULL,
    window_start timestamp with time zone DEFAULT now() NOT NULL,
    sent integer NOT NULL,
    CONSTRAINT mail_budget_kind_check CHECK ((kind = ANY (ARRAY['verify_email'::text, 'reset_password'::text, 'account_exists'::text, 'change_email'::text, 'email_in_use'::text, 'email_change_notice'::text]))),
    CONSTRAINT mail_budget_sent_check CHECK ((sent >= 0))
);

ALTER TABLE activity.mail_budget OWNER TO activity_owner;

--
-- Name: TABLE mail_budget; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON TABLE activity.mail_budget IS 'Mails asked for per normalised recipient address (account or not) and kind in the current window; above the budget nothing is sent.';

--
-- Name: mfa_challenges; Type: TABLE; Schema: activity; Owner: activity_owner
--

CREATE TABLE activity.mfa_challenges (
    token_hash text NOT NULL,
    user_id uuid NOT NULL,
    amr text[] NOT NULL,
    device_hash text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    used_at timestamp with time zone,
    CONSTRAINT mfa_challenges_amr_check CHECK (((amr <@ ARRAY['pwd'::text, 'fed'::text]) AND (cardinality(amr) = 1))),
    CONSTRAINT mfa_challenges_device_hash_check CHECK ((device_hash ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT mfa_challenges_expires_at_check CHECK ((expires_at > created_at)),
    CONSTRAINT mfa_challenges_token_hash_check CHECK ((token_hash ~ '^[0-9a-f]{64}$'::text))
);

ALTER TABLE activity.mfa_challenges OWNER TO activity_owner;

--
-- Name: TABLE mfa_challenges; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON TABLE activity.mfa_challenges IS 'A first factor passed (password or provider) waiting for the second: the SHA-256 of the mfaToken, how the first factor was made (amr), the login''s trusted device (hash), single use until expires_at.';

--
-- Name: mfa_recovery_codes; Type: TABLE; Schema: activity; Owner: activity_owner
--

CREATE TABLE activity.mfa_recovery_codes (
    user_id uuid NOT NULL,
    code_hash text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    used_at timestamp with time zone,
    CONSTRAINT mfa_recovery_codes_code_hash_check CHECK ((code_hash ~ '^[0-9a-f]{64}$'::text))
);

ALTER TABLE activity.mfa_recovery_codes OWNER TO activity_owner;

--
-- Name: TABLE mfa_recovery_codes; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON TABLE activity.mfa_recovery_codes IS 'Single-use recovery codes of the second factor, stored as the SHA-256 of the normalised code; used_at set when spent.';

--
-- Name: mfa_totp; Type: TABLE; Schema: activity; Owner: activity_owner
--

CREATE TABLE activity.mfa_totp (
    user_id uuid NOT NULL,
    secret_ciphertext text NOT NULL,
    confirmed_at timestamp with time zone,
    last_used_step bigint DEFAULT 0 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT mfa_totp_last_used_step_check CHECK ((last_used_step >= 0)),
    CONSTRAINT mfa_totp_secret_ciphertext_check CHECK (((length(secret_ciphertext) >= 1) AND (length(secret_ciphertext) <= 1024)))
);

ALTER TABLE activity.mfa_totp OWNER TO activity_owner;

--
-- Name: TABLE mfa_totp; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON TABLE activity.mfa_totp IS 'One TOTP secret per user, encrypted by the service (never readable here); confirmed_at NULL while the enrolment is not confirmed; last_used_step: the newest 30-second step a code was accepted for (replay refusal).';

--
-- Name: oauth_codes; Type: TABLE; Schema: activity; Owner: activity_owner
--

CREATE TABLE activity.oauth_codes (
    code_hash text NOT NULL,
    user_id uuid NOT NULL,
    provider activity.oauth_provider NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    CONSTRAINT oauth_codes_code_hash_check CHECK ((code_hash ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT oauth_codes_expires_at_check CHECK ((expires_at > created_at))
);

ALTER TABLE activity.oauth_codes OWNER TO activity_owner;

--
-- Name: TABLE oauth_codes; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON TABLE activity.oauth_codes IS 'One-time codes an OAuth sign-in issues, traded once for a session; stored as the SHA-256 of the code.';

--
-- Name: oauth_providers; Type: TABLE; Schema: activity; Owner: activity_owner
--

CREATE TABLE activity.oauth_providers (
    id bigint NOT NULL,
    user_id uuid NOT NULL,
    provider activity.oauth_provider NOT NULL,
    provider_user_id text NOT NULL,
    email character varying(255),
    email_verified boolean NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_login_at timestamp with time zone,
    CONSTRAINT oauth_providers_email_lowercase_check CHECK (((email)::text = lower((email)::text))),
    CONSTRAINT oauth_providers_provider_user_id_check CHECK (((length(provider_user_id) >= 1) AND (length(provider_user_id) <= 255)))
);

ALTER TABLE activity.oauth_providers OWNER TO activity_owner;

--
-- Name: TABLE oauth_providers; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON TABLE activity.oauth_providers IS 'External identities (Google, GitHub) linked to a user, one per provider per user; no provider token is stored. email/email_verified: what the provider asserted (lower case), refreshed at each sign-in.';

--
-- Name: oauth_links; Type: VIEW; Schema: activity; Owner: activity_owner
--

CREATE VIEW activity.oauth_links AS
 SELECT p.user_id,
    u.email AS user_email,
    p.provider,
    p.email AS provider_email,
    p.email_verified,
    p.created_at,
    p.last_login_at
   FROM (activity.oauth_providers p
     JOIN activity.users u ON ((u.id = p.user_id)));

ALTER TABLE activity.oauth_links OWNER TO activity_owner;

--
-- Name: VIEW oauth_links; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON VIEW activity.oauth_links IS 'Identities linked to accounts (provider, the address it asserted, when linked and last used), without any hash.';

--
-- Name: oauth_providers_id_seq; Type: SEQUENCE; Schema: activity; Owner: activity_owner
--

ALTER TABLE activity.oauth_providers ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (
    SEQUENCE NAME activity.oauth_providers_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: oauth_states; Type: TABLE; Schema: activity; Owner: activity_owner
--

CREATE TABLE activity.oauth_states (
    state_hash text NOT NULL,
    binding_hash text NOT NULL,
    provider activity.oauth_provider NOT NULL,
    redirect_to text NOT NULL,
    link_user_id uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    CONSTRAINT oauth_states_binding_hash_check CHECK ((binding_hash ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT oauth_states_expires_at_check CHECK ((expires_at > created_at)),
    CONSTRAINT oauth_states_redirect_to_check CHECK (((length(redirect_to) >= 1) AND (length(redirect_to) <= 2048))),
    CONSTRAINT oauth_states_state_hash_check CHECK ((state_hash ~ '^[0-9a-f]{64}$'::text))
);

ALTER TABLE activity.oauth_states OWNER TO activity_owner;

--
-- Name: TABLE oauth_states; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON TABLE activity.oauth_states IS 'Pending OAuth flows: SHA-256 of the state and of the browser-binding value (the PKCE verifier and the nonce are derived from them, never stored). Single use; link_user_id set for a link flow.';

--
-- Name: recent_audit_events; Type: VIEW; Schema: activity; Owner: activity_owner
--

CREATE VIEW activity.recent_audit_events AS
 SELECT l.id,
    l.action,
    l.user_id,
    u.email,
    l.ip,
    l.request_id,
    l.details,
    l.created_at
   FROM (activity.audit_logs l
     LEFT JOIN activity.users u ON ((u.id = l.user_id)))
  WHERE (l.created_at > (now() - '7 days'::interval));

ALTER TABLE activity.recent_audit_events OWNER TO activity_owner;

--
-- Name: VIEW recent_audit_events; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON VIEW activity.recent_audit_events IS 'Audit events of the last 7 days with the user''s email.';

--
-- Name: refresh_tokens_id_seq; Type: SEQUENCE; Schema: activity; Owner: activity_owner
--

CREATE SEQUENCE activity.refresh_tokens_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER TABLE activity.refresh_tokens_id_seq OWNER TO activity_owner;

--
-- Name: refresh_tokens_id_seq; Type: SEQUENCE OWNED BY; Schema: activity; Owner: activity_owner
--

ALTER SEQUENCE activity.refresh_tokens_id_seq OWNED BY activity.refresh_tokens.id;

--
-- Name: trusted_devices; Type: TABLE; Schema: activity; Owner: activity_owner
--

CREATE TABLE activity.trusted_devices (
    id bigint NOT NULL,
    user_id uuid NOT NULL,
    token_hash character(64) NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_used_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    CONSTRAINT trusted_devices_expires_at_check CHECK ((expires_at > created_at)),
    CONSTRAINT trusted_devices_token_hash_check CHECK ((token_hash ~ '^[0-9a-f]{64}$'::text))
);

ALTER TABLE activity.trusted_devices OWNER TO activity_owner;

--
-- Name: TABLE trusted_devices; Type: COMMENT; Schema: activity; Owner: activity_owner
--

COMMENT ON TABLE activity.trusted_devices IS 'Devices that logged in successfully (OWASP device cookie), stored as the SHA-256 of the device token. Their failed attempts lock only that device.';

--
-- Name: trusted_devices_id_seq; Type: SEQUENCE; Schema: activity; Owner: activity_owner
--

CREATE SEQUENCE activity.trusted_devices_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER TABLE activity.trusted_devices_id_seq OWNER TO activity_owner;

--
-- Name: trusted_devices_id_seq; Type: SEQUENCE OWNED BY; Schema: activity; Owner: activity_owner
--

ALTER SEQUENCE activity.trusted_devices_id_seq OWNED BY activity.trusted_devices.id;

--
-- Name: audit_logs id; Type: DEFAULT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.audit_logs ALTER COLUMN id SET DEFAULT nextval('activity.audit_logs_id_seq'::regclass);

--
-- Name: email_tokens id; Type: DEFAULT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.email_tokens ALTER COLUMN id SET DEFAULT nextval('activity.email_tokens_id_seq'::regclass);

--
-- Name: refresh_tokens id; Type: DEFAULT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.refresh_tokens ALTER COLUMN id SET DEFAULT nextval('activity.refresh_tokens_id_seq'::regclass);

--
-- Name: trusted_devices id; Type: DEFAULT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.trusted_devices ALTER COLUMN id SET DEFAULT nextval('activity.trusted_devices_id_seq'::regclass);

--
-- Name: audit_logs audit_logs_pkey; Type: CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.audit_logs
    ADD CONSTRAINT audit_logs_pkey PRIMARY KEY (id);

--
-- Name: email_tokens email_tokens_pkey; Type: CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.email_tokens
    ADD CONSTRAINT email_tokens_pkey PRIMARY KEY (id);

--
-- Name: email_tokens email_tokens_token_hash_key; Type: CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.email_tokens
    ADD CONSTRAINT email_tokens_token_hash_key UNIQUE (token_hash);

--
-- Name: events events_pkey; Type: CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.events
    ADD CONSTRAINT events_pkey PRIMARY KEY (id);

--
-- Name: login_attempts login_attempts_pkey; Type: CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.login_attempts
    ADD CONSTRAINT login_attempts_pkey PRIMARY KEY (scope, key);

--
-- Name: mail_budget mail_budget_pkey; Type: CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.mail_budget
    ADD CONSTRAINT mail_budget_pkey PRIMARY KEY (recipient, kind);

--
-- Name: mfa_challenges mfa_challenges_pkey; Type: CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.mfa_challenges
    ADD CONSTRAINT mfa_challenges_pkey PRIMARY KEY (token_hash);

--
-- Name: mfa_recovery_codes mfa_recovery_codes_pkey; Type: CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.mfa_recovery_codes
    ADD CONSTRAINT mfa_recovery_codes_pkey PRIMARY KEY (user_id, code_hash);

--
-- Name: mfa_totp mfa_totp_pkey; Type: CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.mfa_totp
    ADD CONSTRAINT mfa_totp_pkey PRIMARY KEY (user_id);

--
-- Name: oauth_codes oauth_codes_pkey; Type: CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.oauth_codes
    ADD CONSTRAINT oauth_codes_pkey PRIMARY KEY (code_hash);

--
-- Name: oauth_providers oauth_providers_pkey; Type: CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.oauth_providers
    ADD CONSTRAINT oauth_providers_pkey PRIMARY KEY (id);

--
-- Name: oauth_providers oauth_providers_provider_provider_user_id_key; Type: CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.oauth_providers
    ADD CONSTRAINT oauth_providers_provider_provider_user_id_key UNIQUE (provider, provider_user_id);

--
-- Name: oauth_providers oauth_providers_user_id_provider_key; Type: CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.oauth_providers
    ADD CONSTRAINT oauth_providers_user_id_provider_key UNIQUE (user_id, provider);

--
-- Name: oauth_states oauth_states_pkey; Type: CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.oauth_states
    ADD CONSTRAINT oauth_states_pkey PRIMARY KEY (state_hash);

--
-- Name: refresh_tokens refresh_tokens_jti_key; Type: CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.refresh_tokens
    ADD CONSTRAINT refresh_tokens_jti_key UNIQUE (jti);

--
-- Name: refresh_tokens refresh_tokens_pkey; Type: CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.refresh_tokens
    ADD CONSTRAINT refresh_tokens_pkey PRIMARY KEY (id);

--
-- Name: refresh_tokens refresh_tokens_token_key; Type: CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.refresh_tokens
    ADD CONSTRAINT refresh_tokens_token_key UNIQUE (token);

--
-- Name: trusted_devices trusted_devices_pkey; Type: CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.trusted_devices
    ADD CONSTRAINT trusted_devices_pkey PRIMARY KEY (id);

--
-- Name: trusted_devices trusted_devices_token_hash_key; Type: CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.trusted_devices
    ADD CONSTRAINT trusted_devices_token_hash_key UNIQUE (token_hash);

--
-- Name: users users_email_key; Type: CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.users
    ADD CONSTRAINT users_email_key UNIQUE (email);

--
-- Name: users users_pkey; Type: CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);

--
-- Name: audit_logs_action_created_at_idx; Type: INDEX; Schema: activity; Owner: activity_owner
--

CREATE INDEX audit_logs_action_created_at_idx ON activity.audit_logs USING btree (action, created_at);

--
-- Name: audit_logs_created_at_idx; Type: INDEX; Schema: activity; Owner: activity_owner
--

CREATE INDEX audit_logs_created_at_idx ON activity.audit_logs USING btree (created_at);

--
-- Name: audit_logs_user_id_created_at_idx; Type: INDEX; Schema: activity; Owner: activity_owner
--

CREATE INDEX audit_logs_user_id_created_at_idx ON activity.audit_logs USING btree (user_id, created_at);

--
-- Name: email_tokens_expires_at_idx; Type: INDEX; Schema: activity; Owner: activity_owner
--

CREATE INDEX email_tokens_expires_at_idx ON activity.email_tokens USING btree (expires_at);

--
-- Name: email_tokens_user_id_purpose_idx; Type: INDEX; Schema: activity; Owner: activity_owner
--

CREATE INDEX email_tokens_user_id_purpose_idx ON activity.email_tokens USING btree (user_id, purpose) WHERE (used_at IS NULL);

--
-- Name: events_id_unpublished_idx; Type: INDEX; Schema: activity; Owner: activity_owner
--

CREATE INDEX events_id_unpublished_idx ON activity.events USING btree (id) WHERE (published_at IS NULL);

--
-- Name: events_published_at_idx; Type: INDEX; Schema: activity; Owner: activity_owner
--

CREATE INDEX events_published_at_idx ON activity.events USING btree (published_at) WHERE (published_at IS NOT NULL);

--
-- Name: events_tx_id_id_idx; Type: INDEX; Schema: activity; Owner: activity_owner
--

CREATE INDEX events_tx_id_id_idx ON activity.events USING btree (tx_id, id);

--
-- Name: login_attempts_last_failed_at_idx; Type: INDEX; Schema: activity; Owner: activity_owner
--

CREATE INDEX login_attempts_last_failed_at_idx ON activity.login_attempts USING btree (last_failed_at);

--
-- Name: mail_budget_window_start_idx; Type: INDEX; Schema: activity; Owner: activity_owner
--

CREATE INDEX mail_budget_window_start_idx ON activity.mail_budget USING btree (window_start);

--
-- Name: mfa_challenges_user_id_idx; Type: INDEX; Schema: activity; Owner: activity_owner
--

CREATE INDEX mfa_challenges_user_id_idx ON activity.mfa_challenges USING btree (user_id);

--
-- Name: oauth_codes_expires_at_idx; Type: INDEX; Schema: activity; Owner: activity_owner
--

CREATE INDEX oauth_codes_expires_at_idx ON activity.oauth_codes USING btree (expires_at);

--
-- Name: oauth_codes_user_id_idx; Type: INDEX; Schema: activity; Owner: activity_owner
--

CREATE INDEX oauth_codes_user_id_idx ON activity.oauth_codes USING btree (user_id);

--
-- Name: oauth_states_expires_at_idx; Type: INDEX; Schema: activity; Owner: activity_owner
--

CREATE INDEX oauth_states_expires_at_idx ON activity.oauth_states USING btree (expires_at);

--
-- Name: oauth_states_link_user_id_idx; Type: INDEX; Schema: activity; Owner: activity_owner
--

CREATE INDEX oauth_states_link_user_id_idx ON activity.oauth_states USING btree (link_user_id) WHERE (link_user_id IS NOT NULL);

--
-- Name: refresh_tokens_expires_at_idx; Type: INDEX; Schema: activity; Owner: activity_owner
--

CREATE INDEX refresh_tokens_expires_at_idx ON activity.refresh_tokens USING btree (expires_at);

--
-- Name: refresh_tokens_family_id_idx; Type: INDEX; Schema: activity; Owner: activity_owner
--

CREATE INDEX refresh_tokens_family_id_idx ON activity.refresh_tokens USING btree (family_id);

--
-- Name: refresh_tokens_family_id_live_idx; Type: INDEX; Schema: activity; Owner: activity_owner
--

CREATE INDEX refresh_tokens_family_id_live_idx ON activity.refresh_tokens USING btree (family_id) INCLUDE (user_id, expires_at, family_expires_at) WHERE (NOT revoked);

--
-- Name: refresh_tokens_replaced_by_idx; Type: INDEX; Schema: activity; Owner: activity_owner
--

CREATE INDEX refresh_tokens_replaced_by_idx ON activity.refresh_tokens USING btree (replaced_by);

--
-- Name: refresh_tokens_user_id_idx; Type: INDEX; Schema: activity; Owner: activity_owner
--

CREATE INDEX refresh_tokens_user_id_idx ON activity.refresh_tokens USING btree (user_id) WHERE (NOT revoked);

--
-- Name: trusted_devices_expires_at_idx; Type: INDEX; Schema: activity; Owner: activity_owner
--

CREATE INDEX trusted_devices_expires_at_idx ON activity.trusted_devices USING btree (expires_at);

--
-- Name: trusted_devices_user_id_idx; Type: INDEX; Schema: activity; Owner: activity_owner
--

CREATE INDEX trusted_devices_user_id_idx ON activity.trusted_devices USING btree (user_id);

--
-- Name: users_created_at_idx; Type: INDEX; Schema: activity; Owner: activity_owner
--

CREATE INDEX users_created_at_idx ON activity.users USING btree (created_at) WHERE (NOT is_verified);

--
-- Name: users_username_lower_idx; Type: INDEX; Schema: activity; Owner: activity_owner
--

CREATE UNIQUE INDEX users_username_lower_idx ON activity.users USING btree (lower((username)::text));

--
-- Name: audit_logs audit_logs_user_id_fkey; Type: FK CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.audit_logs
    ADD CONSTRAINT audit_logs_user_id_fkey FOREIGN KEY (user_id) REFERENCES activity.users(id) ON DELETE SET NULL;

--
-- Name: email_tokens email_tokens_user_id_fkey; Type: FK CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.email_tokens
    ADD CONSTRAINT email_tokens_user_id_fkey FOREIGN KEY (user_id) REFERENCES activity.users(id) ON DELETE CASCADE;

--
-- Name: mfa_challenges mfa_challenges_user_id_fkey; Type: FK CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.mfa_challenges
    ADD CONSTRAINT mfa_challenges_user_id_fkey FOREIGN KEY (user_id) REFERENCES activity.users(id) ON DELETE CASCADE;

--
-- Name: mfa_recovery_codes mfa_recovery_codes_user_id_fkey; Type: FK CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.mfa_recovery_codes
    ADD CONSTRAINT mfa_recovery_codes_user_id_fkey FOREIGN KEY (user_id) REFERENCES activity.users(id) ON DELETE CASCADE;

--
-- Name: mfa_totp mfa_totp_user_id_fkey; Type: FK CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.mfa_totp
    ADD CONSTRAINT mfa_totp_user_id_fkey FOREIGN KEY (user_id) REFERENCES activity.users(id) ON DELETE CASCADE;

--
-- Name: oauth_codes oauth_codes_user_id_fkey; Type: FK CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.oauth_codes
    ADD CONSTRAINT oauth_codes_user_id_fkey FOREIGN KEY (user_id) REFERENCES activity.users(id) ON DELETE CASCADE;

--
-- Name: oauth_providers oauth_providers_user_id_fkey; Type: FK CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.oauth_providers
    ADD CONSTRAINT oauth_providers_user_id_fkey FOREIGN KEY (user_id) REFERENCES activity.users(id) ON DELETE CASCADE;

--
-- Name: oauth_states oauth_states_link_user_id_fkey; Type: FK CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.oauth_states
    ADD CONSTRAINT oauth_states_link_user_id_fkey FOREIGN KEY (link_user_id) REFERENCES activity.users(id) ON DELETE CASCADE;

--
-- Name: refresh_tokens refresh_tokens_replaced_by_fkey; Type: FK CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.refresh_tokens
    ADD CONSTRAINT refresh_tokens_replaced_by_fkey FOREIGN KEY (replaced_by) REFERENCES activity.refresh_tokens(id) ON DELETE SET NULL;

--
-- Name: refresh_tokens refresh_tokens_user_id_fkey; Type: FK CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.refresh_tokens
    ADD CONSTRAINT refresh_tokens_user_id_fkey FOREIGN KEY (user_id) REFERENCES activity.users(id) ON DELETE CASCADE;

--
-- Name: trusted_devices trusted_devices_user_id_fkey; Type: FK CONSTRAINT; Schema: activity; Owner: activity_owner
--

ALTER TABLE ONLY activity.trusted_devices
    ADD CONSTRAINT trusted_devices_user_id_fkey FOREIGN KEY (user_id) REFERENCES activity.users(id) ON DELETE CASCADE;

--
-- Name: SCHEMA activity; Type: ACL; Schema: -; Owner: activity_owner
--

GRANT USAGE ON SCHEMA activity TO auth_api_user;
GRANT USAGE ON SCHEMA activity TO write_api_user;
GRANT USAGE ON SCHEMA activity TO activity_readonly;

--
-- Name: FUNCTION fn_amr_is_valid(p_amr text[]); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_amr_is_valid(p_amr text[]) FROM PUBLIC;

--
-- Name: FUNCTION fn_audit(p_action text, p_user_id uuid, p_ctx jsonb, p_details jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_audit(p_action text, p_user_id uuid, p_ctx jsonb, p_details jsonb) FROM PUBLIC;

--
-- Name: FUNCTION fn_check_email_token_args(p_purpose text, p_token_hash text, p_ttl_seconds integer); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_check_email_token_args(p_purpose text, p_token_hash text, p_ttl_seconds integer) FROM PUBLIC;

--
-- Name: FUNCTION fn_check_lockout_policy(p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_ip_threshold integer, p_window_seconds integer); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_check_lockout_policy(p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_ip_threshold integer, p_window_seconds integer) FROM PUBLIC;

--
-- Name: FUNCTION fn_check_mail_policy(p_mail_max integer, p_mail_window_seconds integer); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_check_mail_policy(p_mail_max integer, p_mail_window_seconds integer) FROM PUBLIC;

--
-- Name: FUNCTION fn_check_recovery_hashes(p_hashes text[]); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_check_recovery_hashes(p_hashes text[]) FROM PUBLIC;

--
-- Name: FUNCTION fn_check_sha256_hex(p_value text, p_what text); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_check_sha256_hex(p_value text, p_what text) FROM PUBLIC;

--
-- Name: FUNCTION fn_count_failure(p_scope text, p_key text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_window_seconds integer); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_count_failure(p_scope text, p_key text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_window_seconds integer) FROM PUBLIC;

--
-- Name: FUNCTION fn_event_for_audit(p_action text, p_user_id uuid, p_details jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_event_for_audit(p_action text, p_user_id uuid, p_details jsonb) FROM PUBLIC;

--
-- Name: FUNCTION fn_inet(p_ip text); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_inet(p_ip text) FROM PUBLIC;

--
-- Name: FUNCTION fn_issue_email_token(p_user_id uuid, p_email text, p_purpose text, p_token_hash text, p_ttl_seconds integer, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_issue_email_token(p_user_id uuid, p_email text, p_purpose text, p_token_hash text, p_ttl_seconds integer, p_ctx jsonb) FROM PUBLIC;

--
-- Name: FUNCTION fn_issue_oauth_code(p_user_id uuid, p_provider activity.oauth_provider, p_code_hash text, p_ttl_seconds integer); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_issue_oauth_code(p_user_id uuid, p_provider activity.oauth_provider, p_code_hash text, p_ttl_seconds integer) FROM PUBLIC;

--
-- Name: FUNCTION fn_lock_mfa_user(p_user_id uuid); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_lock_mfa_user(p_user_id uuid) FROM PUBLIC;

--
-- Name: FUNCTION fn_lock_until(p_count integer, p_threshold integer, p_base_seconds integer, p_max_seconds integer); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_lock_until(p_count integer, p_threshold integer, p_base_seconds integer, p_max_seconds integer) FROM PUBLIC;

--
-- Name: FUNCTION fn_refresh_token_is_live(p_revoked boolean, p_expires_at timestamp with time zone, p_family_expires_at timestamp with time zone); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_refresh_token_is_live(p_revoked boolean, p_expires_at timestamp with time zone, p_family_expires_at timestamp with time zone) FROM PUBLIC;

--
-- Name: FUNCTION fn_release_attempt(p_scope text, p_key text, p_threshold integer); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_release_attempt(p_scope text, p_key text, p_threshold integer) FROM PUBLIC;

--
-- Name: FUNCTION fn_require_email_token_purpose(p_purpose text); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_require_email_token_purpose(p_purpose text) FROM PUBLIC;

--
-- Name: FUNCTION fn_require_oauth_provider(p_provider text); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_require_oauth_provider(p_provider text) FROM PUBLIC;

--
-- Name: FUNCTION fn_require_person_name(p_name text); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_require_person_name(p_name text) FROM PUBLIC;

--
-- Name: FUNCTION fn_require_revoke_reason(p_reason text); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_require_revoke_reason(p_reason text) FROM PUBLIC;

--
-- Name: FUNCTION fn_require_username(p_username text); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_require_username(p_username text) FROM PUBLIC;

--
-- Name: FUNCTION fn_reserve_attempt(p_scope text, p_key text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_window_seconds integer); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_reserve_attempt(p_scope text, p_key text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_window_seconds integer) FROM PUBLIC;

--
-- Name: FUNCTION fn_revoke_user_families(p_user_id uuid, p_except_family_id uuid, p_reason text); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_revoke_user_families(p_user_id uuid, p_except_family_id uuid, p_reason text) FROM PUBLIC;

--
-- Name: FUNCTION fn_rotation_moved(p_old activity.refresh_tokens, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_rotation_moved(p_old activity.refresh_tokens, p_ctx jsonb) FROM PUBLIC;

--
-- Name: FUNCTION fn_take_mail_budget(p_recipient text, p_kind text, p_max integer, p_window_seconds integer); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_take_mail_budget(p_recipient text, p_kind text, p_max integer, p_window_seconds integer) FROM PUBLIC;

--
-- Name: FUNCTION fn_username_is_reserved(p_username text); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.fn_username_is_reserved(p_username text) FROM PUBLIC;

--
-- Name: FUNCTION sp_begin_login(p_identifier text, p_user_id uuid, p_ip text, p_device_hash text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_ip_threshold integer, p_window_seconds integer, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_begin_login(p_identifier text, p_user_id uuid, p_ip text, p_device_hash text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_ip_threshold integer, p_window_seconds integer, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_begin_login(p_identifier text, p_user_id uuid, p_ip text, p_device_hash text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_ip_threshold integer, p_window_seconds integer, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_begin_mfa_enrolment(p_user_id uuid, p_secret_ciphertext text, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_begin_mfa_enrolment(p_user_id uuid, p_secret_ciphertext text, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_begin_mfa_enrolment(p_user_id uuid, p_secret_ciphertext text, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_check_login_lock(p_email text, p_ip text); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_check_login_lock(p_email text, p_ip text) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_check_login_lock(p_email text, p_ip text) TO auth_api_user;

--
-- Name: FUNCTION sp_check_session(p_user_id uuid, p_family_id uuid); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_check_session(p_user_id uuid, p_family_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_check_session(p_user_id uuid, p_family_id uuid) TO auth_api_user;

--
-- Name: FUNCTION sp_claim_events(p_limit integer); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_claim_events(p_limit integer) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_claim_events(p_limit integer) TO auth_api_user;

--
-- Name: FUNCTION sp_cleanup_events(p_retention_hours integer, p_unpublished_too boolean); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_cleanup_events(p_retention_hours integer, p_unpublished_too boolean) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_cleanup_events(p_retention_hours integer, p_unpublished_too boolean) TO auth_api_user;

--
-- Name: FUNCTION sp_cleanup_expired(p_audit_retention_days integer, p_attempt_retention_hours integer); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_cleanup_expired(p_audit_retention_days integer, p_attempt_retention_hours integer) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_cleanup_expired(p_audit_retention_days integer, p_attempt_retention_hours integer) TO auth_api_user;

--
-- Name: FUNCTION sp_cleanup_unverified_users(p_older_than_hours integer); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_cleanup_unverified_users(p_older_than_hours integer) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_cleanup_unverified_users(p_older_than_hours integer) TO auth_api_user;

--
-- Name: FUNCTION sp_complete_login(p_user_id uuid, p_ip text, p_device_hash text, p_new_device_hash text, p_device_ttl_seconds integer, p_ip_threshold integer, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_complete_login(p_user_id uuid, p_ip text, p_device_hash text, p_new_device_hash text, p_device_ttl_seconds integer, p_ip_threshold integer, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_complete_login(p_user_id uuid, p_ip text, p_device_hash text, p_new_device_hash text, p_device_ttl_seconds integer, p_ip_threshold integer, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_confirm_email_change(p_token_hash text, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_confirm_email_change(p_token_hash text, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_confirm_email_change(p_token_hash text, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_confirm_mfa_totp(p_user_id uuid, p_step bigint, p_recovery_hashes text[], p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_confirm_mfa_totp(p_user_id uuid, p_step bigint, p_recovery_hashes text[], p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_confirm_mfa_totp(p_user_id uuid, p_step bigint, p_recovery_hashes text[], p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_consume_email_token(p_token_hash text, p_purpose text, p_new_hashed_password text, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_consume_email_token(p_token_hash text, p_purpose text, p_new_hashed_password text, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_consume_email_token(p_token_hash text, p_purpose text, p_new_hashed_password text, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_consume_mfa_challenge(p_token_hash text, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_consume_mfa_challenge(p_token_hash text, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_consume_mfa_challenge(p_token_hash text, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_consume_oauth_code(p_code_hash text, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_consume_oauth_code(p_code_hash text, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_consume_oauth_code(p_code_hash text, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_consume_oauth_state(p_state_hash text, p_binding_hash text, p_provider text); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_consume_oauth_state(p_state_hash text, p_binding_hash text, p_provider text) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_consume_oauth_state(p_state_hash text, p_binding_hash text, p_provider text) TO auth_api_user;

--
-- Name: FUNCTION sp_create_email_token(p_user_id uuid, p_purpose text, p_token_hash text, p_ttl_seconds integer, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_create_email_token(p_user_id uuid, p_purpose text, p_token_hash text, p_ttl_seconds integer, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_create_email_token(p_user_id uuid, p_purpose text, p_token_hash text, p_ttl_seconds integer, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_create_mfa_challenge(p_token_hash text, p_user_id uuid, p_amr text[], p_device_hash text, p_ttl_seconds integer, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_create_mfa_challenge(p_token_hash text, p_user_id uuid, p_amr text[], p_device_hash text, p_ttl_seconds integer, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_create_mfa_challenge(p_token_hash text, p_user_id uuid, p_amr text[], p_device_hash text, p_ttl_seconds integer, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_create_oauth_state(p_state_hash text, p_binding_hash text, p_provider text, p_redirect_to text, p_link_user_id uuid, p_ttl_seconds integer, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_create_oauth_state(p_state_hash text, p_binding_hash text, p_provider text, p_redirect_to text, p_link_user_id uuid, p_ttl_seconds integer, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_create_oauth_state(p_state_hash text, p_binding_hash text, p_provider text, p_redirect_to text, p_link_user_id uuid, p_ttl_seconds integer, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_create_user(p_email text, p_hashed_password text, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_create_user(p_email text, p_hashed_password text, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_create_user(p_email text, p_hashed_password text, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_deactivate_user(p_user_id uuid, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_deactivate_user(p_user_id uuid, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_deactivate_user(p_user_id uuid, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_disable_mfa(p_user_id uuid, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_disable_mfa(p_user_id uuid, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_disable_mfa(p_user_id uuid, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_end_login_attempt(p_email text, p_ip text, p_device_hash text, p_outcome text, p_threshold integer, p_ip_threshold integer, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_end_login_attempt(p_email text, p_ip text, p_device_hash text, p_outcome text, p_threshold integer, p_ip_threshold integer, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_end_login_attempt(p_email text, p_ip text, p_device_hash text, p_outcome text, p_threshold integer, p_ip_threshold integer, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_events_after(p_after_tx bigint, p_after_id bigint, p_limit integer); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_events_after(p_after_tx bigint, p_after_id bigint, p_limit integer) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_events_after(p_after_tx bigint, p_after_id bigint, p_limit integer) TO auth_api_user;
GRANT ALL ON FUNCTION activity.sp_events_after(p_after_tx bigint, p_after_id bigint, p_limit integer) TO write_api_user;

--
-- Name: FUNCTION sp_events_lag(); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_events_lag() FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_events_lag() TO auth_api_user;

--
-- Name: FUNCTION sp_get_mfa_challenge(p_token_hash text); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_get_mfa_challenge(p_token_hash text) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_get_mfa_challenge(p_token_hash text) TO auth_api_user;

--
-- Name: FUNCTION sp_get_mfa_totp(p_user_id uuid); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_get_mfa_totp(p_user_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_get_mfa_totp(p_user_id uuid) TO auth_api_user;

--
-- Name: FUNCTION sp_get_profile(p_user_id uuid); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_get_profile(p_user_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_get_profile(p_user_id uuid) TO auth_api_user;

--
-- Name: FUNCTION sp_get_used_email_token(p_token_hash text, p_purpose text, p_window_seconds integer); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_get_used_email_token(p_token_hash text, p_purpose text, p_window_seconds integer) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_get_used_email_token(p_token_hash text, p_purpose text, p_window_seconds integer) TO auth_api_user;

--
-- Name: FUNCTION sp_get_user_by_email(p_email text); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_get_user_by_email(p_email text) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_get_user_by_email(p_email text) TO auth_api_user;

--
-- Name: FUNCTION sp_get_user_by_id(p_user_id uuid); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_get_user_by_id(p_user_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_get_user_by_id(p_user_id uuid) TO auth_api_user;

--
-- Name: FUNCTION sp_get_valid_refresh_token(p_token_hash text); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_get_valid_refresh_token(p_token_hash text) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_get_valid_refresh_token(p_token_hash text) TO auth_api_user;

--
-- Name: FUNCTION sp_link_oauth_provider(p_user_id uuid, p_provider text, p_provider_user_id text, p_email text, p_email_verified boolean, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_link_oauth_provider(p_user_id uuid, p_provider text, p_provider_user_id text, p_email text, p_email_verified boolean, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_link_oauth_provider(p_user_id uuid, p_provider text, p_provider_user_id text, p_email text, p_email_verified boolean, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_list_oauth_providers(p_user_id uuid); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_list_oauth_providers(p_user_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_list_oauth_providers(p_user_id uuid) TO auth_api_user;

--
-- Name: FUNCTION sp_list_user_sessions(p_user_id uuid); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_list_user_sessions(p_user_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_list_user_sessions(p_user_id uuid) TO auth_api_user;

--
-- Name: FUNCTION sp_mark_events_published(p_ids bigint[]); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_mark_events_published(p_ids bigint[]) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_mark_events_published(p_ids bigint[]) TO auth_api_user;

--
-- Name: FUNCTION sp_oauth_sign_in(p_provider text, p_provider_user_id text, p_email text, p_email_verified boolean, p_code_hash text, p_code_ttl_seconds integer, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_oauth_sign_in(p_provider text, p_provider_user_id text, p_email text, p_email_verified boolean, p_code_hash text, p_code_ttl_seconds integer, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_oauth_sign_in(p_provider text, p_provider_user_id text, p_email text, p_email_verified boolean, p_code_hash text, p_code_ttl_seconds integer, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_record_failed_login(p_email text, p_ip text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_ip_threshold integer, p_window_seconds integer, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_record_failed_login(p_email text, p_ip text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_ip_threshold integer, p_window_seconds integer, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_record_failed_login(p_email text, p_ip text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_ip_threshold integer, p_window_seconds integer, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_record_successful_login(p_user_id uuid, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_record_successful_login(p_user_id uuid, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_record_successful_login(p_user_id uuid, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_replace_mfa_recovery_codes(p_user_id uuid, p_recovery_hashes text[], p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_replace_mfa_recovery_codes(p_user_id uuid, p_recovery_hashes text[], p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_replace_mfa_recovery_codes(p_user_id uuid, p_recovery_hashes text[], p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_request_email_change(p_user_id uuid, p_new_email text, p_token_hash text, p_ttl_seconds integer, p_mail_max integer, p_mail_window_seconds integer, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_request_email_change(p_user_id uuid, p_new_email text, p_token_hash text, p_ttl_seconds integer, p_mail_max integer, p_mail_window_seconds integer, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_request_email_change(p_user_id uuid, p_new_email text, p_token_hash text, p_ttl_seconds integer, p_mail_max integer, p_mail_window_seconds integer, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_request_email_link(p_email text, p_purpose text, p_token_hash text, p_ttl_seconds integer, p_mail_max integer, p_mail_window_seconds integer, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_request_email_link(p_email text, p_purpose text, p_token_hash text, p_ttl_seconds integer, p_mail_max integer, p_mail_window_seconds integer, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_request_email_link(p_email text, p_purpose text, p_token_hash text, p_ttl_seconds integer, p_mail_max integer, p_mail_window_seconds integer, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_revoke_refresh_token(p_token_hash text, p_reason text, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_revoke_refresh_token(p_token_hash text, p_reason text, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_revoke_refresh_token(p_token_hash text, p_reason text, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_revoke_user_session(p_user_id uuid, p_family_id uuid, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_revoke_user_session(p_user_id uuid, p_family_id uuid, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_revoke_user_session(p_user_id uuid, p_family_id uuid, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_revoke_user_sessions(p_user_id uuid, p_except_family_id uuid, p_reason text, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_revoke_user_sessions(p_user_id uuid, p_except_family_id uuid, p_reason text, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_revoke_user_sessions(p_user_id uuid, p_except_family_id uuid, p_reason text, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_rotate_refresh_token(p_token_hash text, p_new_token_hash text, p_new_jti text, p_idle_ttl_seconds integer, p_grace_seconds integer, p_ctx jsonb, p_audit_every_rotation boolean); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_rotate_refresh_token(p_token_hash text, p_new_token_hash text, p_new_jti text, p_idle_ttl_seconds integer, p_grace_seconds integer, p_ctx jsonb, p_audit_every_rotation boolean) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_rotate_refresh_token(p_token_hash text, p_new_token_hash text, p_new_jti text, p_idle_ttl_seconds integer, p_grace_seconds integer, p_ctx jsonb, p_audit_every_rotation boolean) TO auth_api_user;

--
-- Name: FUNCTION sp_run_cleanup(p_unverified_hours integer, p_audit_retention_days integer, p_attempt_retention_hours integer); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_run_cleanup(p_unverified_hours integer, p_audit_retention_days integer, p_attempt_retention_hours integer) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_run_cleanup(p_unverified_hours integer, p_audit_retention_days integer, p_attempt_retention_hours integer) TO auth_api_user;

--
-- Name: FUNCTION sp_save_refresh_token(p_user_id uuid, p_token_hash text, p_jti text, p_idle_ttl_seconds integer, p_family_ttl_seconds integer, p_amr text[], p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_save_refresh_token(p_user_id uuid, p_token_hash text, p_jti text, p_idle_ttl_seconds integer, p_family_ttl_seconds integer, p_amr text[], p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_save_refresh_token(p_user_id uuid, p_token_hash text, p_jti text, p_idle_ttl_seconds integer, p_family_ttl_seconds integer, p_amr text[], p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_schema_migrations(); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_schema_migrations() FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_schema_migrations() TO auth_api_user;
GRANT ALL ON FUNCTION activity.sp_schema_migrations() TO activity_readonly;

--
-- Name: FUNCTION sp_session_is_live(p_session_id uuid); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_session_is_live(p_session_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_session_is_live(p_session_id uuid) TO auth_api_user;
GRANT ALL ON FUNCTION activity.sp_session_is_live(p_session_id uuid) TO write_api_user;

--
-- Name: FUNCTION sp_signup(p_email text, p_hashed_password text, p_token_hash text, p_ttl_seconds integer, p_mail_max integer, p_mail_window_seconds integer, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_signup(p_email text, p_hashed_password text, p_token_hash text, p_ttl_seconds integer, p_mail_max integer, p_mail_window_seconds integer, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_signup(p_email text, p_hashed_password text, p_token_hash text, p_ttl_seconds integer, p_mail_max integer, p_mail_window_seconds integer, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_unlink_oauth_provider(p_user_id uuid, p_provider text, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_unlink_oauth_provider(p_user_id uuid, p_provider text, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_unlink_oauth_provider(p_user_id uuid, p_provider text, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_update_last_login(p_user_id uuid, p_ip text); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_update_last_login(p_user_id uuid, p_ip text) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_update_last_login(p_user_id uuid, p_ip text) TO auth_api_user;

--
-- Name: FUNCTION sp_update_password(p_user_id uuid, p_hashed_password text, p_end_sessions boolean, p_keep_family_id uuid, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_update_password(p_user_id uuid, p_hashed_password text, p_end_sessions boolean, p_keep_family_id uuid, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_update_password(p_user_id uuid, p_hashed_password text, p_end_sessions boolean, p_keep_family_id uuid, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_update_profile(p_user_id uuid, p_changes jsonb, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_update_profile(p_user_id uuid, p_changes jsonb, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_update_profile(p_user_id uuid, p_changes jsonb, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_use_mfa_recovery_code(p_user_id uuid, p_code_hash text, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_use_mfa_recovery_code(p_user_id uuid, p_code_hash text, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_use_mfa_recovery_code(p_user_id uuid, p_code_hash text, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_use_mfa_totp_step(p_user_id uuid, p_step bigint, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_use_mfa_totp_step(p_user_id uuid, p_step bigint, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_use_mfa_totp_step(p_user_id uuid, p_step bigint, p_ctx jsonb) TO auth_api_user;

--
-- Name: FUNCTION sp_verify_user_email(p_user_id uuid, p_ctx jsonb); Type: ACL; Schema: activity; Owner: activity_owner
--

REVOKE ALL ON FUNCTION activity.sp_verify_user_email(p_user_id uuid, p_ctx jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION activity.sp_verify_user_email(p_user_id uuid, p_ctx jsonb) TO auth_api_user;

--
-- Name: TABLE active_sessions; Type: ACL; Schema: activity; Owner: activity_owner
--

GRANT SELECT ON TABLE activity.active_sessions TO activity_readonly;

--
-- Name: TABLE active_users; Type: ACL; Schema: activity; Owner: activity_owner
--

GRANT SELECT ON TABLE activity.active_users TO activity_readonly;

--
-- Name: TABLE oauth_links; Type: ACL; Schema: activity; Owner: activity_owner
--

GRANT SELECT ON TABLE activity.oauth_links TO activity_readonly;

--
-- Name: TABLE recent_audit_events; Type: ACL; Schema: activity; Owner: activity_owner
--

GRANT SELECT ON TABLE activity.recent_audit_events TO activity_readonly;
