// Login by username or email (issue 17): `identifier` next to `email`, with the
// guarantees of email logins: an unknown username fails exactly like a wrong
// password, and locks exactly like one; the account has one lockout counter
// whichever of its names is typed.
import t from 'tap'
import { build, json, type TestApp } from '../helpers/app.ts'
import { login, PASSWORD, problem, signedIn } from './helpers.ts'

const attempt = (h: TestApp, payload: Record<string, string>) => h.app.inject({ method: 'POST', url: '/api/auth/login', payload })

async function named(h: TestApp, email: string, username: string): Promise<void> {
  const { headers } = await signedIn(h, email)
  const res = await h.app.inject({ method: 'PATCH', url: '/api/auth/me', headers, payload: { username } })
  if (res.statusCode !== 200) throw new Error(`PATCH ${String(res.statusCode)}`)
}

t.test('identifier takes a username (any letter case) or an address; email still works', async (t) => {
  const h = await build(t)
  await named(h, 'ident@example.test', 'Ident_User')
  t.ok((await login(h, { identifier: 'ident_user', password: PASSWORD })).accessToken, 'username')
  t.ok((await login(h, { identifier: 'IDENT_USER', password: PASSWORD })).accessToken, 'username, other case')
  t.ok((await login(h, { identifier: 'Ident@Example.test', password: PASSWORD })).accessToken, 'address as identifier')
  t.ok((await login(h, { email: 'ident@example.test', password: PASSWORD })).accessToken, 'email, as before')

  const both = await attempt(h, { email: 'ident@example.test', identifier: 'ident_user', password: PASSWORD })
  t.equal(both.statusCode, 400)
  t.equal(json(both).code, 'validation_failed', 'not both')
  const neither = await attempt(h, { password: PASSWORD })
  t.equal(neither.statusCode, 400, 'not neither')
})

t.test('an unknown username and a wrong password answer the same, also once locked', async (t) => {
  const h = await build(t, { LOCKOUT_THRESHOLD: '3' })
  await named(h, 'parity@example.test', 'parity_user')

  const wrong = await attempt(h, { identifier: 'parity_user', password: 'not the password' })
  const unknown = await attempt(h, { identifier: 'nobody_here', password: 'not the password' })
  t.equal(wrong.statusCode, 401)
  t.equal(unknown.statusCode, wrong.statusCode, 'same status')
  t.same(problem(unknown.body), problem(wrong.body), 'same body')
  t.equal(json(wrong).code, 'invalid_credentials')

  for (let i = 0; i < 2; i++) {
    await attempt(h, { identifier: 'parity_user', password: 'not the password' })
    await attempt(h, { identifier: 'nobody_here', password: 'not the password' })
  }
  const lockedReal = await attempt(h, { identifier: 'parity_user', password: PASSWORD })
  const lockedGhost = await attempt(h, { identifier: 'nobody_here', password: PASSWORD })
  t.equal(lockedReal.statusCode, 429, 'the account is locked, even for the right password')
  t.equal(lockedGhost.statusCode, 429, 'an unknown username locks after as many guesses')
  t.same(problem(lockedGhost.body), problem(lockedReal.body), 'same locked answer')
  t.equal(lockedGhost.headers['retry-after'] !== undefined, lockedReal.headers['retry-after'] !== undefined)
})

t.test('the username and the address count against one lockout', async (t) => {
  const h = await build(t, { LOCKOUT_THRESHOLD: '2' })
  await named(h, 'shared@example.test', 'shared_user')
  await attempt(h, { identifier: 'shared_user', password: 'wrong one' })
  await attempt(h, { email: 'shared@example.test', password: 'wrong two' })
  const byEmail = await attempt(h, { email: 'shared@example.test', password: PASSWORD })
  const byName = await attempt(h, { identifier: 'Shared_User', password: PASSWORD })
  t.equal(byEmail.statusCode, 429, 'two guesses through two names reach the threshold of two')
  t.equal(byName.statusCode, 429)
})
