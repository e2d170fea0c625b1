-- Up Migration
--
-- "A refresh token is live" is written once: fn_refresh_token_is_live. It is a
-- LANGUAGE sql STABLE function with neither SECURITY DEFINER nor a SET clause, so
-- PostgreSQL inlines its expression into the calling query: the planner still
-- sees NOT revoked and matches the partial indexes (WHERE NOT revoked) as before
-- (test/bench/explain.test.ts). The view active_sessions keeps the literal
-- predicate: a view calls functions with its reader's rights, and activity_readonly
-- may execute no fn_*. Bodies below replace only the predicate (CREATE OR REPLACE
-- keeps grants and comments); the down part restores the previous bodies.

CREATE FUNCTION activity.fn_refresh_token_is_live(p_revoked boolean, p_expires_at timestamptz, p_family_expires_at timestamptz)
RETURNS boolean
LANGUAGE sql STABLE
AS $$
  SELECT NOT p_revoked AND p_expires_at > now() AND p_family_expires_at > now()
$$;
COMMENT ON FUNCTION activity.fn_refresh_token_is_live(boolean, timestamptz, timestamptz) IS 'Internal: whether a refresh token row is live (not revoked, neither it nor its family expired). Inlined by the planner.';
REVOKE ALL ON FUNCTION activity.fn_refresh_token_is_live(boolean, timestamptz, timestamptz) FROM PUBLIC;

CREATE OR REPLACE FUNCTION activity.fn_revoke_user_families(p_user_id uuid, p_except_family_id uuid, p_reason text)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO 'activity', 'pg_temp'
AS $function$
DECLARE
  v_ended integer;
BEGIN
  -- Lock order users -> family -> token rows, like every family-level change.
  PERFORM pg_advisory_xact_lock(8151, hashtext(f.family_id::text))
     FROM (SELECT DISTINCT t.family_id
             FROM activity.refresh_tokens t
            WHERE t.user_id = p_user_id AND activity.fn_refresh_token_is_live(t.revoked, t.expires_at, t.family_expires_at)
              AND t.family_id IS DISTINCT FROM p_except_family_id
            ORDER BY t.family_id) f;

  WITH ended AS (
    UPDATE activity.refresh_tokens t
       SET revoked = true, revoked_at = now(), revoked_reason = p_reason
     WHERE t.user_id = p_user_id AND activity.fn_refresh_token_is_live(t.revoked, t.expires_at, t.family_expires_at)
       AND t.family_id IS DISTINCT FROM p_except_family_id
    RETURNING t.family_id
  )
  SELECT count(DISTINCT e.family_id) INTO v_ended FROM ended e;
  RETURN v_ended;
END
$function$

;

CREATE OR REPLACE FUNCTION activity.sp_check_session(p_user_id uuid, p_family_id uuid)
 RETURNS boolean
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'activity', 'pg_temp'
AS $function$
  SELECT EXISTS (
    SELECT 1
      FROM activity.refresh_tokens t
      JOIN activity.users u ON u.id = t.user_id
     WHERE t.family_id = p_family_id AND t.user_id = p_user_id AND activity.fn_refresh_token_is_live(t.revoked, t.expires_at, t.family_expires_at)
       AND u.is_active)
$function$

;

CREATE OR REPLACE FUNCTION activity.sp_get_valid_refresh_token(p_token_hash text)
 RETURNS TABLE(id integer, user_id uuid, family_id uuid, jti text, expires_at timestamp with time zone, family_expires_at timestamp with time zone, created_at timestamp with time zone)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'activity', 'pg_temp'
AS $function$
  SELECT t.id, t.user_id, t.family_id, t.jti::text, t.expires_at, t.family_expires_at, t.created_at
    FROM activity.refresh_tokens t
    JOIN activity.users u ON u.id = t.user_id
   WHERE t.token = p_token_hash
     AND activity.fn_refresh_token_is_live(t.revoked, t.expires_at, t.family_expires_at)
     AND u.is_active
$function$

;

CREATE OR REPLACE FUNCTION activity.sp_list_user_sessions(p_user_id uuid)
 RETURNS TABLE(family_id uuid, created_at timestamp with time zone, last_used_at timestamp with time zone, expires_at timestamp with time zone, ip text, user_agent text)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'activity', 'pg_temp'
