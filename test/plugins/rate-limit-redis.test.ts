// Rate limits through a real Redis that this test starts on a free port, then kills
// (SIGKILL), restarts and freezes (SIGSTOP/SIGCONT) mid-run: requests never wait for
// it, limits go on per instance in memory, the state shows in /metrics and
// /api/health with one warn line per change, and the app returns to Redis by itself.
import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { loggedApp } from '../helpers/app.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts'
import { freePort } from '../helpers/net.ts'
import { startRedis } from '../helpers/redis.ts'

// Not a performance figure: a request that waited for a Redis timeout of seconds (or
// hung on a frozen one) exceeds it by far; the added latency by design is ≤ 100 ms.
const STALL_MS = 1000

interface Instance {
  app: FastifyInstance
  logs: Record<string, unknown>[]
  /** Warn lines of one event ('rate_limit_store_down' | 'rate_limit_store_up'). */
  warns: (event: string) => number
}

async function instance(t: Test, db: TestDatabase, env: Record<string, string>): Promise<Instance> {
  // No events publisher: this Redis is killed and frozen to test the rate-limit store alone.
  const { app, logs } = await loggedApp(t, db, { EVENTS_ENABLED: 'false', ...env })
  const warns = (event: string) => logs.filter((l) => l.event === event && l.level === 40).length
  return { app, logs, warns }
}

/** A well-formed link, so the page answers 200 (a bare /verify-email is the 400 "incomplete link" page). */
const LINK = `/verify-email?token=${'a'.repeat(43)}`

/** GET a globally limited route; its status and how long it took. */
async function hit(app: FastifyInstance): Promise<{ status: number; ms: number }> {
  const started = performance.now()
  const res = await app.inject({ method: 'GET', url: LINK })
  return { status: res.statusCode, ms: performance.now() - started }
}

async function hits(t: Test, apps: FastifyInstance[], what: string): Promise<number[]> {
  const codes: number[] = []
  let slowest = 0
  for (const app of apps) {
    const { status, ms } = await hit(app)
    codes.push(status)
    slowest = Math.max(slowest, ms)
  }
  t.ok(slowest < STALL_MS, `${what}: no request stalled (slowest ${slowest.toFixed(0)} ms)`)
  return codes
}

async function storeState(app: FastifyInstance): Promise<{ health: unknown; gauge: string | undefined }> {
  const health = (await app.inject({ method: 'GET', url: '/api/health' })).json<{ rateLimitStore: string }>().rateLimitStore
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  return { health, gauge: /^rate_limit_store_up (\d+)$/m.exec(metrics)?.[1] }
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  // A bound so a broken reconnect fails the test instead of hanging it; not a timing assertion.
  const deadline = Date.now() + 20_000
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

t.test('a killed, restarted and frozen Redis: no stall, limits in memory, state shown, back by itself', async (t) => {
  const port = await freePort()
  let redis = await startRedis(t, port)
  const url = `redis://127.0.0.1:${port}`
  const prefix = `activity-auth-test-${randomBytes(4).toString('hex')}:`
  const env = { RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_MAX: '5', REDIS_URL: url, RATE_LIMIT_REDIS_PREFIX: prefix }
  const db = await createTestDatabase(t)
  const a = await instance(t, db, env)
  const b = await instance(t, db, env)
  const ab = [a.app, b.app, a.app, b.app, a.app, b.app]

  // (a) on Redis: one limit for both instances
  t.same(await storeState(a.app), { health: 'redis', gauge: '1' }, 'on redis at start')
  t.same(await hits(t, ab, 'shared'), [200, 200, 200, 200, 200, 429], 'the sixth request is refused whichever instance gets it')
  const client = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null })
  client.on('error', () => {})
  await client.connect()
  t.ok((await client.keys(`${prefix}*`)).length > 0, 'counters live in redis')
  client.disconnect()
  t.equal(a.warns('rate_limit_store_down'), 0, 'no warning while redis answers')

  // (b) SIGKILL: requests answer at once and are limited per instance in memory
  await redis.kill('SIGKILL')
  t.same(
    await hits(t, [a.app, a.app, a.app, a.app, a.app, a.app, a.app], 'redis killed'),
    [200, 200, 200, 200, 200, 429, 429],
    'limits go on in memory: they do not fail open',
  )
  t.same(await storeState(a.app), { health: 'memory-fallback', gauge: '0' }, 'fallback in /api/health and /metrics')
  t.equal((await a.app.inject({ method: 'GET', url: '/api/health' })).statusCode, 200, 'the service itself stays healthy')
  await sleep(1500) // several reconnect attempts, still one line
  t.same(await hits(t, [a.app], 'redis still down'), [429])
  t.equal(a.warns('rate_limit_store_down'), 1, 'one warn line for the change, however many reconnects fail')
  t.equal(a.warns('rate_limit_store_up'), 0)
  const down = a.logs.find((l) => l.event === 'rate_limit_store_down')
  t.match(down, { rateLimitStore: 'memory-fallback', reason: String, msg: /redis unavailable/ }, 'structured')

  // (c) restarted on the same port: both instances return to Redis by themselves
  redis = await startRedis(t, port)
  await until('both instances back on redis', async () =>
    (await Promise.all([a.app, b.app].map(storeState))).every((s) => s.health === 'redis' && s.gauge === '1'),
  )
  t.equal(a.warns('rate_limit_store_up'), 1, "one 'back' line")
  t.match(
    a.logs.find((l) => l.event === 'rate_limit_store_up' && l.level === 40),
    { msg: /redis is back/ },
  )
  t.equal(a.warns('rate_limit_store_down'), 1, 'no further down line')
  t.same(await hits(t, ab, 'redis back'), [200, 200, 200, 200, 200, 429], 'shared again (the restarted redis starts empty)')

  // (d) SIGSTOP: requests do not hang; limits go on in memory; back after SIGCONT
  const before = b.warns('rate_limit_store_down')
  await redis.kill('SIGSTOP')
  t.same(
    await hits(t, [b.app, b.app, b.app, b.app, b.app, b.app, b.app], 'redis frozen'),
    [200, 200, 200, 200, 200, 429, 429],
    'limits go on in memory while redis is frozen',
  )
  t.same(await storeState(b.app), { health: 'memory-fallback', gauge: '0' })
  t.equal(b.warns('rate_limit_store_down'), before + 1, 'one warn line for the freeze')
  await redis.kill('SIGCONT')
  await until('back on redis after SIGCONT', async () => (await storeState(b.app)).health === 'redis')
  t.same(await storeState(b.app), { health: 'redis', gauge: '1' })
})

t.test('without REDIS_URL the store is memory; with limits off it is off', async (t) => {
  const db = await createTestDatabase(t)
  const memory = await instance(t, db, { RATE_LIMIT_ENABLED: 'true' })
  t.same(await storeState(memory.app), { health: 'memory', gauge: '1' })
  const off = await instance(t, db, { RATE_LIMIT_ENABLED: 'false' })
  t.equal((await storeState(off.app)).health, 'off')
})
