-- Up Migration
--
-- Support sees whether an account has two-factor sign-in on (issue 17: the seed-001
-- views show the new columns). Whether, never the secret or the recovery hashes.
-- A new last column is an in-place change of the view (its grant stays).

CREATE OR REPLACE VIEW activity.active_users AS
  SELECT u.id, u.email, u.is_verified, u.created_at, u.verified_at, u.last_login_at, u.locked_until,
         u.hashed_password IS NOT NULL AS has_password,
         u.username, u.first_name, u.last_name, u.phone,
         u.mfa_enabled
    FROM activity.users u
   WHERE u.is_active;
COMMENT ON VIEW activity.active_users IS 'Active accounts with their profile fields and whether two-factor sign-in is on, without password hashes or second-factor secrets; has_password false: the account signs in through a linked provider only.';

-- Down Migration

-- A view cannot lose a column in place: drop it and create it as it was, with its grant.
DROP VIEW activity.active_users;
CREATE VIEW activity.active_users AS
  SELECT u.id, u.email, u.is_verified, u.created_at, u.verified_at, u.last_login_at, u.locked_until,
         u.hashed_password IS NOT NULL AS has_password,
         u.username, u.first_name, u.last_name, u.phone
    FROM activity.users u
   WHERE u.is_active;
COMMENT ON VIEW activity.active_users IS 'Active accounts with their profile fields, without password hashes; has_password false: the account signs in through a linked provider only.';
GRANT SELECT ON activity.active_users TO activity_readonly;
