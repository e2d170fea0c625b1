-- Up Migration
--
-- The procedures of two-factor sign-in (issue 17): enrol, confirm, check a code
-- (the replay guard), spend a recovery code, replace the codes, disable, and the
-- login challenge between the first factor and the second. The service encrypts the
-- TOTP secret and computes the codes; these keep the state consistent under parallel
-- requests: a step is accepted once (UPDATE ... WHERE last_used_step < step), a
-- recovery code and a challenge are spent once (UPDATE ... WHERE used_at IS NULL).
-- Lock order as everywhere: the users row first.

CREATE FUNCTION activity.fn_check_recovery_hashes(p_hashes text[]) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = activity, pg_temp
    AS $$
BEGIN
  IF p_hashes IS NULL OR cardinality(p_hashes) NOT BETWEEN 1 AND 20
     OR EXISTS (SELECT 1 FROM unnest(p_hashes) h WHERE h IS NULL OR h !~ '^[0-9a-f]{64}$')
     OR (SELECT count(DISTINCT h) FROM unnest(p_hashes) h) <> cardinality(p_hashes) THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'recovery code hashes must be 1-20 distinct lowercase hex SHA-256';
  END IF;
END
$$;
COMMENT ON FUNCTION activity.fn_check_recovery_hashes(text[]) IS 'Internal: AU007 unless the array holds 1 to 20 distinct lowercase hex SHA-256 values.';
REVOKE ALL ON FUNCTION activity.fn_check_recovery_hashes(text[]) FROM PUBLIC;

CREATE FUNCTION activity.fn_lock_mfa_user(p_user_id uuid) RETURNS activity.users
    LANGUAGE plpgsql
    SET search_path = activity, pg_temp
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
COMMENT ON FUNCTION activity.fn_lock_mfa_user(uuid) IS 'Internal: the users row locked FOR NO KEY UPDATE for a two-factor change. AU002 unknown, AU003 inactive.';
REVOKE ALL ON FUNCTION activity.fn_lock_mfa_user(uuid) FROM PUBLIC;

