// The service's connection through a real PgBouncer in transaction mode (issue 12,
// part 2): with named statements (DATABASE_STATEMENT_CACHE=on) calls break as soon
// as statements move between server connections; with off, the flow, the expected
// errors, parallel refreshes and the lockout all hold. Migrations and the CLI
// refuse a DATABASE_ADMIN_URL through the pooler in one line.
import pg from 'pg'
import t, { type Test } from 'tap'
import { newEmailToken } from '../../src/auth/tokens.ts'
import { describeError } from '../../src/cli/db.ts'
import { migrate } from '../../src/db/migrate.ts'
import { assertDirectConnection, PooledConnectionError } from '../../src/db/direct-connection.ts'
import { bearer, build, json, type TestApp } from '../helpers/app.ts'
import { cli, cliEnv } from '../helpers/cli.ts'
import { readRun } from '../helpers/cluster.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts'
import { startPgBouncer } from '../helpers/pgbouncer.ts'

const PASSWORD = 'correct horse battery staple'

interface Pair {
  accessToken: string
  refreshToken: string
}

async function throughBouncer(t: Test): Promise<TestDatabase> {
  const db = await createTestDatabase(t)
  const bouncer = await startPgBouncer(t)
  return { ...db, url: bouncer.through(db.url) }
}

// The pool has more clients (DATABASE_POOL_MAX 20) than PgBouncer has server
// connections (5): consecutive calls of one client land on different backends.
const ENV = { DATABASE_POOL_MAX: '20', DATABASE_POOL_MIN: '0' }

const badTokens = (h: TestApp, n: number) =>
  Promise.all(
    Array.from({ length: n }, () =>
      h.app.inject({ method: 'POST', url: '/api/auth/verify-email', payload: { token: newEmailToken().token } }),
    ),
  )

t.test('DATABASE_STATEMENT_CACHE=on through PgBouncer (transaction mode) fails: named statements do not survive the pooler', async (t) => {
  const h = await build(t, { ...ENV, DATABASE_STATEMENT_CACHE: 'on' }, await throughBouncer(t))
  const answers = await badTokens(h, 200)
  const codes = answers.map((r) => r.statusCode)
  const failed = codes.filter((c) => c >= 500).length
  t.ok(failed > 0, `some of 200 calls fail with 5xx (${String(failed)}); the rest are the expected 400`)
  t.ok(
    codes.every((c) => c === 400 || c >= 500),
    'nothing else',
  )
})

t.test('DATABASE_STATEMENT_CACHE=off through PgBouncer (transaction mode): the whole flow', async (t) => {
  const h = await build(t, { ...ENV, DATABASE_STATEMENT_CACHE: 'off' }, await throughBouncer(t))
  const email = 'pooled@example.test'
  const signup = await h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email, password: PASSWORD } })
  t.equal(signup.statusCode, 202)
  const token = await h.tokenFor(email, /Confirm your email/)
  t.equal((await h.app.inject({ method: 'POST', url: '/api/auth/verify-email', payload: { token } })).statusCode, 200, 'verify')

  const login = async (password = PASSWORD) => h.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email, password } })
  const first = await login()
  t.equal(first.statusCode, 200, 'login')
  const pair = json<Pair>(first)
  const me = await h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(pair.accessToken) })
  t.equal(me.statusCode, 200)
  t.equal(json(me).email, email)

  // Parallel refreshes of one token: one rotation, every other answer the same successor (grace).
  const refreshes = await Promise.all(
    Array.from({ length: 10 }, () =>
      h.app.inject({ method: 'POST', url: '/api/auth/refresh', payload: { refreshToken: pair.refreshToken } }),
    ),
  )
  t.same(
    refreshes.map((r) => r.statusCode),
    Array(10).fill(200),
    '10 parallel refreshes: all 200',
  )
  const successors = new Set(refreshes.map((r) => json<Pair>(r).refreshToken))
  t.equal(successors.size, 1, 'one successor for all of them')
  const next = json<Pair>(refreshes[0] as (typeof refreshes)[number])
  // Serial rotations across server connections.
  let current = next
  for (let i = 0; i < 20; i++) {
    const r = await h.app.inject({ method: 'POST', url: '/api/auth/refresh', payload: { refreshToken: current.refreshToken } })
    if (r.statusCode !== 200) t.fail(`rotation ${String(i)}: ${String(r.statusCode)} ${r.body}`)
    current = json<Pair>(r)
  }

  const second = json<Pair>(await login())
  const sessions = await h.app.inject({ method: 'GET', url: '/api/auth/sessions', headers: bearer(current.accessToken) })
  t.equal(sessions.statusCode, 200)
  t.equal(json<unknown[]>(sessions).length, 2, 'two sessions')

  const change = await h.app.inject({
    method: 'POST',
    url: '/api/auth/change-password',
    headers: bearer(current.accessToken),
    payload: { currentPassword: PASSWORD, newPassword: 'a brand new passphrase' },
  })
  t.equal(change.statusCode, 204, 'change-password')
  const other = await h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(second.accessToken) })
  t.equal(other.statusCode, 401, 'the other session ended')
  const logout = await h.app.inject({ method: 'POST', url: '/api/auth/logout', payload: { refreshToken: current.refreshToken } })
  t.equal(logout.statusCode, 204, 'logout')
  const after = await h.app.inject({ method: 'POST', url: '/api/auth/refresh', payload: { refreshToken: current.refreshToken } })
  t.equal(after.statusCode, 401, 'logged out')

  // Expected errors through the pooler (well-formed tokens: each one reaches the database): 400s, never 500s.
  const bad = await badTokens(h, 200)
  t.same([...new Set(bad.map((r) => r.statusCode))], [400], '200 bad-token verifications: all 400')
  const taken = await Promise.all(
    Array.from({ length: 20 }, () => h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email, password: PASSWORD } })),
  )
  t.same([...new Set(taken.map((r) => r.statusCode))], [202], '20 signups of a taken address: the same 202 as a new one')
})

