// POST /api/auth/change-email and /confirm-email-change (issue 17), with the mail
// captured by the test SMTP server: a link to the new address, a notice to the old
// one, nothing changed before the link comes back, every session ended after; a
// taken address answers the same and its owner gets a notice instead of a link.
import t from 'tap'
import { bearer, build, json, type TestApp } from '../helpers/app.ts'
import { PASSWORD, problem, signedIn, verifiedUser } from './helpers.ts'

const changeEmail = (h: TestApp, headers: Record<string, string>, payload: Record<string, string>) =>
  h.app.inject({ method: 'POST', url: '/api/auth/change-email', headers, payload })

async function settle(h: TestApp): Promise<void> {
  await h.app.auth.drain()
  await h.app.profile.drain()
}

const mailsTo = (h: TestApp, to: string) => h.mail().filter((m) => m.to.includes(to))

t.test('the round trip: link to the new address, notice to the old, the change only on confirmation', async (t) => {
  const h = await build(t)
  const { headers, session } = await signedIn(h, 'old@example.test')

  const asked = await changeEmail(h, headers, { password: PASSWORD, newEmail: 'New@Example.test' })
  t.equal(asked.statusCode, 202)
  const token = await h.tokenFor('new@example.test', /Confirm your new email/)
  await settle(h)
  t.match(
    mailsTo(h, 'old@example.test').at(-1),
    { subject: /change of your email address/, text: /new@example\.test/ },
    'the old address is told',
  )
  t.notOk(mailsTo(h, 'old@example.test').at(-1)?.text.includes(token), 'the notice carries no link')

  const before = json(await h.app.inject({ method: 'GET', url: '/api/auth/me', headers }))
  t.equal(before.email, 'old@example.test', 'nothing changes before confirmation')
  const stillOld = await h.app.inject({
    method: 'POST',
    url: '/api/auth/login',
    payload: { email: 'old@example.test', password: PASSWORD },
  })
  t.equal(stillOld.statusCode, 200, 'the old address still signs in before confirmation')

  const confirmed = await h.app.inject({ method: 'POST', url: '/api/auth/confirm-email-change', payload: { token } })
  t.equal(confirmed.statusCode, 200)
  t.same(json(confirmed), { email: 'new@example.test', sessionsEnded: 2 })

  t.equal((await h.app.inject({ method: 'GET', url: '/api/auth/me', headers })).statusCode, 401, 'the session has ended')
  const refresh = await h.app.inject({ method: 'POST', url: '/api/auth/refresh', payload: { refreshToken: session.refreshToken } })
  t.equal(refresh.statusCode, 401, 'its refresh token too')
  const old = await h.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: 'old@example.test', password: PASSWORD } })
  t.equal(old.statusCode, 401, 'the old address no longer signs in')
  const now = await h.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: 'new@example.test', password: PASSWORD } })
  t.equal(now.statusCode, 200, 'the new one does')
  t.match(
    json(await h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(json<{ accessToken: string }>(now).accessToken) })),
    {
      email: 'new@example.test',
      isVerified: true,
    },
  )

  const again = await h.app.inject({ method: 'POST', url: '/api/auth/confirm-email-change', payload: { token } })
  t.equal(again.statusCode, 400)
  t.equal(json(again).code, 'token_used', 'the link works once')
  const garbage = await h.app.inject({ method: 'POST', url: '/api/auth/confirm-email-change', payload: { token: 'x'.repeat(43) } })
  t.equal(json(garbage).code, 'invalid_token')
})

