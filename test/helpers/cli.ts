// Runs the operations CLI in-process (runCli) against the test server, as an
// operator would with DATABASE_ADMIN_URL and POSTGRES_DB set.
import { runCli } from '../../src/cli/db.ts'
import { readRun, TEST_PASSWORDS } from './cluster.ts'

export function cliEnv(database: string, adminUrl = readRun().adminUrl): NodeJS.ProcessEnv {
  return {
    DATABASE_ADMIN_URL: adminUrl,
    POSTGRES_DB: database,
    AUTH_API_DB_PASSWORD: TEST_PASSWORDS.authApi,
    WRITE_API_DB_PASSWORD: TEST_PASSWORDS.writeApi,
    READONLY_DB_PASSWORD: TEST_PASSWORDS.readonly,
    // Cheap hashing for seeded passwords; the parameters are tested elsewhere.
    ARGON2_MEMORY_KIB: '1024',
    ARGON2_TIME_COST: '1',
  }
}

export interface CliRun {
  code: number
  out: string
  err: string
}

export async function cli(args: string[], env: NodeJS.ProcessEnv): Promise<CliRun> {
  const out: string[] = []
  const err: string[] = []
  const code = await runCli(args, env, { out: (l) => out.push(l), err: (l) => err.push(l) })
  return { code, out: out.join('\n'), err: err.join('\n') }
}

/** `cli --json` parsed. */
export async function cliJson<T>(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; body: T }> {
  const run = await cli([...args, '--json'], env)
  return { code: run.code, body: JSON.parse(run.out) as T }
}
