// No user enumeration: for an address with an account and one without, signup,
// login, forgot-password and resend-verification answer byte for byte the same
// (apart from the request id).
import t from 'tap'
import { build } from '../helpers/app.ts'

const same = (body: string) => {
  const parsed = JSON.parse(body) as Record<string, unknown>
  delete parsed.requestId
  return parsed
}

t.test('existing and unknown emails get identical answers', async (t) => {
  const h = await build(t)
  const known = 'known@example.test'
  const first = await h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email: known, password: 'first password here' } })
  t.equal(first.statusCode, 202)

  const cases: [string, (email: string) => Record<string, string>][] = [
    ['/api/auth/signup', (email) => ({ email, password: 'some long password' })],
    ['/api/auth/login', (email) => ({ email, password: 'a wrong password!' })],
    ['/api/auth/forgot-password', (email) => ({ email })],
    ['/api/auth/resend-verification', (email) => ({ email })],
  ]
  for (const [url, payload] of cases) {
    const a = await h.app.inject({ method: 'POST', url, payload: payload(known) })
    const b = await h.app.inject({ method: 'POST', url, payload: payload('nobody@example.test') })
    t.equal(a.statusCode, b.statusCode, `${url}: same status`)
    t.same(same(a.body), same(b.body), `${url}: same body`)
    t.equal(a.headers['content-type'], b.headers['content-type'], `${url}: same content type`)
  }

  // The owner of the taken address is told, instead of the signer-up.
  await h.app.auth.drain()
  t.ok(
    h.mail().some((m) => m.to.includes(known) && /tried to sign up/.test(m.subject)),
    'owner notified',
  )
})

t.test('after verification, wrong password and unknown email still look the same', async (t) => {
  const h = await build(t, { REQUIRE_EMAIL_VERIFICATION: 'false' })
  await h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email: 'v@example.test', password: 'right password 1' } })
  const wrong = await h.app.inject({
    method: 'POST',
    url: '/api/auth/login',
    payload: { email: 'v@example.test', password: 'wrong password 1' },
  })
  const unknown = await h.app.inject({
    method: 'POST',
    url: '/api/auth/login',
    payload: { email: 'u@example.test', password: 'wrong password 1' },
  })
  t.equal(wrong.statusCode, 401)
  t.same(same(wrong.body), same(unknown.body))
  const ok = await h.app.inject({
    method: 'POST',
    url: '/api/auth/login',
    payload: { email: 'v@example.test', password: 'right password 1' },
  })
  t.equal(ok.statusCode, 200, 'REQUIRE_EMAIL_VERIFICATION=false lets unverified users log in')
})
