// Expected procedure errors (a bad email token, a taken address, …) hand the
// pooled connection back for reuse instead of discarding it (issue 11, part 5):
// a discarded connection costs the next request a reconnect — a timing oracle
// that tells taken addresses from new ones — and lets anyone churn PostgreSQL
// backends with unauthenticated requests. Counted, never timed: the pool's
// 'connect' events (one per new client) and the backends of this database in
// pg_stat_activity, before and after.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import pg from 'pg'
import { consumeEmailToken, deactivateUser, getUserByEmail } from '../../src/db/procedures.ts'
import { build, json } from '../helpers/app.ts'
import { createTestDatabase, testPool } from '../helpers/db.ts'
import { dbError, hex64, newUser } from '../helpers/fixtures.ts'

/** The pool's new clients from now on: pg.Pool emits 'connect' once per client it opens. */
function connectCounter(pool: pg.Pool): { readonly count: number } {
  const counter = { count: 0 }
  pool.on('connect', () => {
    counter.count++
  })
  return counter
}

/** pids of auth_api_user's sessions on this database, seen by the superuser. */
async function backends(admin: pg.Pool, database: string): Promise<number[]> {
  const { rows } = await admin.query<{ pid: number }>(
    // The pool's connections: not the session cache's one LISTEN connection (src/db/listener.ts).
    `SELECT pid FROM pg_stat_activity
      WHERE datname = $1 AND usename = 'auth_api_user' AND application_name <> 'activity-auth-session_cache' ORDER BY pid`,
    [database],
  )
  return rows.map((r) => r.pid)
}

/** A well-formed token (32 random bytes, base64url: 43 characters) that was never issued. */
const badToken = () => randomBytes(32).toString('base64url')

t.test('100 verify-email requests with unknown tokens reuse the same connection', async (t) => {
  const h = await build(t)
  const pool = h.app.db
  const admin = testPool(t, h.db.adminUrl, 1)

  const verify = async () => {
    const res = await h.app.inject({ method: 'POST', url: '/api/auth/verify-email', payload: { token: badToken() } })
    t.equal(res.statusCode, 400, 'an unknown token is a 400, not a 5xx')
    return res
  }
  // Warm-up: the pool opens its first connection and prepares the statement on it.
  t.equal(json(await verify()).code, 'invalid_token')

  const before = await backends(admin, h.db.name)
  t.ok(before.length > 0, 'the warm-up connection is still open')
  const totalBefore = pool.totalCount
  const connects = connectCounter(pool)
  for (let i = 0; i < 100; i++) await verify()
  const after = await backends(admin, h.db.name)

  t.equal(connects.count, 0, 'no new connection was opened for 100 failed verifications')
  t.equal(pool.totalCount, totalBefore, `the pool still holds ${totalBefore} connection(s)`)
  t.same(after, before, 'the same PostgreSQL backends serve before and after')
  t.ok(after.length >= 1 && after.length <= pool.options.max, `backends within the pool size (${after.length})`)
})

t.test('concurrent bad tokens: the pool opens at most one connection per request in flight', async (t) => {
  const h = await build(t)
  const pool = h.app.db
  const admin = testPool(t, h.db.adminUrl, 1)
  const connects = connectCounter(pool)
  const inFlight = 10
  for (let round = 0; round < 10; round++) {
    const answers = await Promise.all(
      Array.from({ length: inFlight }, () =>
        h.app.inject({ method: 'POST', url: '/api/auth/verify-email', payload: { token: badToken() } }),
      ),
    )
    t.same(
      answers.map((a) => a.statusCode),
      Array(inFlight).fill(400),
      `round ${round}: all 400`,
    )
  }
  t.ok(connects.count <= inFlight, `100 requests, ${inFlight} at a time, opened ${connects.count} connection(s) (≤ ${inFlight})`)
  t.ok(pool.totalCount <= inFlight, `the pool holds ${pool.totalCount} (≤ ${inFlight})`)
  const live = await backends(admin, h.db.name)
  t.ok(live.length <= inFlight, `${live.length} backends of auth_api_user (≤ ${inFlight})`)
})

