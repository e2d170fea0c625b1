// The embedded server's port and place, and what it says when it fails: real
// clusters in temp dirs (stopped in teardown), real listeners holding ports.
// Every test picks its ports itself (freePort, a remembered port it wrote):
// other test files may hold 5442 meanwhile (fresh-start.test.ts does, on purpose).
import { existsSync } from 'node:fs'
import { chmod, lstat, mkdir, mkdtemp, readFile, readlink, realpath, rm, rmdir, stat, writeFile } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { runCli } from '../../src/cli/db.ts'
import { loadConfig } from '../../src/config.ts'
import { withClient } from '../../src/db/admin-connection.ts'
import { startCheckoutCluster } from '../../src/db/database.ts'
import { sharedHome, SHARED_BASE } from '../../src/db/embedded-place.ts'
import { choosePort, DEFAULT_EMBEDDED_PORT, portIsFree } from '../../src/db/embedded-port.ts'
import { PortInUseError, startEmbedded, stopEmbedded, type EmbeddedCluster } from '../../src/db/embedded.ts'
import { freePort } from '../helpers/net.ts'

const isRoot = os.userInfo().uid === 0

/** A temp dir (mkdtemp: 0700) removed in teardown, after the clusters in it are stopped. */
async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'activity-auth-embedded-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** startEmbedded whose cluster is stopped in teardown; its log lines collected. */
async function start(t: Test, options: Parameters<typeof startEmbedded>[0]) {
  const lines: string[] = []
  const cluster = await startEmbedded({ ...options, log: (l) => lines.push(l) })
  t.teardown(() => stopEmbedded(cluster.dataDir))
  return { cluster, log: lines.join('\n') }
}

/** A TCP listener holding host:port (as another program would); closed in teardown. */
async function occupy(t: Test, port: number, host = '127.0.0.1'): Promise<void> {
  const server = net.createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ port, host, exclusive: true }, resolve)
  })
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
}

async function answers(cluster: EmbeddedCluster): Promise<number> {
  return withClient(cluster.adminUrl, async (c) => Number((await c.query<{ port: string }>('SHOW port')).rows[0]?.port))
}

t.test('no port given: the remembered one is used, kept across restarts, and replaced when taken', async (t) => {
  const dir = await tempDir(t)
  const remembered = await freePort()
  await writeFile(path.join(dir, 'port'), `${remembered}\n`)

  const first = await start(t, { dataDir: dir })
  t.equal(first.cluster.port, remembered, 'the remembered port')
  t.equal(await answers(first.cluster), remembered, 'the server listens there')
  t.match(first.log, `listening on 127.0.0.1:${remembered} (data directory ${first.cluster.dataDir})`, 'the log says where')
  await first.cluster.stop()

  const second = await start(t, { dataDir: dir })
  t.equal(second.cluster.port, remembered, 'a restart keeps it')
  t.ok(second.cluster.startedHere)
  await second.cluster.stop()

  await occupy(t, remembered)
  const third = await start(t, { dataDir: dir })
  t.not(third.cluster.port, remembered, 'another port when something else took it')
  t.match(
    third.log,
    `port ${remembered} (remembered in ${path.join(dir, 'port')}) is in use by another program: using ${third.cluster.port} instead`,
  )
  t.equal(await answers(third.cluster), third.cluster.port)
  t.equal((await readFile(path.join(dir, 'port'), 'utf8')).trim(), String(third.cluster.port), 'the new port is remembered')
})

t.test('nothing remembered: 5442, or a free port when 5442 is taken', async (t) => {
  const dir = await tempDir(t)
  const file = path.join(dir, 'port')
  // Hold 5442 unless some other program already does: taken either way.
  if (await portIsFree(DEFAULT_EMBEDDED_PORT)) await occupy(t, DEFAULT_EMBEDDED_PORT)
  const choice = await choosePort({ file })
  t.not(choice.port, DEFAULT_EMBEDDED_PORT)
  t.equal(choice.note, `port 5442 is in use by another program: using ${choice.port} (remembered in ${file})`)
  t.ok(await portIsFree(choice.port), 'a port nobody listens on')
  // A remembered port is preferred to 5442 and to any other.
  const remembered = await freePort()
  await writeFile(file, String(remembered))
  t.same(await choosePort({ file }), { port: remembered })
})

