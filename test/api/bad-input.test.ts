// Bad input gets a clear 4xx problem, never a 500, and writes nothing.
import t from 'tap'
import pg from 'pg'
import { build, json } from '../helpers/app.ts'

t.test('malformed, mistyped, oversized and hostile input', async (t) => {
  const h = await build(t)
  const post = (payload: string | object, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
    h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: typeof payload === 'string' ? payload : JSON.stringify(payload), headers })

  const cases: [string, Awaited<ReturnType<typeof post>>, number, string][] = [
    ['malformed JSON', await post('{"email": "a@b.c", '), 400, 'malformed_json'],
    ['wrong types', await post({ email: 42, password: ['x'] }), 400, 'validation_failed'],
    ['extra field', await post({ email: 'a@example.test', password: 'long enough pw', admin: true }), 400, 'validation_failed'],
    ['missing field', await post({ email: 'a@example.test' }), 400, 'validation_failed'],
    ['1 MB body', await post({ email: 'a@example.test', password: 'x'.repeat(1024 * 1024) }), 413, 'payload_too_large'],
    ['not JSON', await post('email=a', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'unsupported_media_type'],
    ['SQL in email', await post({ email: "x'; DROP TABLE activity.users; --@example.test", password: 'long enough pw' }), 400, 'validation_failed'],
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
  t.same(rows.map((r) => r.email), ['odd@example.test'], 'only the valid signup was written')

  const login = await h.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: 'nobody@example.test', password: 'x'.repeat(5000) } })
  t.equal(login.statusCode, 400, 'an absurd password is refused before hashing')
  const refresh = await h.app.inject({ method: 'POST', url: '/api/auth/refresh', payload: { refreshToken: "' OR 1=1 --" } })
  t.equal(refresh.statusCode, 401)
  t.equal(json(refresh).code, 'invalid_refresh_token')
  const verify = await h.app.inject({ method: 'POST', url: '/api/auth/verify-email', payload: { token: 'x'.repeat(43) } })
  t.equal(verify.statusCode, 400)
})
