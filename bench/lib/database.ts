// The bench's PostgreSQL: its own embedded 16 cluster in a temp directory on a
// free port (default), or the server of BENCH_DATABASE_URL (a superuser URL).
// Either way each dataset gets its own database, bootstrapped from db-init/ and
// migrated exactly as the service's own database is, and dropped at the end.
// A prepared database (BENCH_ADMIN_URL + BENCH_SERVICE_URL, what the smoke test
// passes from the test harness) is used as it is: no bootstrap, no drop.
import { randomBytes } from 'node:crypto'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { bootstrap } from '../../src/db/bootstrap.ts'
import { withClient, withDatabase } from '../../src/db/admin-connection.ts'
import { startEmbedded, type EmbeddedCluster } from '../../src/db/embedded.ts'
import { migrate } from '../../src/db/migrate.ts'
import { postgresPids } from './cpu.ts'
import { freePort } from './net.ts'
import { pinPostgresToLoadCore, pinToLoadCore } from './proc.ts'

export interface RolePasswords {
  authApi: string
  writeApi: string
  readonly: string
}

export interface BenchDatabase {
  name: string
  /** Superuser connection to this database (seeding, EXPLAIN). */
  adminUrl: string
  /** auth_api_user connection: what the service uses. */
  serviceUrl: string
}

export interface BenchServer {
  /** Superuser URL of the server (database `postgres` or BENCH_DATABASE_URL's). */
  adminUrl: string
  description: string
  passwords: RolePasswords
  /** A bootstrapped, migrated database of its own. */
  createDatabase(label: string): Promise<BenchDatabase>
  /** A plain database (no bootstrap): the peer's. */
  createPlainDatabase(label: string): Promise<{ name: string; adminUrl: string }>
  stop(): Promise<void>
}

export function asRole(url: string, user: string, password: string): string {
  const u = new URL(url)
  u.username = user
  u.password = password
  return u.toString()
}

async function serverVersion(adminUrl: string): Promise<string> {
  return withClient(adminUrl, async (c) => {
    const { rows } = await c.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)
    return rows[0]?.v ?? '?'
  })
}

/**
 * Start the bench's server. The embedded cluster keeps PostgreSQL's durability
 * defaults (fsync, synchronous_commit on): a commit costs what it costs in
 * production, for the service, the ceilings and the peer alike.
 */
export async function startBenchServer(log: (line: string) => void): Promise<BenchServer> {
  const external = process.env.BENCH_DATABASE_URL
  // Random per run: the bench may share a server with other databases.
  const passwords: RolePasswords = {
    authApi: randomBytes(12).toString('base64url'),
    writeApi: randomBytes(12).toString('base64url'),
    readonly: randomBytes(12).toString('base64url'),
  }
  let cluster: EmbeddedCluster | undefined
  let tempDir: string | undefined
  let adminUrl: string
  if (external !== undefined && external !== '') {
    adminUrl = external
  } else {
    tempDir = await mkdtemp(path.join(os.tmpdir(), 'activity-auth-bench-'))
    await chmod(tempDir, 0o711)
    cluster = await startEmbedded({
      dataDir: tempDir,
      port: await freePort(),
      settings: { max_connections: '200' },
      log,
    })
    adminUrl = cluster.adminUrl
  }
  // Only a server the bench started itself: never another program's processes.
  const pinned = cluster !== undefined && pinPostgresToLoadCore()
  if (pinned) pinToLoadCore((await postgresPids(adminUrl))?.() ?? [])
  const version = await serverVersion(adminUrl)
  const prefix = `activity_bench_${process.pid}`
  const created: string[] = []

  return {
    adminUrl,
    passwords,
    description: `PostgreSQL ${version} (${cluster ? 'embedded, own cluster' : 'BENCH_DATABASE_URL'}${pinned ? ', on the load core' : ''})`,
    async createDatabase(label) {
      const name = `${prefix}_${label}`
      created.push(name)
      await withClient(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`))
      await bootstrap({ adminUrl, database: name, passwords })
      const dbAdminUrl = withDatabase(adminUrl, name)
      await migrate({ adminUrl: dbAdminUrl })
      return { name, adminUrl: dbAdminUrl, serviceUrl: asRole(dbAdminUrl, 'auth_api_user', passwords.authApi) }
    },
    async createPlainDatabase(label) {
      const name = `${prefix}_${label}`
      created.push(name)
      await withClient(adminUrl, async (c) => {
        await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`)
        await c.query(`CREATE DATABASE ${c.escapeIdentifier(name)}`)
      })
      return { name, adminUrl: withDatabase(adminUrl, name) }
    },
    async stop() {
      if (cluster) {
        await cluster.stop()
        if (tempDir !== undefined) await rm(tempDir, { recursive: true, force: true })
        return
      }
      await withClient(adminUrl, async (c) => {
        for (const name of created) await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`)
      })
    },
  }
}

/** The database given by BENCH_ADMIN_URL + BENCH_SERVICE_URL (already bootstrapped and migrated), if any. */
export function preparedDatabase(): BenchDatabase | undefined {
  const adminUrl = process.env.BENCH_ADMIN_URL
  const serviceUrl = process.env.BENCH_SERVICE_URL
  if (adminUrl === undefined || adminUrl === '' || serviceUrl === undefined || serviceUrl === '') return undefined
  return { name: new URL(adminUrl).pathname.slice(1), adminUrl, serviceUrl }
}
