-- Up Migration
--
-- The revocation reasons are one enum type, the one place they are listed in SQL
-- (the TypeScript union RevokeReason in src/db/procedures.ts is held equal to it
-- by test/db/vocabularies.test.ts). The column takes the type instead of its CHECK;
-- the procedures keep their text parameters and turn them into the type through
-- fn_require_revoke_reason, so a bad reason stays AU007, never a 22P02.

CREATE TYPE activity.revoke_reason AS ENUM (
  'rotated', 'logout', 'logout_all', 'session_ended', 'reuse_detected',
  'password_changed', 'password_reset', 'user_deactivated');
COMMENT ON TYPE activity.revoke_reason IS 'Why a refresh token was revoked.';

ALTER TABLE activity.refresh_tokens DROP CONSTRAINT refresh_tokens_revoked_reason_check;
ALTER TABLE activity.refresh_tokens
  ALTER COLUMN revoked_reason TYPE activity.revoke_reason USING revoked_reason::activity.revoke_reason;

-- Checked against the labels rather than by a failing cast: no subtransaction per call.
CREATE FUNCTION activity.fn_require_revoke_reason(p_reason text)
RETURNS activity.revoke_reason
LANGUAGE plpgsql STABLE SET search_path = activity, pg_temp
AS $$
BEGIN
  IF p_reason IS NULL OR NOT p_reason = ANY (enum_range(NULL::activity.revoke_reason)::text[]) THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown revocation reason';
  END IF;
  RETURN p_reason::activity.revoke_reason;
END
$$;
COMMENT ON FUNCTION activity.fn_require_revoke_reason(text) IS 'Internal: the text as a revoke_reason; AU007 when NULL or not one of its labels.';
REVOKE ALL ON FUNCTION activity.fn_require_revoke_reason(text) FROM PUBLIC;

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
       SET revoked = true, revoked_at = now(), revoked_reason = p_reason::activity.revoke_reason
     WHERE t.user_id = p_user_id AND activity.fn_refresh_token_is_live(t.revoked, t.expires_at, t.family_expires_at)
       AND t.family_id IS DISTINCT FROM p_except_family_id
    RETURNING t.family_id
  )
  SELECT count(DISTINCT e.family_id) INTO v_ended FROM ended e;
  RETURN v_ended;
END
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
  v_reason    activity.revoke_reason := activity.fn_require_revoke_reason(p_reason);
BEGIN
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
       SET revoked = true, revoked_at = now(), revoked_reason = v_reason
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

CREATE OR REPLACE FUNCTION activity.sp_revoke_user_sessions(p_user_id uuid, p_except_family_id uuid DEFAULT NULL::uuid, p_reason text DEFAULT 'logout_all'::text, p_ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'activity', 'pg_temp'
AS $function$
DECLARE
  v_ended integer;
BEGIN
  -- 'rotated' is the rotation's own mark: a revoke-all must not pass for one.
  IF activity.fn_require_revoke_reason(p_reason) = 'rotated' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown revocation reason';
  END IF;
  PERFORM FROM activity.users u WHERE u.id = p_user_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
  END IF;
  v_ended := activity.fn_revoke_user_families(p_user_id, p_except_family_id, p_reason);
  PERFORM activity.fn_audit('sessions_revoked', p_user_id, p_ctx,
    jsonb_build_object('reason', p_reason, 'sessions_ended', v_ended, 'kept_family_id', p_except_family_id));
  RETURN v_ended;
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

CREATE OR REPLACE FUNCTION activity.sp_revoke_user_sessions(p_user_id uuid, p_except_family_id uuid DEFAULT NULL::uuid, p_reason text DEFAULT 'logout_all'::text, p_ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'activity', 'pg_temp'
AS $function$
DECLARE
  v_ended integer;
BEGIN
  IF p_reason IS NULL OR p_reason NOT IN ('logout', 'logout_all', 'session_ended', 'reuse_detected',
                                          'password_changed', 'password_reset', 'user_deactivated') THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown revocation reason';
  END IF;
  PERFORM FROM activity.users u WHERE u.id = p_user_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
  END IF;
  v_ended := activity.fn_revoke_user_families(p_user_id, p_except_family_id, p_reason);
  PERFORM activity.fn_audit('sessions_revoked', p_user_id, p_ctx,
    jsonb_build_object('reason', p_reason, 'sessions_ended', v_ended, 'kept_family_id', p_except_family_id));
  RETURN v_ended;
END
$function$

;

DROP FUNCTION activity.fn_require_revoke_reason(text);

ALTER TABLE activity.refresh_tokens ALTER COLUMN revoked_reason TYPE text USING revoked_reason::text;
ALTER TABLE activity.refresh_tokens ADD CONSTRAINT refresh_tokens_revoked_reason_check CHECK (revoked_reason IN (
    'rotated', 'logout', 'logout_all', 'session_ended', 'reuse_detected',
    'password_changed', 'password_reset', 'user_deactivated'));

DROP TYPE activity.revoke_reason;
