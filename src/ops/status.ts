// What `status` reports beyond migrations: the server, the database's size, and
// whether the four roles exist with the privileges the design gives them.
import type pg from 'pg'
import { migrationStatus } from '../db/migrate.ts'

export interface RoleCheck {
  role: string
  ok: boolean
  problems: string[]
}

export interface ServerFacts {
  serverVersion: string
  databaseSizeBytes: number
}

export async function serverFacts(client: pg.ClientBase): Promise<ServerFacts> {
  const { rows } = await client.query<{ v: string; size: string }>(
    `SELECT current_setting('server_version') AS v, pg_database_size(current_database())::text AS size`,
  )
  return { serverVersion: rows[0]?.v ?? '?', databaseSizeBytes: Number(rows[0]?.size ?? 0) }
}

export interface DatabaseFacts {
  database: string
  serverVersion: string
  serverMajor: number
  /** Last applied migration, null when none is. */
  migrationHead: string | null
  /** Exact row count of every table in schema activity. */
  rowCounts: Record<string, number>
}

/** What a backup records about the database it was taken from. */
export async function databaseFacts(client: pg.ClientBase): Promise<DatabaseFacts> {
  const server = await client.query<{ db: string; v: string; num: number }>(
    `SELECT current_database() AS db, current_setting('server_version') AS v, current_setting('server_version_num')::int AS num`,
  )
  const tables = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c
      WHERE c.relnamespace = to_regnamespace('activity') AND c.relkind IN ('r', 'p') ORDER BY c.relname`,
  )
  const rowCounts: Record<string, number> = {}
  for (const { name } of tables.rows) {
    const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM activity.${client.escapeIdentifier(name)}`)
    rowCounts[name] = Number(rows[0]?.n ?? 0)
  }
  const head = (await migrationStatus(client)).applied.at(-1)?.name
  const row = server.rows[0]
  return {
    database: row?.db ?? '?',
    serverVersion: row?.v ?? '?',
    serverMajor: Math.floor((row?.num ?? 0) / 10000),
    migrationHead: head ?? null,
    rowCounts,
  }
}

/** Checks each role against the design (README, Database). */
/** The procedures granted to the other services (write_api_user): events and session checks (docs/events.md). */
export const SHARED_PROCEDURES = ['sp_events_after', 'sp_session_is_live']

export async function checkRoles(client: pg.ClientBase): Promise<RoleCheck[]> {
  const { rows } = await client.query<{
    role: string
    exists: boolean
    login: boolean | null
    superuser: boolean | null
    usage: boolean | null
    owns_schema: boolean | null
    table_rights: number
    sp_total: number
    sp_executable: number
    shared_executable: number
    views_readable: number
    views_total: number
  }>(
    `
    WITH roles(role, ord) AS (VALUES ('activity_owner', 1), ('auth_api_user', 2), ('write_api_user', 3), ('activity_readonly', 4)),
         tables AS (SELECT c.oid FROM pg_class c WHERE c.relnamespace = 'activity'::regnamespace AND c.relkind = 'r'),
         views AS (SELECT c.oid FROM pg_class c WHERE c.relnamespace = 'activity'::regnamespace AND c.relkind = 'v'),
         sps AS (SELECT p.oid, p.proname FROM pg_proc p WHERE p.pronamespace = 'activity'::regnamespace AND p.proname LIKE 'sp\\_%')
    SELECT r.role,
           a.rolname IS NOT NULL AS exists,
           a.rolcanlogin AS login,
           a.rolsuper AS superuser,
           CASE WHEN a.rolname IS NULL THEN NULL ELSE has_schema_privilege(r.role, 'activity', 'USAGE') END AS usage,
           (SELECT pg_get_userbyid(nspowner) = r.role FROM pg_namespace WHERE nspname = 'activity') AS owns_schema,
           CASE WHEN a.rolname IS NULL THEN 0 ELSE (SELECT count(*)::int FROM tables t
             WHERE has_table_privilege(r.role, t.oid, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE')) END AS table_rights,
           (SELECT count(*)::int FROM sps) AS sp_total,
           CASE WHEN a.rolname IS NULL THEN 0 ELSE (SELECT count(*)::int FROM sps s WHERE has_function_privilege(r.role, s.oid, 'EXECUTE')) END AS sp_executable,
           CASE WHEN a.rolname IS NULL THEN 0 ELSE (SELECT count(*)::int FROM sps s
             WHERE s.proname = ANY ($1::text[]) AND has_function_privilege(r.role, s.oid, 'EXECUTE')) END AS shared_executable,
           CASE WHEN a.rolname IS NULL THEN 0 ELSE (SELECT count(*)::int FROM views v WHERE has_table_privilege(r.role, v.oid, 'SELECT')) END AS views_readable,
           (SELECT count(*)::int FROM views) AS views_total
      FROM roles r LEFT JOIN pg_roles a ON a.rolname = r.role
     -- A hash join may return them in any order: operators read them in this one.
     ORDER BY r.ord`,
    [SHARED_PROCEDURES],
  )
  return rows.map((r) => {
    const problems: string[] = []
    if (!r.exists) return { role: r.role, ok: false, problems: ['missing (run `npm run db -- init`)'] }
    if (r.superuser === true) problems.push('is a superuser')
    if (r.role === 'activity_owner') {
      if (r.login === true) problems.push('can log in (should be NOLOGIN)')
      if (r.owns_schema !== true) problems.push('does not own schema activity')
    } else {
      if (r.login !== true) problems.push('cannot log in')
      if (r.usage !== true) problems.push('has no USAGE on schema activity')
      if (r.table_rights > 0) problems.push(`has privileges on ${r.table_rights} table(s)`)
    }
    if (r.role === 'auth_api_user' && r.sp_executable !== r.sp_total) {
      problems.push(`may execute ${r.sp_executable} of ${r.sp_total} procedures`)
    }
    if (r.role === 'activity_readonly' && r.views_readable !== r.views_total) {
      problems.push(`may read ${r.views_readable} of ${r.views_total} views`)
    }
    if (r.role === 'write_api_user') {
      const others = r.sp_executable - r.shared_executable
      if (others > 0) problems.push(`may execute ${others} auth procedures`)
      if (r.shared_executable !== SHARED_PROCEDURES.length) {
        problems.push(`may execute ${r.shared_executable} of the ${SHARED_PROCEDURES.length} shared procedures`)
      }
    }
    return { role: r.role, ok: problems.length === 0, problems }
  })
}

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB']
export function humanBytes(n: number): string {
  let value = n
  let unit = 0
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${UNITS[unit] ?? 'B'}`
}