t.test('DATABASE_STATEMENT_CACHE=off through PgBouncer: parallel guesses still stop at the lockout threshold', async (t) => {
  const h = await build(
    t,
    { ...ENV, DATABASE_STATEMENT_CACHE: 'off', REQUIRE_EMAIL_VERIFICATION: 'false', LOCKOUT_THRESHOLD: '5' },
    await throughBouncer(t),
  )
  const email = 'burst@example.test'
  t.equal((await h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email, password: PASSWORD } })).statusCode, 202)
  const answers = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      h.app.inject({
        method: 'POST',
        url: '/api/auth/login',
        remoteAddress: `198.51.100.${String(i + 1)}`,
        payload: { email, password: `wrong guess number ${String(i)}` },
      }),
    ),
  )
  const codes = answers.map((r) => r.statusCode)
  t.equal(codes.filter((c) => c === 401).length, 5, 'exactly the threshold was checked and failed')
  t.equal(codes.filter((c) => c === 429).length, 45, 'the rest were refused')
  const locked = await h.app.inject({
    method: 'POST',
    url: '/api/auth/login',
    remoteAddress: '203.0.113.9',
    payload: { email, password: PASSWORD },
  })
  t.equal(locked.statusCode, 429, 'locked, right password or not')
})

t.test('DATABASE_ADMIN_URL through PgBouncer (transaction mode) is refused in one line', async (t) => {
  const run = readRun()
  const db = await createTestDatabase(t)
  const bouncer = await startPgBouncer(t)
  const pooledAdmin = bouncer.through(db.adminUrl)

  await t.rejects(migrate({ adminUrl: pooledAdmin }), PooledConnectionError, 'migrate refuses')
  const err = await migrate({ adminUrl: pooledAdmin }).then(
    () => new Error('migrate ran'),
    (e: unknown) => e as Error,
  )
  t.match(err.message, /^DATABASE_ADMIN_URL must be a direct connection to PostgreSQL .*PgBouncer/)
  t.notMatch(err.message, /\n/, 'one line')

  // runCli throws; the entry point prints describeError(err) as its one line.
  for (const command of ['status', 'migrate']) {
    const failure = await cli([command], cliEnv(db.name, bouncer.through(run.adminUrl))).then(
      (r) => `exited ${String(r.code)}: ${r.out} ${r.err}`,
      (e: unknown) => describeError(e),
    )
    t.match(failure, /^DATABASE_ADMIN_URL must be a direct connection to PostgreSQL/, `the CLI's ${command} says so in one line`)
  }

  // No false alarm: a direct connection, and PgBouncer in session mode, keep their session.
  await t.resolves(assertDirectConnection(db.adminUrl), 'direct connection passes')
  const session = await startPgBouncer(t, { poolMode: 'session' })
  await t.resolves(assertDirectConnection(session.through(db.adminUrl)), 'session pooling passes')
  t.same(await migrate({ adminUrl: db.adminUrl }), [], 'migrate on the direct URL: up to date')
})

t.test('the harness is a real transaction pooler: 20 clients share at most 5 server connections', async (t) => {
  const db = await throughBouncer(t)
  const pool = new pg.Pool({ connectionString: db.url, max: 20 })
  pool.on('error', () => undefined)
  t.teardown(() => pool.end())
  const pids = new Set<number>()
  await Promise.all(
    Array.from({ length: 100 }, async () => {
      const { rows } = await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
      pids.add(rows[0]?.pid ?? -1)
    }),
  )
  t.ok(pids.size <= 5, `20 clients shared at most 5 backends (${String(pids.size)})`)
})
