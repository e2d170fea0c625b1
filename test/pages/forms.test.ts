// The link pages' routes over HTTP (inject), for what a browser test would only
// reach slowly: every refusal as a page with its status, the repeat rules of the
// reset form and their limits, the form parser's scope, the rate limit, escaping,
// and the configuration of the pages.
import t, { type Test } from 'tap'
import { loadConfig } from '../../src/config.ts'
import { getUsedEmailToken } from '../../src/db/procedures.ts'
import { hashToken } from '../../src/auth/tokens.ts'
import { errorPage, resetFormPage, verifyFormPage } from '../../src/routes/pages/templates.ts'
import { build, bearer, json, type TestApp } from '../helpers/app.ts'
import { testPool } from '../helpers/db.ts'
import { dbError, hex64 } from '../helpers/fixtures.ts'
import { freePort } from '../helpers/net.ts'
import { login, PASSWORD, resetLinkFor, signup, site } from './site.ts'

const FORM = { 'content-type': 'application/x-www-form-urlencoded' }
const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString()
const WELL_FORMED_UNKNOWN = 'A'.repeat(43)

async function post(h: TestApp, url: string, fields: Record<string, string>) {
  return h.app.inject({ method: 'POST', url, headers: FORM, payload: form(fields) })
}

/** The heading of a page as a screen reader reads it: the icon left out, tags stripped. */
function heading(body: string): string {
  return (/<h1>(.*?)<\/h1>/s.exec(body)?.[1] ?? '')
    .replace(/<span[^>]*aria-hidden="true"[^>]*>.*?<\/span>/g, '')
    .replace(/<[^>]+>/g, '')
    .trim()
}

function isHtml(t: Test, res: { statusCode: number; headers: Record<string, unknown> }, status: number, what: string) {
  t.equal(res.statusCode, status, `${what}: ${String(status)}`)
  t.match(res.headers['content-type'], /^text\/html; charset=utf-8/, `${what}: a page`)
}

const h = await site(t)

t.test('a missing, empty, doubled, damaged or absurd token is a page saying the link is incomplete', async (t) => {
  for (const path of ['/verify-email', '/reset-password']) {
    for (const query of [
      '',
      '?token=',
      '?token=abc',
      `?token=${'x'.repeat(5000)}`,
      `?token=${WELL_FORMED_UNKNOWN}&token=${WELL_FORMED_UNKNOWN}`,
      '?token[a]=1',
    ]) {
      const res = await h.app.inject({ method: 'GET', url: path + query })
      isHtml(t, res, 400, `GET ${path}${query.slice(0, 30)}`)
      t.equal(heading(res.body), 'Problem: This link is incomplete')
      t.notMatch(res.body, '<form', 'no form for a broken link')
    }
    const ok = await h.app.inject({ method: 'GET', url: `${path}?token=${WELL_FORMED_UNKNOWN}&utm_source=mail` })
    isHtml(t, ok, 200, `GET ${path} with a well-formed token (and extra parameters)`)
    t.equal(ok.headers['cache-control'], 'no-store')
    t.match(ok.body, `<input type="hidden" name="token" value="${WELL_FORMED_UNKNOWN}">`)
    const head = await h.app.inject({ method: 'HEAD', url: `${path}?token=${WELL_FORMED_UNKNOWN}` })
    t.equal(head.statusCode, 200)
    t.equal(head.body, '')
  }
  for (const path of ['/verify-email', '/reset-password']) {
    for (const payload of ['', 'token=', 'token=abc', `newPassword=${encodeURIComponent(PASSWORD)}`]) {
      const res = await h.app.inject({ method: 'POST', url: path, headers: FORM, payload })
      isHtml(t, res, 400, `POST ${path} "${payload}"`)
      t.equal(heading(res.body), 'Problem: This link is incomplete')
    }
  }
})