t.test('an explicit port that is taken is refused, naming the port and EMBEDDED_PG_PORT', async (t) => {
  const dir = await tempDir(t)
  await chmod(dir, 0o711) // reachable for `postgres`: no cluster under /var/lib to clean up
  const taken = await freePort()
  await occupy(t, taken)
  await t.rejects(startEmbedded({ dataDir: dir, port: taken }), PortInUseError)
  t.notOk(existsSync(path.join(dir, 'pgdata', 'postmaster.pid')), 'no server was started')

  const env = { DATA_DIR: dir, EMBEDDED_PG_PORT: String(taken) }
  const expected = `EMBEDDED_PG_PORT=${taken}, but port ${taken} on 127.0.0.1 is already in use: stop the program listening there, set another port, or unset EMBEDDED_PG_PORT to let the embedded server pick a free one`
  await t.rejects(
    startCheckoutCluster(loadConfig(env), () => undefined),
    { message: expected },
    'npm start',
  )
  await t.rejects(runCli(['status'], env, { out: () => undefined, err: () => undefined }), { message: expected }, 'npm run db')
})

t.test('a running cluster is reused on its own port; npm start and npm run db agree', async (t) => {
  const checkout = await tempDir(t)
  // Open to `postgres` (as root) like a usual checkout: the cluster stays in it.
  await chmod(checkout, 0o711)
  const config = loadConfig({ DATA_DIR: checkout })
  const lines: string[] = []
  const first = await startCheckoutCluster(config, (l) => lines.push(l))
  t.teardown(() => stopEmbedded(first.dataDir))
  t.ok(first.startedHere)
  t.equal(first.dataDir, path.join(checkout, 'postgres', 'pgdata'))
  t.equal(
    (await readFile(path.join(checkout, 'postgres', 'port'), 'utf8')).trim(),
    String(first.port),
    'remembered in DATA_DIR/postgres/port',
  )

  // An explicit, different port does not move a server that is already running.
  const other = await freePort()
  const again = await startEmbedded({ dataDir: path.join(checkout, 'postgres'), port: other, log: (l) => lines.push(l) })
  t.notOk(again.startedHere, 'reused')
  t.equal(again.port, first.port)
  t.match(lines.join('\n'), `already running on 127.0.0.1:${first.port} (not on the requested port ${other})`)

  // The CLI finds the same cluster, and leaves it running (it did not start it).
  const out: string[] = []
  t.equal(await runCli(['init', '-v'], { DATA_DIR: checkout }, { out: (l) => out.push(l), err: (l) => out.push(l) }), 0)
  t.match(out.join('\n'), `already running on 127.0.0.1:${first.port} (data directory ${first.dataDir})`)
  t.ok(existsSync(path.join(first.dataDir, 'postmaster.pid')), 'still running after the CLI')
  t.equal(await answers(first), first.port)
})

t.test('a failing initdb says what initdb said', async (t) => {
  const dir = await tempDir(t)
  // Not a cluster, not empty: initdb refuses it (and nothing of it is deleted).
  await mkdir(path.join(dir, 'pgdata'))
  await writeFile(path.join(dir, 'pgdata', 'notes.txt'), 'mine')
  await t.rejects(startEmbedded({ dataDir: dir, port: await freePort() }), {
    message: /^initdb failed: initdb: error: directory ".*pgdata" exists but is not empty/,
  })
  t.equal(await readFile(path.join(dir, 'pgdata', 'notes.txt'), 'utf8'), 'mine')
})

