// Two-factor sign-in end to end through the real app (mail to a real SMTP sink): enrol
// with the QR code, confirm, the login's challenge and its second step, the amr claim
// (verified with jose), replay, lockout, recovery codes, the challenge's lifetime, and
// turning it off. Codes come from the independent TOTP of test/helpers/totp.ts.
import t from 'tap'
import { bearer, build, json } from '../helpers/app.ts'
import { base32Decode, hotp, stepAt } from '../helpers/totp.ts'
import {
  adminPool,
  auditActions,
  decodeQr,
  enrolledAccount,
  eventTypes,
  freshCode,
  login,
  mailTo,
  PASSWORD,
  rewindSteps,
  signupVerified,
  verifiedClaims,
  verify,
  type Tokens,
} from './harness.ts'

t.test('enrol (the QR code scans) → confirm → login challenge → verify: a session whose tokens say pwd+otp', async (t) => {
  const h = await build(t)
  const admin = adminPool(t, h)
  const email = 'ada@example.com'
  await signupVerified(h, email)
  const first = json<Tokens>(await login(h, email))
  t.same((await verifiedClaims(h, first.accessToken)).amr, ['pwd'], 'a password login says pwd')
  const me = json<{ id: string; mfaEnabled: boolean }>(
    await h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(first.accessToken) }),
  )
  t.equal(me.mfaEnabled, false)

  const enrolment = await h.app.inject({ method: 'POST', url: '/api/auth/mfa/totp', headers: bearer(first.accessToken) })
  t.equal(enrolment.statusCode, 200)
  t.equal(enrolment.headers['cache-control'], 'no-store')
  const { secret, otpauthUri, qrCode } = json<{ secret: string; otpauthUri: string; qrCode: string }>(enrolment)
  t.match(qrCode, /^data:image\/png;base64,/)
  t.equal(decodeQr(qrCode), otpauthUri, 'the QR code holds the otpauth URI')
  const uri = new URL(otpauthUri)
  t.equal(uri.searchParams.get('secret'), secret)
  t.equal(uri.searchParams.get('issuer'), 'Activity', 'issuer: APP_NAME')
  t.match(decodeURIComponent(uri.pathname), /^\/Activity:ada@example\.com$/)
  t.notOk(json<{ mfaRequired?: boolean }>(await login(h, email)).mfaRequired, 'not active before confirmation')

  const wrong = await h.app.inject({
    method: 'POST',
    url: '/api/auth/mfa/totp/confirm',
    headers: bearer(first.accessToken),
    payload: { code: hotp(base32Decode(secret), stepAt() + 5) },
  })
  t.equal(wrong.statusCode, 400)
  t.equal(json(wrong).code, 'invalid_mfa_code')
  const confirmed = await h.app.inject({
    method: 'POST',
    url: '/api/auth/mfa/totp/confirm',
    headers: bearer(first.accessToken),
    payload: { code: await freshCode(admin, me.id, secret) },
  })
  t.equal(confirmed.statusCode, 200)
  const { recoveryCodes } = json<{ recoveryCodes: string[] }>(confirmed)
  t.equal(recoveryCodes.length, 10)
  const stored = await admin.query<{ secret_ciphertext: string }>('SELECT secret_ciphertext FROM activity.mfa_totp WHERE user_id = $1', [
    me.id,
  ])
  t.match(stored.rows[0]?.secret_ciphertext, /^v1:/, 'stored sealed')
  t.notOk(stored.rows[0]?.secret_ciphertext.includes(secret), 'never the secret itself')
  const again = await h.app.inject({ method: 'POST', url: '/api/auth/mfa/totp', headers: bearer(first.accessToken) })
  t.equal(again.statusCode, 409)
  t.equal(json(again).code, 'mfa_already_enabled')
  t.equal(
    json<{ mfaEnabled: boolean }>(await h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(first.accessToken) }))
      .mfaEnabled,
    true,
  )

  const challenged = await login(h, email, PASSWORD, { deviceToken: first.deviceToken ?? '' })
  t.equal(challenged.statusCode, 200)
  const challenge = json<{ mfaRequired: boolean; mfaToken: string; accessToken?: string }>(challenged)
  t.same(Object.keys(challenge).sort(), ['mfaRequired', 'mfaToken'], 'no tokens, no device token before the second factor')
  t.equal(challenge.mfaRequired, true)
  const wrongPassword = await login(h, email, 'not the password')
  t.equal(wrongPassword.statusCode, 401, 'a wrong password is still a plain 401: no challenge')

  const verified = await verify(h, {
    mfaToken: challenge.mfaToken,
    code: await freshCode(admin, me.id, secret),
    deviceToken: first.deviceToken ?? '',
  })
  t.equal(verified.statusCode, 200)
  const session = json<Tokens>(verified)
  t.equal(session.deviceToken, first.deviceToken, 'the trusted device keeps its token')
  const claims = await verifiedClaims(h, session.accessToken)
  t.same(claims.amr, ['pwd', 'otp'], 'amr verified with jose against the JWKS')
  const refreshed = await h.app.inject({ method: 'POST', url: '/api/auth/refresh', payload: { refreshToken: session.refreshToken } })
  t.equal(refreshed.statusCode, 200)
  const rotated = await verifiedClaims(h, json<Tokens>(refreshed).accessToken)
  t.same(rotated.amr, ['pwd', 'otp'], 'a refreshed access token keeps the session’s amr')
  t.equal(rotated.sid, claims.sid)
  t.equal(
    (await verify(h, { mfaToken: challenge.mfaToken, code: await freshCode(admin, me.id, secret) })).statusCode,
    401,
    'the mfaToken works once',
  )

  const events = await eventTypes(admin, me.id)
  t.ok(events.includes('mfa.enabled'), 'mfa.enabled written')
  t.ok((await auditActions(admin, me.id)).includes('mfa_challenged'))
})

