-- Up Migration
--
-- fn_event_for_audit with both sets of events of issue 17: the two-factor migration
-- (1796704000000_mfa-events) and the profile migration (1796808000000_profile-events)
-- each replaced the function from the body before them, so the later one dropped the
-- two-factor events. This body has both; the down part restores the profile one.

CREATE OR REPLACE FUNCTION activity.fn_event_for_audit(p_action text, p_user_id uuid, p_details jsonb) RETURNS TABLE(type text, version smallint, session_id uuid, payload jsonb)
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'activity', 'pg_temp'
    AS $$
DECLARE
  v_ended_reason text := CASE p_action
                           WHEN 'password_changed' THEN 'password_changed'
                           WHEN 'password_reset' THEN 'password_reset'
                           WHEN 'user_deactivated' THEN 'user_deactivated'
                           WHEN 'sessions_revoked' THEN p_details->>'reason'
                           WHEN 'email_changed' THEN 'email_changed'
                         END;
BEGIN
  -- Events are about accounts: a lock on an address without one, or a cleanup, has none.
  IF p_user_id IS NULL THEN
    RETURN;
  END IF;
  version := 1;
  session_id := NULL;
  CASE p_action
    WHEN 'user_created' THEN
      type := 'user.created';
      payload := jsonb_build_object('email', p_details->>'email');
      RETURN NEXT;
    WHEN 'email_verified' THEN
      -- A verify link followed after the address was verified changes nothing.
      IF COALESCE((p_details->>'already_verified')::boolean, false) THEN
        RETURN;
      END IF;
      type := 'user.verified';
      payload := jsonb_build_object('email', p_details->>'email');
      RETURN NEXT;
    WHEN 'password_changed' THEN
      type := 'user.password_changed';
      payload := jsonb_build_object('sessionsEnded', COALESCE((p_details->>'sessions_ended')::int, 0),
                                    'keptSessionId', p_details->'kept_family_id');
      RETURN NEXT;
    WHEN 'password_reset' THEN
      type := 'user.password_reset';
      payload := jsonb_build_object('sessionsEnded', COALESCE((p_details->>'sessions_ended')::int, 0));
      RETURN NEXT;
    WHEN 'user_deactivated' THEN
      type := 'user.deactivated';
      payload := jsonb_build_object('sessionsEnded', COALESCE((p_details->>'sessions_ended')::int, 0));
      RETURN NEXT;
    WHEN 'session_started' THEN
      type := 'session.created';
      session_id := (p_details->>'family_id')::uuid;
      payload := '{}';
      RETURN NEXT;
    WHEN 'logout' THEN
      type := 'session.revoked';
      session_id := (p_details->>'family_id')::uuid;
      payload := jsonb_build_object('reason', COALESCE(p_details->>'reason', 'logout'));
      RETURN NEXT;
    WHEN 'session_ended' THEN
      type := 'session.revoked';
      session_id := (p_details->>'family_id')::uuid;
      payload := jsonb_build_object('reason', 'session_ended');
      RETURN NEXT;
    WHEN 'refresh_token_reuse' THEN
      type := 'session.reuse_detected';
      session_id := (p_details->>'family_id')::uuid;
      payload := jsonb_build_object('tokensRevoked', COALESCE((p_details->>'tokens_revoked')::int, 0));
      RETURN NEXT;
    WHEN 'account_locked' THEN
      type := 'account.locked';
      payload := jsonb_build_object('lockedUntil', p_details->'locked_until',
                                    'failedCount', COALESCE((p_details->>'count')::int, 0));
      RETURN NEXT;
    WHEN 'oauth_linked' THEN
      type := 'oauth.linked';
      payload := jsonb_build_object('provider', p_details->>'provider');
      RETURN NEXT;
    WHEN 'profile_updated' THEN
      type := 'user.profile_updated';
      payload := jsonb_build_object('fields', COALESCE(p_details->'fields', '[]'));
      RETURN NEXT;
    WHEN 'email_changed' THEN
      type := 'user.email_changed';
      payload := jsonb_build_object('email', p_details->>'email', 'previousEmail', p_details->>'old_email',
                                    'sessionsEnded', COALESCE((p_details->>'sessions_ended')::int, 0));
      RETURN NEXT;
    WHEN 'oauth_unlinked' THEN
      type := 'oauth.unlinked';
      payload := jsonb_build_object('provider', p_details->>'provider');
      RETURN NEXT;
    WHEN 'mfa_enabled' THEN
      type := 'mfa.enabled';
      payload := '{}';
      RETURN NEXT;
    WHEN 'mfa_disabled' THEN
      type := 'mfa.disabled';
      payload := '{}';
      RETURN NEXT;
    WHEN 'mfa_recovery_code_used' THEN
      type := 'mfa.recovery_code_used';
      payload := jsonb_build_object('remaining', COALESCE((p_details->>'remaining')::int, 0));
      RETURN NEXT;
    WHEN 'mfa_failed' THEN
      type := 'mfa.failed';
      payload := jsonb_build_object('failedCount', COALESCE((p_details->>'count')::int, 0));
      RETURN NEXT;
    ELSE
      NULL;
  END CASE;
  -- Sessions ended together with an account change, or by a revoke-all.
  IF v_ended_reason IS NOT NULL THEN
    type := 'session.revoked';
    payload := jsonb_build_object('reason', v_ended_reason);
    FOR session_id IN
      SELECT f.id::uuid FROM jsonb_array_elements_text(COALESCE(p_details->'family_ids', '[]')) AS f(id)
    LOOP
      RETURN NEXT;
    END LOOP;
  END IF;
