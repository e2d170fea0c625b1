-- Up Migration
--
-- Change of email (issue 17): the signed-in user asks (the service has checked the
-- password), a link goes to the new address and a notice to the old one; nothing
-- changes until the link comes back. Enumeration-safe like sp_signup: a taken new
-- address gets a notice instead of a link, with the same answer and the same number
-- of mails, so the requester cannot tell the two apart.

CREATE FUNCTION activity.sp_request_email_change(
  p_user_id uuid, p_new_email text, p_token_hash text, p_ttl_seconds integer,
  p_mail_max integer, p_mail_window_seconds integer, p_ctx jsonb DEFAULT '{}')
RETURNS TABLE (status text, old_email text, new_email text, mail_new boolean, mail_old boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION activity.sp_request_email_change(uuid, text, text, integer, integer, integer, jsonb) IS 'Asks to move the account to a new address (the caller has re-authenticated). status link: the address is free, a change_email token (its hash, the new address in email_tokens.email) is stored when mail_new (the new address within its mail budget); taken: another account has it, mail_new says whether to send it a notice; unchanged: it is the current address, nothing happens. mail_old: send the notice to the current address (link and taken, within its budget). AU002/AU003, AU007 bad hash, ttl or mail policy, AU008 bad email. Audit email_change_requested (+ email_token_created).';
REVOKE ALL ON FUNCTION activity.sp_request_email_change(uuid, text, text, integer, integer, integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_request_email_change(uuid, text, text, integer, integer, integer, jsonb) TO auth_api_user;

CREATE FUNCTION activity.sp_confirm_email_change(p_token_hash text, p_ctx jsonb DEFAULT '{}')
RETURNS TABLE (user_id uuid, old_email text, new_email text, sessions_ended integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
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
COMMENT ON FUNCTION activity.sp_confirm_email_change(text, jsonb) IS 'Uses a change_email token: the account takes the new address (verified), every session ends (email_changed), every other unused email token is burnt. Returns the user, both addresses and the sessions ended. AU004 unknown or other purpose, AU006 used, AU005 expired, AU003 inactive, AU001 the address was taken meanwhile, AU007 bad hash format. Audit email_changed.';
REVOKE ALL ON FUNCTION activity.sp_confirm_email_change(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_confirm_email_change(text, jsonb) TO auth_api_user;

-- Down Migration

DROP FUNCTION activity.sp_confirm_email_change(text, jsonb);
DROP FUNCTION activity.sp_request_email_change(uuid, text, text, integer, integer, integer, jsonb);
