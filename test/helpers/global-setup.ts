// Runs once before all test files (tap `before`): a PostgreSQL server — a fresh
// embedded 16 cluster by default, TEST_DATABASE_URL's server otherwise — with the
// bootstrap applied and a template database migrated once. Test files clone it.
// Nothing here skips: if the server cannot be had, the run fails.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { bootstrap } from '../../src/db/bootstrap.ts'
import { withClient, withDatabase } from '../../src/db/admin-connection.ts'
import { startEmbedded, stopEmbedded } from '../../src/db/embedded.ts'
import { migrate } from '../../src/db/migrate.ts'
import { RUN_FILE, TEST_PASSWORDS, type TestRun } from './cluster.ts'
import { freePort } from './net.ts'

async function serverVersion(adminUrl: string): Promise<string> {
  return withClient(adminUrl, async (c) => {
    const { rows } = await c.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)
    return rows[0]?.v ?? '?'
  })
}

const prefix = `activity_t${process.pid}_${Date.now().toString(36)}`
const template = `${prefix}_tpl`
let adminUrl = process.env.TEST_DATABASE_URL
let embeddedDir: string | undefined

try {
  if (adminUrl === undefined || adminUrl === '') {
    embeddedDir = await mkdtemp(path.join(os.tmpdir(), 'activity-auth-test-'))
    const cluster = await startEmbedded({
      dataDir: embeddedDir,
      port: await freePort(),
      // Durability is not what the tests measure.
      settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: '300' },
    })
    adminUrl = cluster.adminUrl
  }
  await bootstrap({ adminUrl, database: template, passwords: TEST_PASSWORDS })
  await migrate({ adminUrl: withDatabase(adminUrl, template) })
  const version = await serverVersion(adminUrl)
  const run: TestRun = { adminUrl, template, prefix, serverVersion: version, ...(embeddedDir ? { embeddedDir } : {}) }
  await mkdir(path.dirname(RUN_FILE), { recursive: true, mode: 0o711 })
  await writeFile(RUN_FILE, JSON.stringify(run), { mode: 0o600 })
  console.log(`# test database: PostgreSQL ${version}${embeddedDir ? ' (embedded)' : ' (TEST_DATABASE_URL)'}`)
} catch (err) {
  // Leave no server behind when the setup itself fails.
  if (embeddedDir !== undefined) {
    await stopEmbedded(path.join(embeddedDir, 'pgdata')).catch(() => undefined)
    await rm(embeddedDir, { recursive: true, force: true })
  }
  throw err
}
