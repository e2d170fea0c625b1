-- Up Migration
--
-- Refresh rotation that cannot fork a session (issue 11, part 1).
--
-- The service now derives a rotated token's successor from the presented token
-- (HMAC-SHA-256 under REFRESH_TOKEN_PEPPER) and passes its hash, so a retry or a
-- parallel presentation passes the same p_new_token_hash every time. Inside the
-- grace window this procedure returns the successor the first rotation inserted
-- (after checking its hash is that one) and inserts nothing: a session has at
-- most one live token, whatever the concurrency (the family's advisory lock
-- serialises the presentations).
--
-- A token revoked by anything but a rotation (logout, ending a session, logout-all,
-- password change or reset, deactivation, an earlier reuse detection), or a rotated
-- token whose session has no live token left, is answered 'revoked': the session
-- is already over, so it is not a new reuse (no audit row, no metric).
--
-- Same signature: CREATE OR REPLACE keeps the grants; the down part restores the
-- previous body and comment exactly.

CREATE OR REPLACE FUNCTION activity.sp_rotate_refresh_token(p_token_hash text, p_new_token_hash text, p_new_jti text,
                                                 p_idle_ttl_seconds integer, p_grace_seconds integer,
                                                 p_ctx jsonb DEFAULT '{}')
RETURNS TABLE (status text, user_id uuid, family_id uuid, token_id integer, expires_at timestamptz,
               family_expires_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION activity.sp_rotate_refresh_token(text, text, text, integer, integer, jsonb) IS 'Rotates a refresh token in one transaction; p_new_token_hash is the successor''s hash, derived by the caller from the presented token (a retry passes the same). status: rotated (successor inserted) | grace (rotated less than p_grace_seconds ago and its successor, whose hash equals p_new_token_hash, is unused: that successor is returned, nothing inserted) | reuse_detected (a rotated token outside grace or with a used successor: family revoked, audit refresh_token_reuse) | revoked (revoked by logout, session end, password change, reuse detection ..., or its session already ended: nothing changes, no audit) | expired | invalid (unknown token or inactive user; with user_id set: a grace successor with another hash, nothing changes). Never raises for these so a revocation commits. AU007 for bad ttl, grace or new hash/jti.';

-- Down Migration

CREATE OR REPLACE FUNCTION activity.sp_rotate_refresh_token(p_token_hash text, p_new_token_hash text, p_new_jti text,
                                                 p_idle_ttl_seconds integer, p_grace_seconds integer,
                                                 p_ctx jsonb DEFAULT '{}')
RETURNS TABLE (status text, user_id uuid, family_id uuid, token_id integer, expires_at timestamptz,
               family_expires_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  v_user_id   uuid;
  v_family_id uuid;
  v_active    boolean;
  v_old       activity.refresh_tokens%ROWTYPE;
  v_next      activity.refresh_tokens%ROWTYPE;
  v_new       activity.refresh_tokens%ROWTYPE;
  v_status    text;
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
  PERFORM pg_advisory_xact_lock(8151, hashtext(v_family_id::text));
  -- Re-read under the locks: a concurrent rotation of the same token has committed by now.
  SELECT * INTO v_old FROM activity.refresh_tokens t WHERE t.token = p_token_hash FOR UPDATE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::uuid, NULL::integer, NULL::timestamptz, NULL::timestamptz;
    RETURN;
  END IF;

  IF v_old.revoked THEN
    -- Grace: the same token presented twice within seconds (a client retry or two
    -- tabs racing) while the token it was rotated into is still live.
    IF v_old.revoked_reason = 'rotated' AND p_grace_seconds > 0
       AND v_old.revoked_at > now() - make_interval(secs => p_grace_seconds)
       AND v_old.family_expires_at > now() THEN
      SELECT * INTO v_next FROM activity.refresh_tokens t WHERE t.id = v_old.replaced_by;
      IF FOUND AND NOT v_next.revoked AND v_next.expires_at > now() AND v_next.family_expires_at > now() THEN
        v_status := 'grace';
      END IF;
    END IF;
    IF v_status IS NULL THEN
      WITH ended AS (
        UPDATE activity.refresh_tokens t
           SET revoked = true, revoked_at = now(), revoked_reason = 'reuse_detected'
         WHERE t.family_id = v_old.family_id AND NOT t.revoked
           AND t.expires_at > now() AND t.family_expires_at > now()
        RETURNING t.id
      )
      SELECT count(*) INTO v_ended FROM ended;
      PERFORM activity.fn_audit('refresh_token_reuse', v_old.user_id, p_ctx,
        jsonb_build_object('family_id', v_old.family_id, 'token_id', v_old.id,
                           'revoked_reason', v_old.revoked_reason, 'tokens_revoked', v_ended));
      RETURN QUERY SELECT 'reuse_detected'::text, v_old.user_id, v_old.family_id, NULL::integer, NULL::timestamptz, v_old.family_expires_at;
      RETURN;
    END IF;
  ELSIF v_old.expires_at <= now() OR v_old.family_expires_at <= now() THEN
    RETURN QUERY SELECT 'expired'::text, v_old.user_id, v_old.family_id, NULL::integer, v_old.expires_at, v_old.family_expires_at;
    RETURN;
  ELSE
    v_status := 'rotated';
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

  IF v_status = 'rotated' THEN
    UPDATE activity.refresh_tokens t
       SET revoked = true, revoked_at = now(), revoked_reason = 'rotated', replaced_by = v_new.id, last_used_at = now()
     WHERE t.id = v_old.id;
  ELSE
    UPDATE activity.refresh_tokens t SET last_used_at = now() WHERE t.id = v_old.id;
  END IF;
  PERFORM activity.fn_audit('refresh_token_rotated', v_old.user_id, p_ctx,
    jsonb_build_object('family_id', v_old.family_id, 'token_id', v_new.id, 'status', v_status));
  RETURN QUERY SELECT v_status, v_new.user_id, v_new.family_id, v_new.id, v_new.expires_at, v_new.family_expires_at;
END
$$;
COMMENT ON FUNCTION activity.sp_rotate_refresh_token(text, text, text, integer, integer, jsonb) IS 'Rotates a refresh token in one transaction. status rotated | grace | reuse_detected (family revoked, audit refresh_token_reuse) | expired | invalid; never raises for these so a revocation commits. AU007 for bad ttl, grace or new hash/jti.';