END
$$;

-- Down Migration

CREATE OR REPLACE FUNCTION activity.fn_event_for_audit(p_action text, p_user_id uuid, p_details jsonb) RETURNS TABLE(type text, version smallint, session_id uuid, payload jsonb)
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'activity', 'pg_temp'
    AS $$
DECLARE
  v_ended_reason text := CASE p_action
                           WHEN 'password_changed' THEN 'password_changed'
                           WHEN 'password_reset' THEN 'password_reset'
                           WHEN 'user_deactivated' THEN 'user_deactivated'
                           WHEN 'sessions_revoked' THEN p_details->>'reason'
                           WHEN 'email_changed' THEN 'email_changed'
                         END;
BEGIN
  -- Events are about accounts: a lock on an address without one, or a cleanup, has none.
  IF p_user_id IS NULL THEN
    RETURN;
  END IF;
  version := 1;
  session_id := NULL;
  CASE p_action
    WHEN 'user_created' THEN
      type := 'user.created';
      payload := jsonb_build_object('email', p_details->>'email');
      RETURN NEXT;
    WHEN 'email_verified' THEN
      -- A verify link followed after the address was verified changes nothing.
      IF COALESCE((p_details->>'already_verified')::boolean, false) THEN
        RETURN;
      END IF;
      type := 'user.verified';
      payload := jsonb_build_object('email', p_details->>'email');
      RETURN NEXT;
    WHEN 'password_changed' THEN
      type := 'user.password_changed';
      payload := jsonb_build_object('sessionsEnded', COALESCE((p_details->>'sessions_ended')::int, 0),
                                    'keptSessionId', p_details->'kept_family_id');
      RETURN NEXT;
    WHEN 'password_reset' THEN
      type := 'user.password_reset';
      payload := jsonb_build_object('sessionsEnded', COALESCE((p_details->>'sessions_ended')::int, 0));
      RETURN NEXT;
    WHEN 'user_deactivated' THEN
      type := 'user.deactivated';
      payload := jsonb_build_object('sessionsEnded', COALESCE((p_details->>'sessions_ended')::int, 0));
      RETURN NEXT;
    WHEN 'session_started' THEN
      type := 'session.created';
      session_id := (p_details->>'family_id')::uuid;
      payload := '{}';
      RETURN NEXT;
    WHEN 'logout' THEN
      type := 'session.revoked';
      session_id := (p_details->>'family_id')::uuid;
      payload := jsonb_build_object('reason', COALESCE(p_details->>'reason', 'logout'));
      RETURN NEXT;
    WHEN 'session_ended' THEN
      type := 'session.revoked';
      session_id := (p_details->>'family_id')::uuid;
      payload := jsonb_build_object('reason', 'session_ended');
      RETURN NEXT;
    WHEN 'refresh_token_reuse' THEN
      type := 'session.reuse_detected';
      session_id := (p_details->>'family_id')::uuid;
      payload := jsonb_build_object('tokensRevoked', COALESCE((p_details->>'tokens_revoked')::int, 0));
      RETURN NEXT;
    WHEN 'account_locked' THEN
      type := 'account.locked';
      payload := jsonb_build_object('lockedUntil', p_details->'locked_until',
                                    'failedCount', COALESCE((p_details->>'count')::int, 0));
      RETURN NEXT;
    WHEN 'oauth_linked' THEN
      type := 'oauth.linked';
      payload := jsonb_build_object('provider', p_details->>'provider');
      RETURN NEXT;
    WHEN 'profile_updated' THEN
      type := 'user.profile_updated';
      payload := jsonb_build_object('fields', COALESCE(p_details->'fields', '[]'));
      RETURN NEXT;
    WHEN 'email_changed' THEN
      type := 'user.email_changed';
      payload := jsonb_build_object('email', p_details->>'email', 'previousEmail', p_details->>'old_email',
                                    'sessionsEnded', COALESCE((p_details->>'sessions_ended')::int, 0));
      RETURN NEXT;
    WHEN 'oauth_unlinked' THEN
      type := 'oauth.unlinked';
      payload := jsonb_build_object('provider', p_details->>'provider');
      RETURN NEXT;
    ELSE
      NULL;
  END CASE;
  -- Sessions ended together with an account change, or by a revoke-all.
  IF v_ended_reason IS NOT NULL THEN
    type := 'session.revoked';
    payload := jsonb_build_object('reason', v_ended_reason);
    FOR session_id IN
      SELECT f.id::uuid FROM jsonb_array_elements_text(COALESCE(p_details->'family_ids', '[]')) AS f(id)
    LOOP
      RETURN NEXT;
    END LOOP;
  END IF;
END
$$;