t.test('verify: unknown, expired, superseded and repeated links', async (t) => {
  const unknown = await post(h, '/verify-email', { token: WELL_FORMED_UNKNOWN })
  isHtml(t, unknown, 400, 'unknown token')
  t.equal(heading(unknown.body), 'Problem: This link does not work')
  t.match(unknown.body, 'ask for a new confirmation email')

  const expiredEmail = 'expired@example.test'
  const expired = await signup(h, expiredEmail)
  await h.admin.query(
    `UPDATE activity.email_tokens SET created_at = created_at - interval '2 days', expires_at = now() - interval '1 second' WHERE token_hash = $1`,
    [hashToken(expired)],
  )
  const late = await post(h, '/verify-email', { token: expired })
  isHtml(t, late, 400, 'expired token')
  t.equal(heading(late.body), 'Problem: This link has expired')

  // A resend replaces the first link: the old one is "used" but confirmed nothing.
  const email = 'twice@example.test'
  const first = await signup(h, email)
  t.equal((await h.app.inject({ method: 'POST', url: '/api/auth/resend-verification', payload: { email } })).statusCode, 202)
  let second = first
  while (second === first) second = await h.tokenFor(email, /Confirm your email/)
  const old = await post(h, '/verify-email', { token: first })
  isHtml(t, old, 400, 'a superseded link')
  t.equal(heading(old.body), 'Problem: This link was already used', 'not "confirmed": the address is not')
  t.match(old.body, 'If the app asks you to confirm it, ask for a new link there')
  t.equal((await login(h, email)).code, 'email_not_verified')

  isHtml(t, await post(h, '/verify-email', { token: second }), 200, 'the newest link')
  const again = await post(h, '/verify-email', { token: second })
  isHtml(t, again, 200, 'the same link again')
  t.equal(heading(again.body), 'Done: Email address confirmed')
  isHtml(t, await post(h, '/verify-email', { token: first }), 200, 'the superseded link, now that the address is confirmed')
  t.equal(await h.auditCount('email_verified', email), 1)
})

t.test("reset: refused passwords are sentences above the form, with the API's status", async (t) => {
  const token = await resetLinkFor(h, 'rules@example.test')
  const cases: [string, string, RegExp][] = [
    ['', 'empty', /Type a new password, then press the button\./],
    ['short', 'too short', /That password is too short\. Use at least 8 characters\./],
    ['x'.repeat(129), 'too long', /That password is too long\. Use at most 128 characters\./],
    ['password123', 'common', /That password is too common and easy to guess\. Choose another one\./],
  ]
  for (const [newPassword, what, sentence] of cases) {
    const res = await post(h, '/reset-password', { token, newPassword })
    isHtml(t, res, 400, what)
    t.match(res.body, sentence)
    t.match(res.body, `<input type="hidden" name="token" value="${token}">`, `${what}: the form again, with its token`)
    t.match(res.body, 'data-notice="error"')
    t.notMatch(res.body, 'data-outcome', 'not a result page')
  }
  const missing = await post(h, '/reset-password', { token })
  isHtml(t, missing, 400, 'no newPassword field')
  t.match(missing.body, /Type a new password/)
  t.equal(await h.auditCount('password_reset', 'rules@example.test'), 0, 'nothing was reset')
})

t.test('reset: a repeat is success only with the same password, soon, on the link that set it', async (t) => {
  const p1 = 'first new password here'
  const email = 'repeat@example.test'
  const token = await resetLinkFor(h, email)
  isHtml(t, await post(h, '/reset-password', { token, newPassword: p1 }), 200, 'the reset')
  const same = await post(h, '/reset-password', { token, newPassword: p1 })
  isHtml(t, same, 200, 'the same password again')
  t.equal(heading(same.body), 'Done: Password changed')
  const other = await post(h, '/reset-password', { token, newPassword: 'another password here' })
  isHtml(t, other, 400, 'another password')
  t.equal(heading(other.body), 'Problem: This link was already used')
  t.equal(await h.auditCount('password_reset', email), 1)
  t.equal((await login(h, email, p1)).status, 200)

  // Outside the window (the use moved 10 minutes back, everything else consistent).
  await h.admin.query(
    `WITH u AS (SELECT id FROM activity.users WHERE email = $1),
          a AS (UPDATE activity.audit_logs SET created_at = created_at - interval '10 minutes' WHERE user_id = (SELECT id FROM u) AND action = 'password_reset'),
          e AS (UPDATE activity.email_tokens SET used_at = used_at - interval '10 minutes' WHERE token_hash = $2)
     UPDATE activity.users SET password_changed_at = password_changed_at - interval '10 minutes' WHERE id = (SELECT id FROM u)`,
    [email, hashToken(token)],
  )
  const late = await post(h, '/reset-password', { token, newPassword: p1 })
  isHtml(t, late, 400, 'the same password, after the window')
  t.equal(heading(late.body), 'Problem: This link was already used')
})

