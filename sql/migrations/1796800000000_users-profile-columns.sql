-- Up Migration
--
-- Seed 001's profile fields (issue 17). citext is an extension and this schema has
-- none, so a username keeps the letter case it was given and a unique index on
-- lower(username) makes "Alice" and "alice" one name. The CHECKs restate what the
-- procedures validate first (fn_require_username, sp_update_profile): a violation is a bug.

ALTER TABLE activity.users
  ADD COLUMN username varchar(32),
  ADD COLUMN first_name varchar(100),
  ADD COLUMN last_name varchar(100),
  ADD COLUMN phone varchar(16),
  ADD CONSTRAINT users_username_format_check CHECK (username ~ '^[A-Za-z0-9_.]{3,32}$'),
  ADD CONSTRAINT users_first_name_check CHECK (first_name = btrim(first_name) AND first_name <> ''),
  ADD CONSTRAINT users_last_name_check CHECK (last_name = btrim(last_name) AND last_name <> ''),
  ADD CONSTRAINT users_phone_format_check CHECK (phone ~ '^\+[1-9][0-9]{4,14}$');
CREATE UNIQUE INDEX users_username_lower_idx ON activity.users (lower(username));
COMMENT ON COLUMN activity.users.username IS 'Optional sign-in name, 3..32 of [A-Za-z0-9_.], stored as given, unique case-insensitively (users_username_lower_idx); reserved names are refused by fn_require_username.';
COMMENT ON COLUMN activity.users.phone IS 'E.164 (+ and up to 15 digits), validated by the service with libphonenumber-js.';

-- Down Migration

DROP INDEX activity.users_username_lower_idx;
ALTER TABLE activity.users
  DROP COLUMN phone,
  DROP COLUMN last_name,
  DROP COLUMN first_name,
  DROP COLUMN username;
