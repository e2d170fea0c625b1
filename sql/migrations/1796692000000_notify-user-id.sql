-- Up Migration
--
-- NOTIFY activity_events carries the user the event is about. Every instance keeps
-- live sessions and account rows in memory (src/auth/session-cache.ts) and must drop a
-- user's entries within milliseconds of a revocation or change committed anywhere:
-- the payload says whose. The publisher, the channel's other listener, ignores it.
-- Notifications with the same payload in one transaction are still folded into one.

CREATE OR REPLACE FUNCTION activity.fn_audit(p_action text, p_user_id uuid, p_ctx jsonb, p_details jsonb) RETURNS void
LANGUAGE plpgsql
SET search_path = activity, pg_temp
AS $$
DECLARE
  v_event record;
  v_wrote boolean := false;
BEGIN
  INSERT INTO activity.audit_logs (action, user_id, ip, user_agent, request_id, details)
  VALUES (p_action, p_user_id,
          activity.fn_inet(p_ctx->>'ip'),
          left(NULLIF(p_ctx->>'userAgent', ''), 512),
          left(NULLIF(p_ctx->>'requestId', ''), 128),
          COALESCE(p_details, '{}'));
  FOR v_event IN SELECT e.type, e.version, e.session_id, e.payload
                   FROM activity.fn_event_for_audit(p_action, p_user_id, COALESCE(p_details, '{}')) e
  LOOP
    INSERT INTO activity.events (type, version, user_id, session_id, payload)
    VALUES (v_event.type, v_event.version, p_user_id, v_event.session_id, v_event.payload);
    v_wrote := true;
  END LOOP;
  IF v_wrote THEN
    -- The payload is the user: the session caches of every instance drop that user's
    -- entries (src/auth/session-cache.ts); the publisher ignores it.
    PERFORM pg_notify('activity_events', COALESCE(p_user_id::text, ''));
  END IF;
END
$$;

COMMENT ON FUNCTION activity.fn_audit(text, uuid, jsonb, jsonb) IS 'Internal: appends one audit_logs row (ip, userAgent, requestId come from the request context) and the outbox events it stands for (fn_event_for_audit), then NOTIFY activity_events with the user id as payload when there was one.';

-- Down Migration

CREATE OR REPLACE FUNCTION activity.fn_audit(p_action text, p_user_id uuid, p_ctx jsonb, p_details jsonb) RETURNS void
LANGUAGE plpgsql
SET search_path = activity, pg_temp
AS $$
DECLARE
  v_event record;
  v_wrote boolean := false;
BEGIN
  INSERT INTO activity.audit_logs (action, user_id, ip, user_agent, request_id, details)
  VALUES (p_action, p_user_id,
          activity.fn_inet(p_ctx->>'ip'),
          left(NULLIF(p_ctx->>'userAgent', ''), 512),
          left(NULLIF(p_ctx->>'requestId', ''), 128),
          COALESCE(p_details, '{}'));
  FOR v_event IN SELECT e.type, e.version, e.session_id, e.payload
                   FROM activity.fn_event_for_audit(p_action, p_user_id, COALESCE(p_details, '{}')) e
  LOOP
    INSERT INTO activity.events (type, version, user_id, session_id, payload)
    VALUES (v_event.type, v_event.version, p_user_id, v_event.session_id, v_event.payload);
    v_wrote := true;
  END LOOP;
  IF v_wrote THEN
    PERFORM pg_notify('activity_events', '');
  END IF;
END
$$;

COMMENT ON FUNCTION activity.fn_audit(text, uuid, jsonb, jsonb) IS 'Internal: appends one audit_logs row (ip, userAgent, requestId come from the request context) and the outbox events it stands for (fn_event_for_audit), then NOTIFY activity_events when there was one.';
