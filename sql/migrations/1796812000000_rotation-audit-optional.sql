-- Up Migration
--
-- An audit row for every ordinary rotation becomes optional (issue 18). It was a fifth
-- of what a rotation costs the database: rotations/s 1.20x without it (median of 10
-- alternating rounds of the ceiling loop), WAL per rotation 2,650 -> 2,040 bytes. And
-- for a client that keeps its address and agent it repeats what the successor's own row
-- records (created_at, ip, user_agent; the predecessor's replaced_by). So by default a
-- rotation is audited only when the address or the user agent changed from the
-- presented token's: what an investigation of a session looks for. Reuse is audited
-- as before, and so is every end of a session. REFRESH_AUDIT_EVERY_ROTATION=true (the
-- argument's default, which also keeps an instance of the previous release during a
-- rolling deploy on the old behaviour) audits every one.

CREATE FUNCTION activity.fn_rotation_moved(p_old activity.refresh_tokens, p_ctx jsonb) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
  SELECT p_old.ip IS DISTINCT FROM activity.fn_inet(p_ctx->>'ip')
      OR p_old.user_agent IS DISTINCT FROM left(NULLIF(p_ctx->>'userAgent', ''), 512)
$$;
COMMENT ON FUNCTION activity.fn_rotation_moved(activity.refresh_tokens, jsonb) IS 'Internal: whether a refresh token is presented from another address or user agent than the one it was issued to (the same normalisation as the insert).';
REVOKE ALL ON FUNCTION activity.fn_rotation_moved(activity.refresh_tokens, jsonb) FROM PUBLIC;

DROP FUNCTION activity.sp_rotate_refresh_token(text, text, text, integer, integer, jsonb);
CREATE FUNCTION activity.sp_rotate_refresh_token(p_token_hash text, p_new_token_hash text, p_new_jti text, p_idle_ttl_seconds integer, p_grace_seconds integer, p_ctx jsonb DEFAULT '{}'::jsonb, p_audit_every_rotation boolean DEFAULT true) RETURNS TABLE(status text, user_id uuid, family_id uuid, token_id integer, expires_at timestamp with time zone, family_expires_at timestamp with time zone, amr text[])
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $_$
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
    RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::integer, NULL::timestamptz, NULL::timestamptz, NULL::text[];
    RETURN;
  END IF;

  -- Lock order: users row (KEY SHARE: we may insert) -> family -> token row.
  SELECT u.is_active INTO v_active FROM activity.users u WHERE u.id = v_user_id FOR KEY SHARE;
  IF NOT FOUND OR NOT v_active THEN
    RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::integer, NULL::timestamptz, NULL::timestamptz, NULL::text[];
    RETURN;
  END IF;
  -- Every presentation of a token of this family waits here for the one before it,
  -- so the reads below see its outcome (READ COMMITTED: each statement a fresh snapshot).
  PERFORM pg_advisory_xact_lock(8151, hashtext(v_family_id::text));
  SELECT * INTO v_old FROM activity.refresh_tokens t WHERE t.token = p_token_hash FOR UPDATE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::integer, NULL::timestamptz, NULL::timestamptz, NULL::text[];
    RETURN;
  END IF;

  IF NOT v_old.revoked THEN
    IF NOT activity.fn_refresh_token_is_live(v_old.revoked, v_old.expires_at, v_old.family_expires_at) THEN
      RETURN QUERY SELECT 'expired'::text, v_old.user_id, v_old.family_id, NULL::integer, v_old.expires_at, v_old.family_expires_at, v_old.amr;
      RETURN;
    END IF;
    BEGIN
      INSERT INTO activity.refresh_tokens (user_id, token, jti, expires_at, family_id, family_expires_at, user_agent, ip, amr)
      VALUES (v_old.user_id, p_new_token_hash, p_new_jti,
              least(now() + make_interval(secs => p_idle_ttl_seconds), v_old.family_expires_at),
              v_old.family_id, v_old.family_expires_at,
              left(NULLIF(p_ctx->>'userAgent', ''), 512), activity.fn_inet(p_ctx->>'ip'), v_old.amr)
      RETURNING * INTO v_new;
    EXCEPTION WHEN unique_violation THEN
      RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash or jti already used';
    END;
    UPDATE activity.refresh_tokens t
       SET revoked = true, revoked_at = now(), revoked_reason = 'rotated', replaced_by = v_new.id, last_used_at = now()
     WHERE t.id = v_old.id;
    IF p_audit_every_rotation OR activity.fn_rotation_moved(v_old, p_ctx) THEN
      PERFORM activity.fn_audit('refresh_token_rotated', v_old.user_id, p_ctx,
        jsonb_build_object('family_id', v_old.family_id, 'token_id', v_new.id, 'status', 'rotated'));
    END IF;
    RETURN QUERY SELECT 'rotated'::text, v_new.user_id, v_new.family_id, v_new.id, v_new.expires_at, v_new.family_expires_at, v_new.amr;
    RETURN;
  END IF;

  -- Revoked by anything but a rotation: its session was ended on purpose (or by an
  -- earlier reuse detection). Refused, but not a new reuse.
  IF v_old.revoked_reason IS DISTINCT FROM 'rotated' THEN
    RETURN QUERY SELECT 'revoked'::text, v_old.user_id, v_old.family_id, NULL::integer, NULL::timestamptz, v_old.family_expires_at, v_old.amr;
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
        RETURN QUERY SELECT 'invalid'::text, v_old.user_id, v_old.family_id, NULL::integer, NULL::timestamptz, NULL::timestamptz, NULL::text[];
        RETURN;
      END IF;
      UPDATE activity.refresh_tokens t SET last_used_at = now() WHERE t.id = v_old.id;
      IF p_audit_every_rotation OR activity.fn_rotation_moved(v_old, p_ctx) THEN
        PERFORM activity.fn_audit('refresh_token_rotated', v_old.user_id, p_ctx,
          jsonb_build_object('family_id', v_old.family_id, 'token_id', v_next.id, 'status', 'grace'));
      END IF;
      RETURN QUERY SELECT 'grace'::text, v_next.user_id, v_next.family_id, v_next.id, v_next.expires_at, v_next.family_expires_at, v_next.amr;
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
    RETURN QUERY SELECT 'revoked'::text, v_old.user_id, v_old.family_id, NULL::integer, NULL::timestamptz, v_old.family_expires_at, v_old.amr;
    RETURN;
  END IF;
  PERFORM activity.fn_audit('refresh_token_reuse', v_old.user_id, p_ctx,
    jsonb_build_object('family_id', v_old.family_id, 'token_id', v_old.id,
                       'revoked_reason', v_old.revoked_reason, 'tokens_revoked', v_ended));
  RETURN QUERY SELECT 'reuse_detected'::text, v_old.user_id, v_old.family_id, NULL::integer, NULL::timestamptz, v_old.family_expires_at, v_old.amr;
END
$_$;

COMMENT ON FUNCTION activity.sp_rotate_refresh_token(p_token_hash text, p_new_token_hash text, p_new_jti text, p_idle_ttl_seconds integer, p_grace_seconds integer, p_ctx jsonb, p_audit_every_rotation boolean) IS 'Rotates a refresh token in one transaction; a rotated or grace answer writes audit refresh_token_rotated when p_audit_every_rotation, or when the caller''s address or user agent differs from the presented token''s (fn_rotation_moved); reuse is always audited; the successor keeps the session''s amr, returned with it (NULL when the session did not state one); p_new_token_hash is the successor''s hash, derived by the caller from the presented token (a retry passes the same). status: rotated (successor inserted) | grace (rotated less than p_grace_seconds ago and its successor, whose hash equals p_new_token_hash, is unused: that successor is returned, nothing inserted) | reuse_detected (a rotated token outside grace or with a used successor: family revoked, audit refresh_token_reuse) | revoked (revoked by logout, session end, password change, reuse detection ..., or its session already ended: nothing changes, no audit) | expired | invalid (unknown token or inactive user; with user_id set: a grace successor with another hash, nothing changes). Never raises for these so a revocation commits. AU007 for bad ttl, grace or new hash/jti.';
REVOKE ALL ON FUNCTION activity.sp_rotate_refresh_token(text, text, text, integer, integer, jsonb, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_rotate_refresh_token(text, text, text, integer, integer, jsonb, boolean) TO auth_api_user;

-- Down Migration

DROP FUNCTION activity.sp_rotate_refresh_token(text, text, text, integer, integer, jsonb, boolean);
DROP FUNCTION activity.fn_rotation_moved(activity.refresh_tokens, jsonb);
CREATE FUNCTION activity.sp_rotate_refresh_token(p_token_hash text, p_new_token_hash text, p_new_jti text, p_idle_ttl_seconds integer, p_grace_seconds integer, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(status text, user_id uuid, family_id uuid, token_id integer, expires_at timestamp with time zone, family_expires_at timestamp with time zone, amr text[])
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $_$
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
    RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::integer, NULL::timestamptz, NULL::timestamptz, NULL::text[];
    RETURN;
  END IF;

  -- Lock order: users row (KEY SHARE: we may insert) -> family -> token row.
  SELECT u.is_active INTO v_active FROM activity.users u WHERE u.id = v_user_id FOR KEY SHARE;
  IF NOT FOUND OR NOT v_active THEN
    RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::integer, NULL::timestamptz, NULL::timestamptz, NULL::text[];
    RETURN;
  END IF;
  -- Every presentation of a token of this family waits here for the one before it,
  -- so the reads below see its outcome (READ COMMITTED: each statement a fresh snapshot).
  PERFORM pg_advisory_xact_lock(8151, hashtext(v_family_id::text));
  SELECT * INTO v_old FROM activity.refresh_tokens t WHERE t.token = p_token_hash FOR UPDATE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::integer, NULL::timestamptz, NULL::timestamptz, NULL::text[];
    RETURN;
  END IF;

  IF NOT v_old.revoked THEN
    IF NOT activity.fn_refresh_token_is_live(v_old.revoked, v_old.expires_at, v_old.family_expires_at) THEN
      RETURN QUERY SELECT 'expired'::text, v_old.user_id, v_old.family_id, NULL::integer, v_old.expires_at, v_old.family_expires_at, v_old.amr;
      RETURN;
    END IF;
    BEGIN
      INSERT INTO activity.refresh_tokens (user_id, token, jti, expires_at, family_id, family_expires_at, user_agent, ip, amr)
      VALUES (v_old.user_id, p_new_token_hash, p_new_jti,
              least(now() + make_interval(secs => p_idle_ttl_seconds), v_old.family_expires_at),
              v_old.family_id, v_old.family_expires_at,
              left(NULLIF(p_ctx->>'userAgent', ''), 512), activity.fn_inet(p_ctx->>'ip'), v_old.amr)
      RETURNING * INTO v_new;
    EXCEPTION WHEN unique_violation THEN
      RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash or jti already used';
    END;
    UPDATE activity.refresh_tokens t
       SET revoked = true, revoked_at = now(), revoked_reason = 'rotated', replaced_by = v_new.id, last_used_at = now()
     WHERE t.id = v_old.id;
    PERFORM activity.fn_audit('refresh_token_rotated', v_old.user_id, p_ctx,
      jsonb_build_object('family_id', v_old.family_id, 'token_id', v_new.id, 'status', 'rotated'));
    RETURN QUERY SELECT 'rotated'::text, v_new.user_id, v_new.family_id, v_new.id, v_new.expires_at, v_new.family_expires_at, v_new.amr;
    RETURN;
  END IF;

  -- Revoked by anything but a rotation: its session was ended on purpose (or by an
  -- earlier reuse detection). Refused, but not a new reuse.
  IF v_old.revoked_reason IS DISTINCT FROM 'rotated' THEN
    RETURN QUERY SELECT 'revoked'::text, v_old.user_id, v_old.family_id, NULL::integer, NULL::timestamptz, v_old.family_expires_at, v_old.amr;
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
        RETURN QUERY SELECT 'invalid'::text, v_old.user_id, v_old.family_id, NULL::integer, NULL::timestamptz, NULL::timestamptz, NULL::text[];
        RETURN;
      END IF;
      UPDATE activity.refresh_tokens t SET last_used_at = now() WHERE t.id = v_old.id;
      PERFORM activity.fn_audit('refresh_token_rotated', v_old.user_id, p_ctx,
        jsonb_build_object('family_id', v_old.family_id, 'token_id', v_next.id, 'status', 'grace'));
      RETURN QUERY SELECT 'grace'::text, v_next.user_id, v_next.family_id, v_next.id, v_next.expires_at, v_next.family_expires_at, v_next.amr;
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
    RETURN QUERY SELECT 'revoked'::text, v_old.user_id, v_old.family_id, NULL::integer, NULL::timestamptz, v_old.family_expires_at, v_old.amr;
    RETURN;
  END IF;
  PERFORM activity.fn_audit('refresh_token_reuse', v_old.user_id, p_ctx,
    jsonb_build_object('family_id', v_old.family_id, 'token_id', v_old.id,
                       'revoked_reason', v_old.revoked_reason, 'tokens_revoked', v_ended));
  RETURN QUERY SELECT 'reuse_detected'::text, v_old.user_id, v_old.family_id, NULL::integer, NULL::timestamptz, v_old.family_expires_at, v_old.amr;
END
$_$;

COMMENT ON FUNCTION activity.sp_rotate_refresh_token(p_token_hash text, p_new_token_hash text, p_new_jti text, p_idle_ttl_seconds integer, p_grace_seconds integer, p_ctx jsonb) IS 'Rotates a refresh token in one transaction; the successor keeps the session''s amr, returned with it (NULL when the session did not state one); p_new_token_hash is the successor''s hash, derived by the caller from the presented token (a retry passes the same). status: rotated (successor inserted) | grace (rotated less than p_grace_seconds ago and its successor, whose hash equals p_new_token_hash, is unused: that successor is returned, nothing inserted) | reuse_detected (a rotated token outside grace or with a used successor: family revoked, audit refresh_token_reuse) | revoked (revoked by logout, session end, password change, reuse detection ..., or its session already ended: nothing changes, no audit) | expired | invalid (unknown token or inactive user; with user_id set: a grace successor with another hash, nothing changes). Never raises for these so a revocation commits. AU007 for bad ttl, grace or new hash/jti.';
REVOKE ALL ON FUNCTION activity.sp_rotate_refresh_token(text, text, text, integer, integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_rotate_refresh_token(text, text, text, integer, integer, jsonb) TO auth_api_user;
