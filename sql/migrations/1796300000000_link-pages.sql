-- Up Migration
--
-- Link pages (issue 13): a repeated press of an already completed mail link shows
-- success, honestly. A double-click, a reload or a browser without JavaScript
-- sends the form twice; the second POST finds the token used (AU006). This read
-- tells the service what that link achieved, so it can tell "done by this link"
-- from "used up and not done":
-- - verify_email: whether the owner's address is verified (a link superseded by a
--   newer one is "used" too, and then it is not);
-- - reset_password: the owner's current password hash, but only while the token
--   was used in the last p_window_seconds, only when it was that token's reset that
--   set the current password (password_changed_at is the reset's instant and the
--   audit holds the password_reset of that instant: a token burnt by a later change
--   of password shares the instant but not the audit action), and only for the
--   holder of the token (its hash is the key). The service checks the presented
--   password against it; design and limits: src/auth/service.ts resetPasswordFromLink.
-- Nothing is written: opening or re-sending a link must not change anything.

CREATE FUNCTION activity.sp_get_used_email_token(p_token_hash text, p_purpose text, p_window_seconds integer)
RETURNS TABLE (is_verified boolean, hashed_password text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION activity.sp_get_used_email_token(text, text, integer) IS 'What a used email token of the purpose achieved: its owner''s is_verified, and for a reset_password token used in the last p_window_seconds whose reset set the current password, the owner''s current hash (else NULL). No row when the token is unknown, unused, of another purpose or its owner inactive. AU007 bad purpose, window (1..3600) or hash format. Writes nothing.';
REVOKE ALL ON FUNCTION activity.sp_get_used_email_token(text, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_get_used_email_token(text, text, integer) TO auth_api_user;

-- Down Migration

DROP FUNCTION activity.sp_get_used_email_token(text, text, integer);
