// /metrics exposes request durations by route pattern (never raw URLs), the
// auth counters and the database pool gauges, per app.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import metrics, { type PoolCounters } from '../../src/plugins/metrics.ts'
import errors from '../../src/plugins/errors.ts'

async function build(t: Test, pool?: PoolCounters): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  await app.register(errors)
  await app.register(metrics, pool === undefined ? {} : { pool })
  app.get('/api/things/:id', async () => ({ ok: true }))
  t.teardown(() => app.close())
  return app
}

async function scrape(app: FastifyInstance): Promise<string> {
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  if (res.statusCode !== 200) throw new Error(`/metrics answered ${String(res.statusCode)}`)
  return res.body
}

t.test('request durations are labelled by route pattern; unknown routes are "unmatched"', async (t) => {
  const app = await build(t)
  await app.inject({ method: 'GET', url: '/api/things/1' })
  await app.inject({ method: 'GET', url: '/api/things/2' })
  await app.inject({ method: 'GET', url: '/secret-probe-123' })
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  t.match(res.body, /http_request_duration_seconds_count\{method="GET",route="\/api\/things\/:id",status_code="200"\} 2/)
  t.match(res.body, /http_request_duration_seconds_bucket\{le="[\d.]+",method="GET",route="\/api\/things\/:id"/)
  t.match(res.body, /http_request_duration_seconds_count\{method="GET",route="unmatched",status_code="404"\} 1/)
  t.notMatch(res.body, /secret-probe|things\/1"/, 'no raw URL becomes a label')
  t.match(res.body, /process_cpu_user_seconds_total/, 'default metrics')
})

t.test('login and refresh-reuse counters count what the routes report', async (t) => {
  const app = await build(t)
  app.metrics.loginOutcome('success')
  app.metrics.loginOutcome('success')
  app.metrics.loginOutcome('failure')
  app.metrics.refreshReuse()
  const body = await scrape(app)
  t.match(body, /auth_login_total\{outcome="success"\} 2/)
  t.match(body, /auth_login_total\{outcome="failure"\} 1/)
  t.match(body, /auth_refresh_reuse_total 1/)
})

t.test('pool gauges read the pool at each scrape', async (t) => {
  const pool = { totalCount: 7, idleCount: 3, waitingCount: 0 }
  const app = await build(t, pool)
  let body = await scrape(app)
  t.match(body, /db_pool_total 7/)
  t.match(body, /db_pool_idle 3/)
  t.match(body, /db_pool_waiting 0/)
  pool.waitingCount = 4
  pool.idleCount = 0
  body = await scrape(app)
  t.match(body, /db_pool_waiting 4/)
  t.match(body, /db_pool_idle 0/)
})

t.test('two apps in one process keep separate registries', async (t) => {
  const a = await build(t)
  const b = await build(t)
  a.metrics.refreshReuse()
  t.match(await scrape(a), /auth_refresh_reuse_total 1/)
  t.match(await scrape(b), /auth_refresh_reuse_total 0/)
  t.notMatch(await scrape(b), /db_pool_total/, 'no pool gauges without a pool')
})

t.test('with a token, /metrics answers only a scraper that sends it', async (t) => {
  const token = 'scrape-me-0123456789abcdef'
  const app = Fastify({ logger: false })
  await app.register(errors)
  await app.register(metrics, { token })
  t.teardown(() => app.close())

  const get = (authorization?: string) =>
    app.inject({ method: 'GET', url: '/metrics', headers: authorization === undefined ? {} : { authorization } })
  for (const [what, authorization] of [
    ['no header', undefined],
    ['wrong token', 'Bearer scrape-me-0123456789abcdeX'],
    ['a prefix of the token', `Bearer ${token.slice(0, -1)}`],
    ['the token plus more', `Bearer ${token}x`],
    ['another scheme', `Basic ${Buffer.from(`x:${token}`).toString('base64')}`],
    ['the bare token', token],
  ] as const) {
    const res = await get(authorization)
    t.equal(res.statusCode, 401, what)
    t.match(res.headers['content-type'], /^application\/problem\+json/, `${what}: a problem`)
    t.equal(res.json<{ code: string }>().code, 'invalid_token', `${what}: invalid_token`)
    t.match(res.headers['www-authenticate'], /^Bearer /, `${what}: says how to authenticate`)
    t.notMatch(res.body, /process_cpu|http_request_duration/, `${what}: no metrics in the body`)
  }
  const ok = await get(`Bearer ${token}`)
  t.equal(ok.statusCode, 200, 'the right token')
  t.match(ok.body, /process_cpu_user_seconds_total/)
})

t.test('serve: false registers no /metrics route, but the counters still work', async (t) => {
  const app = Fastify({ logger: false })
  await app.register(errors)
  await app.register(metrics, { serve: false })
  t.teardown(() => app.close())
  app.metrics.loginOutcome('success')
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 404)
  t.equal(res.json<{ code: string }>().code, 'not_found')
})