t.test('a taken address answers the same, and its owner gets a notice instead of a link', async (t) => {
  const h = await build(t)
  await verifiedUser(h, 'holder@example.test')
  const { headers } = await signedIn(h, 'mover@example.test')

  const taken = await changeEmail(h, headers, { password: PASSWORD, newEmail: 'holder@example.test' })
  const free = await changeEmail(h, headers, { password: PASSWORD, newEmail: 'free@example.test' })
  t.equal(taken.statusCode, 202)
  t.equal(taken.statusCode, free.statusCode, 'same status')
  t.same(problem(taken.body), problem(free.body), 'same body')
  await settle(h)

  const toHolder = mailsTo(h, 'holder@example.test').filter((m) => !/Confirm your email/.test(m.subject))
  t.equal(toHolder.length, 1, 'one mail to the taken address')
  t.match(toHolder[0], { subject: /tried to use your email address/ })
  t.notOk(toHolder[0]?.text.includes('token='), 'a notice, not a link')
  t.equal(mailsTo(h, 'free@example.test').length, 1, 'one mail to the free address')
  t.equal(mailsTo(h, 'mover@example.test').filter((m) => /change of your email/.test(m.subject)).length, 2, 'the old address hears of both')

  const me = json(await h.app.inject({ method: 'GET', url: '/api/auth/me', headers }))
  t.equal(me.email, 'mover@example.test')
})

t.test('the password is a re-authentication: a wrong one is 401 and counts toward the lockout', async (t) => {
  const h = await build(t, { LOCKOUT_THRESHOLD: '2' })
  const { headers } = await signedIn(h, 'guarded@example.test')
  const wrong = await changeEmail(h, headers, { password: 'not the password', newEmail: 'elsewhere@example.test' })
  t.equal(wrong.statusCode, 401)
  t.equal(json(wrong).code, 'invalid_credentials')
  await changeEmail(h, headers, { password: 'not the password', newEmail: 'elsewhere@example.test' })
  const locked = await changeEmail(h, headers, { password: PASSWORD, newEmail: 'elsewhere@example.test' })
  t.equal(locked.statusCode, 429, 'locked: even the right password waits')
  await settle(h)
  t.equal(mailsTo(h, 'elsewhere@example.test').length, 0, 'nothing mailed')

  const bad = await changeEmail(h, headers, { password: PASSWORD, newEmail: 'not-an-address' })
  t.equal(bad.statusCode, 400)
})

t.test('the mailed link opens a page whose button confirms; opening it changes nothing', async (t) => {
  const h = await build(t)
  const { headers } = await signedIn(h, 'paged@example.test')
  await changeEmail(h, headers, { password: PASSWORD, newEmail: 'paged-new@example.test' })
  await settle(h)
  const mail = mailsTo(h, 'paged-new@example.test').at(-1)
  const link = mail?.text.split('\n').find((line) => line.startsWith('http://app.test/confirm-email-change?token='))
  t.ok(link, 'the mail links to the page')
  const token = new URL(link ?? 'http://x/').searchParams.get('token') ?? ''

  const opened = await h.app.inject({ method: 'GET', url: `/confirm-email-change?token=${token}` })
  t.equal(opened.statusCode, 200)
  t.match(opened.headers['content-type'], /text\/html/)
  t.match(opened.body, /Confirm my new email address/)
  t.equal(json(await h.app.inject({ method: 'GET', url: '/api/auth/me', headers })).email, 'paged@example.test', 'opening changes nothing')

  const form = (value: string) =>
    h.app.inject({
      method: 'POST',
      url: '/confirm-email-change',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `token=${value}`,
    })
  const done = await form(token)
  t.equal(done.statusCode, 200)
  t.match(done.body, /data-outcome="success"/)
  t.match(done.body, /Email address changed/)
  const again = await form(token)
  t.equal(again.statusCode, 400)
  t.match(again.body, /already used/)
  t.equal((await h.app.inject({ method: 'GET', url: '/confirm-email-change' })).statusCode, 400, 'no token: an incomplete link')
})

t.test('an address taken after the link was sent refuses the confirmation with 409', async (t) => {
  const h = await build(t)
  const { headers } = await signedIn(h, 'slow@example.test')
  await changeEmail(h, headers, { password: PASSWORD, newEmail: 'contested@example.test' })
  const token = await h.tokenFor('contested@example.test', /Confirm your new email/)
  await verifiedUser(h, 'contested@example.test')
  const res = await h.app.inject({ method: 'POST', url: '/api/auth/confirm-email-change', payload: { token } })
  t.equal(res.statusCode, 409)
  t.equal(json(res).code, 'email_taken')
  t.equal(
    json(await h.app.inject({ method: 'GET', url: '/api/auth/me', headers })).email,
    'slow@example.test',
    'the account keeps its address',
  )
})
