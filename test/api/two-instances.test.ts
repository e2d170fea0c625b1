// Issue 12: two instances of the service behind one balancer share one database and
// one Redis, and nothing a client does on one is unknown to the other — a refresh
// token reused on B after its rotation on A revokes the session everywhere, a
// logout on A ends the session on B at once, and the per-IP limits and the account
// lockout count requests to both together.
import { generateKeyPairSync } from 'node:crypto'
import t, { type Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { bearer, build, json } from '../helpers/app.ts'
import { createTestDatabase } from '../helpers/db.ts'
import { REDIS_URL, redisNamespace } from '../helpers/redis.ts'

type App = Awaited<ReturnType<typeof build>>

interface Pair {
  accessToken: string
  refreshToken: string
}

const PASSWORD = 'correct horse battery staple'
const PEPPER = 'two-instances-test-pepper-0123456789abcdefghijklmnopqrstuvwxyz'
// Replicas share the signing key and the refresh pepper, as they must in production
// (a generated development key is per data directory, i.e. per instance).
const JWT_PRIVATE_KEY = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()

/** Instances A and B on one new database and one Redis namespace, removed after the test. */
async function twoInstances(t: Test, env: Record<string, string>): Promise<{ a: App; b: App }> {
  const { prefix } = redisNamespace(t)
  const shared = {
    REQUIRE_EMAIL_VERIFICATION: 'false',
    REFRESH_TOKEN_PEPPER: PEPPER,
    JWT_PRIVATE_KEY,
    REDIS_URL,
    RATE_LIMIT_REDIS_PREFIX: prefix,
    ...env,
  }
  const db = await createTestDatabase(t)
  const a = await build(t, shared, db)
  const b = await build(t, shared, db)
  return { a, b }
}

async function signup(h: App, email: string): Promise<void> {
  const res = await h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email, password: PASSWORD } })
  if (res.statusCode !== 202) throw new Error(`signup ${String(res.statusCode)} ${res.body}`)
}

const login = (h: App, email: string, password = PASSWORD) =>
  h.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email, password } })

async function loggedIn(h: App, email: string): Promise<Pair> {
  const res = await login(h, email)
  if (res.statusCode !== 200) throw new Error(`login ${String(res.statusCode)} ${res.body}`)
  return json<Pair>(res)
}

const me = (h: App, accessToken: string) => h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(accessToken) })
const refresh = (h: App, refreshToken: string) => h.app.inject({ method: 'POST', url: '/api/auth/refresh', payload: { refreshToken } })

const status = (res: LightMyRequestResponse) => res.statusCode

t.test('a refresh token rotated on A and reused on B revokes the session on both', async (t) => {
  // No grace: presenting a rotated token again is a reuse at once.
  const { a, b } = await twoInstances(t, { REFRESH_REUSE_GRACE_SECONDS: '0' })
  await signup(a, 'reuse@example.test')
  const first = await loggedIn(a, 'reuse@example.test')

  const rotated = await refresh(a, first.refreshToken)
  t.equal(status(rotated), 200, 'rotated on A')
  const second = json<Pair>(rotated)
  t.equal(status(await me(b, second.accessToken)), 200, 'B knows the new pair')

  const reused = await refresh(b, first.refreshToken)
  t.equal(status(reused), 401, 'the old token presented to B is refused')

  for (const [name, h] of [
    ['A', a],
    ['B', b],
  ] as const) {
    t.equal(status(await refresh(h, second.refreshToken)), 401, `${name}: the successor is revoked too`)
    t.equal(status(await me(h, second.accessToken)), 401, `${name}: the session's access token is refused`)
    t.equal(status(await me(h, first.accessToken)), 401, `${name}: and the first one`)
  }
  // The user can still sign in again: only that session is gone.
  t.equal(status(await me(b, (await loggedIn(b, 'reuse@example.test')).accessToken)), 200, 'a new login works')
})

