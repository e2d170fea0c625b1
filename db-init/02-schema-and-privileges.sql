-- Bootstrap, part 2: inside the database (POSTGRES_DB, normally activitydb).
--
-- Run as a superuser connected to that database, after 01-roles-and-database.sql.
-- Creates only the schema and the privilege defaults; tables, functions, views and
-- their grants are node-pg-migrate migrations in sql/migrations/.

-- Nobody but the owner uses the public schema; nothing of ours lives there.
REVOKE ALL ON SCHEMA public FROM PUBLIC;

-- Only the service roles may connect to this database.
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database()) \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO auth_api_user, write_api_user, activity_readonly', current_database()) \gexec

CREATE SCHEMA IF NOT EXISTS activity AUTHORIZATION activity_owner;
ALTER SCHEMA activity OWNER TO activity_owner;
REVOKE ALL ON SCHEMA activity FROM PUBLIC;
GRANT USAGE ON SCHEMA activity TO auth_api_user, write_api_user, activity_readonly;

-- New functions are executable by PUBLIC unless revoked: take that away for every
-- function activity_owner will create, so each procedure is granted explicitly.
ALTER DEFAULT PRIVILEGES FOR ROLE activity_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
