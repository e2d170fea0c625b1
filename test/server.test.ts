// `npm start` on a fresh checkout: no DATABASE_URL → embedded PostgreSQL 16 under
// DATA_DIR, bootstrapped and migrated, /api/health/ready answers 200; a second
// start reuses the data; SIGTERM shuts everything down.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { nodeArgs } from './helpers/child.ts'
import { freePort } from './helpers/net.ts'

async function waitReady(port: number, child: ChildProcess, output: () => string): Promise<Response> {
  const deadline = Date.now() + 90_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode}): ${output()}`)
    try {
      const res = await fetch(`http://127.0.0.1:${port}/api/health/ready`)
      if (res.status === 200) return res
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  throw new Error(`server not ready: ${output()}`)
}

function start(env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, nodeArgs('src/server.ts'), {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr.on('data', (d: Buffer) => (output += d.toString()))
  return { child, output: () => output }
}

async function stop(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  child.kill('SIGTERM')
  return exited
}

t.test('npm start with no DATABASE_URL serves ready on an embedded database, twice', async (t) => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'activity-auth-start-'))
  // As root the server runs as `postgres`, which must traverse into the data dir.
  await chmod(dataDir, 0o711)
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const env = {
    DATA_DIR: dataDir,
    PORT: String(await freePort()),
    EMBEDDED_PG_PORT: String(await freePort()),
    DATABASE_URL: '',
    DATABASE_ADMIN_URL: '',
    NODE_ENV: 'development',
    LOG_LEVEL: 'warn',
  }
  for (const round of ['first start', 'second start (data kept)']) {
    const server = start(env)
    t.teardown(() => stop(server.child))
    const res = await waitReady(Number(env.PORT), server.child, server.output)
    t.same(await res.json(), { status: 'ready', database: 'up', pendingMigrations: [] }, round)
    const live = await fetch(`http://127.0.0.1:${env.PORT}/api/health/live`)
    t.same(await live.json(), { status: 'ok' })
    t.equal(await stop(server.child), 0, `${round}: clean exit on SIGTERM`)
    t.notOk(existsSync(path.join(dataDir, 'postgres', 'pgdata', 'postmaster.pid')), `${round}: embedded server stopped`)
  }
})

t.test('production refuses development defaults with one line', async (t) => {
  const server = start({ NODE_ENV: 'production', DATABASE_URL: '', PORT: '0' })
  const code = await new Promise<number | null>((resolve) => server.child.once('exit', resolve))
  t.equal(code, 1)
  t.match(server.output(), /refusing to start in production: DATABASE_URL is required/)
  t.match(server.output(), /AUTH_API_DB_PASSWORD is a development default/)
})
