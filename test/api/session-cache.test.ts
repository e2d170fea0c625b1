// The session cache in the running service (docs/security.md, "Session cache"): the
// instance that revokes never accepts the revoked session again, not even once; another
// instance drops it when the change is announced (NOTIFY, long before the TTL); and
// without its LISTEN connection an instance caches nothing.
import t from 'tap'
import pg from 'pg'
import { bearer, build, json, type TestApp } from '../helpers/app.ts'
import { createTestDatabase } from '../helpers/db.ts'

const PASSWORD = 'correct horse battery staple'
const LONG_TTL = { SESSION_CACHE_TTL_MS: '60000', REQUIRE_EMAIL_VERIFICATION: 'false' }

async function session(h: TestApp, email: string): Promise<{ accessToken: string; refreshToken: string }> {
  await h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email, password: PASSWORD } })
  const res = await h.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email, password: PASSWORD } })
  return json(res)
}

const me = (h: TestApp, token: string) => h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(token) })

async function until(check: () => boolean | Promise<boolean>): Promise<boolean> {
  for (const deadline = Date.now() + 5000; Date.now() < deadline;) {
    if (await check()) return true
    await new Promise((r) => setTimeout(r, 5))
  }
  return false
}

t.test('the revoking instance refuses at once, every way a session can end', async (t) => {
  const h = await build(t, LONG_TTL)
  t.ok(await until(() => h.app.sessionCache.active), 'the cache is on once LISTEN is up')
  const ends: [string, (s: { accessToken: string; refreshToken: string }) => Promise<unknown>][] = [
    ['logout', (s) => h.app.inject({ method: 'POST', url: '/api/auth/logout', payload: { refreshToken: s.refreshToken } })],
    ['logout-all', (s) => h.app.inject({ method: 'POST', url: '/api/auth/logout-all', headers: bearer(s.accessToken) })],
    [
      'delete account',
      (s) => h.app.inject({ method: 'DELETE', url: '/api/auth/me', headers: bearer(s.accessToken), payload: { password: PASSWORD } }),
    ],
  ]
  for (const [i, [how, end]] of ends.entries()) {
    const s = await session(h, `end-${String(i)}@example.test`)
    t.equal((await me(h, s.accessToken)).statusCode, 200, `${how}: served (and now cached)`)
    t.equal((await me(h, s.accessToken)).statusCode, 200)
    await end(s)
    t.equal((await me(h, s.accessToken)).statusCode, 401, `${how}: refused by the next request, not one later`)
  }
  // A password change ends the other sessions.
  const kept = await session(h, 'change@example.test')
  const other = json<{ accessToken: string }>(
    await h.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: 'change@example.test', password: PASSWORD } }),
  )
  t.equal((await me(h, other.accessToken)).statusCode, 200)
  const changed = await h.app.inject({
    method: 'POST',
    url: '/api/auth/change-password',
    headers: bearer(kept.accessToken),
    payload: { currentPassword: PASSWORD, newPassword: 'another long passphrase' },
  })
  t.equal(changed.statusCode, 204)
  t.equal((await me(h, other.accessToken)).statusCode, 401, 'change-password: the other session is refused at once')
  t.equal((await me(h, kept.accessToken)).statusCode, 200, 'the session that changed it stays')
})

t.test('a change made outside this instance (another instance, a procedure call) drops the entry on NOTIFY', async (t) => {
  const db = await createTestDatabase(t)
  const h = await build(t, LONG_TTL, db)
  t.ok(await until(() => h.app.sessionCache.active))
  const s = await session(h, 'elsewhere@example.test')
  const account = json<{ id: string; email: string }>(await me(h, s.accessToken))
  // Revoke-all straight through the procedure, as another instance would.
  const api = new pg.Client({ connectionString: db.url })
  await api.connect()
  t.teardown(() => api.end())
  await api.query(`SELECT activity.sp_revoke_user_sessions($1::uuid, NULL::uuid, 'logout_all', '{}'::jsonb)`, [account.id])
  t.ok(await until(async () => (await me(h, s.accessToken)).statusCode === 401), 'refused long before the 60 s TTL')
})

t.test('without its LISTEN connection an instance caches nothing, and caches again once it is back', async (t) => {
  const db = await createTestDatabase(t)
  const h = await build(t, LONG_TTL, db)
  t.ok(await until(() => h.app.sessionCache.active))
  const s = await session(h, 'outage@example.test')
  await me(h, s.accessToken)
  const admin = new pg.Client({ connectionString: db.adminUrl })
  await admin.connect()
  t.teardown(() => admin.end())
  // Cut the cache's LISTEN connection: from now on a change may not be announced to it.
  await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'activity-auth-session_cache'`)
  t.ok(await until(() => !h.app.sessionCache.active), 'the loss turns the cache off')
  t.equal(h.app.sessionCache.size, 0, 'and empties it')
  t.ok(await until(() => h.app.sessionCache.active), 'reconnected, it caches again')
})