t.test('reset: a link that did not set the current password never confirms it', async (t) => {
  // Burnt by a change of password: same instant as the change, but no reset of its own.
  const email = 'burnt@example.test'
  const token = await resetLinkFor(h, email)
  const session = await h.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email, password: PASSWORD } })
  const access = json<{ accessToken: string }>(session).accessToken
  const p2 = 'changed through the api'
  const changed = await h.app.inject({
    method: 'POST',
    url: '/api/auth/change-password',
    headers: bearer(access),
    payload: { currentPassword: PASSWORD, newPassword: p2 },
  })
  t.equal(changed.statusCode, 204)
  const burnt = await post(h, '/reset-password', { token, newPassword: p2 })
  isHtml(t, burnt, 400, 'the current password on a link a change burnt')
  t.equal(heading(burnt.body), 'Problem: This link was already used')

  // Reset, then changed again: the link's password is no longer the account's.
  const email2 = 'later@example.test'
  const token2 = await resetLinkFor(h, email2)
  const p3 = 'set by the reset link'
  isHtml(t, await post(h, '/reset-password', { token: token2, newPassword: p3 }), 200, 'reset')
  const s2 = json<{ accessToken: string }>(
    await h.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: email2, password: p3 } }),
  )
  const p4 = 'changed after the reset'
  t.equal(
    (
      await h.app.inject({
        method: 'POST',
        url: '/api/auth/change-password',
        headers: bearer(s2.accessToken),
        payload: { currentPassword: p3, newPassword: p4 },
      })
    ).statusCode,
    204,
  )
  for (const newPassword of [p3, p4]) {
    const res = await post(h, '/reset-password', { token: token2, newPassword })
    isHtml(t, res, 400, 'after a later change')
    t.equal(heading(res.body), 'Problem: This link was already used')
  }
})

t.test('sp_get_used_email_token as auth_api_user: what a used link achieved, and its argument checks', async (t) => {
  const pool = testPool(t, h.db.url)
  const email = 'proc@example.test'
  const verifyToken = await signup(h, email)
  const args = { tokenHash: hashToken(verifyToken), purpose: 'verify_email' as const, windowSeconds: 300 }
  t.equal(await getUsedEmailToken(pool, args), undefined, 'an unused token: no row')
  t.equal(await getUsedEmailToken(pool, { ...args, tokenHash: hex64() }), undefined, 'an unknown token: no row')
  await post(h, '/verify-email', { token: verifyToken })
  t.same(await getUsedEmailToken(pool, args), { isVerified: true, hashedPassword: null }, 'a used verify token: verified, never a hash')
  t.equal(await getUsedEmailToken(pool, { ...args, purpose: 'reset_password' }), undefined, 'another purpose: no row')
  await t.rejects(getUsedEmailToken(pool, { ...args, purpose: 'other' as 'verify_email' }), dbError('invalid_argument'))
  await t.rejects(getUsedEmailToken(pool, { ...args, windowSeconds: 0 }), dbError('invalid_argument'))
  await t.rejects(getUsedEmailToken(pool, { ...args, windowSeconds: 3601 }), dbError('invalid_argument'))
  await t.rejects(getUsedEmailToken(pool, { ...args, tokenHash: 'not-a-hash' }), dbError('invalid_argument'))

  const resetEmail = 'proc-reset@example.test'
  const resetToken = await resetLinkFor(h, resetEmail)
  await post(h, '/reset-password', { token: resetToken, newPassword: 'proc reset password' })
  const used = await getUsedEmailToken(pool, { tokenHash: hashToken(resetToken), purpose: 'reset_password', windowSeconds: 300 })
  t.match(used, { isVerified: true, hashedPassword: /^\$argon2id\$/ }, 'a reset token just used: the hash it set')
  const { rows } = await h.admin.query<{ hashed_password: string }>('SELECT hashed_password FROM activity.users WHERE email = $1', [
    resetEmail,
  ])
  t.equal(used?.hashedPassword, rows[0]?.hashed_password, 'the current hash')
})

t.test('reset: a breached-password check that cannot answer is a 503 page with the form', async (t) => {
  const port = await freePort()
  const b = await build(t, {
    PASSWORD_BREACH_CHECK: 'true',
    PASSWORD_BREACH_FAIL_OPEN: 'false',
    PASSWORD_BREACH_API_URL: `http://127.0.0.1:${String(port)}`,
    PASSWORD_BREACH_TIMEOUT_MS: '500',
  })
  const page = await b.app.inject({ method: 'GET', url: `/reset-password?token=${WELL_FORMED_UNKNOWN}` })
  t.match(page.body, 'or one that has appeared in a data breach', 'the rules name the breach check when it is on')
  const res = await post(b, '/reset-password', { token: WELL_FORMED_UNKNOWN, newPassword: 'a fine long password' })
  isHtml(t, res, 503, 'breach check down')
  t.match(res.body, /We could not check your password right now\. Wait a minute, then press the button again\./)
  t.match(res.body, '<form method="post" action="/reset-password"')
})

