// Bad input gets a clear 4xx problem, never a 500, and writes nothing.
import t from 'tap'
import pg from 'pg'
import { build, json } from '../helpers/app.ts'

t.test('malformed, mistyped, oversized and hostile input', async (t) => {
  const h = await build(t)
  const post = (payload: string | object, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
    h.app.inject({
      method: 'POST',
      url: '/api/auth/signup',
      payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
      headers,
    })

  const cases: [string, Awaited<ReturnType<typeof post>>, number, string][] = [
    ['malformed JSON', await post('{"email": "a@b.c", '), 400, 'malformed_json'],
    ['wrong types', await post({ email: 42, password: ['x'] }), 400, 'validation_failed'],
    ['extra field', await post({ email: 'a@example.test', password: 'long enough pw', admin: true }), 400, 'validation_failed'],
    ['missing field', await post({ email: 'a@example.test' }), 400, 'validation_failed'],
    ['1 MB body', await post({ email: 'a@example.test', password: 'x'.repeat(1024 * 1024) }), 413, 'payload_too_large'],
    ['not JSON', await post('email=a', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'unsupported_media_type'],
    [
      'SQL in email',
      await post({ email: "x'; DROP TABLE activity.users; --@example.test", password: 'long enough pw' }),
      400,
      'validation_failed',
    ],
    ['overlong email', await post({ email: `${'a'.repeat(250)}@example.test`, password: 'long enough pw' }), 400, 'validation_failed'],
    ['129-character password', await post({ email: 'a@example.test', password: 'ü'.repeat(129) }), 400, 'password_too_long'],
    ['7-character password', await post({ email: 'a@example.test', password: '🔒'.repeat(7) }), 400, 'password_too_short'],
  ]
  for (const [what, res, status, code] of cases) {
    t.equal(res.statusCode, status, `${what}: ${status}`)
    t.match(res.headers['content-type'], /application\/problem\+json/, `${what}: problem+json`)
    t.equal(json(res).code, code, `${what}: code ${code}`)
    t.notMatch(res.body, /at .*\.ts:\d+|node_modules|SELECT|activity\./, `${what}: no internals`)
  }

  // Unicode and SQL metacharacters in a password are just characters.
  const odd = await post({ email: 'odd@example.test', password: "'; DROP TABLE x; -- ü🔒\u0000x" })
  t.equal(odd.statusCode, 202)

  const admin = new pg.Client({ connectionString: h.db.adminUrl })
  await admin.connect()
  t.teardown(() => admin.end())
  const { rows } = await admin.query<{ email: string }>('SELECT email FROM activity.users')
  t.same(
    rows.map((r) => r.email),
    ['odd@example.test'],
    'only the valid signup was written',
  )

  const login = await h.app.inject({
    method: 'POST',
    url: '/api/auth/login',
    payload: { email: 'nobody@example.test', password: 'x'.repeat(5000) },
  })
  t.equal(login.statusCode, 400, 'an absurd password is refused before hashing')
  const refresh = await h.app.inject({ method: 'POST', url: '/api/auth/refresh', payload: { refreshToken: "' OR 1=1 --" } })
  t.equal(refresh.statusCode, 401)
  t.equal(json(refresh).code, 'invalid_refresh_token')
  const verify = await h.app.inject({ method: 'POST', url: '/api/auth/verify-email', payload: { token: 'x'.repeat(43) } })
  t.equal(verify.statusCode, 400)
})

// Fastify's default Ajv coerces (coerceTypes: 'array'): 12345 became "12345", true
// "true", null "" and ["x"] "x", so a client's type bug reached the service as a
// plausible string (a 401 for a numeric refresh token, a 204 logout, a signup from an
// array). Every one is a 400 now, before any handler, token check or database call.
t.test('numbers, booleans, arrays and null for string fields are 400, never coerced', async (t) => {
  const h = await build(t)
  const send = (method: 'POST' | 'DELETE', url: string, payload: object) =>
    h.app.inject({ method, url, payload: JSON.stringify(payload), headers: { 'content-type': 'application/json' } })
  const token = 'x'.repeat(43)
  const cases: [string, 'POST' | 'DELETE', string, object][] = [
    ['refresh: number', 'POST', '/api/auth/refresh', { refreshToken: 12345 }],
    ['refresh: array of one string', 'POST', '/api/auth/refresh', { refreshToken: [token] }],
    ['logout: number', 'POST', '/api/auth/logout', { refreshToken: 12345 }],
    ['logout: boolean', 'POST', '/api/auth/logout', { refreshToken: true }],
    ['logout: null', 'POST', '/api/auth/logout', { refreshToken: null }],
    ['signup: email as an array of one address', 'POST', '/api/auth/signup', { email: ['arr@example.test'], password: 'long enough pw' }],
    ['signup: password as a number', 'POST', '/api/auth/signup', { email: 'num@example.test', password: 123456789 }],
    ['login: password as a boolean', 'POST', '/api/auth/login', { email: 'a@example.test', password: true }],
    ['login: deviceToken as a number', 'POST', '/api/auth/login', { email: 'a@example.test', password: 'long enough pw', deviceToken: 42 }],
    ['verify-email: token as an array', 'POST', '/api/auth/verify-email', { token: [token] }],
    ['resend-verification: email as null', 'POST', '/api/auth/resend-verification', { email: null }],
    ['forgot-password: email as a number', 'POST', '/api/auth/forgot-password', { email: 42 }],
    ['reset-password: newPassword as a number', 'POST', '/api/auth/reset-password', { token, newPassword: 12345678 }],
    // Validation comes before the Bearer check: no token needed to be told the body is wrong.
    ['delete me: password as a number', 'DELETE', '/api/auth/me', { password: 12345678 }],
    [
      'change-password: currentPassword as null',
      'POST',
      '/api/auth/change-password',
      { currentPassword: null, newPassword: 'long enough pw' },
    ],
  ]
  for (const [what, method, url, payload] of cases) {
    const res = await send(method, url, payload)
    t.equal(res.statusCode, 400, `${what}: 400`)
    t.equal(json(res).code, 'validation_failed', `${what}: validation_failed`)
    t.match(json(res).detail, /must be string/, `${what}: says which type`)
  }

  // Nothing of the above reached the database.
  const admin = new pg.Client({ connectionString: h.db.adminUrl })
  await admin.connect()
  t.teardown(() => admin.end())
  const { rows } = await admin.query<{ n: string }>('SELECT count(*) AS n FROM activity.users')
  t.equal(rows[0]?.n, '0', 'no account was created')

  // Path parameters are strings anyway and still validate without coercion.
  const badId = await h.app.inject({ method: 'DELETE', url: '/api/auth/sessions/not-a-uuid' })
  t.equal(badId.statusCode, 400, 'a malformed session id is a 400')
  t.equal(json(badId).code, 'validation_failed')
  const goodId = await h.app.inject({ method: 'DELETE', url: '/api/auth/sessions/6f1c2a4e-8b3d-4c5e-9f60-1a2b3c4d5e6f' })
  t.equal(goodId.statusCode, 401, 'a well-formed id passes validation and reaches the Bearer check')
})
