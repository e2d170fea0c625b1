-- Up Migration
--
-- The OAuth "state" of a sign-in or link flow between the redirect to the provider and
-- its callback (issue 16). Only SHA-256 hashes are stored: of the state, and of the
-- browser-binding value kept in a cookie, from which (with the state) the service
-- derives the PKCE verifier and the OIDC nonce, so neither is stored. link_user_id set:
-- a link flow started from that user's session.

CREATE TABLE activity.oauth_states (
  state_hash   text                    NOT NULL,
  binding_hash text                    NOT NULL,
  provider     activity.oauth_provider NOT NULL,
  redirect_to  text                    NOT NULL,
  link_user_id uuid,
  created_at   timestamptz             NOT NULL DEFAULT now(),
  expires_at   timestamptz             NOT NULL,
  CONSTRAINT oauth_states_pkey PRIMARY KEY (state_hash),
  CONSTRAINT oauth_states_link_user_id_fkey FOREIGN KEY (link_user_id) REFERENCES activity.users (id) ON DELETE CASCADE,
  CONSTRAINT oauth_states_state_hash_check CHECK (state_hash ~ '^[0-9a-f]{64}$'),
  CONSTRAINT oauth_states_binding_hash_check CHECK (binding_hash ~ '^[0-9a-f]{64}$'),
  CONSTRAINT oauth_states_redirect_to_check CHECK (length(redirect_to) BETWEEN 1 AND 2048),
  CONSTRAINT oauth_states_expires_at_check CHECK (expires_at > created_at)
);
COMMENT ON TABLE activity.oauth_states IS 'Pending OAuth flows: SHA-256 of the state and of the browser-binding value (the PKCE verifier and the nonce are derived from them, never stored). Single use; link_user_id set for a link flow.';
CREATE INDEX oauth_states_expires_at_idx ON activity.oauth_states (expires_at);
-- The cascade from a deleted user.
CREATE INDEX oauth_states_link_user_id_idx ON activity.oauth_states (link_user_id) WHERE link_user_id IS NOT NULL;

-- Down Migration

DROP TABLE activity.oauth_states;