t.test('forms are parsed on the pages only; the API still refuses them, and the pages refuse JSON', async (t) => {
  for (const url of ['/api/auth/verify-email', '/api/auth/login', '/api/auth/reset-password']) {
    const res = await h.app.inject({ method: 'POST', url, headers: FORM, payload: form({ token: WELL_FORMED_UNKNOWN }) })
    t.equal(res.statusCode, 415, `${url}: a form body is 415`)
    t.match(res.headers['content-type'], /^application\/problem\+json/)
  }
  const res = await h.app.inject({ method: 'POST', url: '/verify-email', payload: { token: WELL_FORMED_UNKNOWN } })
  t.equal(res.statusCode, 415)
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  t.match(json(res), { code: 'unsupported_media_type', detail: /application\/x-www-form-urlencoded/ })
})

t.test('the form posts are under the credential rate limit', async (t) => {
  const limited = await build(t, { RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_CREDENTIALS_MAX: '2' })
  for (const url of ['/verify-email', '/reset-password']) {
    const fields = { token: WELL_FORMED_UNKNOWN, newPassword: 'a fine long password' }
    const statuses = []
    for (let i = 0; i < 3; i++) statuses.push((await post(limited, url, fields)).statusCode)
    t.same(statuses, [400, 400, 429], `${url}: the third POST within the window is refused`)
    const refused = await post(limited, url, fields)
    t.match(refused.headers['content-type'], /^application\/problem\+json/)
    t.equal(json(refused).code, 'rate_limited')
    t.ok(Number(refused.headers['retry-after']) >= 1, 'with Retry-After')
  }
})

t.test('product name and back link come from the environment, escaped', async (t) => {
  const name = `<b>"Acme" & 'Co'</b>`
  const b = await build(t, { APP_NAME: name, APP_URL: 'http://app.test/?a=1&b="2"' })
  const res = await b.app.inject({ method: 'GET', url: `/verify-email?token=${WELL_FORMED_UNKNOWN}` })
  t.notMatch(res.body, '<b>', 'no markup from APP_NAME')
  t.match(res.body, '&lt;b&gt;&quot;Acme&quot; &amp; &#39;Co&#39;&lt;/b&gt;')
  t.match(res.body, 'href="http://app.test/?a=1&amp;b=&quot;2&quot;"', 'without LOGIN_URL the link back is APP_URL, escaped')

  t.equal(loadConfig({}).pages.appName, 'Activity', 'APP_NAME defaults to Activity')
  t.equal(loadConfig({ LOGIN_URL: '' }).pages.loginUrl, undefined, 'an empty LOGIN_URL is unset')
  t.equal(loadConfig({ LOGIN_URL: 'https://app.example.com/login' }).pages.loginUrl, 'https://app.example.com/login')
  for (const bad of ['javascript:alert(1)', 'ftp://app.example.com', '/login', 'https://app.example.com/a b']) {
    t.throws(() => loadConfig({ LOGIN_URL: bad }), /LOGIN_URL/, `LOGIN_URL=${bad} is refused`)
  }
})

t.test('every value put into a page is escaped, wherever it goes', async (t) => {
  const hostile = `"'><script>alert(1)</script>&`
  const ctx = { appName: hostile, backUrl: `https://x.test/"><script>`, rules: { minLength: 8, maxLength: 128, breachCheck: false } }
  const pages = [verifyFormPage(ctx, hostile), resetFormPage(ctx, hostile, hostile), errorPage(ctx, { title: hostile, lines: [hostile] })]
  for (const body of pages) {
    t.notMatch(body, '<script>alert', 'no markup from a value')
    t.notMatch(body, `"'>`, 'no attribute broken out of')
    t.match(body, '&quot;&#39;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&amp;')
    t.equal(body.match(/<script/g)?.length, 1, "the page's own script only")
  }
  t.match(pages[0], `<input type="hidden" name="token" value="&quot;&#39;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&amp;">`)
})
