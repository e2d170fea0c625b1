// The test run's PostgreSQL: shared by the global setup (which creates it) and by
// every test file (which clones its own database from the migrated template).
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { projectPath } from '../../src/paths.ts'

// One file per tap run, keyed by the runner's pid (the parent of the setup, the
// teardown and every test process), so concurrent runs in one checkout never
// read, or stop, each other's server.
export const RUN_FILE = projectPath('.data', `test-run-${process.ppid}.json`)

/** Role passwords the harness bootstraps with (test only; on trust servers they are not even checked). */
export const TEST_PASSWORDS = {
  authApi: 'auth_api_test_password',
  writeApi: 'write_api_test_password',
  readonly: 'readonly_test_password',
}

export interface TestRun {
  /** Superuser URL of the server (database `postgres`, or TEST_DATABASE_URL's). */
  adminUrl: string
  /** Migrated template every test database is cloned from. */
  template: string
  /** Prefix of this run's databases, so teardown can find strays. */
  prefix: string
  /** Set when the harness started an embedded cluster. */
  embeddedDir?: string
  serverVersion: string
}

export function readRun(): TestRun {
  try {
    return JSON.parse(readFileSync(RUN_FILE, 'utf8')) as TestRun
  } catch {
    throw new Error(`no test database: run the suite with \`npm test\` (global setup writes ${path.relative(process.cwd(), RUN_FILE)})`)
  }
}