t.test('a code is accepted once: the same code again within its window is refused', async (t) => {
  const h = await build(t)
  const admin = adminPool(t, h)
  const user = await enrolledAccount(h, admin, 'replay@example.com')
  const code = await freshCode(admin, user.userId, user.secret)
  const one = json<{ mfaToken: string }>(await login(h, user.email))
  t.equal((await verify(h, { mfaToken: one.mfaToken, code })).statusCode, 200)
  const two = json<{ mfaToken: string }>(await login(h, user.email))
  const replayed = await verify(h, { mfaToken: two.mfaToken, code })
  t.equal(replayed.statusCode, 401)
  t.equal(json(replayed).code, 'invalid_mfa_code', 'replay refused')
  const older = hotp(base32Decode(user.secret), stepAt() - 1)
  if (older !== code) t.equal((await verify(h, { mfaToken: two.mfaToken, code: older })).statusCode, 401, 'an older step too')
  t.equal(
    (await verify(h, { mfaToken: two.mfaToken, code: await freshCode(admin, user.userId, user.secret) })).statusCode,
    200,
    'a newer code passes',
  )
})

t.test('wrong codes count toward the lockout like wrong passwords, with their own audit action and event', async (t) => {
  const h = await build(t, { LOCKOUT_THRESHOLD: '3', LOCKOUT_BASE_SECONDS: '60' })
  const admin = adminPool(t, h)
  const user = await enrolledAccount(h, admin, 'guessed@example.com')
  const { mfaToken } = json<{ mfaToken: string }>(await login(h, user.email))
  const right = await freshCode(admin, user.userId, user.secret)
  const wrongCode = right === '000000' ? '111111' : '000000'
  for (let i = 0; i < 3; i++) {
    const res = await verify(h, { mfaToken, code: wrongCode })
    t.equal(res.statusCode, 401, `wrong code ${String(i + 1)}`)
    t.equal(json(res).code, 'invalid_mfa_code')
  }
  const locked = await verify(h, { mfaToken, code: right })
  t.equal(locked.statusCode, 429, 'even the right code waits out the lock')
  t.ok(Number(locked.headers['retry-after']) > 0)
  t.equal((await login(h, user.email)).statusCode, 429, 'and so does the password: one counter')
  const actions = await auditActions(admin, user.userId)
  t.equal(actions.filter((a) => a === 'mfa_failed').length, 3)
  t.ok(actions.includes('account_locked'))
  const events = await eventTypes(admin, user.userId)
  t.equal(events.filter((e) => e === 'mfa.failed').length, 3, 'mfa.failed written')
  t.ok(events.includes('account.locked'))
})

