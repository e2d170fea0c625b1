-- Up Migration
--
-- fn_audit also writes the outbox: every state-changing procedure calls it inside
-- its transaction, so the events commit or roll back with the change, on every
-- path, by construction. Each row takes its id and this transaction's id (tx_id,
-- see activity.events) from the column defaults. NOTIFY is
-- transactional: listeners hear it on commit only, once per transaction however
-- many events it wrote.

CREATE OR REPLACE FUNCTION activity.fn_audit(p_action text, p_user_id uuid, p_ctx jsonb, p_details jsonb) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'activity', 'pg_temp'
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
COMMENT ON FUNCTION activity.fn_audit(p_action text, p_user_id uuid, p_ctx jsonb, p_details jsonb) IS 'Internal: appends one audit_logs row (ip, userAgent, requestId come from the request context) and the outbox events it stands for (fn_event_for_audit), then NOTIFY activity_events when there was one.';

-- Down Migration

CREATE OR REPLACE FUNCTION activity.fn_audit(p_action text, p_user_id uuid, p_ctx jsonb, p_details jsonb) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'activity', 'pg_temp'
    AS $$
BEGIN
  INSERT INTO activity.audit_logs (action, user_id, ip, user_agent, request_id, details)
  VALUES (p_action, p_user_id,
          activity.fn_inet(p_ctx->>'ip'),
          left(NULLIF(p_ctx->>'userAgent', ''), 512),
          left(NULLIF(p_ctx->>'requestId', ''), 128),
          COALESCE(p_details, '{}'));
END
$$;
COMMENT ON FUNCTION activity.fn_audit(p_action text, p_user_id uuid, p_ctx jsonb, p_details jsonb) IS 'Internal: appends one audit_logs row; ip, userAgent, requestId come from the request context.';
