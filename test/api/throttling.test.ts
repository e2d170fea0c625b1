// Login throttling: per-account lockout in the database (identical for existing
// and unknown emails) and per-IP rate limits in memory or in a shared Redis.
import t from 'tap'
import { build, json } from '../helpers/app.ts'
import { createTestDatabase } from '../helpers/db.ts'
import { REDIS_URL, redisNamespace } from '../helpers/redis.ts'

t.test('lockout after LOCKOUT_THRESHOLD failures: 429 + Retry-After, same for unknown emails', async (t) => {
  const h = await build(t, { LOCKOUT_THRESHOLD: '3', LOCKOUT_BASE_SECONDS: '60', REQUIRE_EMAIL_VERIFICATION: 'false' })
  await h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email: 'dan@example.test', password: 'dans real password' } })

  const attempt = (email: string, password: string) =>
    h.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email, password } })

  for (const email of ['dan@example.test', 'ghost@example.test']) {
    for (let i = 0; i < 3; i++) t.equal((await attempt(email, 'wrong password!')).statusCode, 401, `${email}: failure ${i + 1}`)
  }
  const lockedKnown = await attempt('dan@example.test', 'dans real password')
  const lockedGhost = await attempt('ghost@example.test', 'whatever it is')
  for (const res of [lockedKnown, lockedGhost]) {
    t.equal(res.statusCode, 429, 'locked, even with the right password')
    t.equal(json(res).code, 'too_many_attempts')
    const retry = Number(res.headers['retry-after'])
    t.ok(retry > 0 && retry <= 60, `Retry-After ${retry}`)
  }
  const strip = (b: string) => ({ ...(JSON.parse(b) as object), requestId: undefined })
  t.same(strip(lockedKnown.body), strip(lockedGhost.body), 'lockout reveals nothing')
})

t.test('per-IP limit on credential routes, in memory', async (t) => {
  const h = await build(t, { RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_CREDENTIALS_MAX: '3' })
  const codes: number[] = []
  for (let i = 0; i < 5; i++) {
    const res = await h.app.inject({ method: 'POST', url: '/api/auth/forgot-password', payload: { email: `x${i}@example.test` } })
    codes.push(res.statusCode)
    if (res.statusCode === 429) {
      t.equal(json(res).code, 'rate_limited')
      t.ok(Number(res.headers['retry-after']) > 0, 'Retry-After')
    }
  }
  t.same(codes, [202, 202, 202, 429, 429])
  const other = await h.app.inject({ method: 'GET', url: '/api/health/live' })
  t.equal(other.statusCode, 200, 'other routes keep their own, larger budget')
})

t.test('two instances sharing one Redis share one limit', async (t) => {
  const { prefix, redis } = redisNamespace(t)
  const env = { RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_CREDENTIALS_MAX: '4', REDIS_URL, RATE_LIMIT_REDIS_PREFIX: prefix }
  const db = await createTestDatabase(t)
  const a = await build(t, env, db)
  const b = await build(t, env, db)
  const codes: number[] = []
  for (const h of [a, b, a, b, a, b]) {
    const res = await h.app.inject({ method: 'POST', url: '/api/auth/forgot-password', payload: { email: 'y@example.test' } })
    codes.push(res.statusCode)
  }
  t.same(codes, [202, 202, 202, 202, 429, 429], 'the fifth request is refused whichever instance gets it')
  t.ok((await redis.keys(`${prefix}*`)).length > 0, 'counters live in Redis')
})

t.test('health probes, JWKS and /metrics are outside the per-IP budget', async (t) => {
  const h = await build(t, { RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_MAX: '5' })
  const get = (url: string) => h.app.inject({ method: 'GET', url, remoteAddress: '198.51.100.7' })
  const statuses = async (url: string, n: number) => {
    const seen = new Set<number>()
    for (let i = 0; i < n; i++) seen.add((await get(url)).statusCode)
    return [...seen]
  }
  for (const url of ['/api/health/live', '/api/health/ready', '/api/health', '/api/health/database', '/metrics']) {
    t.same(await statuses(url, 20), [200], `${url}: 20 from one address, all 200`)
  }
  t.same(await statuses('/.well-known/jwks.json', 20), [200], 'jwks: 20 from one address, all 200')
  t.same(await statuses(`/verify-email?token=${'a'.repeat(43)}`, 7), [200, 429], 'an ordinary route is still limited after 5')
  t.same(await statuses('/api/health/live', 5), [200], 'and the probes still answer')
  // JWKS has a budget of its own, ten times the global one (20 used above).
  t.same(await statuses('/.well-known/jwks.json', 30), [200], 'jwks: up to 10 × RATE_LIMIT_MAX')
  t.same(await statuses('/.well-known/jwks.json', 1), [429], 'jwks: then limited too')
})
