-- Up Migration
--
-- How the user authenticated (the amr claim, RFC 8176: pwd, fed, plus otp for a second
-- factor) belongs to the session: an access token minted at a refresh must say what the
-- login said. It is kept on every token row of the family and copied at each rotation,
-- so the refresh reads it with the row it already locks (no extra query). NULL: a session
-- started before this migration, whose tokens carry no amr claim.
-- sp_save_refresh_token takes it (new argument) and sp_rotate_refresh_token returns it
-- (new column): both are dropped and created again with their grants.

ALTER TABLE activity.refresh_tokens ADD COLUMN amr text[];

CREATE FUNCTION activity.fn_amr_is_valid(p_amr text[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $$
  SELECT p_amr IS NULL
      OR (array_position(p_amr, NULL) IS NULL
          AND cardinality(p_amr) BETWEEN 1 AND 2
          AND p_amr[1] IN ('pwd', 'fed')
          AND (cardinality(p_amr) = 1 OR p_amr[2] = 'otp'))
$$;
COMMENT ON FUNCTION activity.fn_amr_is_valid(text[]) IS 'Internal: whether an amr (RFC 8176) is one this service issues: {pwd}, {fed}, {pwd,otp}, {fed,otp}, or NULL (not stated).';
REVOKE ALL ON FUNCTION activity.fn_amr_is_valid(text[]) FROM PUBLIC;

ALTER TABLE activity.refresh_tokens ADD CONSTRAINT refresh_tokens_amr_check CHECK (activity.fn_amr_is_valid(amr));

DROP FUNCTION activity.sp_save_refresh_token(uuid, text, text, integer, integer, jsonb);
CREATE FUNCTION activity.sp_save_refresh_token(p_user_id uuid, p_token_hash text, p_jti text, p_idle_ttl_seconds integer, p_family_ttl_seconds integer, p_amr text[] DEFAULT NULL::text[], p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(id integer, family_id uuid, expires_at timestamp with time zone, family_expires_at timestamp with time zone, amr text[])
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $_$
#variable_conflict use_column
DECLARE
  v_active boolean;
  v_token  activity.refresh_tokens%ROWTYPE;
  v_family_expires timestamptz;
BEGIN
  IF p_idle_ttl_seconds IS NULL OR p_idle_ttl_seconds <= 0 OR p_family_ttl_seconds IS NULL OR p_family_ttl_seconds <= 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'ttl must be > 0';
  END IF;
  IF p_token_hash IS NULL OR p_token_hash !~ '^[0-9a-f]{64}$' OR p_jti IS NULL OR length(p_jti) NOT BETWEEN 1 AND 50 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash must be lowercase hex SHA-256 and jti 1-50 characters';
  END IF;
  IF NOT activity.fn_amr_is_valid(p_amr) THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'amr must hold pwd or fed, optionally otp';
  END IF;
  -- FOR KEY SHARE: a concurrent revoke-all (FOR UPDATE) either sees this session or runs first.
  SELECT u.is_active INTO v_active FROM activity.users u WHERE u.id = p_user_id FOR KEY SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
  ELSIF NOT v_active THEN
    RAISE EXCEPTION USING ERRCODE = 'AU003', MESSAGE = 'user is inactive';
  END IF;
  v_family_expires := now() + make_interval(secs => p_family_ttl_seconds);
  BEGIN
    INSERT INTO activity.refresh_tokens (user_id, token, jti, expires_at, family_id, family_expires_at, user_agent, ip, amr)
    VALUES (p_user_id, p_token_hash, p_jti,
            least(now() + make_interval(secs => p_idle_ttl_seconds), v_family_expires),
            gen_random_uuid(), v_family_expires,
            left(NULLIF(p_ctx->>'userAgent', ''), 512), activity.fn_inet(p_ctx->>'ip'), p_amr)
    RETURNING * INTO v_token;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash or jti already used';
  END;
  PERFORM activity.fn_audit('session_started', p_user_id, p_ctx, jsonb_build_object('family_id', v_token.family_id));
  RETURN QUERY SELECT v_token.id, v_token.family_id, v_token.expires_at, v_token.family_expires_at, v_token.amr;
END
$_$;

COMMENT ON FUNCTION activity.sp_save_refresh_token(p_user_id uuid, p_token_hash text, p_jti text, p_idle_ttl_seconds integer, p_family_ttl_seconds integer, p_amr text[], p_ctx jsonb) IS 'Starts a session: a new refresh token family, remembering how the user authenticated (p_amr, RFC 8176: {pwd}, {fed}, {pwd,otp}, {fed,otp}; NULL: not stated) for every token the session will rotate to. AU002/AU003; AU007 for ttl <= 0, a bad amr, a malformed hash or a hash/jti already used. Audit session_started.';
REVOKE ALL ON FUNCTION activity.sp_save_refresh_token(uuid, text, text, integer, integer, text[], jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_save_refresh_token(uuid, text, text, integer, integer, text[], jsonb) TO auth_api_user;

DROP FUNCTION activity.sp_rotate_refresh_token(text, text, text, integer, integer, jsonb);
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

-- Down Migration

DROP FUNCTION activity.sp_rotate_refresh_token(text, text, text, integer, integer, jsonb);
CREATE FUNCTION activity.sp_rotate_refresh_token(p_token_hash text, p_new_token_hash text, p_new_jti text, p_idle_ttl_seconds integer, p_grace_seconds integer, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(status text, user_id uuid, family_id uuid, token_id integer, expires_at timestamp with time zone, family_expires_at timestamp with time zone)
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
$_$;

COMMENT ON FUNCTION activity.sp_rotate_refresh_token(p_token_hash text, p_new_token_hash text, p_new_jti text, p_idle_ttl_seconds integer, p_grace_seconds integer, p_ctx jsonb) IS 'Rotates a refresh token in one transaction; p_new_token_hash is the successor''s hash, derived by the caller from the presented token (a retry passes the same). status: rotated (successor inserted) | grace (rotated less than p_grace_seconds ago and its successor, whose hash equals p_new_token_hash, is unused: that successor is returned, nothing inserted) | reuse_detected (a rotated token outside grace or with a used successor: family revoked, audit refresh_token_reuse) | revoked (revoked by logout, session end, password change, reuse detection ..., or its session already ended: nothing changes, no audit) | expired | invalid (unknown token or inactive user; with user_id set: a grace successor with another hash, nothing changes). Never raises for these so a revocation commits. AU007 for bad ttl, grace or new hash/jti.';
REVOKE ALL ON FUNCTION activity.sp_rotate_refresh_token(text, text, text, integer, integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_rotate_refresh_token(text, text, text, integer, integer, jsonb) TO auth_api_user;

DROP FUNCTION activity.sp_save_refresh_token(uuid, text, text, integer, integer, text[], jsonb);
CREATE FUNCTION activity.sp_save_refresh_token(p_user_id uuid, p_token_hash text, p_jti text, p_idle_ttl_seconds integer, p_family_ttl_seconds integer, p_ctx jsonb DEFAULT '{}'::jsonb) RETURNS TABLE(id integer, family_id uuid, expires_at timestamp with time zone, family_expires_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'activity', 'pg_temp'
    AS $_$
#variable_conflict use_column
DECLARE
  v_active boolean;
  v_token  activity.refresh_tokens%ROWTYPE;
  v_family_expires timestamptz;
BEGIN
  IF p_idle_ttl_seconds IS NULL OR p_idle_ttl_seconds <= 0 OR p_family_ttl_seconds IS NULL OR p_family_ttl_seconds <= 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'ttl must be > 0';
  END IF;
  IF p_token_hash IS NULL OR p_token_hash !~ '^[0-9a-f]{64}$' OR p_jti IS NULL OR length(p_jti) NOT BETWEEN 1 AND 50 THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash must be lowercase hex SHA-256 and jti 1-50 characters';
  END IF;
  -- FOR KEY SHARE: a concurrent revoke-all (FOR UPDATE) either sees this session or runs first.
  SELECT u.is_active INTO v_active FROM activity.users u WHERE u.id = p_user_id FOR KEY SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
  ELSIF NOT v_active THEN
    RAISE EXCEPTION USING ERRCODE = 'AU003', MESSAGE = 'user is inactive';
  END IF;
  v_family_expires := now() + make_interval(secs => p_family_ttl_seconds);
  BEGIN
    INSERT INTO activity.refresh_tokens (user_id, token, jti, expires_at, family_id, family_expires_at, user_agent, ip)
    VALUES (p_user_id, p_token_hash, p_jti,
            least(now() + make_interval(secs => p_idle_ttl_seconds), v_family_expires),
            gen_random_uuid(), v_family_expires,
            left(NULLIF(p_ctx->>'userAgent', ''), 512), activity.fn_inet(p_ctx->>'ip'))
    RETURNING * INTO v_token;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'token hash or jti already used';
  END;
  PERFORM activity.fn_audit('session_started', p_user_id, p_ctx, jsonb_build_object('family_id', v_token.family_id));
  RETURN QUERY SELECT v_token.id, v_token.family_id, v_token.expires_at, v_token.family_expires_at;
END
$_$;

COMMENT ON FUNCTION activity.sp_save_refresh_token(p_user_id uuid, p_token_hash text, p_jti text, p_idle_ttl_seconds integer, p_family_ttl_seconds integer, p_ctx jsonb) IS 'Starts a session: a new refresh token family. AU002/AU003; AU007 for ttl <= 0, a malformed hash or a hash/jti already used. Audit session_started.';
REVOKE ALL ON FUNCTION activity.sp_save_refresh_token(uuid, text, text, integer, integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_save_refresh_token(uuid, text, text, integer, integer, jsonb) TO auth_api_user;

ALTER TABLE activity.refresh_tokens DROP CONSTRAINT refresh_tokens_amr_check;
DROP FUNCTION activity.fn_amr_is_valid(text[]);
ALTER TABLE activity.refresh_tokens DROP COLUMN amr;
