// The same contract over a real socket (fetch against app.listen), plus the
// operational endpoints a deployment relies on.
import t from 'tap'
import { build } from '../helpers/app.ts'

t.test('over HTTP: signup → verify → login → me → refresh → logout; health, metrics, docs', async (t) => {
  const h = await build(t)
  const base = await h.app.listen({ port: 0, host: '127.0.0.1' })
  const call = async (method: string, path: string, body?: object, token?: string) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        ...(body ? { 'content-type': 'application/json' } : {}),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      ...(body ? { body: JSON.stringify(body) } : {}),
    })
    const text = await res.text()
    const isJson = /json/.test(res.headers.get('content-type') ?? '')
    return { status: res.status, headers: res.headers, body: isJson ? (JSON.parse(text) as Record<string, unknown>) : {}, text }
  }

  t.equal((await call('POST', '/api/auth/signup', { email: 'sock@example.test', password: 'socket password 1' })).status, 202)
  const token = await h.tokenFor('sock@example.test', /Confirm your email/)
  t.equal((await call('POST', '/api/auth/verify-email', { token })).status, 200)
  const login = await call('POST', '/api/auth/login', { email: 'sock@example.test', password: 'socket password 1' })
  t.equal(login.status, 200)
  t.ok(login.headers.get('x-request-id'), 'x-request-id on every answer')
  const access = login.body.accessToken as string
  const me = await call('GET', '/api/auth/me', undefined, access)
  t.equal(me.status, 200)
  t.equal(me.body.email, 'sock@example.test')
  const refreshed = await call('POST', '/api/auth/refresh', { refreshToken: login.body.refreshToken })
  t.equal(refreshed.status, 200)
  t.equal((await call('POST', '/api/auth/logout', { refreshToken: refreshed.body.refreshToken })).status, 204)
  t.equal((await call('GET', '/api/auth/me', undefined, refreshed.body.accessToken as string)).status, 401)

  const health = await call('GET', '/api/health')
  t.same(health.body.status, 'ok')
  const database = await call('GET', '/api/health/database')
  t.equal(database.status, 200)
  t.equal(database.body.status, 'up')
  t.type(database.body.latencyMs, 'number')
  t.equal((database.body.pool as { max: number }).max, 20)
  t.same((await call('GET', '/api/health/ready')).body, { status: 'ready', database: 'up', pendingMigrations: [] })

  const metrics = await call('GET', '/metrics')
  t.match(metrics.text, /auth_login_total\{outcome="success"\} 1/)
  t.match(metrics.text, /http_request_duration_seconds_bucket\{[^}]*route="\/api\/auth\/login"/)
  t.match(metrics.text, /db_pool_total/)

  const docs = await call('GET', '/docs/json')
  const paths = Object.keys(docs.body.paths as object)
  for (const p of ['/api/auth/signup', '/api/auth/login', '/api/auth/refresh', '/api/auth/sessions/{id}', '/.well-known/jwks.json']) {
    t.ok(paths.includes(p), `OpenAPI documents ${p}`)
  }
  // The reset link's page: a plain form POST to /reset-password (test/pages/ drives it in Chromium).
  const page = await fetch(`${base}/reset-password?token=${'a'.repeat(43)}`)
  t.equal(page.status, 200)
  t.match(await page.text(), /<form method="post" action="\/reset-password"/)
  const script = await fetch(`${base}/assets/auth-pages.js`)
  t.match(await script.text(), /data-send-once/)
})

t.test('a login rehashes a password whose argon2 parameters are outdated', async (t) => {
  const weak = await build(t, { REQUIRE_EMAIL_VERIFICATION: 'false', ARGON2_MEMORY_KIB: '1024', ARGON2_TIME_COST: '1' })
  await weak.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email: 're@example.test', password: 'rehash me please' } })
  const stronger = await build(t, { REQUIRE_EMAIL_VERIFICATION: 'false', ARGON2_MEMORY_KIB: '2048', ARGON2_TIME_COST: '2' }, weak.db)
  const pg = await import('pg')
  const admin = new pg.default.Client({ connectionString: weak.db.adminUrl })
  await admin.connect()
  t.teardown(() => admin.end())
  const hash = async () =>
    (
      (await admin.query(`SELECT hashed_password FROM activity.users WHERE email = 're@example.test'`)).rows[0] as {
        hashed_password: string
      }
    ).hashed_password
  t.match(await hash(), /m=1024,t=1/)
  const res = await stronger.app.inject({
    method: 'POST',
    url: '/api/auth/login',
    payload: { email: 're@example.test', password: 'rehash me please' },
  })
  t.equal(res.statusCode, 200)
  t.match(await hash(), /m=2048,t=2/, 'stored with the new parameters')
  const again = await stronger.app.inject({
    method: 'POST',
    url: '/api/auth/login',
    payload: { email: 're@example.test', password: 'rehash me please' },
  })
  t.equal(again.statusCode, 200, 'the new hash verifies')
})