AS $function$
  SELECT l.family_id, f.created_at, f.last_used_at, l.expires_at, host(l.ip), l.user_agent::text
    FROM (SELECT DISTINCT ON (t.family_id) t.family_id, t.expires_at, t.ip, t.user_agent
            FROM activity.refresh_tokens t
            JOIN activity.users u ON u.id = t.user_id AND u.is_active
           WHERE t.user_id = p_user_id AND activity.fn_refresh_token_is_live(t.revoked, t.expires_at, t.family_expires_at)
           ORDER BY t.family_id, t.id DESC) l
   CROSS JOIN LATERAL (
         SELECT min(a.created_at) AS created_at, max(COALESCE(a.last_used_at, a.created_at)) AS last_used_at
           FROM activity.refresh_tokens a
          WHERE a.family_id = l.family_id) f
   ORDER BY f.created_at DESC, l.family_id
$function$

;

CREATE OR REPLACE FUNCTION activity.sp_revoke_refresh_token(p_token_hash text, p_reason text DEFAULT 'logout'::text, p_ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS boolean
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'activity', 'pg_temp'
AS $function$
DECLARE
  v_user_id   uuid;
  v_family_id uuid;
  v_live      integer;
BEGIN
  IF p_reason IS NULL OR p_reason NOT IN ('rotated', 'logout', 'logout_all', 'session_ended', 'reuse_detected',
                                          'password_changed', 'password_reset', 'user_deactivated') THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown revocation reason';
  END IF;
  SELECT t.user_id, t.family_id INTO v_user_id, v_family_id FROM activity.refresh_tokens t WHERE t.token = p_token_hash;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  -- Lock order users -> family -> token rows (the audit row's foreign key needs the
  -- users row too: taking it last could deadlock with a revoke-all).
  PERFORM FROM activity.users u WHERE u.id = v_user_id FOR KEY SHARE;
  PERFORM pg_advisory_xact_lock(8151, hashtext(v_family_id::text));
  WITH ended AS (
    UPDATE activity.refresh_tokens t
       SET revoked = true, revoked_at = now(), revoked_reason = p_reason
     WHERE t.family_id = v_family_id AND activity.fn_refresh_token_is_live(t.revoked, t.expires_at, t.family_expires_at)
    RETURNING t.id
  )
  SELECT count(*) INTO v_live FROM ended e;
  IF v_live = 0 THEN
    RETURN false;
  END IF;
  PERFORM activity.fn_audit('logout', v_user_id, p_ctx, jsonb_build_object('family_id', v_family_id, 'reason', p_reason));
  RETURN true;
END
$function$

;

CREATE OR REPLACE FUNCTION activity.sp_revoke_user_session(p_user_id uuid, p_family_id uuid, p_ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS boolean
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'activity', 'pg_temp'
AS $function$
DECLARE
  v_live integer;
BEGIN
  -- Lock order users -> family -> token rows.
  PERFORM FROM activity.users u WHERE u.id = p_user_id FOR KEY SHARE;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM pg_advisory_xact_lock(8151, hashtext(p_family_id::text));
  WITH ended AS (
    UPDATE activity.refresh_tokens t
       SET revoked = true, revoked_at = now(), revoked_reason = 'session_ended'
     WHERE t.family_id = p_family_id AND t.user_id = p_user_id AND activity.fn_refresh_token_is_live(t.revoked, t.expires_at, t.family_expires_at)
    RETURNING t.id
  )
  SELECT count(*) INTO v_live FROM ended e;
  IF v_live = 0 THEN
    RETURN false;
  END IF;
  PERFORM activity.fn_audit('session_ended', p_user_id, p_ctx, jsonb_build_object('family_id', p_family_id));
  RETURN true;
END
$function$

;

CREATE OR REPLACE FUNCTION activity.sp_rotate_refresh_token(p_token_hash text, p_new_token_hash text, p_new_jti text, p_idle_ttl_seconds integer, p_grace_seconds integer, p_ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS TABLE(status text, user_id uuid, family_id uuid, token_id integer, expires_at timestamp with time zone, family_expires_at timestamp with time zone)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'activity', 'pg_temp'
AS $function$
#variable_conflict use_column
DECLARE
  v_user_id   uuid;
  v_family_id uuid;
  v_active    boolean;
  v_old       activity.refresh_tokens%ROWTYPE;
  v_next      activity.refresh_tokens%ROWTYPE;
  v_new       activity.refresh_tokens%ROWTYPE;
  v_ended     integer;
BEGIN
  IF p_idle_ttl_seconds IS NULL OR p_idle_ttl_seconds <= 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'ttl must be > 0';
  END IF;
  IF p_grace_seconds IS NULL OR p_grace_seconds < 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'grace must be >= 0';
  END IF;
  IF p_new_token_hash IS NULL OR p_new_token_hash !~ '^[0-9a-f]{64}$' OR p_new_jti IS NULL OR length(p_new_jti) NOT BETWEEN 1 AND 50 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash must be lowercase hex SHA-256 and jti 1-50 characters';
  END IF;

  SELECT t.user_id, t.family_id INTO v_user_id, v_family_id FROM activity.refresh_tokens t WHERE t.token = p_token_hash;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::integer, NULL::timestamptz, NULL::timestamptz;
    RETURN;
  END IF;

  -- Lock order: users row (KEY SHARE: we may insert) -> family -> token row.
  SELECT u.is_active INTO v_active FROM activity.users u WHERE u.id = v_user_id FOR KEY SHARE;
  IF NOT FOUND OR NOT v_active THEN
    RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::integer, NULL::timestamptz, NULL::timestamptz;
    RETURN;
  END IF;
  -- Every presentation of a token of this family waits here for the one before it,
  -- so the reads below see its outcome (READ COMMITTED: each statement a fresh snapshot).
  PERFORM pg_advisory_xact_lock(8151, hashtext(v_family_id::text));
  SELECT * INTO v_old FROM activity.refresh_tokens t WHERE t.token = p_token_hash FOR UPDATE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::integer, NULL::timestamptz, NULL::timestamptz;
    RETURN;
  END IF;

  IF NOT v_old.revoked THEN
    IF NOT activity.fn_refresh_token_is_live(v_old.revoked, v_old.expires_at, v_old.family_expires_at) THEN
      RETURN QUERY SELECT 'expired'::text, v_old.user_id, v_old.family_id, NULL::integer, v_old.expires_at, v_old.family_expires_at;
      RETURN;
    END IF;
    BEGIN
      INSERT INTO activity.refresh_tokens (user_id, token, jti, expires_at, family_id, family_expires_at, user_agent, ip)
      VALUES (v_old.user_id, p_new_token_hash, p_new_jti,
              least(now() + make_interval(secs => p_idle_ttl_seconds), v_old.family_expires_at),
              v_old.family_id, v_old.family_expires_at,
              left(NULLIF(p_ctx->>'userAgent', ''), 512), activity.fn_inet(p_ctx->>'ip'))
      RETURNING * INTO v_new;
    EXCEPTION WHEN unique_violation THEN
      RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash or jti already used';
    END;
    UPDATE activity.refresh_tokens t
       SET revoked = true, revoked_at = now(), revoked_reason = 'rotated', replaced_by = v_new.id, last_used_at = now()
     WHERE t.id = v_old.id;
    PERFORM activity.fn_audit('refresh_token_rotated', v_old.user_id, p_ctx,
      jsonb_build_object('family_id', v_old.family_id, 'token_id', v_new.id, 'status', 'rotated'));
    RETURN QUERY SELECT 'rotated'::text, v_new.user_id, v_new.family_id, v_new.id, v_new.expires_at, v_new.family_expires_at;
    RETURN;
  END IF;

  -- Revoked by anything but a rotation: its session was ended on purpose (or by an
  -- earlier reuse detection). Refused, but not a new reuse.
  IF v_old.revoked_reason IS DISTINCT FROM 'rotated' THEN
    RETURN QUERY SELECT 'revoked'::text, v_old.user_id, v_old.family_id, NULL::integer, NULL::timestamptz, v_old.family_expires_at;
    RETURN;
  END IF;

  -- Grace: a rotated token presented again within seconds (a client retry after a
  -- lost answer, two tabs racing) while its successor is unused gets that same
  -- successor back. Nothing is inserted: the session keeps one live token.
  IF p_grace_seconds > 0 AND v_old.revoked_at > now() - make_interval(secs => p_grace_seconds)
     AND v_old.family_expires_at > now() THEN
    SELECT * INTO v_next FROM activity.refresh_tokens t WHERE t.id = v_old.replaced_by;
    IF FOUND AND activity.fn_refresh_token_is_live(v_next.revoked, v_next.expires_at, v_next.family_expires_at) THEN
      IF v_next.token <> p_new_token_hash THEN
        -- The successor was not derived from this token the way the caller derives it
        -- (rotated by an older release, or under another pepper): the caller cannot hand
        -- it out. Refused, and nothing changes: not a reuse, the session stays as it is.
        RETURN QUERY SELECT 'invalid'::text, v_old.user_id, v_old.family_id, NULL::integer, NULL::timestamptz, NULL::timestamptz;
        RETURN;
      END IF;
      UPDATE activity.refresh_tokens t SET last_used_at = now() WHERE t.id = v_old.id;
      PERFORM activity.fn_audit('refresh_token_rotated', v_old.user_id, p_ctx,
        jsonb_build_object('family_id', v_old.family_id, 'token_id', v_next.id, 'status', 'grace'));
      RETURN QUERY SELECT 'grace'::text, v_next.user_id, v_next.family_id, v_next.id, v_next.expires_at, v_next.family_expires_at;
      RETURN;
    END IF;
  END IF;

  -- Reuse: a rotated token outside the grace window, or whose successor was used.
  -- The whole family is revoked. Nothing live to revoke: the session had already
  -- ended (logout, an earlier reuse, expiry), so this is no new reuse either.
  WITH ended AS (
    UPDATE activity.refresh_tokens t
       SET revoked = true, revoked_at = now(), revoked_reason = 'reuse_detected'
     WHERE t.family_id = v_old.family_id AND activity.fn_refresh_token_is_live(t.revoked, t.expires_at, t.family_expires_at)
    RETURNING t.id
  )
  SELECT count(*) INTO v_ended FROM ended;
  IF v_ended = 0 THEN
    RETURN QUERY SELECT 'revoked'::text, v_old.user_id, v_old.family_id, NULL::integer, NULL::timestamptz, v_old.family_expires_at;
    RETURN;
  END IF;
  PERFORM activity.fn_audit('refresh_token_reuse', v_old.user_id, p_ctx,
    jsonb_build_object('family_id', v_old.family_id, 'token_id', v_old.id,
                       'revoked_reason', v_old.revoked_reason, 'tokens_revoked', v_ended));
  RETURN QUERY SELECT 'reuse_detected'::text, v_old.user_id, v_old.family_id, NULL::integer, NULL::timestamptz, v_old.family_expires_at;
END
$function$

;

CREATE OR REPLACE FUNCTION activity.sp_cleanup_expired(p_audit_retention_days integer, p_attempt_retention_hours integer DEFAULT 24)
 RETURNS TABLE(item text, deleted bigint)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'activity', 'pg_temp'
AS $function$
#variable_conflict use_column
DECLARE
  v_tokens   bigint;
  v_email    bigint;
  v_attempts bigint;
  v_audit    bigint;
  v_devices  bigint;
  v_mail     bigint;
BEGIN
  IF p_audit_retention_days IS NULL OR p_audit_retention_days < 1
     OR p_attempt_retention_hours IS NULL OR p_attempt_retention_hours < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'retention must be >= 1';
  END IF;
  -- Whole families only: while any token of a family is live, its rotated tokens
  -- stay so that presenting one is still recognised as reuse.
  DELETE FROM activity.refresh_tokens t
   WHERE t.family_id IN (
     SELECT d.family_id FROM activity.refresh_tokens d
      GROUP BY d.family_id
     HAVING bool_and(NOT activity.fn_refresh_token_is_live(d.revoked, d.expires_at, d.family_expires_at)));
  GET DIAGNOSTICS v_tokens = ROW_COUNT;
  DELETE FROM activity.email_tokens e WHERE e.used_at IS NOT NULL OR e.expires_at <= now();
  GET DIAGNOSTICS v_email = ROW_COUNT;
  DELETE FROM activity.login_attempts a
   WHERE (a.locked_until IS NULL OR a.locked_until <= now())
     AND a.last_failed_at < now() - make_interval(hours => p_attempt_retention_hours);
  GET DIAGNOSTICS v_attempts = ROW_COUNT;
  DELETE FROM activity.audit_logs l WHERE l.created_at < now() - make_interval(days => p_audit_retention_days);
  GET DIAGNOSTICS v_audit = ROW_COUNT;
  DELETE FROM activity.trusted_devices d WHERE d.expires_at <= now();
  GET DIAGNOSTICS v_devices = ROW_COUNT;
  -- Mail windows are at most hours long: a row older than the attempt retention is spent.
  DELETE FROM activity.mail_budget b WHERE b.window_start < now() - make_interval(hours => p_attempt_retention_hours);
  GET DIAGNOSTICS v_mail = ROW_COUNT;
  PERFORM activity.fn_audit('cleanup', NULL, '{}',
    jsonb_build_object('refresh_tokens', v_tokens, 'email_tokens', v_email,
                       'login_attempts', v_attempts, 'audit_logs', v_audit,
                       'trusted_devices', v_devices, 'mail_budget', v_mail));
  RETURN QUERY VALUES ('refresh_tokens'::text, v_tokens), ('email_tokens', v_email),
                      ('login_attempts', v_attempts), ('audit_logs', v_audit),
                      ('trusted_devices', v_devices), ('mail_budget', v_mail);
END
$function$

;

-- Down Migration

CREATE OR REPLACE FUNCTION activity.fn_revoke_user_families(p_user_id uuid, p_except_family_id uuid, p_reason text)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO 'activity', 'pg_temp'
AS $function$
DECLARE
  v_ended integer;
BEGIN
  -- Lock order users -> family -> token rows, like every family-level change.
  PERFORM pg_advisory_xact_lock(8151, hashtext(f.family_id::text))
     FROM (SELECT DISTINCT t.family_id
             FROM activity.refresh_tokens t
            WHERE t.user_id = p_user_id AND NOT t.revoked
              AND t.expires_at > now() AND t.family_expires_at > now()
              AND t.family_id IS DISTINCT FROM p_except_family_id
            ORDER BY t.family_id) f;

  WITH ended AS (
    UPDATE activity.refresh_tokens t
       SET revoked = true, revoked_at = now(), revoked_reason = p_reason
     WHERE t.user_id = p_user_id AND NOT t.revoked
       AND t.expires_at > now() AND t.family_expires_at > now()
       AND t.family_id IS DISTINCT FROM p_except_family_id
    RETURNING t.family_id
  )
  SELECT count(DISTINCT e.family_id) INTO v_ended FROM ended e;
  RETURN v_ended;
END
$function$

;

CREATE OR REPLACE FUNCTION activity.sp_check_session(p_user_id uuid, p_family_id uuid)
 RETURNS boolean
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'activity', 'pg_temp'
AS $function$
  SELECT EXISTS (
    SELECT 1
      FROM activity.refresh_tokens t
      JOIN activity.users u ON u.id = t.user_id
     WHERE t.family_id = p_family_id AND t.user_id = p_user_id AND NOT t.revoked
       AND t.expires_at > now() AND t.family_expires_at > now()
       AND u.is_active)
$function$

;

CREATE OR REPLACE FUNCTION activity.sp_get_valid_refresh_token(p_token_hash text)
 RETURNS TABLE(id integer, user_id uuid, family_id uuid, jti text, expires_at timestamp with time zone, family_expires_at timestamp with time zone, created_at timestamp with time zone)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'activity', 'pg_temp'
AS $function$
  SELECT t.id, t.user_id, t.family_id, t.jti::text, t.expires_at, t.family_expires_at, t.created_at
    FROM activity.refresh_tokens t
    JOIN activity.users u ON u.id = t.user_id
   WHERE t.token = p_token_hash
     AND NOT t.revoked AND t.expires_at > now() AND t.family_expires_at > now()
     AND u.is_active
$function$

;

CREATE OR REPLACE FUNCTION activity.sp_list_user_sessions(p_user_id uuid)
 RETURNS TABLE(family_id uuid, created_at timestamp with time zone, last_used_at timestamp with time zone, expires_at timestamp with time zone, ip text, user_agent text)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'activity', 'pg_temp'
AS $function$
  SELECT l.family_id, f.created_at, f.last_used_at, l.expires_at, host(l.ip), l.user_agent::text
    FROM (SELECT DISTINCT ON (t.family_id) t.family_id, t.expires_at, t.ip, t.user_agent
            FROM activity.refresh_tokens t
            JOIN activity.users u ON u.id = t.user_id AND u.is_active
           WHERE t.user_id = p_user_id AND NOT t.revoked
             AND t.expires_at > now() AND t.family_expires_at > now()
           ORDER BY t.family_id, t.id DESC) l
   CROSS JOIN LATERAL (
         SELECT min(a.created_at) AS created_at, max(COALESCE(a.last_used_at, a.created_at)) AS last_used_at
           FROM activity.refresh_tokens a
          WHERE a.family_id = l.family_id) f
   ORDER BY f.created_at DESC, l.family_id
$function$

;

CREATE OR REPLACE FUNCTION activity.sp_revoke_refresh_token(p_token_hash text, p_reason text DEFAULT 'logout'::text, p_ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS boolean
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'activity', 'pg_temp'
AS $function$
DECLARE
  v_user_id   uuid;
  v_family_id uuid;
  v_live      integer;
BEGIN
  IF p_reason IS NULL OR p_reason NOT IN ('rotated', 'logout', 'logout_all', 'session_ended', 'reuse_detected',
                                          'password_changed', 'password_reset', 'user_deactivated') THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown revocation reason';
  END IF;
  SELECT t.user_id, t.family_id INTO v_user_id, v_family_id FROM activity.refresh_tokens t WHERE t.token = p_token_hash;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  -- Lock order users -> family -> token rows (the audit row's foreign key needs the
  -- users row too: taking it last could deadlock with a revoke-all).
  PERFORM FROM activity.users u WHERE u.id = v_user_id FOR KEY SHARE;
  PERFORM pg_advisory_xact_lock(8151, hashtext(v_family_id::text));
  WITH ended AS (
    UPDATE activity.refresh_tokens t
       SET revoked = true, revoked_at = now(), revoked_reason = p_reason
     WHERE t.family_id = v_family_id AND NOT t.revoked
       AND t.expires_at > now() AND t.family_expires_at > now()
    RETURNING t.id
  )
  SELECT count(*) INTO v_live FROM ended e;
  IF v_live = 0 THEN
    RETURN false;
  END IF;
  PERFORM activity.fn_audit('logout', v_user_id, p_ctx, jsonb_build_object('family_id', v_family_id, 'reason', p_reason));
  RETURN true;
END
$function$

;

CREATE OR REPLACE FUNCTION activity.sp_revoke_user_session(p_user_id uuid, p_family_id uuid, p_ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS boolean
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'activity', 'pg_temp'
AS $function$
DECLARE
  v_live integer;
BEGIN
  -- Lock order users -> family -> token rows.
  PERFORM FROM activity.users u WHERE u.id = p_user_id FOR KEY SHARE;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM pg_advisory_xact_lock(8151, hashtext(p_family_id::text));
  WITH ended AS (
    UPDATE activity.refresh_tokens t
       SET revoked = true, revoked_at = now(), revoked_reason = 'session_ended'
     WHERE t.family_id = p_family_id AND t.user_id = p_user_id AND NOT t.revoked
       AND t.expires_at > now() AND t.family_expires_at > now()
    RETURNING t.id
  )
  SELECT count(*) INTO v_live FROM ended e;
  IF v_live = 0 THEN
    RETURN false;
  END IF;
  PERFORM activity.fn_audit('session_ended', p_user_id, p_ctx, jsonb_build_object('family_id', p_family_id));
  RETURN true;
END
$function$

;

CREATE OR REPLACE FUNCTION activity.sp_rotate_refresh_token(p_token_hash text, p_new_token_hash text, p_new_jti text, p_idle_ttl_seconds integer, p_grace_seconds integer, p_ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS TABLE(status text, user_id uuid, family_id uuid, token_id integer, expires_at timestamp with time zone, family_expires_at timestamp with time zone)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'activity', 'pg_temp'
AS $function$
#variable_conflict use_column
DECLARE
  v_user_id   uuid;
  v_family_id uuid;
  v_active    boolean;
  v_old       activity.refresh_tokens%ROWTYPE;
  v_next      activity.refresh_tokens%ROWTYPE;
  v_new       activity.refresh_tokens%ROWTYPE;
  v_ended     integer;
BEGIN
  IF p_idle_ttl_seconds IS NULL OR p_idle_ttl_seconds <= 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'ttl must be > 0';
  END IF;
  IF p_grace_seconds IS NULL OR p_grace_seconds < 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'grace must be >= 0';
  END IF;
  IF p_new_token_hash IS NULL OR p_new_token_hash !~ '^[0-9a-f]{64}$' OR p_new_jti IS NULL OR length(p_new_jti) NOT BETWEEN 1 AND 50 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash must be lowercase hex SHA-256 and jti 1-50 characters';
  END IF;

  SELECT t.user_id, t.family_id INTO v_user_id, v_family_id FROM activity.refresh_tokens t WHERE t.token = p_token_hash;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::integer, NULL::timestamptz, NULL::timestamptz;
    RETURN;
  END IF;

  -- Lock order: users row (KEY SHARE: we may insert) -> family -> token row.
  SELECT u.is_active INTO v_active FROM activity.users u WHERE u.id = v_user_id FOR KEY SHARE;
  IF NOT FOUND OR NOT v_active THEN
    RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::integer, NULL::timestamptz, NULL::timestamptz;
    RETURN;
  END IF;
  -- Every presentation of a token of this family waits here for the one before it,
  -- so the reads below see its outcome (READ COMMITTED: each statement a fresh snapshot).
  PERFORM pg_advisory_xact_lock(8151, hashtext(v_family_id::text));
  SELECT * INTO v_old FROM activity.refresh_tokens t WHERE t.token = p_token_hash FOR UPDATE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::integer, NULL::timestamptz, NULL::timestamptz;
    RETURN;
  END IF;

  IF NOT v_old.revoked THEN
    IF v_old.expires_at <= now() OR v_old.family_expires_at <= now() THEN
      RETURN QUERY SELECT 'expired'::text, v_old.user_id, v_old.family_id, NULL::integer, v_old.expires_at, v_old.family_expires_at;
      RETURN;
    END IF;
    BEGIN
      INSERT INTO activity.refresh_tokens (user_id, token, jti, expires_at, family_id, family_expires_at, user_agent, ip)
      VALUES (v_old.user_id, p_new_token_hash, p_new_jti,
              least(now() + make_interval(secs => p_idle_ttl_seconds), v_old.family_expires_at),
              v_old.family_id, v_old.family_expires_at,
              left(NULLIF(p_ctx->>'userAgent', ''), 512), activity.fn_inet(p_ctx->>'ip'))
      RETURNING * INTO v_new;
    EXCEPTION WHEN unique_violation THEN
      RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash or jti already used';
    END;
    UPDATE activity.refresh_tokens t
       SET revoked = true, revoked_at = now(), revoked_reason = 'rotated', replaced_by = v_new.id, last_used_at = now()
     WHERE t.id = v_old.id;
    PERFORM activity.fn_audit('refresh_token_rotated', v_old.user_id, p_ctx,
      jsonb_build_object('family_id', v_old.family_id, 'token_id', v_new.id, 'status', 'rotated'));
    RETURN QUERY SELECT 'rotated'::text, v_new.user_id, v_new.family_id, v_new.id, v_new.expires_at, v_new.family_expires_at;
    RETURN;
  END IF;

  -- Revoked by anything but a rotation: its session was ended on purpose (or by an
  -- earlier reuse detection). Refused, but not a new reuse.
  IF v_old.revoked_reason IS DISTINCT FROM 'rotated' THEN
    RETURN QUERY SELECT 'revoked'::text, v_old.user_id, v_old.family_id, NULL::integer, NULL::timestamptz, v_old.family_expires_at;
    RETURN;
  END IF;

  -- Grace: a rotated token presented again within seconds (a client retry after a
  -- lost answer, two tabs racing) while its successor is unused gets that same
  -- successor back. Nothing is inserted: the session keeps one live token.
  IF p_grace_seconds > 0 AND v_old.revoked_at > now() - make_interval(secs => p_grace_seconds)
     AND v_old.family_expires_at > now() THEN
    SELECT * INTO v_next FROM activity.refresh_tokens t WHERE t.id = v_old.replaced_by;
    IF FOUND AND NOT v_next.revoked AND v_next.expires_at > now() AND v_next.family_expires_at > now() THEN
      IF v_next.token <> p_new_token_hash THEN
        -- The successor was not derived from this token the way the caller derives it
        -- (rotated by an older release, or under another pepper): the caller cannot hand
        -- it out. Refused, and nothing changes: not a reuse, the session stays as it is.
        RETURN QUERY SELECT 'invalid'::text, v_old.user_id, v_old.family_id, NULL::integer, NULL::timestamptz, NULL::timestamptz;
        RETURN;
      END IF;
      UPDATE activity.refresh_tokens t SET last_used_at = now() WHERE t.id = v_old.id;
      PERFORM activity.fn_audit('refresh_token_rotated', v_old.user_id, p_ctx,
        jsonb_build_object('family_id', v_old.family_id, 'token_id', v_next.id, 'status', 'grace'));
      RETURN QUERY SELECT 'grace'::text, v_next.user_id, v_next.family_id, v_next.id, v_next.expires_at, v_next.family_expires_at;
      RETURN;
    END IF;
  END IF;

  -- Reuse: a rotated token outside the grace window, or whose successor was used.
  -- The whole family is revoked. Nothing live to revoke: the session had already
  -- ended (logout, an earlier reuse, expiry), so this is no new reuse either.
  WITH ended AS (
    UPDATE activity.refresh_tokens t
       SET revoked = true, revoked_at = now(), revoked_reason = 'reuse_detected'
     WHERE t.family_id = v_old.family_id AND NOT t.revoked
       AND t.expires_at > now() AND t.family_expires_at > now()
    RETURNING t.id
  )
  SELECT count(*) INTO v_ended FROM ended;
  IF v_ended = 0 THEN
    RETURN QUERY SELECT 'revoked'::text, v_old.user_id, v_old.family_id, NULL::integer, NULL::timestamptz, v_old.family_expires_at;
    RETURN;
  END IF;
  PERFORM activity.fn_audit('refresh_token_reuse', v_old.user_id, p_ctx,
    jsonb_build_object('family_id', v_old.family_id, 'token_id', v_old.id,
                       'revoked_reason', v_old.revoked_reason, 'tokens_revoked', v_ended));
  RETURN QUERY SELECT 'reuse_detected'::text, v_old.user_id, v_old.family_id, NULL::integer, NULL::timestamptz, v_old.family_expires_at;
END
$function$

;

CREATE OR REPLACE FUNCTION activity.sp_cleanup_expired(p_audit_retention_days integer, p_attempt_retention_hours integer DEFAULT 24)
 RETURNS TABLE(item text, deleted bigint)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'activity', 'pg_temp'
AS $function$
#variable_conflict use_column
DECLARE
  v_tokens   bigint;
  v_email    bigint;
  v_attempts bigint;
  v_audit    bigint;
  v_devices  bigint;
  v_mail     bigint;
BEGIN
  IF p_audit_retention_days IS NULL OR p_audit_retention_days < 1
     OR p_attempt_retention_hours IS NULL OR p_attempt_retention_hours < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'retention must be >= 1';
  END IF;
  -- Whole families only: while any token of a family is live, its rotated tokens
  -- stay so that presenting one is still recognised as reuse.
  DELETE FROM activity.refresh_tokens t
   WHERE t.family_id IN (
     SELECT d.family_id FROM activity.refresh_tokens d
      GROUP BY d.family_id
     HAVING bool_and(d.revoked OR d.expires_at <= now() OR d.family_expires_at <= now()));
  GET DIAGNOSTICS v_tokens = ROW_COUNT;
  DELETE FROM activity.email_tokens e WHERE e.used_at IS NOT NULL OR e.expires_at <= now();
  GET DIAGNOSTICS v_email = ROW_COUNT;
  DELETE FROM activity.login_attempts a
   WHERE (a.locked_until IS NULL OR a.locked_until <= now())
     AND a.last_failed_at < now() - make_interval(hours => p_attempt_retention_hours);
  GET DIAGNOSTICS v_attempts = ROW_COUNT;
  DELETE FROM activity.audit_logs l WHERE l.created_at < now() - make_interval(days => p_audit_retention_days);
  GET DIAGNOSTICS v_audit = ROW_COUNT;
  DELETE FROM activity.trusted_devices d WHERE d.expires_at <= now();
  GET DIAGNOSTICS v_devices = ROW_COUNT;
  -- Mail windows are at most hours long: a row older than the attempt retention is spent.
  DELETE FROM activity.mail_budget b WHERE b.window_start < now() - make_interval(hours => p_attempt_retention_hours);
  GET DIAGNOSTICS v_mail = ROW_COUNT;
  PERFORM activity.fn_audit('cleanup', NULL, '{}',
    jsonb_build_object('refresh_tokens', v_tokens, 'email_tokens', v_email,
                       'login_attempts', v_attempts, 'audit_logs', v_audit,
                       'trusted_devices', v_devices, 'mail_budget', v_mail));
  RETURN QUERY VALUES ('refresh_tokens'::text, v_tokens), ('email_tokens', v_email),
                      ('login_attempts', v_attempts), ('audit_logs', v_audit),
                      ('trusted_devices', v_devices), ('mail_budget', v_mail);
END
$function$

;

DROP FUNCTION activity.fn_refresh_token_is_live(boolean, timestamptz, timestamptz);
