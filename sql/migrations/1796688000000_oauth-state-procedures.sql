-- Up Migration
--
-- The two ends of an OAuth redirect (issue 16): the state is stored (hashed) when the
-- browser is sent to the provider and consumed at the callback. Consumption deletes the
-- row whenever it is found, also when the binding or the provider is wrong: a state
-- that was presented once never works again, whoever presented it.

-- Internal: the argument checks every OAuth procedure shares.
CREATE FUNCTION activity.fn_check_sha256_hex(p_value text, p_what text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = activity, pg_temp
AS $$
BEGIN
  IF p_value IS NULL OR p_value !~ '^[0-9a-f]{64}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = p_what || ' must be lowercase hex SHA-256';
  END IF;
END
$$;
COMMENT ON FUNCTION activity.fn_check_sha256_hex(text, text) IS 'Internal: AU007 unless the value is a lowercase hex SHA-256 (64 characters); p_what names it in the message.';
REVOKE ALL ON FUNCTION activity.fn_check_sha256_hex(text, text) FROM PUBLIC;

-- Not audited: anyone may press "Sign in with Google"; the callback's outcome
-- (sp_oauth_sign_in, sp_link_oauth_provider) is what the audit log records.
CREATE FUNCTION activity.sp_create_oauth_state(p_state_hash text, p_binding_hash text, p_provider text, p_redirect_to text,
                                               p_link_user_id uuid, p_ttl_seconds integer, p_ctx jsonb DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = activity, pg_temp
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
COMMENT ON FUNCTION activity.sp_create_oauth_state(text, text, text, text, uuid, integer, jsonb) IS 'Stores a pending OAuth flow: the hashes of the state and of the browser binding, the provider, where to go afterwards, and for a link flow the signed-in user. AU007 bad provider, hash, ttl (1..3600) or redirect (1..2048 characters), or a state hash already stored; AU002/AU003 unknown or inactive link user. Not audited (no security event).';
REVOKE ALL ON FUNCTION activity.sp_create_oauth_state(text, text, text, text, uuid, integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_create_oauth_state(text, text, text, text, uuid, integer, jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_consume_oauth_state(p_state_hash text, p_binding_hash text, p_provider text)
RETURNS TABLE (status text, redirect_to text, link_user_id uuid)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = activity, pg_temp
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
COMMENT ON FUNCTION activity.sp_consume_oauth_state(text, text, text) IS 'Consumes a stored OAuth state (deleted whenever found, so it never works twice). One row: status ok (redirect_to, link_user_id), invalid (unknown or already used), mismatch (other binding or provider; nothing revealed), expired (redirect_to only). AU007 bad provider or hash format. Not audited.';
REVOKE ALL ON FUNCTION activity.sp_consume_oauth_state(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_consume_oauth_state(text, text, text) TO auth_api_user;

-- Down Migration

DROP FUNCTION activity.sp_consume_oauth_state(text, text, text);
DROP FUNCTION activity.sp_create_oauth_state(text, text, text, text, uuid, integer, jsonb);
DROP FUNCTION activity.fn_check_sha256_hex(text, text);
