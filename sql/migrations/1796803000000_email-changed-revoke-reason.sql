-- Up Migration
--
-- A confirmed change of email ends every session of the account: its own reason,
-- so the revoked tokens and the session.revoked events say why.

ALTER TYPE activity.revoke_reason ADD VALUE 'email_changed';

-- Down Migration

-- An enum loses a label only by being built again; the function returning it goes with it.
UPDATE activity.refresh_tokens t SET revoked_reason = 'logout_all' WHERE t.revoked_reason = 'email_changed';
DROP FUNCTION activity.fn_require_revoke_reason(text);
ALTER TYPE activity.revoke_reason RENAME TO revoke_reason_old;
CREATE TYPE activity.revoke_reason AS ENUM (
  'rotated', 'logout', 'logout_all', 'session_ended', 'reuse_detected',
  'password_changed', 'password_reset', 'user_deactivated');
COMMENT ON TYPE activity.revoke_reason IS 'Why a refresh token was revoked.';
ALTER TABLE activity.refresh_tokens
  ALTER COLUMN revoked_reason TYPE activity.revoke_reason USING revoked_reason::text::activity.revoke_reason;
DROP TYPE activity.revoke_reason_old;
CREATE FUNCTION activity.fn_require_revoke_reason(p_reason text)
RETURNS activity.revoke_reason
LANGUAGE plpgsql STABLE SET search_path = activity, pg_temp
AS $$
BEGIN
  IF p_reason IS NULL OR NOT p_reason = ANY (enum_range(NULL::activity.revoke_reason)::text[]) THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown revocation reason';
  END IF;
  RETURN p_reason::activity.revoke_reason;
END
$$;
COMMENT ON FUNCTION activity.fn_require_revoke_reason(text) IS 'Internal: the text as a revoke_reason; AU007 when NULL or not one of its labels.';
REVOKE ALL ON FUNCTION activity.fn_require_revoke_reason(text) FROM PUBLIC;
