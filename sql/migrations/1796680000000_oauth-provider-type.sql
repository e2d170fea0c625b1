-- Up Migration
--
-- Sign in with Google and GitHub (issue 16). The providers are one enum type, the one
-- place they are listed in SQL (OAUTH_PROVIDERS in src/db/procedures.ts is held equal
-- to it by test/db/vocabularies.test.ts). Procedures take the provider as text and turn
-- it into the type through fn_require_oauth_provider, so a bad one is AU007, never a 22P02.

CREATE TYPE activity.oauth_provider AS ENUM ('google', 'github');
COMMENT ON TYPE activity.oauth_provider IS 'An external identity provider a user may sign in with.';

-- Checked against the labels rather than by a failing cast: no subtransaction per call.
CREATE FUNCTION activity.fn_require_oauth_provider(p_provider text)
RETURNS activity.oauth_provider
LANGUAGE plpgsql STABLE SET search_path = activity, pg_temp
AS $$
BEGIN
  IF p_provider IS NULL OR NOT p_provider = ANY (enum_range(NULL::activity.oauth_provider)::text[]) THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown oauth provider';
  END IF;
  RETURN p_provider::activity.oauth_provider;
END
$$;
COMMENT ON FUNCTION activity.fn_require_oauth_provider(text) IS 'Internal: the text as an oauth_provider; AU007 when NULL or not one of its labels.';
REVOKE ALL ON FUNCTION activity.fn_require_oauth_provider(text) FROM PUBLIC;

-- Down Migration

DROP FUNCTION activity.fn_require_oauth_provider(text);
DROP TYPE activity.oauth_provider;
