// The whole contract of DESIGN.md, end to end, as a client would use it.
import t from 'tap'
import pg from 'pg'
import { bearer, build, json } from '../helpers/app.ts'

const PASSWORD = 'correct horse battery staple'

interface Pair {
  accessToken: string
  refreshToken: string
  tokenType: string
  expiresIn: number
}

async function signupAndVerify(h: Awaited<ReturnType<typeof build>>, email: string, password = PASSWORD) {
  const signup = await h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email, password } })
  if (signup.statusCode !== 202) throw new Error(`signup ${signup.statusCode} ${signup.body}`)
  const token = await h.tokenFor(email.toLowerCase(), /Confirm your email/)
  const verified = await h.app.inject({ method: 'POST', url: '/api/auth/verify-email', payload: { token } })
  if (verified.statusCode !== 200) throw new Error(`verify ${verified.statusCode} ${verified.body}`)
}

async function login(h: Awaited<ReturnType<typeof build>>, email: string, password = PASSWORD) {
  const res = await h.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email, password } })
  return { res, pair: res.statusCode === 200 ? json<Pair>(res) : undefined }
}

t.test('signup → mail → verify → login → me → refresh → reuse revokes the family → logout', async (t) => {
  const h = await build(t)
  const email = 'Alice@Example.test'
  const signup = await h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email, password: PASSWORD } })
  t.equal(signup.statusCode, 202)

  const early = await login(h, email)
  t.equal(early.res.statusCode, 403, 'unverified: correct password but not verified')
  t.equal(json(early.res).code, 'email_not_verified')

  const token = await h.tokenFor('alice@example.test', /Confirm your email/)
  const page = await h.app.inject({ method: 'GET', url: `/verify-email?token=${token}` })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /text\/html/)
  t.equal((await login(h, email)).res.statusCode, 403, 'opening the link alone verifies nothing')

  const verify = await h.app.inject({ method: 'POST', url: '/api/auth/verify-email', payload: { token } })
  t.equal(verify.statusCode, 200)
  const again = await h.app.inject({ method: 'POST', url: '/api/auth/verify-email', payload: { token } })
  t.equal(again.statusCode, 400, 'the link works once')
  t.equal(json(again).code, 'token_used')

  const { res, pair } = await login(h, email)
  t.equal(res.statusCode, 200)
  if (!pair) throw new Error('no tokens')
  t.equal(pair.tokenType, 'Bearer')
  t.equal(pair.expiresIn, 900)

  const me = await h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(pair.accessToken) })
  t.equal(me.statusCode, 200)
  const body = json<{ email: string; isVerified: boolean; lastLoginAt: string | null }>(me)
  t.equal(body.email, 'alice@example.test')
  t.equal(body.isVerified, true)
  t.ok(body.lastLoginAt)

  const refreshed = await h.app.inject({ method: 'POST', url: '/api/auth/refresh', payload: { refreshToken: pair.refreshToken } })
  t.equal(refreshed.statusCode, 200)
  const next = json<Pair>(refreshed)
  t.not(next.refreshToken, pair.refreshToken, 'rotated')

  // Grace is 10 s by default: an immediate second use is a benign race, not theft.
  const graced = await h.app.inject({ method: 'POST', url: '/api/auth/refresh', payload: { refreshToken: pair.refreshToken } })
  t.equal(graced.statusCode, 200, 'reuse inside the grace window is tolerated')
  t.equal(json<Pair>(graced).refreshToken, next.refreshToken, '...and answered with the same successor, never a second one')

  // Two generations old: reuse → the whole family is revoked.
  const third = await h.app.inject({ method: 'POST', url: '/api/auth/refresh', payload: { refreshToken: next.refreshToken } })
  t.equal(third.statusCode, 200)
  const stolen = await h.app.inject({ method: 'POST', url: '/api/auth/refresh', payload: { refreshToken: pair.refreshToken } })
  t.equal(stolen.statusCode, 401)
  t.equal(json(stolen).code, 'invalid_refresh_token')
  const newest = json<Pair>(third)
  const afterReuse = await h.app.inject({ method: 'POST', url: '/api/auth/refresh', payload: { refreshToken: newest.refreshToken } })
  t.equal(afterReuse.statusCode, 401, 'the newest token of the family is revoked too')
  const meAfter = await h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(newest.accessToken) })
  t.equal(meAfter.statusCode, 401, 'access tokens of that session stop working')

  const audit = new pg.Client({ connectionString: h.db.adminUrl })
  await audit.connect()
  t.teardown(() => audit.end())
  const reuse = await audit.query(`SELECT count(*)::int AS n FROM activity.audit_logs WHERE action = 'refresh_token_reuse'`)
  t.equal(
    (reuse.rows[0] as { n: number }).n,
    1,
    'one audit event refresh_token_reuse: the newest token, revoked by it, presented afterwards is no second reuse',
  )

  const second = await login(h, email)
  if (!second.pair) throw new Error('login failed')
  const logout = await h.app.inject({ method: 'POST', url: '/api/auth/logout', payload: { refreshToken: second.pair.refreshToken } })
  t.equal(logout.statusCode, 204)
  const afterLogout = await h.app.inject({ method: 'POST', url: '/api/auth/refresh', payload: { refreshToken: second.pair.refreshToken } })
  t.equal(afterLogout.statusCode, 401)
  const meLoggedOut = await h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(second.pair.accessToken) })
  t.equal(meLoggedOut.statusCode, 401, 'logout ends the session for access tokens too')
})

