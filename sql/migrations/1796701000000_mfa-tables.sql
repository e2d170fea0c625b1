-- Up Migration
--
-- The second factor's state (issue 17). The TOTP secret is stored only encrypted by
-- the service (AES-256-GCM under MFA_ENCRYPTION_KEY): the database alone cannot mint
-- codes. last_used_step refuses a code presented twice within its window. Recovery
-- codes and challenge tokens are stored as their SHA-256, like every other token.
-- No grant: only the procedures (as the owner) reach these tables, and no view shows them.

CREATE TABLE activity.mfa_totp (
  user_id           uuid        NOT NULL,
  secret_ciphertext text        NOT NULL,
  confirmed_at      timestamptz,
  last_used_step    bigint      NOT NULL DEFAULT 0,
  created_at        timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT mfa_totp_pkey PRIMARY KEY (user_id),
  CONSTRAINT mfa_totp_user_id_fkey FOREIGN KEY (user_id) REFERENCES activity.users (id) ON DELETE CASCADE,
  CONSTRAINT mfa_totp_secret_ciphertext_check CHECK (length(secret_ciphertext) BETWEEN 1 AND 1024),
  CONSTRAINT mfa_totp_last_used_step_check CHECK (last_used_step >= 0)
);
COMMENT ON TABLE activity.mfa_totp IS 'One TOTP secret per user, encrypted by the service (never readable here); confirmed_at NULL while the enrolment is not confirmed; last_used_step: the newest 30-second step a code was accepted for (replay refusal).';

CREATE TABLE activity.mfa_recovery_codes (
  user_id    uuid        NOT NULL,
  code_hash  text        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  used_at    timestamptz,
  CONSTRAINT mfa_recovery_codes_pkey PRIMARY KEY (user_id, code_hash),
  CONSTRAINT mfa_recovery_codes_user_id_fkey FOREIGN KEY (user_id) REFERENCES activity.users (id) ON DELETE CASCADE,
  CONSTRAINT mfa_recovery_codes_code_hash_check CHECK (code_hash ~ '^[0-9a-f]{64}$')
);
COMMENT ON TABLE activity.mfa_recovery_codes IS 'Single-use recovery codes of the second factor, stored as the SHA-256 of the normalised code; used_at set when spent.';

CREATE TABLE activity.mfa_challenges (
  token_hash  text        NOT NULL,
  user_id     uuid        NOT NULL,
  amr         text[]      NOT NULL,
  device_hash text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz,
  CONSTRAINT mfa_challenges_pkey PRIMARY KEY (token_hash),
  CONSTRAINT mfa_challenges_user_id_fkey FOREIGN KEY (user_id) REFERENCES activity.users (id) ON DELETE CASCADE,
  CONSTRAINT mfa_challenges_token_hash_check CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  CONSTRAINT mfa_challenges_device_hash_check CHECK (device_hash ~ '^[0-9a-f]{64}$'),
  CONSTRAINT mfa_challenges_amr_check CHECK (amr <@ ARRAY['pwd', 'fed']::text[] AND cardinality(amr) = 1),
  CONSTRAINT mfa_challenges_expires_at_check CHECK (expires_at > created_at)
);
COMMENT ON TABLE activity.mfa_challenges IS 'A first factor passed (password or provider) waiting for the second: the SHA-256 of the mfaToken, how the first factor was made (amr), the login''s trusted device (hash), single use until expires_at.';
-- The cascade from a deleted user and the per-user sweep of dead challenges.
CREATE INDEX mfa_challenges_user_id_idx ON activity.mfa_challenges (user_id);

-- Down Migration

DROP TABLE activity.mfa_challenges;
DROP TABLE activity.mfa_recovery_codes;
DROP TABLE activity.mfa_totp;
