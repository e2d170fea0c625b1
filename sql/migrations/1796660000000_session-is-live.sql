-- Up Migration
--
-- Access tokens are verified offline and stay valid for their lifetime; another
-- service closes that window for a sensitive action by asking whether the token's
-- session (its sid claim) is still live and its user active. One lookup on
-- refresh_tokens_family_id_live_idx plus the users primary key.

CREATE FUNCTION activity.sp_session_is_live(p_session_id uuid)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = activity, pg_temp
AS $$
  SELECT EXISTS (
    SELECT 1
      FROM activity.refresh_tokens t
      JOIN activity.users u ON u.id = t.user_id
     WHERE t.family_id = p_session_id AND activity.fn_refresh_token_is_live(t.revoked, t.expires_at, t.family_expires_at)
       AND u.is_active)
$$;
COMMENT ON FUNCTION activity.sp_session_is_live(uuid) IS 'True when the session (refresh token family, the sid claim) has a live token and its user is active; false otherwise, also for an unknown id. For other services: served by refresh_tokens_family_id_live_idx.';
REVOKE ALL ON FUNCTION activity.sp_session_is_live(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_session_is_live(uuid) TO auth_api_user;
GRANT EXECUTE ON FUNCTION activity.sp_session_is_live(uuid) TO write_api_user;

-- Down Migration

DROP FUNCTION activity.sp_session_is_live(uuid);
