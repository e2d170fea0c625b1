// Mail as an attacker would use it (issue 11, part 7): links must not outlive a
// password change, one inbox cannot be flooded from any number of instances, and
// the owner hears of every password change.
import t from 'tap'
import { bearer, build, json, type TestApp } from '../helpers/app.ts'
import { createTestDatabase } from '../helpers/db.ts'

const PASSWORD = 'the owners passphrase'
const NEW_PASSWORD = 'a different passphrase'

async function verifiedUser(h: TestApp, email: string): Promise<void> {
  await h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email, password: PASSWORD } })
  const token = await h.tokenFor(email, /Confirm your email/)
  const res = await h.app.inject({ method: 'POST', url: '/api/auth/verify-email', payload: { token } })
  if (res.statusCode !== 200) throw new Error(`verify ${String(res.statusCode)}`)
}

async function accessToken(h: TestApp, email: string, password = PASSWORD): Promise<string> {
  const res = await h.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email, password } })
  return json<{ accessToken: string }>(res).accessToken
}

const forgot = (h: TestApp, email: string) => h.app.inject({ method: 'POST', url: '/api/auth/forgot-password', payload: { email } })

async function settle(h: TestApp): Promise<void> {
  await h.app.auth.drain()
}

t.test('a reset link mailed before change-password is dead after it; the owner gets a notice', async (t) => {
  const h = await build(t)
  const email = 'links@example.test'
  await verifiedUser(h, email)
  t.equal((await forgot(h, email)).statusCode, 202)
  const resetToken = await h.tokenFor(email, /reset/i)

  const change = await h.app.inject({
    method: 'POST',
    url: '/api/auth/change-password',
    headers: bearer(await accessToken(h, email)),
    payload: { currentPassword: PASSWORD, newPassword: NEW_PASSWORD },
  })
  t.equal(change.statusCode, 204)
  const reset = await h.app.inject({
    method: 'POST',
    url: '/api/auth/reset-password',
    payload: { token: resetToken, newPassword: 'attackers passphrase' },
  })
  t.equal(reset.statusCode, 400, 'the old link no longer works')
  t.equal(json(reset).code, 'token_used')
  await settle(h)
  t.equal(h.mail().filter((m) => m.to.includes(email) && /password was changed/.test(m.subject)).length, 1, 'notice mail')
})

t.test('a reset burns every other outstanding link, of either purpose; the owner gets a notice', async (t) => {
  const h = await build(t)
  const email = 'reset@example.test'
  await h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email, password: PASSWORD } })
  const verifyToken = await h.tokenFor(email, /Confirm your email/)
  await forgot(h, email)
  const resetToken = await h.tokenFor(email, /reset/i)
  const reset = await h.app.inject({
    method: 'POST',
    url: '/api/auth/reset-password',
    payload: { token: resetToken, newPassword: NEW_PASSWORD },
  })
  t.equal(reset.statusCode, 204)
  const verify = await h.app.inject({ method: 'POST', url: '/api/auth/verify-email', payload: { token: verifyToken } })
  t.equal(verify.statusCode, 400, 'the verification link died with the old password')
  await settle(h)
  t.equal(h.mail().filter((m) => m.to.includes(email) && /password was changed/.test(m.subject)).length, 1, 'notice mail')
})

t.test('deactivation burns outstanding links', async (t) => {
  const h = await build(t)
  const email = 'gone@example.test'
  await verifiedUser(h, email)
  await forgot(h, email)
  const resetToken = await h.tokenFor(email, /reset/i)
  const del = await h.app.inject({
    method: 'DELETE',
    url: '/api/auth/me',
    headers: bearer(await accessToken(h, email)),
    payload: { password: PASSWORD },
  })
  t.equal(del.statusCode, 204)
  const reset = await h.app.inject({
    method: 'POST',
    url: '/api/auth/reset-password',
    payload: { token: resetToken, newPassword: NEW_PASSWORD },
  })
  t.equal(reset.statusCode, 400)
})

t.test('one inbox gets at most MAIL_BUDGET_MAX mails of a kind, whichever instance is asked', async (t) => {
  const env = { MAIL_BUDGET_MAX: '3' }
  const db = await createTestDatabase(t)
  const a = await build(t, env, db)
  const b = await build(t, env, db)
  const email = 'flood@example.test'
  await verifiedUser(a, email)

  const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => forgot(i % 2 === 0 ? a : b, email)))
  t.ok(
    answers.every((r) => r.statusCode === 202),
    'every request gets the same answer',
  )
  const signups = await Promise.all(
    Array.from({ length: 9 }, (_, i) =>
      (i % 2 === 0 ? a : b).app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email, password: 'someone elses pass' } }),
    ),
  )
  t.ok(signups.every((r) => r.statusCode === 202))
  await settle(a)
  await settle(b)
  const inbox = [...a.mail(), ...b.mail()].filter((m) => m.to.includes(email))
  t.equal(inbox.filter((m) => /reset/i.test(m.subject)).length, 3, 'three reset mails of ten asked for')
  t.equal(inbox.filter((m) => /tried to sign up/.test(m.subject)).length, 3, 'three notices of nine signups')

  const metrics =
    (await a.app.inject({ method: 'GET', url: '/metrics' })).body + (await b.app.inject({ method: 'GET', url: '/metrics' })).body
  const suppressed = [...metrics.matchAll(/^auth_mail_suppressed_total\{kind="(\w+)"\} (\d+)$/gm)]
  const total = (kind: string) => suppressed.filter((m) => m[1] === kind).reduce((n, m) => n + Number(m[2]), 0)
  t.equal(total('reset_password'), 7, 'seven reset mails counted as suppressed')
  t.equal(total('account_exists'), 6, 'six notices counted as suppressed')

  // Another address has its own budget.
  await forgot(a, 'someone-else@example.test')
  t.equal((await forgot(a, email)).statusCode, 202, 'still the same answer over budget')
})

t.test('resend-verification: one budget per address, no mail for verified or unknown ones', async (t) => {
  const h = await build(t, { MAIL_BUDGET_MAX: '2' })
  const email = 'slow@example.test'
  await h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email, password: PASSWORD } })
  for (let i = 0; i < 4; i++) {
    t.equal((await h.app.inject({ method: 'POST', url: '/api/auth/resend-verification', payload: { email } })).statusCode, 202)
  }
  t.equal(
    (await h.app.inject({ method: 'POST', url: '/api/auth/resend-verification', payload: { email: 'nobody@example.test' } })).statusCode,
    202,
  )
  await settle(h)
  const confirmations = h.mail().filter((m) => /Confirm your email/.test(m.subject))
  t.equal(confirmations.filter((m) => m.to.includes(email)).length, 2, 'the signup mail and one resend: the budget is two')
  t.equal(confirmations.filter((m) => m.to.includes('nobody@example.test')).length, 0)
})
