-- Up Migration
--
-- Login guard (issue 11, parts 2, 3, 5, 6 and 7):
-- - an attempt is counted (reserved) BEFORE its password is verified, in one atomic
--   upsert that refuses while locked, so a burst of any size verifies at most the
--   threshold's worth of passwords per lock window;
-- - trusted devices (OWASP "device cookie"): a device that logged in successfully
--   gets a token; its attempts are counted against that device only, so nobody
--   without the password can lock the owner out of a device they used before;
-- - a per-recipient mail budget shared by every instance;
-- - signup and email-link requests in one call that does the same work whether
--   or not the address has an account;
-- - a password change or reset burns every outstanding email token of the user.
-- Design and trade-offs: docs/security.md.

-- ---------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------

ALTER TABLE activity.login_attempts DROP CONSTRAINT login_attempts_scope_check;
ALTER TABLE activity.login_attempts ADD CONSTRAINT login_attempts_scope_check CHECK (scope IN ('email', 'ip', 'device'));
COMMENT ON TABLE activity.login_attempts IS 'Login attempt counters and locks per normalised email (account or not), per client IP and per trusted device (key: the device token hash). An attempt is counted before its password is checked.';

CREATE TABLE activity.trusted_devices (
  id           bigserial   NOT NULL,
  user_id      uuid        NOT NULL,
  token_hash   char(64)    NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL,
  CONSTRAINT trusted_devices_pkey PRIMARY KEY (id),
  CONSTRAINT trusted_devices_user_id_fkey FOREIGN KEY (user_id) REFERENCES activity.users (id) ON DELETE CASCADE,
  CONSTRAINT trusted_devices_token_hash_key UNIQUE (token_hash),
  CONSTRAINT trusted_devices_token_hash_check CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  CONSTRAINT trusted_devices_expires_at_check CHECK (expires_at > created_at)
);
COMMENT ON TABLE activity.trusted_devices IS 'Devices that logged in successfully (OWASP device cookie), stored as the SHA-256 of the device token. Their failed attempts lock only that device.';
CREATE INDEX trusted_devices_user_id_idx ON activity.trusted_devices (user_id);
CREATE INDEX trusted_devices_expires_at_idx ON activity.trusted_devices (expires_at);

CREATE TABLE activity.mail_budget (
  recipient    varchar(255) NOT NULL,
  kind         text         NOT NULL,
  window_start timestamptz  NOT NULL DEFAULT now(),
  sent         integer      NOT NULL,
  CONSTRAINT mail_budget_pkey PRIMARY KEY (recipient, kind),
  CONSTRAINT mail_budget_kind_check CHECK (kind IN ('verify_email', 'reset_password', 'account_exists')),
  CONSTRAINT mail_budget_sent_check CHECK (sent >= 0)
);
COMMENT ON TABLE activity.mail_budget IS 'Mails asked for per normalised recipient address (account or not) and kind in the current window; above the budget nothing is sent.';
CREATE INDEX mail_budget_window_start_idx ON activity.mail_budget (window_start);

-- ---------------------------------------------------------------------------
-- Internal helpers
-- ---------------------------------------------------------------------------

-- Reserves one attempt for a key: counts it and, at the threshold, starts the lock
-- (capped exponential backoff, as fn_count_failure). The WHERE of ON CONFLICT is
-- re-checked on the latest row version under its row lock, so concurrent callers
-- are serialised and no one is let through once the lock is set. Returns NULL when
-- the attempt is reserved, else the end of the running lock.
CREATE FUNCTION activity.fn_reserve_attempt(p_scope text, p_key text, p_threshold integer, p_base_seconds integer,
                                            p_max_seconds integer, p_window_seconds integer)
RETURNS timestamptz
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
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
COMMENT ON FUNCTION activity.fn_reserve_attempt(text, text, integer, integer, integer, integer) IS 'Internal: counts one attempt for a login_attempts key unless it is locked; NULL when reserved, else the lock end.';
REVOKE ALL ON FUNCTION activity.fn_reserve_attempt(text, text, integer, integer, integer, integer) FROM PUBLIC;

