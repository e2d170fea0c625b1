-- Up Migration
--
-- Managing a signed-in user's linked identities (issue 16). Both changes take the users
-- row FOR UPDATE first, so a link and an unlink of one user, or two unlinks, run one
-- after the other: the unlink's "is this the last way in?" cannot be raced. No procedure
-- sets hashed_password to NULL, so "a password or another link" is the whole rule.
-- sp_link_oauth_provider takes the identity's lock (8154, as sp_oauth_sign_in) before
-- the users row, the order sp_oauth_sign_in uses too.

CREATE FUNCTION activity.sp_link_oauth_provider(p_user_id uuid, p_provider text, p_provider_user_id text, p_email text,
                                                p_email_verified boolean, p_ctx jsonb DEFAULT '{}')
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = activity, pg_temp
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
COMMENT ON FUNCTION activity.sp_link_oauth_provider(uuid, text, text, text, boolean, jsonb) IS 'Links a provider identity to a signed-in user. Returns linked (audit oauth_linked), already_linked (this identity on this user; nothing written), unverified_account (the user''s address is not verified), identity_taken (linked to another user), provider_in_use (the user has another identity of this provider); the refusals audit oauth_link_refused. AU002/AU003 unknown or inactive user, AU007 bad provider or provider_user_id (1..255), AU008 bad email (NULL allowed).';
REVOKE ALL ON FUNCTION activity.sp_link_oauth_provider(uuid, text, text, text, boolean, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_link_oauth_provider(uuid, text, text, text, boolean, jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_unlink_oauth_provider(p_user_id uuid, p_provider text, p_ctx jsonb DEFAULT '{}')
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = activity, pg_temp
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
COMMENT ON FUNCTION activity.sp_unlink_oauth_provider(uuid, text, jsonb) IS 'Removes the user''s identity of a provider (and its untraded exchange codes). Returns unlinked (audit oauth_unlinked), not_linked, or last_way_in: the user has no password and no other link, nothing removed (audit oauth_unlink_refused). AU002/AU003 unknown or inactive user, AU007 bad provider.';
REVOKE ALL ON FUNCTION activity.sp_unlink_oauth_provider(uuid, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_unlink_oauth_provider(uuid, text, jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_list_oauth_providers(p_user_id uuid)
RETURNS TABLE (provider text, email text, email_verified boolean, created_at timestamptz, last_login_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = activity, pg_temp
AS $$
  SELECT p.provider::text, p.email::text, p.email_verified, p.created_at, p.last_login_at
    FROM activity.oauth_providers p
   WHERE p.user_id = p_user_id
   ORDER BY p.provider
$$;
COMMENT ON FUNCTION activity.sp_list_oauth_providers(uuid) IS 'The identities linked to the user, in the order of the oauth_provider type (google, github); none for an unknown user. Writes nothing.';
REVOKE ALL ON FUNCTION activity.sp_list_oauth_providers(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_list_oauth_providers(uuid) TO auth_api_user;

-- Down Migration

DROP FUNCTION activity.sp_list_oauth_providers(uuid);
DROP FUNCTION activity.sp_unlink_oauth_provider(uuid, text, jsonb);
DROP FUNCTION activity.sp_link_oauth_provider(uuid, text, text, text, boolean, jsonb);
