-- Up Migration
--
-- Internal helpers (fn_*) run with their caller's rights. They are granted to
-- nobody, so only the SECURITY DEFINER procedures (running as activity_owner)
-- reach them, and the owner's rights are the caller's rights already. A
-- SECURITY DEFINER or SET clause keeps PostgreSQL from inlining a LANGUAGE sql
-- function into the query that calls it; fn_lock_until's body names nothing of
-- schema activity, so it needs no pinned search_path either.

ALTER FUNCTION activity.fn_inet(text) SECURITY INVOKER;
ALTER FUNCTION activity.fn_audit(text, uuid, jsonb, jsonb) SECURITY INVOKER;
ALTER FUNCTION activity.fn_revoke_user_families(uuid, uuid, text) SECURITY INVOKER;
ALTER FUNCTION activity.fn_lock_until(integer, integer, integer, integer) SECURITY INVOKER RESET search_path;
ALTER FUNCTION activity.fn_count_failure(text, text, integer, integer, integer, integer) SECURITY INVOKER;
ALTER FUNCTION activity.fn_reserve_attempt(text, text, integer, integer, integer, integer) SECURITY INVOKER;
ALTER FUNCTION activity.fn_release_attempt(text, text, integer) SECURITY INVOKER;
ALTER FUNCTION activity.fn_take_mail_budget(text, text, integer, integer) SECURITY INVOKER;
ALTER FUNCTION activity.fn_check_mail_policy(integer, integer) SECURITY INVOKER;
ALTER FUNCTION activity.fn_issue_email_token(uuid, text, text, text, integer, jsonb) SECURITY INVOKER;
ALTER FUNCTION activity.fn_check_email_token_args(text, text, integer) SECURITY INVOKER;
ALTER FUNCTION activity.fn_check_lockout_policy(integer, integer, integer, integer, integer) SECURITY INVOKER;

-- Down Migration

ALTER FUNCTION activity.fn_check_lockout_policy(integer, integer, integer, integer, integer) SECURITY DEFINER;
ALTER FUNCTION activity.fn_check_email_token_args(text, text, integer) SECURITY DEFINER;
ALTER FUNCTION activity.fn_issue_email_token(uuid, text, text, text, integer, jsonb) SECURITY DEFINER;
ALTER FUNCTION activity.fn_check_mail_policy(integer, integer) SECURITY DEFINER;
ALTER FUNCTION activity.fn_take_mail_budget(text, text, integer, integer) SECURITY DEFINER;
ALTER FUNCTION activity.fn_release_attempt(text, text, integer) SECURITY DEFINER;
ALTER FUNCTION activity.fn_reserve_attempt(text, text, integer, integer, integer, integer) SECURITY DEFINER;
ALTER FUNCTION activity.fn_count_failure(text, text, integer, integer, integer, integer) SECURITY DEFINER;
ALTER FUNCTION activity.fn_lock_until(integer, integer, integer, integer) SECURITY DEFINER SET search_path = activity, pg_temp;
ALTER FUNCTION activity.fn_revoke_user_families(uuid, uuid, text) SECURITY DEFINER;
ALTER FUNCTION activity.fn_audit(text, uuid, jsonb, jsonb) SECURITY DEFINER;
ALTER FUNCTION activity.fn_inet(text) SECURITY DEFINER;