t.test('a recovery code works once, in any letter case; the owner is mailed', async (t) => {
  const h = await build(t)
  const admin = adminPool(t, h)
  const user = await enrolledAccount(h, admin, 'recover@example.com')
  const [code = ''] = user.recoveryCodes
  const first = json<{ mfaToken: string }>(await login(h, user.email))
  const ok = await verify(h, { mfaToken: first.mfaToken, recoveryCode: code.toUpperCase().replace(/-/g, ' ') })
  t.equal(ok.statusCode, 200)
  t.same((await verifiedClaims(h, json<Tokens>(ok).accessToken)).amr, ['pwd', 'otp'])
  const second = json<{ mfaToken: string }>(await login(h, user.email))
  const spent = await verify(h, { mfaToken: second.mfaToken, recoveryCode: code })
  t.equal(spent.statusCode, 401)
  t.equal(json(spent).code, 'invalid_mfa_code', 'a spent code is refused')
  const mail = await mailTo(h, user.email, /recovery code was used/)
  t.match(mail.text, /9 unused recovery codes left/)
  t.notOk(mail.text.includes(code), 'the mail carries no code')
  t.ok((await eventTypes(admin, user.userId)).includes('mfa.recovery_code_used'))
})

t.test('the mfaToken: one of two parallel verifies wins; it dies after 5 minutes; garbage is refused', async (t) => {
  const h = await build(t)
  const admin = adminPool(t, h)
  const user = await enrolledAccount(h, admin, 'race@example.com')
  const { mfaToken } = json<{ mfaToken: string }>(await login(h, user.email))
  const [a = '', b = ''] = user.recoveryCodes
  const results = await Promise.all([verify(h, { mfaToken, recoveryCode: a }), verify(h, { mfaToken, recoveryCode: b })])
  t.same(results.map((r) => r.statusCode).sort(), [200, 401], 'two right answers at once: one session')
  t.equal(json(results.find((r) => r.statusCode === 401) ?? results[0]).code, 'invalid_mfa_token')
  const { rows } = await admin.query<{ count: number }>(
    "SELECT count(*)::int AS count FROM activity.events WHERE user_id = $1 AND type = 'session.created'",
    [user.userId],
  )
  t.equal(rows[0]?.count, 2, 'the enrolment login and one verified session')

  const late = json<{ mfaToken: string }>(await login(h, user.email))
  await admin.query(
    "UPDATE activity.mfa_challenges SET created_at = now() - interval '6 minutes', expires_at = now() - interval '1 minute' WHERE user_id = $1 AND used_at IS NULL",
    [user.userId],
  )
  const expired = await verify(h, { mfaToken: late.mfaToken, code: await freshCode(admin, user.userId, user.secret) })
  t.equal(expired.statusCode, 401)
  t.equal(json(expired).code, 'invalid_mfa_token', 'expired')
  t.equal((await verify(h, { mfaToken: 'x'.repeat(43), code: '123456' })).statusCode, 401, 'unknown token')
  t.equal((await verify(h, { mfaToken: late.mfaToken, code: '12345' })).statusCode, 400, 'a code that is not six digits: 400')
  const bare = await verify(h, { mfaToken: late.mfaToken })
  t.equal(bare.statusCode, 400, 'neither code nor recovery code: 400')
  t.equal(json(bare).code, 'validation_failed')
})

