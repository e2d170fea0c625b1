// Migrations with node-pg-migrate, run programmatically. Everything they create is
// owned by activity_owner (SET ROLE before the runner starts). The runner's own
// advisory lock in "wait" mode makes concurrent runs queue: the first applies, the
// next finds nothing to do. All pending files run in one transaction, so a failure
// leaves the schema exactly as it was.
import { readdir } from 'node:fs/promises'
import path from 'node:path'
import { runner } from 'node-pg-migrate'
import type pg from 'pg'
import { projectPath } from '../paths.ts'
import { withClient } from './admin-connection.ts'
import { assertDirectConnection } from './direct-connection.ts'
import type { AppliedMigration } from './procedures.ts'

export const MIGRATIONS_DIR = projectPath('sql', 'migrations')
export const MIGRATIONS_SCHEMA = 'activity'
export const MIGRATIONS_TABLE = 'pgmigrations'
export const OWNER_ROLE = 'activity_owner'

export interface MigrateOptions {
  /** Superuser or member of activity_owner, connected to the target database. */
  adminUrl: string
  direction?: 'up' | 'down'
  /** How many migrations; default all (up) or 1 (down). */
  count?: number
  dryRun?: boolean
  dir?: string
  log?: (line: string) => void
  /** Receives the SQL of each migration (what a dry run would execute). */
  onSql?: (sql: string) => void
}

export interface MigrationRun {
  name: string
}

export async function migrate(options: MigrateOptions): Promise<MigrationRun[]> {
  const direction = options.direction ?? 'up'
  const log = options.log ?? (() => undefined)
  // SET ROLE and the runner's advisory lock need a session: not through a transaction pooler.
  await assertDirectConnection(options.adminUrl)
  return withClient(options.adminUrl, async (client) => {
    await client.query(`SET ROLE ${OWNER_ROLE}`)
    const ran = await runner({
      dbClient: client,
      dir: options.dir ?? MIGRATIONS_DIR,
      migrationsSchema: MIGRATIONS_SCHEMA,
      migrationsTable: MIGRATIONS_TABLE,
      direction,
      count: options.count ?? (direction === 'up' ? Infinity : 1),
      singleTransaction: true,
      advisoryLockMode: 'wait',
      checkOrder: true,
      dryRun: options.dryRun ?? false,
      // node-pg-migrate logs each migration's SQL at debug level (only when verbose).
      verbose: options.onSql !== undefined,
      logger: { debug: options.onSql ?? (() => undefined), info: log, warn: log, error: log },
    })
    return ran.map((m) => ({ name: m.name }))
  })
}

/** Migration names in the code, in order (file name without extension). */
export async function migrationNames(dir = MIGRATIONS_DIR): Promise<string[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort()
  return files.map((f) => path.basename(f, '.sql'))
}

export interface MigrationStatus {
  applied: AppliedMigration[]
  pending: string[]
  /** Applied names with no file in the code: the database is newer than this build. */
  unknown: string[]
}

export function compareMigrations(applied: AppliedMigration[], inCode: string[]): MigrationStatus {
  const appliedNames = new Set(applied.map((a) => a.name))
  const code = new Set(inCode)
  return {
    applied,
    pending: inCode.filter((n) => !appliedNames.has(n)),
    unknown: applied.map((a) => a.name).filter((n) => !code.has(n)),
  }
}

/** Status read with an admin connection (the table may not exist yet). */
export async function migrationStatus(client: pg.ClientBase, dir = MIGRATIONS_DIR): Promise<MigrationStatus> {
  const table = `${MIGRATIONS_SCHEMA}.${MIGRATIONS_TABLE}`
  const exists = await client.query<{ m: string | null }>('SELECT to_regclass($1) AS m', [table])
  const applied =
    exists.rows[0]?.m == null
      ? []
      : (await client.query<{ name: string; run_on: Date }>(`SELECT name, run_on FROM ${table} ORDER BY run_on, id`)).rows.map((r) => ({
          name: r.name,
          runOn: r.run_on,
        }))
  return compareMigrations(applied, await migrationNames(dir))
}
