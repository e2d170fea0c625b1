// The configured password policy as clients meet it on every route that sets a
// password: the minimum length, and the breached-password check against a real
// local server speaking the Have I Been Pwned range protocol.
import { createHash } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { bearer, build, json } from '../helpers/app.ts'

const BREACHED = 'correct horse battery staple'

/** A range API that lists BREACHED, or answers 503 when down. */
async function rangeApi(t: Parameters<typeof build>[0], down = false): Promise<string> {
  const digest = createHash('sha1').update(BREACHED).digest('hex').toUpperCase()
  const server = createServer((req, res) => {
    if (down) {
      res.writeHead(503).end()
      return
    }
    const prefix = req.url?.split('/').at(-1) ?? ''
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.end(prefix === digest.slice(0, 5) ? `${digest.slice(5)}:42\r\n` : `${'0'.repeat(35)}:0\r\n`)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`
}

t.test('PASSWORD_MIN_LENGTH applies to signup, change-password and reset', async (t) => {
  const h = await build(t, { PASSWORD_MIN_LENGTH: '15', REQUIRE_EMAIL_VERIFICATION: 'false' })
  const short = await h.app.inject({
    method: 'POST',
    url: '/api/auth/signup',
    payload: { email: 'len@example.test', password: 'fourteen chars' },
  })
  t.equal(short.statusCode, 400)
  t.equal(json(short).code, 'password_too_short')
  const ok = await h.app.inject({
    method: 'POST',
    url: '/api/auth/signup',
    payload: { email: 'len@example.test', password: 'fifteen chars!!' },
  })
  t.equal(ok.statusCode, 202)
  const login = await h.app.inject({
    method: 'POST',
    url: '/api/auth/login',
    payload: { email: 'len@example.test', password: 'fifteen chars!!' },
  })
  const change = await h.app.inject({
    method: 'POST',
    url: '/api/auth/change-password',
    headers: bearer(json<{ accessToken: string }>(login).accessToken),
    payload: { currentPassword: 'fifteen chars!!', newPassword: 'too short now' },
  })
  t.equal(change.statusCode, 400)
  t.equal(json(change).code, 'password_too_short')
})

t.test('a breached password is refused; the check failing closed answers 503', async (t) => {
  const h = await build(t, { PASSWORD_BREACH_CHECK: 'true', PASSWORD_BREACH_API_URL: await rangeApi(t) })
  const breached = await h.app.inject({
    method: 'POST',
    url: '/api/auth/signup',
    payload: { email: 'pwned@example.test', password: BREACHED },
  })
  t.equal(breached.statusCode, 400)
  t.equal(json(breached).code, 'password_breached')
  const clean = await h.app.inject({
    method: 'POST',
    url: '/api/auth/signup',
    payload: { email: 'pwned@example.test', password: 'a never seen passphrase' },
  })
  t.equal(clean.statusCode, 202)

  const closed = await build(t, {
    PASSWORD_BREACH_CHECK: 'true',
    PASSWORD_BREACH_FAIL_OPEN: 'false',
    PASSWORD_BREACH_API_URL: await rangeApi(t, true),
  })
  const res = await closed.app.inject({
    method: 'POST',
    url: '/api/auth/signup',
    payload: { email: 'down@example.test', password: 'a never seen passphrase' },
  })
  t.equal(res.statusCode, 503)
  t.equal(json(res).code, 'breach_check_unavailable')
  const open = await build(t, { PASSWORD_BREACH_CHECK: 'true', PASSWORD_BREACH_API_URL: await rangeApi(t, true) })
  const through = await open.app.inject({
    method: 'POST',
    url: '/api/auth/signup',
    payload: { email: 'down@example.test', password: 'a never seen passphrase' },
  })
  t.equal(through.statusCode, 202, 'fail-open lets the password through')
})
