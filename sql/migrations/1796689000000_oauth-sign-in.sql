-- Up Migration
--
-- Sign-in with a provider identity (issue 16), in one transaction: find the user by
-- the linked identity, else by address (linking it automatically only when both the
-- provider and the account vouch for the address: an unverified side is how
-- pre-account-takeover works), else create a verified user without a password. It
-- hands out a one-time exchange code, traded for a session by sp_consume_oauth_code.
--
-- Concurrency: pg_advisory_xact_lock(8154, hashtext(provider:provider_user_id)) comes
-- first (before the users row: sp_link_oauth_provider takes it in the same order), so
-- the first sign-ins of one identity run one after the other and the later ones find
-- its link. Two identities asserting one new address meet at the users email key
-- (ON CONFLICT DO NOTHING): the later one starts over and finds the user.

CREATE FUNCTION activity.fn_issue_oauth_code(p_user_id uuid, p_provider activity.oauth_provider, p_code_hash text, p_ttl_seconds integer)
RETURNS void
LANGUAGE plpgsql SET search_path = activity, pg_temp
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
COMMENT ON FUNCTION activity.fn_issue_oauth_code(uuid, activity.oauth_provider, text, integer) IS 'Internal: stores a one-time exchange code (its hash) for the user; AU007 when the hash is already stored.';
REVOKE ALL ON FUNCTION activity.fn_issue_oauth_code(uuid, activity.oauth_provider, text, integer) FROM PUBLIC;

CREATE FUNCTION activity.sp_oauth_sign_in(p_provider text, p_provider_user_id text, p_email text, p_email_verified boolean,
                                          p_code_hash text, p_code_ttl_seconds integer, p_ctx jsonb DEFAULT '{}')
RETURNS TABLE (status text, user_id uuid, email text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = activity, pg_temp
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
COMMENT ON FUNCTION activity.sp_oauth_sign_in(text, text, text, boolean, text, integer, jsonb) IS 'Sign-in with a provider identity; one row (status, user_id, email). signed_in: the identity is linked (link refreshed, audit oauth_login); linked: not linked, an active verified user has the address and the provider verified it (link added, audit oauth_linked); created: no user has the address and the provider verified it (a verified user without password, audits user_created, email_verified, oauth_linked). These three store the exchange code. link_required: a user has the address but one side is unverified or the user has another identity of the provider (audit oauth_link_refused); inactive: the user is deactivated (audit oauth_login_refused); unverified_email: no such user and the provider did not verify the address (nothing written, no user id). Safe under concurrency: one user and one link per identity. AU007 bad provider, provider_user_id (1..255), code hash or ttl (1..600) or a code hash already stored; AU008 bad email.';
REVOKE ALL ON FUNCTION activity.sp_oauth_sign_in(text, text, text, boolean, text, integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_oauth_sign_in(text, text, text, boolean, text, integer, jsonb) TO auth_api_user;

-- Not audited: the sign-in that issued the code was, and the session it starts is (session_started).
CREATE FUNCTION activity.sp_consume_oauth_code(p_code_hash text, p_ctx jsonb DEFAULT '{}')
RETURNS TABLE (user_id uuid, provider text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = activity, pg_temp
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
COMMENT ON FUNCTION activity.sp_consume_oauth_code(text, jsonb) IS 'Trades a one-time exchange code: deletes it and returns (user_id, provider); no row when unknown, used, expired or its user inactive. Exactly one of parallel callers gets the row. AU007 bad hash format. Not audited (the sign-in and the session that follows are).';
REVOKE ALL ON FUNCTION activity.sp_consume_oauth_code(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_consume_oauth_code(text, jsonb) TO auth_api_user;

-- Down Migration

DROP FUNCTION activity.sp_consume_oauth_code(text, jsonb);
DROP FUNCTION activity.sp_oauth_sign_in(text, text, text, boolean, text, integer, jsonb);
DROP FUNCTION activity.fn_issue_oauth_code(uuid, activity.oauth_provider, text, integer);
