-- Up Migration
--
-- One-time exchange codes (issue 16): the OAuth callback hands the browser a code
-- instead of tokens in a URL; the client trades it once for a session
-- (sp_consume_oauth_code, then sp_save_refresh_token). Stored as its SHA-256.

CREATE TABLE activity.oauth_codes (
  code_hash  text                    NOT NULL,
  user_id    uuid                    NOT NULL,
  provider   activity.oauth_provider NOT NULL,
  created_at timestamptz             NOT NULL DEFAULT now(),
  expires_at timestamptz             NOT NULL,
  CONSTRAINT oauth_codes_pkey PRIMARY KEY (code_hash),
  CONSTRAINT oauth_codes_user_id_fkey FOREIGN KEY (user_id) REFERENCES activity.users (id) ON DELETE CASCADE,
  CONSTRAINT oauth_codes_code_hash_check CHECK (code_hash ~ '^[0-9a-f]{64}$'),
  CONSTRAINT oauth_codes_expires_at_check CHECK (expires_at > created_at)
);
COMMENT ON TABLE activity.oauth_codes IS 'One-time codes an OAuth sign-in issues, traded once for a session; stored as the SHA-256 of the code.';
CREATE INDEX oauth_codes_expires_at_idx ON activity.oauth_codes (expires_at);
-- The cascade from a deleted user and the unlink's cleanup of its codes.
CREATE INDEX oauth_codes_user_id_idx ON activity.oauth_codes (user_id);

-- Down Migration

DROP TABLE activity.oauth_codes;
