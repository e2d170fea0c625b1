-- Up Migration
--
-- The reserved usernames are listed here and nowhere else: the service may pre-check
-- the format, but only the procedures decide (through fn_require_username). Names a
-- user could pass off as the service or its staff, and path words of the API.

CREATE FUNCTION activity.fn_username_is_reserved(p_username text)
RETURNS boolean
LANGUAGE sql IMMUTABLE
AS $$
  SELECT lower(p_username) = ANY (ARRAY[
    'admin', 'administrator', 'root', 'support', 'help', 'system', 'sysadmin', 'api', 'auth', 'oauth',
    'me', 'null', 'undefined', 'nobody', 'anonymous', 'owner', 'staff', 'security', 'moderator',
    'postmaster', 'webmaster', 'hostmaster', 'abuse', 'noreply', 'no-reply', 'info', 'activity',
    'login', 'logout', 'signup', 'account', 'settings', 'profile', 'user', 'users', 'test'])
$$;
COMMENT ON FUNCTION activity.fn_username_is_reserved(text) IS 'Internal: whether a username is reserved (any letter case); the one list of reserved names. Inlined by the planner.';
REVOKE ALL ON FUNCTION activity.fn_username_is_reserved(text) FROM PUBLIC;

CREATE FUNCTION activity.fn_require_username(p_username text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = activity, pg_temp
AS $$
BEGIN
  IF p_username IS NULL OR p_username !~ '^[A-Za-z0-9_.]{3,32}$' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU012', MESSAGE = 'username must be 3..32 letters, digits, _ or .';
  ELSIF activity.fn_username_is_reserved(p_username) THEN
    RAISE EXCEPTION USING ERRCODE = 'AU011', MESSAGE = 'username is reserved';
  END IF;
  RETURN p_username;
END
$$;
COMMENT ON FUNCTION activity.fn_require_username(text) IS 'Internal: the username when it is 3..32 of [A-Za-z0-9_.] (AU012 otherwise) and not reserved (AU011).';
REVOKE ALL ON FUNCTION activity.fn_require_username(text) FROM PUBLIC;

-- Down Migration

DROP FUNCTION activity.fn_require_username(text);
DROP FUNCTION activity.fn_username_is_reserved(text);
