-- Up Migration
--
-- What activity_readonly sees of the linked identities: who, which provider, what the
-- provider asserted and when it was used. No state or code hash (those tables stay
-- hidden).

CREATE VIEW activity.oauth_links AS
  SELECT p.user_id, u.email AS user_email, p.provider, p.email AS provider_email, p.email_verified,
         p.created_at, p.last_login_at
    FROM activity.oauth_providers p
    JOIN activity.users u ON u.id = p.user_id;
COMMENT ON VIEW activity.oauth_links IS 'Identities linked to accounts (provider, the address it asserted, when linked and last used), without any hash.';
GRANT SELECT ON activity.oauth_links TO activity_readonly;

-- Down Migration

DROP VIEW activity.oauth_links;
