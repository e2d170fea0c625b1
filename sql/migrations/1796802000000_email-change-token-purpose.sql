-- Up Migration
--
-- A change of email is confirmed through a mailed link like the others; its token
-- keeps the new address in email_tokens.email. Only sp_request_email_change and
-- sp_confirm_email_change handle this purpose: the generic link procedures check
-- theirs through fn_require_email_token_purpose, which refuses it (AU007), so a
-- change_email token can never be consumed as a verification or a reset.

ALTER TYPE activity.email_token_purpose ADD VALUE 'change_email';

CREATE OR REPLACE FUNCTION activity.fn_require_email_token_purpose(p_purpose text)
RETURNS activity.email_token_purpose
LANGUAGE plpgsql STABLE SET search_path = activity, pg_temp
AS $$
BEGIN
  IF p_purpose IS NULL OR p_purpose = 'change_email'
     OR NOT p_purpose = ANY (enum_range(NULL::activity.email_token_purpose)::text[]) THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown email token purpose';
  END IF;
  RETURN p_purpose::activity.email_token_purpose;
END
$$;
COMMENT ON FUNCTION activity.fn_require_email_token_purpose(text) IS 'Internal: the text as an email_token_purpose of the generic link procedures; AU007 when NULL, not one of its labels, or change_email (handled only by the email-change procedures).';

-- Down Migration

-- An enum loses a label only by being built again; the function returning it goes with it.
DELETE FROM activity.email_tokens e WHERE e.purpose = 'change_email';
DROP FUNCTION activity.fn_require_email_token_purpose(text);
ALTER TYPE activity.email_token_purpose RENAME TO email_token_purpose_old;
CREATE TYPE activity.email_token_purpose AS ENUM ('verify_email', 'reset_password');
COMMENT ON TYPE activity.email_token_purpose IS 'What a one-time email token is for.';
ALTER TABLE activity.email_tokens
  ALTER COLUMN purpose TYPE activity.email_token_purpose USING purpose::text::activity.email_token_purpose;
DROP TYPE activity.email_token_purpose_old;
CREATE FUNCTION activity.fn_require_email_token_purpose(p_purpose text)
RETURNS activity.email_token_purpose
LANGUAGE plpgsql STABLE SET search_path = activity, pg_temp
AS $$
BEGIN
  IF p_purpose IS NULL OR NOT p_purpose = ANY (enum_range(NULL::activity.email_token_purpose)::text[]) THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown email token purpose';
  END IF;
  RETURN p_purpose::activity.email_token_purpose;
END
$$;
COMMENT ON FUNCTION activity.fn_require_email_token_purpose(text) IS 'Internal: the text as an email_token_purpose; AU007 when NULL or not one of its labels.';
REVOKE ALL ON FUNCTION activity.fn_require_email_token_purpose(text) FROM PUBLIC;