-- Gives back a reservation that turned out to be no failure (a correct password,
-- or an attempt refused by another key). The lock stays only while the remaining
-- count still reaches the threshold.
CREATE FUNCTION activity.fn_release_attempt(p_scope text, p_key text, p_threshold integer)
RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
  UPDATE activity.login_attempts a
     SET failed_count = greatest(a.failed_count - 1, 0),
         locked_until = CASE WHEN a.failed_count - 1 >= p_threshold THEN a.locked_until END
   WHERE a.scope = p_scope AND a.key = p_key
$$;
COMMENT ON FUNCTION activity.fn_release_attempt(text, text, integer) IS 'Internal: takes back one reserved attempt of a login_attempts key.';
REVOKE ALL ON FUNCTION activity.fn_release_attempt(text, text, integer) FROM PUBLIC;

-- One mail of a kind to a recipient: true while within the budget of the window
-- (a fixed window from the first mail). Counted for addresses with no account too,
-- so both take the same path.
CREATE FUNCTION activity.fn_take_mail_budget(p_recipient text, p_kind text, p_max integer, p_window_seconds integer)
RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
  INSERT INTO activity.mail_budget AS b (recipient, kind, window_start, sent)
  VALUES (left(p_recipient, 255), p_kind, now(), 1)
  ON CONFLICT (recipient, kind) DO UPDATE SET
    window_start = CASE WHEN b.window_start <= now() - make_interval(secs => p_window_seconds) THEN now() ELSE b.window_start END,
    sent         = CASE WHEN b.window_start <= now() - make_interval(secs => p_window_seconds) THEN 1 ELSE b.sent + 1 END
  RETURNING b.sent <= p_max
$$;
COMMENT ON FUNCTION activity.fn_take_mail_budget(text, text, integer, integer) IS 'Internal: counts one mail of a kind to an address; true while within p_max per window.';
REVOKE ALL ON FUNCTION activity.fn_take_mail_budget(text, text, integer, integer) FROM PUBLIC;

