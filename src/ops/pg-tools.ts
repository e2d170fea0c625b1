// The PostgreSQL client programs the backup commands drive (pg_dump, pg_restore,
// psql): found on PATH or in PG_BIN_DIR, their major version read, run with the
// password in the environment rather than on the command line, and their failure
// turned into one line an operator can act on.
import { spawn } from 'node:child_process'
import { constants } from 'node:fs'
import { access } from 'node:fs/promises'
import path from 'node:path'
import { OperatorError } from './errors.ts'

export type PgTool = 'pg_dump' | 'pg_restore' | 'psql'

export async function findTool(name: PgTool, pgBinDir: string | undefined): Promise<string> {
  const dirs = pgBinDir === undefined ? (process.env.PATH ?? '').split(path.delimiter).filter(Boolean) : [pgBinDir]
  for (const dir of dirs) {
    const candidate = path.join(dir, name)
    try {
      await access(candidate, constants.X_OK)
      return candidate
    } catch {
      // not here; try the next directory
    }
  }
  const where = pgBinDir === undefined ? 'on PATH' : `in PG_BIN_DIR (${pgBinDir})`
  throw new OperatorError(`${name} not found ${where}: install the PostgreSQL client tools or set PG_BIN_DIR`)
}

export interface RunResult {
  stdout: string
  stderr: string
}

/**
 * Runs a client program against `url`. The password travels in PGPASSWORD so it
 * never shows in the process list; a non-zero exit becomes an OperatorError with
 * the program's first error line.
 */
export async function runTool(bin: string, args: string[], options: { url?: string; what: string }): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, PGAPPNAME: 'activity-db' }
  const finalArgs = [...args]
  if (options.url !== undefined) {
    const u = new URL(options.url)
    if (u.password !== '') env.PGPASSWORD = decodeURIComponent(u.password)
    u.password = ''
    finalArgs.push(`--dbname=${u.toString()}`)
  }
  return new Promise((resolve, reject) => {
    const child = spawn(bin, finalArgs, { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.on('error', (err) => reject(new OperatorError(`${options.what}: cannot run ${bin} (${err.message})`)))
    child.on('close', (code) => {
      if (code === 0) return resolve({ stdout, stderr })
      const line = stderr.split('\n').find((l) => /error|fatal|invalid|could not|cannot/i.test(l)) ?? stderr.split('\n')[0] ?? ''
      reject(new OperatorError(`${options.what}: ${line.trim() || `${path.basename(bin)} exited with ${code}`}`))
    })
  })
}

/** "pg_dump (PostgreSQL) 15.19 (Debian 15.19-0+deb12u1)" → 15 */
export async function toolMajor(bin: string): Promise<number> {
  const { stdout } = await runTool(bin, ['--version'], { what: `${path.basename(bin)} --version` })
  const match = /\(PostgreSQL\)\s+(\d+)/.exec(stdout)
  if (match?.[1] === undefined) throw new OperatorError(`cannot read the version of ${bin}: "${stdout.trim()}"`)
  return Number(match[1])
}

/** A client tool at least as new as the server: an older pg_dump cannot read a newer server's catalogue. */
export async function findToolFor(
  name: PgTool,
  pgBinDir: string | undefined,
  serverMajor: number,
): Promise<{ bin: string; major: number }> {
  const bin = await findTool(name, pgBinDir)
  const major = await toolMajor(bin)
  if (major < serverMajor) {
    throw new OperatorError(
      `${name} ${major} (${bin}) is older than the PostgreSQL ${serverMajor} server: install client tools ${serverMajor} or newer, or point PG_BIN_DIR at them`,
    )
  }
  return { bin, major }
}
