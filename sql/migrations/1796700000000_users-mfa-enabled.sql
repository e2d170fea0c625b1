-- Up Migration
--
-- Two-factor sign-in (issue 17): seed 001's users carry mfa_enabled. It is set only by
-- the two-factor procedures (a confirmed TOTP enrolment) and read by the login, which
-- then asks for the second factor before any session starts.

ALTER TABLE activity.users ADD COLUMN mfa_enabled boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN activity.users.mfa_enabled IS 'Two-factor sign-in is on: a confirmed TOTP secret exists (activity.mfa_totp); set and cleared only by the mfa procedures.';

-- Down Migration

ALTER TABLE activity.users DROP COLUMN mfa_enabled;