t.test('sessions: list, end one, logout-all; change-password ends the others', async (t) => {
  const h = await build(t)
  await signupAndVerify(h, 'bob@example.test')
  const a = (await login(h, 'bob@example.test')).pair
  const b = (await login(h, 'bob@example.test')).pair
  const c = (await login(h, 'bob@example.test')).pair
  if (!a || !b || !c) throw new Error('login failed')

  const list = await h.app.inject({
    method: 'GET',
    url: '/api/auth/sessions',
    headers: { ...bearer(a.accessToken), 'user-agent': 'test-agent' },
  })
  t.equal(list.statusCode, 200)
  const sessions = json<{ id: string; current: boolean }[]>(list)
  t.equal(sessions.length, 3)
  t.equal(sessions.filter((s) => s.current).length, 1)

  const other = sessions.find((s) => !s.current)
  if (!other) throw new Error('no other session')
  const end = await h.app.inject({ method: 'DELETE', url: `/api/auth/sessions/${other.id}`, headers: bearer(a.accessToken) })
  t.equal(end.statusCode, 204)
  const endAgain = await h.app.inject({ method: 'DELETE', url: `/api/auth/sessions/${other.id}`, headers: bearer(a.accessToken) })
  t.equal(endAgain.statusCode, 404)
  const badId = await h.app.inject({ method: 'DELETE', url: '/api/auth/sessions/not-a-uuid', headers: bearer(a.accessToken) })
  t.equal(badId.statusCode, 400)

  const change = await h.app.inject({
    method: 'POST',
    url: '/api/auth/change-password',
    headers: bearer(a.accessToken),
    payload: { currentPassword: PASSWORD, newPassword: 'a brand new passphrase' },
  })
  t.equal(change.statusCode, 204)
  const remaining = json<unknown[]>(await h.app.inject({ method: 'GET', url: '/api/auth/sessions', headers: bearer(a.accessToken) }))
  t.equal(remaining.length, 1, 'only the session that changed the password is left')
  for (const p of [b, c]) {
    const me = await h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(p.accessToken) })
    t.equal(me.statusCode, 401)
  }
  t.equal((await login(h, 'bob@example.test')).res.statusCode, 401, 'old password no longer works')
  t.equal((await login(h, 'bob@example.test', 'a brand new passphrase')).res.statusCode, 200)

  const wrong = await h.app.inject({
    method: 'POST',
    url: '/api/auth/change-password',
    headers: bearer(a.accessToken),
    payload: { currentPassword: 'not the password', newPassword: 'another good passphrase' },
  })
  t.equal(wrong.statusCode, 401)

  const all = await h.app.inject({ method: 'POST', url: '/api/auth/logout-all', headers: bearer(a.accessToken) })
  t.equal(all.statusCode, 204)
  const me = await h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(a.accessToken) })
  t.equal(me.statusCode, 401)
})

t.test('forgot → reset ends all sessions; delete account', async (t) => {
  const h = await build(t)
  await signupAndVerify(h, 'carol@example.test')
  const s = (await login(h, 'carol@example.test')).pair
  if (!s) throw new Error('login failed')

  const forgot = await h.app.inject({ method: 'POST', url: '/api/auth/forgot-password', payload: { email: 'carol@example.test' } })
  t.equal(forgot.statusCode, 202)
  const token = await h.tokenFor('carol@example.test', /Reset your password/)
  const weak = await h.app.inject({ method: 'POST', url: '/api/auth/reset-password', payload: { token, newPassword: 'password' } })
  t.equal(weak.statusCode, 400)
  t.equal(json(weak).code, 'password_too_common')
  const reset = await h.app.inject({
    method: 'POST',
    url: '/api/auth/reset-password',
    payload: { token, newPassword: 'reset to something long' },
  })
  t.equal(reset.statusCode, 204)
  const reused = await h.app.inject({
    method: 'POST',
    url: '/api/auth/reset-password',
    payload: { token, newPassword: 'and once more please' },
  })
  t.equal(reused.statusCode, 400)
  t.equal(
    (await h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(s.accessToken) })).statusCode,
    401,
    'reset ends every session',
  )
  t.equal((await login(h, 'carol@example.test')).res.statusCode, 401)
  const fresh = (await login(h, 'carol@example.test', 'reset to something long')).pair
  if (!fresh) throw new Error('login after reset failed')

  const wrongPw = await h.app.inject({
    method: 'DELETE',
    url: '/api/auth/me',
    headers: bearer(fresh.accessToken),
    payload: { password: 'nope nope nope' },
  })
  t.equal(wrongPw.statusCode, 401)
  const del = await h.app.inject({
    method: 'DELETE',
    url: '/api/auth/me',
    headers: bearer(fresh.accessToken),
    payload: { password: 'reset to something long' },
  })
  t.equal(del.statusCode, 204)
  t.equal((await h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(fresh.accessToken) })).statusCode, 401)
  t.equal((await login(h, 'carol@example.test', 'reset to something long')).res.statusCode, 401, 'deleted account cannot log in')
})