t.test('20 signups with a taken address reuse the same connection', async (t) => {
  const h = await build(t)
  const pool = h.app.db
  const admin = testPool(t, h.db.adminUrl, 1)
  const email = 'taken@example.test'
  const signup = () => h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email, password: 'a long enough password' } })

  t.equal((await signup()).statusCode, 202, 'the first signup creates the account')
  // Warm-up: the taken path once, so every statement it uses is prepared.
  t.equal((await signup()).statusCode, 202)
  await h.app.auth.drain()

  const before = await backends(admin, h.db.name)
  t.ok(before.length > 0, 'the warm-up connection is still open')
  const totalBefore = pool.totalCount
  const connects = connectCounter(pool)
  for (let i = 0; i < 20; i++) t.equal((await signup()).statusCode, 202)
  await h.app.auth.drain()
  const after = await backends(admin, h.db.name)

  t.equal(connects.count, 0, 'no new connection was opened for 20 signups with a taken address')
  t.equal(pool.totalCount, totalBefore, `the pool still holds ${totalBefore} connection(s)`)
  t.same(after, before, 'the same PostgreSQL backends serve before and after')
})

t.test('the typed wrappers on a pool: expected errors keep the client, a dead connection is dropped', async (t) => {
  // No app on this database: every auth_api_user backend of it is this pool's.
  const db = await createTestDatabase(t)
  const api = testPool(t, db.url, 2)
  const admin = testPool(t, db.adminUrl, 1)
  const connects = connectCounter(api)

  // Expected errors, each a custom SQLSTATE raised by the procedure: one client throughout.
  for (let i = 0; i < 50; i++) {
    await t.rejects(consumeEmailToken(api, { tokenHash: hex64(), purpose: 'verify_email' }), dbError('token_invalid'))
  }
  const user = await newUser(api)
  await t.rejects(newUser(api, user.email), dbError('email_taken'))
  t.equal(connects.count, 1, 'one connection for 50 bad tokens and a taken address')
  t.equal(api.totalCount, 1)

  // A PoolClient is still accepted and used as it is.
  const client = await api.connect()
  try {
    await t.rejects(consumeEmailToken(client, { tokenHash: hex64(), purpose: 'verify_email' }), dbError('token_invalid'))
    t.equal((await getUserByEmail(client, { email: user.email }))?.id, user.id)
  } finally {
    client.release()
  }

  // A connection the server ends mid-call (57P01, FATAL) is not handed back: the
  // call waits on a row lock held by the superuser while its backend is terminated.
  const pids = await backends(admin, db.name)
  t.equal(pids.length, 1)
  const [pid] = pids
  const holder = await admin.connect()
  try {
    await holder.query('BEGIN')
    await holder.query('SELECT 1 FROM activity.users WHERE id = $1 FOR UPDATE', [user.id])
    const blocked = deactivateUser(api, { userId: user.id })
    blocked.catch(() => undefined)
    for (let i = 0; ; i++) {
      const { rows } = await holder.query<{ waiting: boolean }>(
        `SELECT wait_event_type = 'Lock' AS waiting FROM pg_stat_activity WHERE pid = $1`,
        [pid],
      )
      if (rows[0]?.waiting === true) break
      if (i > 500) throw new Error('the call never waited on the lock')
      await new Promise((r) => setTimeout(r, 10))
    }
    await holder.query('SELECT pg_terminate_backend($1)', [pid])
    await t.rejects(blocked, { code: '57P01' }, 'the call fails with the termination')
  } finally {
    await holder.query('ROLLBACK')
    holder.release()
  }
  t.equal(api.totalCount, 0, 'the terminated connection left the pool')
  t.equal((await getUserByEmail(api, { email: user.email }))?.id, user.id, 'the next call works on a new connection')
  t.equal(connects.count, 2)
})
