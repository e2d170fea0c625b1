-- Up Migration
--
-- Support sees the profile fields (issue 17: activity_readonly sees profile fields
-- but no secrets). New last columns are an in-place change of the view (its grant stays).

CREATE OR REPLACE VIEW activity.active_users AS
  SELECT u.id, u.email, u.is_verified, u.created_at, u.verified_at, u.last_login_at, u.locked_until,
         u.hashed_password IS NOT NULL AS has_password,
         u.username, u.first_name, u.last_name, u.phone
    FROM activity.users u
   WHERE u.is_active;
COMMENT ON VIEW activity.active_users IS 'Active accounts with their profile fields, without password hashes; has_password false: the account signs in through a linked provider only.';

-- Down Migration

-- A view cannot lose a column in place: drop it and create it as it was, with its grant.
DROP VIEW activity.active_users;
CREATE VIEW activity.active_users AS
  SELECT u.id, u.email, u.is_verified, u.created_at, u.verified_at, u.last_login_at, u.locked_until,
         u.hashed_password IS NOT NULL AS has_password
    FROM activity.users u
   WHERE u.is_active;
COMMENT ON VIEW activity.active_users IS 'Active accounts, without password hashes; has_password false: the account signs in through a linked provider only.';
GRANT SELECT ON activity.active_users TO activity_readonly;
