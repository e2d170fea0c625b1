-- Up Migration
--
-- A user created through Google or GitHub has no password until a reset sets one
-- (sp_consume_email_token reset_password). NULL means "no password"; the argon2 CHECK
-- stays and lets NULL through. That every active user keeps at least one way in (a
-- password or a linked provider) is the procedures' rule, not a constraint: none ever
-- sets the hash to NULL, and sp_unlink_oauth_provider refuses to remove the last way in
-- while it holds the users row FOR UPDATE.

ALTER TABLE activity.users ALTER COLUMN hashed_password DROP NOT NULL;
COMMENT ON TABLE activity.users IS 'Accounts. email is stored normalised (lower, trimmed); hashed_password is an argon2 PHC string, or NULL: no password (the user signs in only through a linked provider, activity.oauth_providers). No procedure sets it to NULL, and sp_unlink_oauth_provider never removes the last way in, so an active user always keeps one.';

-- Down Migration

-- Fails while a passwordless user exists: such a user would be locked out by the
-- old schema, so the down migration refuses rather than inventing a password.
ALTER TABLE activity.users ALTER COLUMN hashed_password SET NOT NULL;
COMMENT ON TABLE activity.users IS 'Accounts. email is stored normalised (lower, trimmed); hashed_password is an argon2 PHC string.';