CREATE FUNCTION activity.sp_begin_mfa_enrolment(p_user_id uuid, p_secret_ciphertext text, p_ctx jsonb DEFAULT '{}')
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = activity, pg_temp
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
COMMENT ON FUNCTION activity.sp_begin_mfa_enrolment(uuid, text, jsonb) IS 'Stores a new, unconfirmed TOTP secret (encrypted by the caller), replacing an unconfirmed one; true when stored, false when two-factor is already on (nothing changes). AU002/AU003, AU007 bad ciphertext. Audit mfa_enrolment_started.';
REVOKE ALL ON FUNCTION activity.sp_begin_mfa_enrolment(uuid, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_begin_mfa_enrolment(uuid, text, jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_get_mfa_totp(p_user_id uuid)
    RETURNS TABLE (mfa_enabled boolean, secret_ciphertext text, confirmed boolean, last_used_step bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = activity, pg_temp
    AS $$
  SELECT u.mfa_enabled, t.secret_ciphertext, t.confirmed_at IS NOT NULL, t.last_used_step
    FROM activity.users u
    LEFT JOIN activity.mfa_totp t ON t.user_id = u.id
   WHERE u.id = p_user_id AND u.is_active
$$;
COMMENT ON FUNCTION activity.sp_get_mfa_totp(uuid) IS 'The two-factor state of an active user: mfa_enabled, and the TOTP secret (ciphertext), whether it is confirmed and the last step accepted (NULL, false, NULL when there is none). No row for an unknown or inactive user. Writes nothing.';
REVOKE ALL ON FUNCTION activity.sp_get_mfa_totp(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_get_mfa_totp(uuid) TO auth_api_user;

CREATE FUNCTION activity.sp_confirm_mfa_totp(p_user_id uuid, p_step bigint, p_recovery_hashes text[], p_ctx jsonb DEFAULT '{}')
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = activity, pg_temp
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
COMMENT ON FUNCTION activity.sp_confirm_mfa_totp(uuid, bigint, text[], jsonb) IS 'Confirms the pending TOTP enrolment with the step of the code the caller checked: two-factor on, that step used, the recovery codes (hashes) stored in place of any old ones. False (nothing changes) when there is no pending enrolment, two-factor is already on, or the step is not newer than the last used. AU002/AU003, AU007 bad step or hashes. Audit mfa_enabled.';
REVOKE ALL ON FUNCTION activity.sp_confirm_mfa_totp(uuid, bigint, text[], jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_confirm_mfa_totp(uuid, bigint, text[], jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_use_mfa_totp_step(p_user_id uuid, p_step bigint, p_ctx jsonb DEFAULT '{}')
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = activity, pg_temp
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
COMMENT ON FUNCTION activity.sp_use_mfa_totp_step(uuid, bigint, jsonb) IS 'Records that a TOTP code of this step was accepted: true once per step and only for a step newer than the last accepted (a code replayed within its window, or an older one, gives false), also under parallel calls; false when two-factor is off or the user inactive. AU007 bad step. Audit mfa_verified.';
REVOKE ALL ON FUNCTION activity.sp_use_mfa_totp_step(uuid, bigint, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_use_mfa_totp_step(uuid, bigint, jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_use_mfa_recovery_code(p_user_id uuid, p_code_hash text, p_ctx jsonb DEFAULT '{}')
    RETURNS TABLE (used boolean, remaining integer)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = activity, pg_temp
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
COMMENT ON FUNCTION activity.sp_use_mfa_recovery_code(uuid, text, jsonb) IS 'Spends a recovery code (its hash) once: used true and the unused codes left; used false when unknown, already spent (also under parallel calls), two-factor off or the user inactive. AU007 bad hash. Audit mfa_recovery_code_used.';
REVOKE ALL ON FUNCTION activity.sp_use_mfa_recovery_code(uuid, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_use_mfa_recovery_code(uuid, text, jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_replace_mfa_recovery_codes(p_user_id uuid, p_recovery_hashes text[], p_ctx jsonb DEFAULT '{}')
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = activity, pg_temp
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
COMMENT ON FUNCTION activity.sp_replace_mfa_recovery_codes(uuid, text[], jsonb) IS 'Replaces every recovery code of the user (spent or not) with new ones (hashes); false when two-factor is off (nothing changes). AU002/AU003, AU007 bad hashes. Audit mfa_recovery_codes_replaced.';
REVOKE ALL ON FUNCTION activity.sp_replace_mfa_recovery_codes(uuid, text[], jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_replace_mfa_recovery_codes(uuid, text[], jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_disable_mfa(p_user_id uuid, p_ctx jsonb DEFAULT '{}')
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = activity, pg_temp
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
COMMENT ON FUNCTION activity.sp_disable_mfa(uuid, jsonb) IS 'Turns two-factor off: deletes the TOTP secret (also a pending one), the recovery codes and open challenges; true when it was on. AU002/AU003. Audit mfa_disabled.';
REVOKE ALL ON FUNCTION activity.sp_disable_mfa(uuid, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_disable_mfa(uuid, jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_create_mfa_challenge(p_token_hash text, p_user_id uuid, p_amr text[], p_device_hash text,
                                                 p_ttl_seconds integer, p_ctx jsonb DEFAULT '{}')
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = activity, pg_temp
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
COMMENT ON FUNCTION activity.sp_create_mfa_challenge(text, uuid, text[], text, integer, jsonb) IS 'Stores a login waiting for its second factor: the SHA-256 of the mfaToken, the first factor (amr {pwd} or {fed}), the trusted device of the login (hash, or NULL), valid p_ttl_seconds (1..900); sweeps the user''s dead challenges. AU002/AU003, AU007 bad hash, amr or ttl, or a hash already stored. Audit mfa_challenged.';
REVOKE ALL ON FUNCTION activity.sp_create_mfa_challenge(text, uuid, text[], text, integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_create_mfa_challenge(text, uuid, text[], text, integer, jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_get_mfa_challenge(p_token_hash text)
    RETURNS TABLE (user_id uuid, amr text[], device_hash text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = activity, pg_temp
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
COMMENT ON FUNCTION activity.sp_get_mfa_challenge(text) IS 'A live challenge (unused, unexpired, its user active): user_id, amr, device_hash; no row otherwise. AU007 bad hash. Writes nothing: a wrong code leaves the challenge for another try (the lockout counts the tries).';
REVOKE ALL ON FUNCTION activity.sp_get_mfa_challenge(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_get_mfa_challenge(text) TO auth_api_user;

CREATE FUNCTION activity.sp_consume_mfa_challenge(p_token_hash text, p_ctx jsonb DEFAULT '{}')
    RETURNS TABLE (user_id uuid, amr text[], device_hash text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = activity, pg_temp
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
COMMENT ON FUNCTION activity.sp_consume_mfa_challenge(text, jsonb) IS 'Spends a live challenge once its second factor is proven: one row (user_id, amr, device_hash) for exactly one of parallel callers; no row when unknown, used, expired or its user inactive. AU007 bad hash. Not audited (the session that follows is).';
REVOKE ALL ON FUNCTION activity.sp_consume_mfa_challenge(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_consume_mfa_challenge(text, jsonb) TO auth_api_user;

-- Down Migration

DROP FUNCTION activity.sp_consume_mfa_challenge(text, jsonb);
DROP FUNCTION activity.sp_get_mfa_challenge(text);
DROP FUNCTION activity.sp_create_mfa_challenge(text, uuid, text[], text, integer, jsonb);
DROP FUNCTION activity.sp_disable_mfa(uuid, jsonb);
DROP FUNCTION activity.sp_replace_mfa_recovery_codes(uuid, text[], jsonb);
DROP FUNCTION activity.sp_use_mfa_recovery_code(uuid, text, jsonb);
DROP FUNCTION activity.sp_use_mfa_totp_step(uuid, bigint, jsonb);
DROP FUNCTION activity.sp_confirm_mfa_totp(uuid, bigint, text[], jsonb);
DROP FUNCTION activity.sp_get_mfa_totp(uuid);
DROP FUNCTION activity.sp_begin_mfa_enrolment(uuid, text, jsonb);
DROP FUNCTION activity.fn_lock_mfa_user(uuid);
DROP FUNCTION activity.fn_check_recovery_hashes(text[]);