t.test('turning it off needs the password and a second factor; the owner is mailed; the password alone signs in again', async (t) => {
  const h = await build(t)
  const admin = adminPool(t, h)
  const user = await enrolledAccount(h, admin, 'off@example.com')
  const off = (payload: Record<string, string>) =>
    h.app.inject({ method: 'DELETE', url: '/api/auth/mfa/totp', headers: bearer(user.tokens.accessToken), payload })
  const noFactor = await off({ password: PASSWORD })
  t.equal(noFactor.statusCode, 403)
  t.equal(json(noFactor).code, 'mfa_required')
  const noPassword = await off({ code: await freshCode(admin, user.userId, user.secret) })
  t.equal(noPassword.statusCode, 400)
  t.equal(json(noPassword).code, 'password_required')
  t.equal(json(await off({ password: 'wrong password', code: '000000' })).code, 'invalid_credentials')
  const wrongCode = await off({ password: PASSWORD, code: hotp(base32Decode(user.secret), stepAt() + 7) })
  t.equal(wrongCode.statusCode, 401)
  t.equal(json(wrongCode).code, 'invalid_mfa_code')
  t.equal((await off({ password: PASSWORD, code: await freshCode(admin, user.userId, user.secret) })).statusCode, 204)

  const mail = await mailTo(h, user.email, /Two-factor sign-in was turned off/)
  t.match(mail.text, /Forgot password/)
  t.ok((await eventTypes(admin, user.userId)).includes('mfa.disabled'))
  const plain = json<Tokens>(await login(h, user.email))
  t.ok(plain.accessToken, 'the password alone signs in again')
  t.same((await verifiedClaims(h, plain.accessToken)).amr, ['pwd'])
  const again = await off({ password: PASSWORD })
  t.equal(again.statusCode, 409)
  t.equal(json(again).code, 'mfa_not_enabled')
})

t.test('sensitive actions need a fresh second factor: change-password, new recovery codes, delete the account', async (t) => {
  const h = await build(t)
  const admin = adminPool(t, h)
  const user = await enrolledAccount(h, admin, 'sensitive@example.com')
  const auth = bearer(user.tokens.accessToken)
  const change = (extra: Record<string, string>) =>
    h.app.inject({
      method: 'POST',
      url: '/api/auth/change-password',
      headers: auth,
      payload: { currentPassword: PASSWORD, newPassword: 'a brand new passphrase', ...extra },
    })
  t.equal(json(await change({})).code, 'mfa_required', 'no factor: 403')
  t.equal((await change({})).statusCode, 403)
  t.equal(json(await change({ code: hotp(base32Decode(user.secret), stepAt() + 9) })).code, 'invalid_mfa_code', 'wrong code: 401')
  t.equal((await change({ code: await freshCode(admin, user.userId, user.secret) })).statusCode, 204, 'with the code')

  const replace = (payload: Record<string, string>) =>
    h.app.inject({ method: 'POST', url: '/api/auth/mfa/recovery-codes', headers: auth, payload })
  t.equal((await replace({ password: 'a brand new passphrase' })).statusCode, 403)
  const replaced = await replace({ password: 'a brand new passphrase', code: await freshCode(admin, user.userId, user.secret) })
  t.equal(replaced.statusCode, 200)
  const fresh = json<{ recoveryCodes: string[] }>(replaced).recoveryCodes
  t.equal(fresh.length, 10)
  t.equal(fresh.filter((c) => user.recoveryCodes.includes(c)).length, 0, 'all new')

  const del = (payload: Record<string, string>) => h.app.inject({ method: 'DELETE', url: '/api/auth/me', headers: auth, payload })
  t.equal((await del({ password: 'a brand new passphrase' })).statusCode, 403)
  t.equal(
    json(await del({ password: 'a brand new passphrase', recoveryCode: user.recoveryCodes[0] ?? '' })).code,
    'invalid_mfa_code',
    'an old recovery code is void',
  )
  await rewindSteps(admin, user.userId)
  t.equal((await del({ password: 'a brand new passphrase', recoveryCode: fresh[0] ?? '' })).statusCode, 204)
  t.ok((await auditActions(admin, user.userId)).includes('user_deactivated'))
})