CREATE FUNCTION activity.fn_check_mail_policy(p_mail_max integer, p_mail_window_seconds integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
BEGIN
  IF p_mail_max IS NULL OR p_mail_max < 1 OR p_mail_window_seconds IS NULL OR p_mail_window_seconds < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'mail budget must be >= 1 per window of >= 1 second';
  END IF;
END
$$;
COMMENT ON FUNCTION activity.fn_check_mail_policy(integer, integer) IS 'Internal: AU007 unless the mail budget arguments are >= 1.';
REVOKE ALL ON FUNCTION activity.fn_check_mail_policy(integer, integer) FROM PUBLIC;

-- Issues a one-time email token (earlier unused ones of the purpose are burnt).
-- The caller holds the users row and has checked that the user may get one.
CREATE FUNCTION activity.fn_issue_email_token(p_user_id uuid, p_email text, p_purpose text, p_token_hash text,
                                              p_ttl_seconds integer, p_ctx jsonb)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION activity.fn_issue_email_token(uuid, text, text, text, integer, jsonb) IS 'Internal: burns the user''s unused tokens of the purpose and stores a new one. AU007 when the hash is taken. Audit email_token_created.';
REVOKE ALL ON FUNCTION activity.fn_issue_email_token(uuid, text, text, text, integer, jsonb) FROM PUBLIC;

CREATE FUNCTION activity.fn_check_email_token_args(p_purpose text, p_token_hash text, p_ttl_seconds integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
BEGIN
  IF p_purpose IS NULL OR p_purpose NOT IN ('verify_email', 'reset_password') THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown email token purpose';
  ELSIF p_ttl_seconds IS NULL OR p_ttl_seconds <= 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'ttl must be > 0';
  ELSIF p_token_hash IS NULL OR p_token_hash !~ '^[0-9a-f]{64}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash must be lowercase hex SHA-256';
  END IF;
END
$$;
COMMENT ON FUNCTION activity.fn_check_email_token_args(text, text, integer) IS 'Internal: AU007 for an unknown purpose, a ttl <= 0 or a malformed token hash.';
REVOKE ALL ON FUNCTION activity.fn_check_email_token_args(text, text, integer) FROM PUBLIC;

CREATE FUNCTION activity.fn_check_lockout_policy(p_threshold integer, p_base_seconds integer, p_max_seconds integer,
                                                 p_ip_threshold integer, p_window_seconds integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
BEGIN
  IF p_threshold IS NULL OR p_threshold < 1 OR p_ip_threshold IS NULL OR p_ip_threshold < 1
     OR p_base_seconds IS NULL OR p_base_seconds < 1 OR p_max_seconds IS NULL OR p_max_seconds < p_base_seconds
     OR p_window_seconds IS NULL OR p_window_seconds < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'invalid lockout policy';
  END IF;
END
$$;
COMMENT ON FUNCTION activity.fn_check_lockout_policy(integer, integer, integer, integer, integer) IS 'Internal: AU007 for an invalid lockout policy.';
REVOKE ALL ON FUNCTION activity.fn_check_lockout_policy(integer, integer, integer, integer, integer) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Login: reserve, verify (in the service), then complete or end
-- ---------------------------------------------------------------------------

CREATE FUNCTION activity.sp_begin_login(p_email text, p_user_id uuid, p_ip text, p_device_hash text,
                                        p_threshold integer, p_base_seconds integer, p_max_seconds integer,
                                        p_ip_threshold integer, p_window_seconds integer, p_ctx jsonb DEFAULT '{}')
RETURNS TABLE (allowed boolean, locked_until timestamptz, trusted boolean, user_id uuid, email text,
               hashed_password text, is_active boolean, is_verified boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  v_email   text := left(lower(btrim(p_email)), 255);
  v_ip      text := left(NULLIF(btrim(p_ip), ''), 255);
  v_user    activity.users%ROWTYPE;
  v_trusted boolean := false;
  v_lock    timestamptz;
BEGIN
  PERFORM activity.fn_check_lockout_policy(p_threshold, p_base_seconds, p_max_seconds, p_ip_threshold, p_window_seconds);
  IF p_device_hash IS NOT NULL AND p_device_hash !~ '^[0-9a-f]{64}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'device hash must be lowercase hex SHA-256';
  END IF;
  IF p_user_id IS NOT NULL THEN
    -- Re-authentication of a signed-in user: the account's own counter.
    SELECT * INTO v_user FROM activity.users u WHERE u.id = p_user_id;
    IF NOT FOUND THEN
      RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
    END IF;
    v_email := v_user.email;
  ELSE
    IF v_email IS NULL OR v_email = '' THEN
      RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'email is required';
    END IF;
    SELECT * INTO v_user FROM activity.users u WHERE u.email = v_email;
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
      v_lock := activity.fn_reserve_attempt('email', v_email, p_threshold, p_base_seconds, p_max_seconds, p_window_seconds);
      -- Refused by the account: the address did nothing the ip must pay for.
      IF v_lock IS NOT NULL AND v_ip IS NOT NULL THEN
        PERFORM activity.fn_release_attempt('ip', v_ip, p_ip_threshold);
      END IF;
    END IF;
  END IF;

  IF v_lock IS NOT NULL THEN
    PERFORM activity.fn_audit('login_refused', v_user.id, p_ctx,
      jsonb_build_object('email', v_email, 'locked_until', v_lock, 'trusted_device', v_trusted,
                         'reauth', p_user_id IS NOT NULL));
    RETURN QUERY SELECT false, v_lock, v_trusted, NULL::uuid, NULL::text, NULL::text, NULL::boolean, NULL::boolean;
    RETURN;
  END IF;
  RETURN QUERY SELECT true, NULL::timestamptz, v_trusted, v_user.id, v_user.email::text, v_user.hashed_password::text,
                      v_user.is_active, v_user.is_verified;
END
$$;
COMMENT ON FUNCTION activity.sp_begin_login(text, uuid, text, text, integer, integer, integer, integer, integer, jsonb) IS 'Starts a password check: reserves (counts) the attempt before the password is verified, per trusted device, or per ip and normalised email; refuses while locked (allowed false, locked_until, audit login_refused). With p_user_id it is a re-authentication of that user (AU002 unknown). Returns the user row (null for an unknown email) when allowed. AU007 bad policy, email or device hash.';
REVOKE ALL ON FUNCTION activity.sp_begin_login(text, uuid, text, text, integer, integer, integer, integer, integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_begin_login(text, uuid, text, text, integer, integer, integer, integer, integer, jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_end_login_attempt(p_email text, p_ip text, p_device_hash text, p_outcome text,
                                              p_threshold integer, p_ip_threshold integer, p_ctx jsonb DEFAULT '{}')
RETURNS TABLE (failed_count integer, locked_until timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
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
COMMENT ON FUNCTION activity.sp_end_login_attempt(text, text, text, text, integer, integer, jsonb) IS 'Ends a password check begun by sp_begin_login that did not start a session. password_ok (a right password that starts no session: a re-authentication, an unverified login) gives the reservation back; login_failed / reauth_failed keep it counted, mirror it onto the account and audit it (+ account_locked, device_locked, ip_locked at the thresholds). p_device_hash only when the attempt came from a trusted device. Returns the count and the running lock. AU007 bad outcome or arguments.';
REVOKE ALL ON FUNCTION activity.sp_end_login_attempt(text, text, text, text, integer, integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_end_login_attempt(text, text, text, text, integer, integer, jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_complete_login(p_user_id uuid, p_ip text, p_device_hash text, p_new_device_hash text,
                                           p_device_ttl_seconds integer, p_ip_threshold integer,
                                           p_ctx jsonb DEFAULT '{}')
RETURNS TABLE (device_hash text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION activity.sp_complete_login(uuid, text, text, text, integer, integer, jsonb) IS 'Records a successful password check: last_login_at/ip; from a trusted device (p_device_hash) clears that device''s counter and extends it, otherwise clears the account counter, gives the ip reservation back and trusts a new device (p_new_device_hash; ten per user). Returns the device hash in effect. AU002/AU003/AU007. Audit login_success.';
REVOKE ALL ON FUNCTION activity.sp_complete_login(uuid, text, text, text, integer, integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_complete_login(uuid, text, text, text, integer, integer, jsonb) TO auth_api_user;

-- ---------------------------------------------------------------------------
-- Signup and email links: one call, the same work for every address
-- ---------------------------------------------------------------------------

CREATE FUNCTION activity.sp_signup(p_email text, p_hashed_password text, p_token_hash text, p_ttl_seconds integer,
                                   p_mail_max integer, p_mail_window_seconds integer, p_ctx jsonb DEFAULT '{}')
RETURNS TABLE (status text, user_id uuid, email text, send boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION activity.sp_signup(text, text, text, integer, integer, integer, jsonb) IS 'Signup in one call: a new address gets an unverified user and a verify_email token (status created); a taken one nothing but a notice (status taken). send = within the mail budget of that address and kind. AU008 bad email, AU007 bad hash, token or policy. Audit user_created + email_token_created / signup_existing.';
REVOKE ALL ON FUNCTION activity.sp_signup(text, text, text, integer, integer, integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_signup(text, text, text, integer, integer, integer, jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_request_email_link(p_email text, p_purpose text, p_token_hash text, p_ttl_seconds integer,
                                               p_mail_max integer, p_mail_window_seconds integer, p_ctx jsonb DEFAULT '{}')
RETURNS TABLE (send boolean, email text, suppressed boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
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
COMMENT ON FUNCTION activity.sp_request_email_link(text, text, text, integer, integer, integer, jsonb) IS 'Forgot-password / resend-verification in one call, the same path for every address: counts the mail budget, and when an active user may get the link (reset: any; verify: unverified) and the budget allows, stores the token (send, email). suppressed = a link was due but over budget (audit mail_suppressed). AU007 bad purpose, ttl, hash, policy or empty email. Audit email_token_created.';
REVOKE ALL ON FUNCTION activity.sp_request_email_link(text, text, text, integer, integer, integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_request_email_link(text, text, text, integer, integer, integer, jsonb) TO auth_api_user;

-- ---------------------------------------------------------------------------
-- A new password burns every outstanding email link (same signatures)
-- ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION activity.sp_update_password(p_user_id uuid, p_hashed_password text, p_end_sessions boolean DEFAULT true,
                                                       p_keep_family_id uuid DEFAULT NULL, p_ctx jsonb DEFAULT '{}')
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION activity.sp_update_password(uuid, text, boolean, uuid, jsonb) IS 'Sets a new password hash. With p_end_sessions revokes every session but p_keep_family_id (password_changed), burns every unused email token, and returns how many sessions ended; without, a rehash. AU002/AU003/AU007.';

CREATE OR REPLACE FUNCTION activity.sp_consume_email_token(p_token_hash text, p_purpose text, p_new_hashed_password text DEFAULT NULL,
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
    -- Every other outstanding link (of either purpose) dies with the old password.
    UPDATE activity.email_tokens e SET used_at = now()
     WHERE e.user_id = v_user.id AND e.used_at IS NULL;
    PERFORM activity.fn_audit('password_reset', v_user.id, p_ctx, jsonb_build_object('sessions_ended', v_ended));
  END IF;
  RETURN QUERY SELECT v_user.id, v_user.email::text;
END
$$;
COMMENT ON FUNCTION activity.sp_consume_email_token(text, text, text, jsonb) IS 'Uses a one-time email token: verify_email marks the address verified; reset_password sets the new hash, lifts the account lock, ends all sessions (password_reset) and burns every other unused email token. AU004 unknown/other purpose, AU006 used, AU005 expired, AU003 inactive, AU007 bad purpose or missing hash. Audit email_verified / password_reset.';

-- ---------------------------------------------------------------------------
-- Cleanup also forgets expired devices and past mail windows (same signature)
-- ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION activity.sp_cleanup_expired(p_audit_retention_days integer, p_attempt_retention_hours integer DEFAULT 24)
RETURNS TABLE (item text, deleted bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
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

-- Down Migration

-- Restores the definitions of 1763870000000_initial-schema.
CREATE OR REPLACE FUNCTION activity.sp_cleanup_expired(p_audit_retention_days integer, p_attempt_retention_hours integer DEFAULT 24)
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

CREATE OR REPLACE FUNCTION activity.sp_consume_email_token(p_token_hash text, p_purpose text, p_new_hashed_password text DEFAULT NULL,
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

CREATE OR REPLACE FUNCTION activity.sp_update_password(p_user_id uuid, p_hashed_password text, p_end_sessions boolean DEFAULT true,
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

DROP FUNCTION activity.sp_request_email_link(text, text, text, integer, integer, integer, jsonb);
DROP FUNCTION activity.sp_signup(text, text, text, integer, integer, integer, jsonb);
DROP FUNCTION activity.sp_complete_login(uuid, text, text, text, integer, integer, jsonb);
DROP FUNCTION activity.sp_end_login_attempt(text, text, text, text, integer, integer, jsonb);
DROP FUNCTION activity.sp_begin_login(text, uuid, text, text, integer, integer, integer, integer, integer, jsonb);
DROP FUNCTION activity.fn_check_lockout_policy(integer, integer, integer, integer, integer);
DROP FUNCTION activity.fn_check_email_token_args(text, text, integer);
DROP FUNCTION activity.fn_issue_email_token(uuid, text, text, text, integer, jsonb);
DROP FUNCTION activity.fn_check_mail_policy(integer, integer);
DROP FUNCTION activity.fn_take_mail_budget(text, text, integer, integer);
DROP FUNCTION activity.fn_release_attempt(text, text, integer);
DROP FUNCTION activity.fn_reserve_attempt(text, text, integer, integer, integer, integer);

DROP TABLE activity.mail_budget;
DROP TABLE activity.trusted_devices;

DELETE FROM activity.login_attempts a WHERE a.scope = 'device';
ALTER TABLE activity.login_attempts DROP CONSTRAINT login_attempts_scope_check;
ALTER TABLE activity.login_attempts ADD CONSTRAINT login_attempts_scope_check CHECK (scope IN ('email', 'ip'));
COMMENT ON TABLE activity.login_attempts IS 'Failed-login counters and locks per normalised email (account or not) and per client IP.';
