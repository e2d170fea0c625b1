-- Bootstrap, part 1: cluster-wide objects (roles, the database).
--
-- Run once as a superuser. The official postgres image runs this file from
-- /docker-entrypoint-initdb.d with `psql -v ON_ERROR_STOP=1`; src/db/bootstrap.ts
-- applies the very same file to the embedded server and to an operator's server.
-- It understands only the psql features used here: \getenv, :'var' and \gexec at the
-- end of a query. Keep to those (see sql/CONVENTIONS.md).
--
-- Idempotent: every statement either checks first or converges (ALTER ROLE).

\getenv auth_api_password AUTH_API_DB_PASSWORD
\getenv write_api_password WRITE_API_DB_PASSWORD
\getenv readonly_password READONLY_DB_PASSWORD
\getenv db_name POSTGRES_DB

-- Owner of schema `activity` and of everything in it. NOLOGIN: migrations reach it
-- with SET ROLE from a superuser (or a member), never by logging in.
SELECT 'CREATE ROLE activity_owner' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'activity_owner') \gexec
ALTER ROLE activity_owner WITH NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;

SELECT 'CREATE ROLE auth_api_user' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'auth_api_user') \gexec
ALTER ROLE auth_api_user WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT PASSWORD :'auth_api_password';

SELECT 'CREATE ROLE write_api_user' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'write_api_user') \gexec
ALTER ROLE write_api_user WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT PASSWORD :'write_api_password';

SELECT 'CREATE ROLE activity_readonly' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'activity_readonly') \gexec
ALTER ROLE activity_readonly WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'readonly_password';
-- pg_monitor: the statistics views (pg_stat_activity, pg_locks, ...) for psql admin checks.
GRANT pg_monitor TO activity_readonly;

-- Search path for psql sessions of the roles; the service and the procedures
-- qualify every name themselves.
ALTER ROLE auth_api_user SET search_path = activity;
ALTER ROLE write_api_user SET search_path = activity;
ALTER ROLE activity_readonly SET search_path = activity;

-- The database. The image has already created POSTGRES_DB and connected to it, so
-- there this is a no-op; on any other server it creates the database.
SELECT format('CREATE DATABASE %I', :'db_name') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db_name') \gexec
