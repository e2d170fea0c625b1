// Runs once after all test files (tap `after`): drops this run's databases and
// stops the embedded cluster the setup started.
import { rm } from 'node:fs/promises'
import path from 'node:path'
import { withClient } from '../../src/db/admin-connection.ts'
import { stopEmbedded } from '../../src/db/embedded.ts'
import { readRun, RUN_FILE } from './cluster.ts'

const run = readRun()
if (run.embeddedDir !== undefined) {
  await stopEmbedded(path.join(run.embeddedDir, 'pgdata'))
  await rm(run.embeddedDir, { recursive: true, force: true })
} else {
  await withClient(run.adminUrl, async (c) => {
    const dbs = await c.query<{ datname: string }>('SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [run.prefix])
    for (const { datname } of dbs.rows) await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(datname)} WITH (FORCE)`)
  })
}
await rm(RUN_FILE, { force: true })