t.test('a cluster that cannot start says what the server logged, first line first', async (t) => {
  const dir = await tempDir(t)
  const { cluster } = await start(t, { dataDir: dir, port: await freePort() })
  await cluster.stop()
  // A data directory from another major version: the server refuses it at start.
  await writeFile(path.join(cluster.dataDir, 'PG_VERSION'), '99\n')
  const port = await freePort()
  const err = await startEmbedded({ dataDir: dir, port }).then(
    () => undefined,
    (e: unknown) => e as Error,
  )
  t.ok(err, 'the start fails')
  const [headline, ...rest] = (err?.message ?? '').split('\n')
  t.equal(headline, `embedded PostgreSQL did not start on 127.0.0.1:${port}: FATAL:  database files are incompatible with server`)
  t.match(rest.join('\n'), /DETAIL:\s+The data directory was initialized by PostgreSQL version 99/, 'the log tail follows')
})

t.test('as root, a data dir the postgres user cannot reach gets its cluster under /var/lib/activity-auth', async (t) => {
  const closed = await tempDir(t) // 0700, like /root/app
  const dataDir = path.join(closed, '.data', 'postgres')
  const home = sharedHome(path.join(await realpath(closed), '.data', 'postgres'))
  const baseExisted = existsSync(SHARED_BASE)
  t.teardown(async () => {
    await rm(home, { recursive: true, force: true })
    // The base too, when this test made it (rmdir: only if nothing else is in it).
    if (!baseExisted) await rmdir(SHARED_BASE).catch(() => undefined)
  })
  const { cluster, log } = await start(t, { dataDir, port: await freePort() })
  t.equal(await answers(cluster), cluster.port, 'it runs')
  const link = path.join(dataDir, 'pgdata')
  if (!isRoot) {
    // Not root: the server runs as ourselves, for whom nothing is closed.
    t.equal(cluster.dataDir, link)
    t.notOk(existsSync(home))
    return
  }
  t.equal(cluster.dataDir, path.join(home, 'pgdata'))
  t.ok(cluster.dataDir.startsWith(`${SHARED_BASE}/`))
  t.ok((await lstat(link)).isSymbolicLink(), '.data/postgres/pgdata points there')
  t.equal(await readlink(link), cluster.dataDir)
  t.match(log, `the postgres OS user cannot reach ${dataDir}: the cluster lives in ${cluster.dataDir}`)
  t.equal(
    (await readFile(path.join(home, 'data-dir'), 'utf8')).trim(),
    path.join(closed, '.data', 'postgres'),
    'which checkout it belongs to',
  )
  const pg = await stat(cluster.dataDir)
  t.equal(pg.mode & 0o777, 0o700)
  t.not(pg.uid, 0, 'owned by postgres')
  t.equal((await stat(closed)).mode & 0o777, 0o700, "the user's directory is left closed")
  t.equal((await stat(SHARED_BASE)).mode & 0o777, 0o755)

  await cluster.stop()
  const again = await start(t, { dataDir })
  t.equal(again.cluster.dataDir, cluster.dataDir, 'a restart finds it through the link')
  t.equal(again.cluster.port, cluster.port, 'on the remembered port')
  await again.cluster.stop()

  // Deleting .data resets: the next start makes a new cluster in the same place.
  await rm(path.join(closed, '.data'), { recursive: true })
  const fresh = await start(t, { dataDir })
  t.equal(fresh.cluster.dataDir, cluster.dataDir)
  t.match(fresh.log, `removing ${cluster.dataDir}: the cluster of an earlier ${dataDir}, which was deleted`)
  t.equal(await answers(fresh.cluster), fresh.cluster.port, 'the new password works')
})

t.test('a cluster already in a directory postgres cannot reach is refused with what to do', async (t) => {
  const dir = await tempDir(t)
  const dataDir = path.join(dir, 'postgres')
  await mkdir(path.join(dataDir, 'pgdata'), { recursive: true })
  await writeFile(path.join(dataDir, 'pgdata', 'PG_VERSION'), '16\n')
  const attempt = startEmbedded({ dataDir, port: await freePort() })
  if (isRoot) {
    await t.rejects(attempt, {
      message:
        /^the postgres OS user cannot reach the cluster in .*: move the checkout, or delete .* to start a new cluster in \/var\/lib\/activity-auth$/,
    })
  } else {
    // Not root: reachable, so pg_ctl tries it and the server's complaint is reported.
    await t.rejects(attempt, { message: /^embedded PostgreSQL did not start on 127\.0\.0\.1:\d+: \S/ })
  }
})
