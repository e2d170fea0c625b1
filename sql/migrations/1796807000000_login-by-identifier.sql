-- Up Migration
--
-- Login by username or email (issue 17): the first argument becomes an identifier
-- (its name changes, so DROP and CREATE). The lock design of docs/security.md stays:
-- the attempt is reserved before the password is checked, and the account's counter
-- is keyed by its address whichever of its names was typed, so a username does not
-- give a second budget of guesses. The device hash check goes through fn_check_sha256_hex.

DROP FUNCTION activity.sp_begin_login(text, uuid, text, text, integer, integer, integer, integer, integer, jsonb);
CREATE FUNCTION activity.sp_begin_login(p_identifier text, p_user_id uuid, p_ip text, p_device_hash text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_ip_threshold integer, p_window_seconds integer, p_ctx jsonb DEFAULT '{}'::jsonb)
RETURNS TABLE(allowed boolean, locked_until timestamp with time zone, trusted boolean, user_id uuid, email text, hashed_password text, is_active boolean, is_verified boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
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
COMMENT ON FUNCTION activity.sp_begin_login(text, uuid, text, text, integer, integer, integer, integer, integer, jsonb) IS 'Starts a password check for an identifier (an address when it holds an @, else a username, any letter case): reserves (counts) the attempt before the password is verified, per trusted device, or per ip and the account''s normalised address (an unknown identifier: itself, normalised); refuses while locked (allowed false, locked_until, audit login_refused). With p_user_id it is a re-authentication of that user (AU002 unknown). Returns the user row (null for an unknown identifier) when allowed; sp_end_login_attempt then takes the account''s email, or the unknown identifier itself. AU007 bad policy, identifier or device hash.';
REVOKE ALL ON FUNCTION activity.sp_begin_login(text, uuid, text, text, integer, integer, integer, integer, integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_begin_login(text, uuid, text, text, integer, integer, integer, integer, integer, jsonb) TO auth_api_user;

-- Down Migration

DROP FUNCTION activity.sp_begin_login(text, uuid, text, text, integer, integer, integer, integer, integer, jsonb);
CREATE FUNCTION activity.sp_begin_login(p_email text, p_user_id uuid, p_ip text, p_device_hash text, p_threshold integer, p_base_seconds integer, p_max_seconds integer, p_ip_threshold integer, p_window_seconds integer, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(allowed boolean, locked_until timestamp with time zone, trusted boolean, user_id uuid, email text, hashed_password text, is_active boolean, is_verified boolean)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $_$
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
$_$;
COMMENT ON FUNCTION activity.sp_begin_login(text, uuid, text, text, integer, integer, integer, integer, integer, jsonb) IS 'Starts a password check: reserves (counts) the attempt before the password is verified, per trusted device, or per ip and normalised email; refuses while locked (allowed false, locked_until, audit login_refused). With p_user_id it is a re-authentication of that user (AU002 unknown). Returns the user row (null for an unknown email) when allowed. AU007 bad policy, email or device hash.';
REVOKE ALL ON FUNCTION activity.sp_begin_login(text, uuid, text, text, integer, integer, integer, integer, integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_begin_login(text, uuid, text, text, integer, integer, integer, integer, integer, jsonb) TO auth_api_user;
