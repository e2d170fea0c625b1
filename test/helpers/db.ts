// Each test file gets its own database, cloned from the run's migrated template:
// isolated, parallel, and fast (a file copy, no migrations).
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { applyInitFile, bootstrap, initFiles } from '../../src/db/bootstrap.ts'
import { withClient, withDatabase } from '../../src/db/admin-connection.ts'
import { readRun, TEST_PASSWORDS } from './cluster.ts'

export interface TestDatabase {
  name: string
  /** Superuser connection to this database. */
  adminUrl: string
  /** auth_api_user connection: what the service uses. */
  url: string
  /** activity_readonly connection. */
  readonlyUrl: string
  serverVersion: string
}

interface Teardown {
  teardown(fn: () => unknown): void
}

function asRole(url: string, user: string, password: string): string {
  const u = new URL(url)
  u.username = user
  u.password = password
  return u.toString()
}

export async function createTestDatabase(t: Teardown): Promise<TestDatabase> {
  const run = readRun()
  const name = `${run.prefix}_${randomBytes(4).toString('hex')}`
  await withClient(run.adminUrl, async (c) => {
    await c.query(`CREATE DATABASE ${c.escapeIdentifier(name)} TEMPLATE ${c.escapeIdentifier(run.template)}`)
  })
  const adminUrl = withDatabase(run.adminUrl, name)
  // Database-level privileges are not copied from a template: re-apply the
  // in-database part of the bootstrap (idempotent).
  const [, ...inDatabase] = await initFiles()
  await withClient(adminUrl, async (c) => {
    for (const file of inDatabase) await applyInitFile(c, file, { POSTGRES_DB: name })
  })
  t.teardown(async () => {
    await withClient(run.adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`))
  })
  return {
    name,
    adminUrl,
    url: asRole(adminUrl, 'auth_api_user', TEST_PASSWORDS.authApi),
    readonlyUrl: asRole(adminUrl, 'activity_readonly', TEST_PASSWORDS.readonly),
    serverVersion: run.serverVersion,
  }
}

/** A pool that the test tears down. */
export function testPool(t: Teardown, connectionString: string, max = 10): pg.Pool {
  const pool = new pg.Pool({ connectionString, max })
  pool.on('error', () => undefined)
  t.teardown(() => pool.end())
  return pool
}

/** A bootstrapped database with no migration applied (for migration tests). */
export async function createBareDatabase(t: Teardown): Promise<{ name: string; adminUrl: string }> {
  const run = readRun()
  const name = `${run.prefix}_${randomBytes(4).toString('hex')}`
  t.teardown(async () => {
    await withClient(run.adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`))
  })
  await bootstrap({ adminUrl: run.adminUrl, database: name, passwords: TEST_PASSWORDS })
  return { name, adminUrl: withDatabase(run.adminUrl, name) }
}
