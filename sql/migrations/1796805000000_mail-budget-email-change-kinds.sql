-- Up Migration
--
-- The change of email mails three kinds, each with its own budget per recipient:
-- the link to the new address, the notice to a new address that is taken, and the
-- notice to the current address.

ALTER TABLE activity.mail_budget DROP CONSTRAINT mail_budget_kind_check;
ALTER TABLE activity.mail_budget ADD CONSTRAINT mail_budget_kind_check
  CHECK (kind IN ('verify_email', 'reset_password', 'account_exists', 'change_email', 'email_in_use', 'email_change_notice'));

-- Down Migration

DELETE FROM activity.mail_budget b WHERE b.kind IN ('change_email', 'email_in_use', 'email_change_notice');
ALTER TABLE activity.mail_budget DROP CONSTRAINT mail_budget_kind_check;
ALTER TABLE activity.mail_budget ADD CONSTRAINT mail_budget_kind_check
  CHECK (kind IN ('verify_email', 'reset_password', 'account_exists'));