t.test('a refresh token used again on B after its successor was used on A: the session is revoked', async (t) => {
  // With the default grace: the grace covers a retry of the latest rotation only.
  const { a, b } = await twoInstances(t, {})
  await signup(b, 'chain@example.test')
  const first = await loggedIn(b, 'chain@example.test')
  const second = json<Pair>(await refresh(a, first.refreshToken))
  const third = await refresh(a, second.refreshToken)
  t.equal(status(third), 200, 'the successor rotated on A')

  t.equal(status(await refresh(b, first.refreshToken)), 401, 'the first token presented to B is refused')
  for (const [name, h] of [
    ['A', a],
    ['B', b],
  ] as const) {
    t.equal(status(await refresh(h, json<Pair>(third).refreshToken)), 401, `${name}: the latest token is revoked`)
    t.equal(status(await me(h, json<Pair>(third).accessToken)), 401, `${name}: the session's access token is refused`)
  }
})

/** Ask B until it refuses: its session cache drops the entry when A's change is announced (NOTIFY). */
async function refusedBy(h: App, accessToken: string): Promise<number> {
  for (const deadline = Date.now() + 5000; Date.now() < deadline;) {
    const res = await me(h, accessToken)
    if (res.statusCode !== 200) return res.statusCode
    await new Promise((r) => setTimeout(r, 5))
  }
  return 200
}

t.test('a logout on A is seen by B as soon as it is announced, long before the cache TTL', async (t) => {
  // A minute of TTL: only the notification can explain B refusing within the five seconds asked.
  const { a, b } = await twoInstances(t, { SESSION_CACHE_TTL_MS: '60000' })
  await signup(a, 'leave@example.test')
  const session = await loggedIn(b, 'leave@example.test')
  const other = await loggedIn(a, 'leave@example.test')
  t.equal(status(await me(b, session.accessToken)), 200, 'signed in on B')

  const out = await a.app.inject({ method: 'POST', url: '/api/auth/logout', payload: { refreshToken: session.refreshToken } })
  t.equal(status(out), 204, 'logged out on A')

  t.equal(await refusedBy(b, session.accessToken), 401, "B refuses the ended session's access token")
  t.equal(status(await refresh(b, session.refreshToken)), 401, 'and its refresh token')
  t.equal(status(await me(b, other.accessToken)), 200, "the same user's other session is untouched")
})

t.test('per-IP credential limits count requests to both instances', async (t) => {
  const { a, b } = await twoInstances(t, { RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_CREDENTIALS_MAX: '3' })
  const codes: number[] = []
  for (const [i, h] of [a, b, a, b, a, b].entries()) {
    const res = await login(h, `nobody-${String(i)}@example.test`, 'not the password')
    codes.push(res.statusCode)
    if (res.statusCode === 429) {
      t.equal(json(res).code, 'rate_limited')
      t.ok(Number(res.headers['retry-after']) > 0, 'Retry-After')
    }
  }
  t.same(codes, [401, 401, 401, 429, 429, 429], 'the fourth attempt is refused, whichever instance gets it')
})

t.test('the account lockout counts failures on both instances', async (t) => {
  const { a, b } = await twoInstances(t, {
    RATE_LIMIT_ENABLED: 'true',
    RATE_LIMIT_CREDENTIALS_MAX: '50',
    LOCKOUT_THRESHOLD: '3',
    LOCKOUT_BASE_SECONDS: '60',
  })
  await signup(a, 'locked@example.test')
  const failures: number[] = []
  for (const h of [a, b, a]) failures.push(status(await login(h, 'locked@example.test', 'a wrong password')))
  t.same(failures, [401, 401, 401], 'three failures, spread over A and B')

  for (const [name, h] of [
    ['A', a],
    ['B', b],
  ] as const) {
    const res = await login(h, 'locked@example.test')
    t.equal(status(res), 429, `${name}: locked, even with the right password`)
    t.equal(json(res).code, 'too_many_attempts')
    t.ok(Number(res.headers['retry-after']) > 0, `${name}: Retry-After`)
  }
})
