-- Up Migration
--
-- The profile of seed 001 (issue 17): read with the account, changed field by field.
-- p_changes carries only the fields to set (a JSON null clears one), so one
-- procedure serves every PATCH. A username race between users is settled by
-- users_username_lower_idx: the loser's unique_violation becomes AU010.

CREATE FUNCTION activity.sp_get_profile(p_user_id uuid)
RETURNS TABLE (username text, first_name text, last_name text, phone text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
  SELECT u.username::text, u.first_name::text, u.last_name::text, u.phone::text
    FROM activity.users u
   WHERE u.id = p_user_id
$$;
COMMENT ON FUNCTION activity.sp_get_profile(uuid) IS 'The profile fields of the user (username, first and last name, phone), active or not; no row when unknown. Writes nothing.';
REVOKE ALL ON FUNCTION activity.sp_get_profile(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_get_profile(uuid) TO auth_api_user;

-- A name as stored: trimmed, NULL when nothing is left, at most 100 characters.
CREATE FUNCTION activity.fn_require_person_name(p_name text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = activity, pg_temp
AS $$
DECLARE
  v_name text := NULLIF(btrim(p_name), '');
BEGIN
  IF char_length(v_name) > 100 OR v_name ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU014', MESSAGE = 'names are at most 100 characters, without control characters';
  END IF;
  RETURN v_name;
END
$$;
COMMENT ON FUNCTION activity.fn_require_person_name(text) IS 'Internal: the name trimmed, NULL when empty; AU014 when longer than 100 characters or holding a control character.';
REVOKE ALL ON FUNCTION activity.fn_require_person_name(text) FROM PUBLIC;

CREATE FUNCTION activity.sp_update_profile(p_user_id uuid, p_changes jsonb, p_ctx jsonb DEFAULT '{}')
RETURNS TABLE (username text, first_name text, last_name text, phone text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = activity, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  v_old     activity.users%ROWTYPE;
  v_new     activity.users%ROWTYPE;
  v_key     text;
  v_changed text[] := '{}';
BEGIN
  IF p_changes IS NULL OR jsonb_typeof(p_changes) <> 'object' THEN
    RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'changes must be a JSON object';
  END IF;
  FOR v_key IN SELECT k FROM jsonb_object_keys(p_changes) AS k LOOP
    IF v_key NOT IN ('username', 'first_name', 'last_name', 'phone') THEN
      RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = 'unknown profile field ' || v_key;
    ELSIF jsonb_typeof(p_changes->v_key) NOT IN ('string', 'null') THEN
      RAISE EXCEPTION USING ERRCODE = 'AU007', MESSAGE = v_key || ' must be a string or null';
    END IF;
  END LOOP;

  SELECT * INTO v_old FROM activity.users u WHERE u.id = p_user_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'AU002', MESSAGE = 'user not found';
  ELSIF NOT v_old.is_active THEN
    RAISE EXCEPTION USING ERRCODE = 'AU003', MESSAGE = 'user is inactive';
  END IF;
  v_new := v_old;
  IF p_changes ? 'username' THEN
    v_new.username := CASE WHEN p_changes->>'username' IS NOT NULL THEN activity.fn_require_username(p_changes->>'username') END;
  END IF;
  IF p_changes ? 'first_name' THEN
    v_new.first_name := activity.fn_require_person_name(p_changes->>'first_name');
  END IF;
  IF p_changes ? 'last_name' THEN
    v_new.last_name := activity.fn_require_person_name(p_changes->>'last_name');
  END IF;
  IF p_changes ? 'phone' THEN
    IF p_changes->>'phone' !~ '^\+[1-9][0-9]{4,14}$' THEN
      RAISE EXCEPTION USING ERRCODE = 'AU013', MESSAGE = 'phone must be E.164';
    END IF;
    v_new.phone := p_changes->>'phone';
  END IF;

  -- Only what differs is written, audited and announced (a case change of the username counts).
  SELECT COALESCE(array_agg(f ORDER BY f), '{}') INTO v_changed
    FROM unnest(ARRAY[
      CASE WHEN v_new.username IS DISTINCT FROM v_old.username THEN 'username' END,
      CASE WHEN v_new.first_name IS DISTINCT FROM v_old.first_name THEN 'first_name' END,
      CASE WHEN v_new.last_name IS DISTINCT FROM v_old.last_name THEN 'last_name' END,
      CASE WHEN v_new.phone IS DISTINCT FROM v_old.phone THEN 'phone' END]) AS f
   WHERE f IS NOT NULL;
  IF cardinality(v_changed) > 0 THEN
    BEGIN
      UPDATE activity.users u
         SET username = v_new.username, first_name = v_new.first_name, last_name = v_new.last_name,
             phone = v_new.phone, updated_at = now()
       WHERE u.id = p_user_id;
    EXCEPTION WHEN unique_violation THEN
      -- Also settles parallel claims of one name: the index lets exactly one through.
      RAISE EXCEPTION USING ERRCODE = 'AU010', MESSAGE = 'username taken';
    END;
    -- Field names only: a profile value (a phone number) is personal data the audit log does not need.
    PERFORM activity.fn_audit('profile_updated', p_user_id, p_ctx, jsonb_build_object('fields', to_jsonb(v_changed)));
  END IF;
  RETURN QUERY SELECT v_new.username::text, v_new.first_name::text, v_new.last_name::text, v_new.phone::text;
END
$$;
COMMENT ON FUNCTION activity.sp_update_profile(uuid, jsonb, jsonb) IS 'Sets the profile fields present in p_changes (keys username, first_name, last_name, phone; a null clears); returns the profile after. Names are trimmed (empty clears). Writes and audits profile_updated {fields} only when something differs. AU002/AU003 unknown or inactive user, AU007 not an object, unknown key or non-string value, AU010 username taken (any letter case, also under a race), AU011 username reserved, AU012 bad username, AU013 phone not E.164, AU014 name too long.';
REVOKE ALL ON FUNCTION activity.sp_update_profile(uuid, jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.sp_update_profile(uuid, jsonb, jsonb) TO auth_api_user;

-- Down Migration

DROP FUNCTION activity.sp_update_profile(uuid, jsonb, jsonb);
DROP FUNCTION activity.fn_require_person_name(text);
DROP FUNCTION activity.sp_get_profile(uuid);
