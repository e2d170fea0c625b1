-- Development seed data: one user in each state an auth service has to handle,
-- and one session in each state. Repeatable: a second run leaves the same rows
-- (state columns are put back to the seed values; a password hash once written is
-- kept). Applied by `npm run db -- seed` (src/ops/seed.ts), which supplies the
-- hash of the seed password and the seed refresh tokens through the environment,
-- in the db-init psql subset (sql/CONVENTIONS.md). Never run in production.

\getenv password_hash SEED_PASSWORD_HASH
\getenv live_token SEED_LIVE_TOKEN
\getenv expired_token SEED_EXPIRED_TOKEN
\getenv revoked_token SEED_REVOKED_TOKEN

BEGIN;

INSERT INTO activity.users AS u
       (email, hashed_password, is_verified, verified_at, is_active, failed_login_attempts, locked_until)
VALUES ('active@example.com',      :'password_hash', true,  now(), true,  0, NULL),
       ('unverified@example.com',  :'password_hash', false, NULL,  true,  0, NULL),
       ('deactivated@example.com', :'password_hash', true,  now(), false, 0, NULL),
       ('locked@example.com',      :'password_hash', true,  now(), true,  5, now() + interval '1 hour')
ON CONFLICT (email) DO UPDATE
   SET is_verified = EXCLUDED.is_verified,
       verified_at = CASE WHEN EXCLUDED.is_verified THEN COALESCE(u.verified_at, now()) END,
       is_active = EXCLUDED.is_active,
       failed_login_attempts = EXCLUDED.failed_login_attempts,
       locked_until = EXCLUDED.locked_until,
       updated_at = now();

-- The lock itself lives in login_attempts (what the login procedures read).
INSERT INTO activity.login_attempts AS a (scope, key, failed_count, locked_until)
VALUES ('email', 'locked@example.com', 5, now() + interval '1 hour')
ON CONFLICT (scope, key) DO UPDATE
   SET failed_count = EXCLUDED.failed_count, last_failed_at = now(), locked_until = EXCLUDED.locked_until;

-- Three sessions of active@example.com: live, expired, revoked.
INSERT INTO activity.refresh_tokens AS t
       (user_id, token, jti, created_at, expires_at, family_id, family_expires_at, revoked, revoked_at, revoked_reason, user_agent, ip)
SELECT u.id, encode(sha256(convert_to(s.token, 'UTF8')), 'hex'), s.jti, s.created_at, s.expires_at,
       s.family_id, s.family_expires_at, s.revoked, s.revoked_at, s.revoked_reason::activity.revoke_reason, 'seed', '127.0.0.1'
  FROM activity.users u
 CROSS JOIN (VALUES
   (:'live_token', 'seed-live', now(), now() + interval '7 days',
    '5eed0000-0000-4000-8000-000000000001'::uuid, now() + interval '30 days', false, NULL::timestamptz, NULL),
   (:'expired_token', 'seed-expired', now() - interval '10 days', now() - interval '3 days',
    '5eed0000-0000-4000-8000-000000000002'::uuid, now() + interval '20 days', false, NULL, NULL),
   (:'revoked_token', 'seed-revoked', now() - interval '2 days', now() + interval '5 days',
    '5eed0000-0000-4000-8000-000000000003'::uuid, now() + interval '28 days', true, now() - interval '1 day', 'logout')
 ) AS s(token, jti, created_at, expires_at, family_id, family_expires_at, revoked, revoked_at, revoked_reason)
 WHERE u.email = 'active@example.com'
ON CONFLICT (jti) DO UPDATE
   SET user_id = EXCLUDED.user_id, token = EXCLUDED.token, created_at = EXCLUDED.created_at,
       expires_at = EXCLUDED.expires_at, family_id = EXCLUDED.family_id,
       family_expires_at = EXCLUDED.family_expires_at, revoked = EXCLUDED.revoked,
       revoked_at = EXCLUDED.revoked_at, revoked_reason = EXCLUDED.revoked_reason, replaced_by = NULL;

COMMIT;
