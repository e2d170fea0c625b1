// A real PgBouncer (Debian's `pgbouncer` package) in transaction mode in front of
// the run's test server, on a free loopback port, for one test file: a generated
// ini in a temp dir, stopped in teardown (SIGTERM, then SIGKILL). Its pool is
// small (5 server connections per database and user) so consecutive statements
// of one client really do move between server connections.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { readRun, TEST_PASSWORDS } from './cluster.ts'
import { freePort } from './net.ts'

export interface PgBouncer {
  port: number
  /** `url` with its host and port replaced by PgBouncer's (same user, password, database). */
  through(url: string): string
  /** What PgBouncer wrote to stderr so far (for failure messages). */
  log(): string
}

interface Teardown {
  teardown(fn: () => unknown): void
}

export interface PgBouncerOptions {
  poolMode?: 'transaction' | 'session' | 'statement'
  defaultPoolSize?: number
}

function binary(): string {
  for (const candidate of ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer']) if (existsSync(candidate)) return candidate
  const found = spawnSync('sh', ['-c', 'command -v pgbouncer'], { encoding: 'utf8' }).stdout.trim()
  if (found === '') throw new Error('pgbouncer is not installed (apt-get install -y pgbouncer; .ci/run does it)')
  return found
}

/** uid/gid of the OS user `postgres`: PgBouncer refuses to run as root. */
function postgresUser(): { uid: number; gid: number } | undefined {
  if (os.userInfo().uid !== 0) return undefined
  const id = (flag: string) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim())
  const uid = id('-u')
  const gid = id('-g')
  if (!Number.isInteger(uid) || uid <= 0) throw new Error('running as root but there is no OS user postgres to run pgbouncer as')
  return { uid, gid }
}

const quote = (s: string) => `"${s.replace(/"/g, '""')}"`

async function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

export async function startPgBouncer(t: Teardown, options: PgBouncerOptions = {}): Promise<PgBouncer> {
  const run = readRun()
  const server = new URL(run.adminUrl)
  const superuser = decodeURIComponent(server.username) || 'postgres'
  const dir = await mkdtemp(path.join(os.tmpdir(), 'activity-auth-pgbouncer-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const port = await freePort()
  // Clients are trusted (loopback, test only); PgBouncer logs in to the server with
  // the passwords in auth_file (SCRAM works from a plain-text entry).
  const users = [
    ['auth_api_user', TEST_PASSWORDS.authApi],
    ['activity_readonly', TEST_PASSWORDS.readonly],
    [superuser, decodeURIComponent(server.password)],
  ]
  await writeFile(path.join(dir, 'userlist.txt'), users.map(([u, p]) => `${quote(u ?? '')} ${quote(p ?? '')}\n`).join(''))
  const ini = [
    '[databases]',
    // Any database name goes to the same-named database on the test server.
    `* = host=${server.hostname.replace(/^\[|\]$/g, '')} port=${server.port || '5432'}`,
    '',
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${String(port)}`,
    'unix_socket_dir =',
    'auth_type = trust',
    `auth_file = ${path.join(dir, 'userlist.txt')}`,
    `pool_mode = ${options.poolMode ?? 'transaction'}`,
    'max_client_conn = 500',
    `default_pool_size = ${String(options.defaultPoolSize ?? 5)}`,
    'min_pool_size = 0',
    'reserve_pool_size = 0',
    'ignore_startup_parameters = extra_float_digits,options',
    'server_check_delay = 0',
    'log_connections = 0',
    'log_disconnections = 0',
    '',
  ].join('\n')
  const iniFile = path.join(dir, 'pgbouncer.ini')
  await writeFile(iniFile, ini)
  const owner = postgresUser()
  if (owner !== undefined) {
    for (const f of [dir, iniFile, path.join(dir, 'userlist.txt')]) await chown(f, owner.uid, owner.gid)
  }
  await chmod(dir, 0o700)

  const child = spawn(binary(), [...(owner === undefined ? [] : ['-u', 'postgres']), iniFile], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const state = { exited: false }
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((state.exited = true), resolve())))
  t.teardown(async () => {
    if (state.exited) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
    await exit
    clearTimeout(timer)
  })

  const deadline = Date.now() + 10_000
  while (!(await accepts(port))) {
    if (state.exited) throw new Error(`pgbouncer exited at start:\n${stderr}`)
    if (Date.now() > deadline) throw new Error(`pgbouncer did not listen on 127.0.0.1:${String(port)} within 10 s:\n${stderr}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    port,
    through(url: string): string {
      const u = new URL(url)
      u.hostname = '127.0.0.1'
      u.port = String(port)
      return u.toString()
    },
    log: () => stderr,
  }
}
