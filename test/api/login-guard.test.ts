// The lockout as an attacker meets it (issue 11, parts 2, 3 and 6): parallel
// guesses cannot get past the threshold, nobody without the password can lock
// the owner out of a device they signed in from before, and re-authentication
// (change-password, delete account) is a guess like any other.
// Client addresses are injected labels from the documentation ranges: no traffic leaves the process.
import t from 'tap'
import pg from 'pg'
import { bearer, build, json, type TestApp } from '../helpers/app.ts'

const PASSWORD = 'owners own passphrase'
const OWNER_HOME = '203.0.113.7'
const OWNER_TRAVEL = '203.0.113.99'

async function signup(h: TestApp, email: string): Promise<void> {
  const res = await h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email, password: PASSWORD } })
  if (res.statusCode !== 202) throw new Error(`signup ${String(res.statusCode)}`)
}

function login(h: TestApp, email: string, password: string, from: string, deviceToken?: string) {
  return h.app.inject({
    method: 'POST',
    url: '/api/auth/login',
    remoteAddress: from,
    payload: deviceToken === undefined ? { email, password } : { email, password, deviceToken },
  })
}

/** Audit rows of some actions for one email: each login_failed / login_success is one password verified. */
async function audits(h: TestApp, email: string, actions: string[]): Promise<{ action: string; details: Record<string, unknown> }[]> {
  const c = new pg.Client({ connectionString: h.db.adminUrl })
  await c.connect()
  try {
    const { rows } = await c.query<{ action: string; details: Record<string, unknown> }>(
      `SELECT action, details FROM activity.audit_logs WHERE details->>'email' = $1 AND action = ANY($2) ORDER BY id`,
      [email, actions],
    )
    return rows
  } finally {
    await c.end()
  }
}

const lockoutEnv = (threshold: number, base = 60, max = 900) => ({
  REQUIRE_EMAIL_VERIFICATION: 'false',
  LOCKOUT_THRESHOLD: String(threshold),
  LOCKOUT_BASE_SECONDS: String(base),
  LOCKOUT_MAX_SECONDS: String(max),
})

t.test('50 parallel guesses at one account verify at most the threshold', async (t) => {
  const h = await build(t, lockoutEnv(5))
  const email = 'burst@example.test'
  await signup(h, email)
  const answers = await Promise.all(
    Array.from({ length: 50 }, (_, i) => login(h, email, `wrong guess number ${String(i)}`, `198.51.100.${String(i + 1)}`)),
  )
  const codes = answers.map((r) => r.statusCode)
  t.equal(codes.filter((c) => c === 401).length, 5, 'exactly the threshold was checked and failed')
  t.equal(codes.filter((c) => c === 429).length, 45, 'the rest were refused before any password check')
  t.ok(answers.filter((r) => r.statusCode === 429).every((r) => json(r).code === 'too_many_attempts'))
  t.equal((await audits(h, email, ['login_failed'])).length, 5, 'five passwords verified, five audit rows')
  t.equal((await login(h, email, PASSWORD, OWNER_TRAVEL)).statusCode, 429, 'an untrusted client stays locked, right password or not')
})

t.test('a burst with the right password in it still verifies at most twice the threshold', async (t) => {
  // A success clears the account counter (the owner proved the password), so at
  // worst one more threshold of guesses gets through after it; in practice the
  // reservations are over long before the first argon2 check returns.
  const h = await build(t, lockoutEnv(5))
  const email = 'mixed@example.test'
  await signup(h, email)
  const answers = await Promise.all(
    Array.from({ length: 40 }, (_, i) => login(h, email, i === 17 ? PASSWORD : `wrong guess ${String(i)}`, `198.51.100.${String(i + 1)}`)),
  )
  const verified = await audits(h, email, ['login_failed', 'login_success'])
  t.ok(verified.length <= 10, `${String(verified.length)} passwords verified`)
  t.equal(answers.filter((r) => r.statusCode === 200).length <= 1, true)
})

t.test('nobody without the password can lock the owner out of a device they used before', async (t) => {
  const threshold = 3
  const base = 1
  const h = await build(t, { ...lockoutEnv(threshold, base, 2), RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_CREDENTIALS_MAX: '20' })
  const email = 'victim@example.test'
  await signup(h, email)
  const first = await login(h, email, PASSWORD, OWNER_HOME)
  t.equal(first.statusCode, 200, 'the owner signs in at home')
  const { deviceToken } = json<{ deviceToken: string }>(first)
  t.match(deviceToken, /^[A-Za-z0-9_-]{43}$/, 'and gets a device token')

  // The attacker guesses for several lock periods, from one address and from many,
  // as fast as the per-IP limit lets each address.
  const started = Date.now()
  let sent = 0
  let rateLimited = 0
  let n = 0
  let admitted = 0
  while (Date.now() - started < 4 * base * 1000) {
    const from = n % 2 === 0 ? '198.51.100.1' : `198.51.100.${String(2 + (n % 200))}`
    const res = await login(h, email, `attacker guess ${String(n++)}`, from)
    sent++
    if (res.statusCode === 429 && json(res).code === 'rate_limited') rateLimited++
    if (res.statusCode === 200) admitted++
    await new Promise((r) => setTimeout(r, 20))
  }
  const elapsedSeconds = (Date.now() - started) / 1000
  t.equal(admitted, 0, 'no guess got in')
  t.ok(rateLimited > 0, `the single address hit its per-IP limit (${String(rateLimited)} of ${String(sent)})`)

  // The lock is on right now for untrusted clients...
  const stranger = await login(h, email, PASSWORD, OWNER_TRAVEL)
  t.equal(stranger.statusCode, 429, 'an untrusted client is refused while the attack goes on')
  // ...but the owner, travelling (another address) with the device they used before, gets in at once.
  const owner = await login(h, email, PASSWORD, OWNER_TRAVEL, deviceToken)
  t.equal(owner.statusCode, 200, 'the owner logs in at the first try')
  t.equal(json<{ deviceToken: string }>(owner).deviceToken, deviceToken, 'the device keeps its token')

  const guesses = (await audits(h, email, ['login_failed'])).filter((r) => r.details.trusted_device === false)
  const cap = threshold + Math.ceil(elapsedSeconds / base) + 1
  t.ok(
    guesses.length <= cap,
    `the attacker verified ${String(guesses.length)} guesses in ${elapsedSeconds.toFixed(1)} s (cap ${String(cap)}) of ${String(sent)} sent`,
  )
  t.ok(guesses.length >= threshold, 'the guesses that were allowed were really checked')
})

t.test('a device token counts only for its own account, and a trusted device has its own lock', async (t) => {
  const h = await build(t, lockoutEnv(3))
  await signup(h, 'a@example.test')
  await signup(h, 'b@example.test')
  const { deviceToken } = json<{ deviceToken: string }>(await login(h, 'a@example.test', PASSWORD, OWNER_HOME))

  // A's device token presented for B is no trust at all: B's account counter applies.
  for (let i = 0; i < 3; i++) t.equal((await login(h, 'b@example.test', 'nope nope nope', OWNER_HOME, deviceToken)).statusCode, 401)
  t.equal((await login(h, 'b@example.test', PASSWORD, OWNER_HOME, deviceToken)).statusCode, 429, 'B is locked for that client')

  // Guessing with A's device locks that device only...
  for (let i = 0; i < 3; i++) t.equal((await login(h, 'a@example.test', 'nope nope nope', OWNER_HOME, deviceToken)).statusCode, 401)
  const lockedDevice = await login(h, 'a@example.test', PASSWORD, OWNER_HOME, deviceToken)
  t.equal(lockedDevice.statusCode, 429, 'the device is locked after its own threshold')
  // ...and not the account: an untrusted client with the right password still gets in.
  t.equal((await login(h, 'a@example.test', PASSWORD, OWNER_TRAVEL)).statusCode, 200)
  t.equal((await audits(h, 'a@example.test', ['device_locked'])).length > 0, true, 'audit device_locked')

  // A malformed or unknown device token is simply no device.
  t.equal((await login(h, 'a@example.test', PASSWORD, OWNER_TRAVEL, 'x'.repeat(43))).statusCode, 200)
})

t.test('re-authentication is throttled like a login: a stolen access token is no takeover', async (t) => {
  const h = await build(t, lockoutEnv(3))
  const email = 'reauth@example.test'
  await signup(h, email)
  const first = await login(h, email, PASSWORD, OWNER_HOME)
  const { accessToken, deviceToken } = json<{ accessToken: string; deviceToken: string }>(first)

  const change = (currentPassword: string) =>
    h.app.inject({
      method: 'POST',
      url: '/api/auth/change-password',
      headers: bearer(accessToken),
      payload: { currentPassword, newPassword: 'a brand new passphrase' },
    })
  const remove = (password: string) =>
    h.app.inject({ method: 'DELETE', url: '/api/auth/me', headers: bearer(accessToken), payload: { password } })

  t.equal((await change('guess one guess')).statusCode, 401)
  t.equal((await remove('guess two guess')).statusCode, 401)
  t.equal((await change('guess three guess')).statusCode, 401)
  const locked = await change(PASSWORD)
  t.equal(locked.statusCode, 429, 'after the threshold even the right password waits')
  t.equal(json(locked).code, 'too_many_attempts')
  t.equal((await remove(PASSWORD)).statusCode, 429, 'delete-account shares the lock')
  t.equal((await audits(h, email, ['reauth_failed'])).length, 3, 'audit reauth_failed per wrong guess')
  t.equal((await login(h, email, PASSWORD, OWNER_TRAVEL)).statusCode, 429, 'the same lockout as a login')
  t.equal((await login(h, email, PASSWORD, OWNER_HOME, deviceToken)).statusCode, 200, 'the owner device still gets in')
})

t.test('a right re-authentication gives its reservation back', async (t) => {
  const h = await build(t, lockoutEnv(2))
  const email = 'ok@example.test'
  await signup(h, email)
  const { accessToken } = json<{ accessToken: string }>(await login(h, email, PASSWORD, OWNER_HOME))
  const newPassword = 'the second passphrase'
  const res = await h.app.inject({
    method: 'POST',
    url: '/api/auth/change-password',
    headers: bearer(accessToken),
    payload: { currentPassword: PASSWORD, newPassword },
  })
  t.equal(res.statusCode, 204)
  // Threshold 2: had the successful check stayed counted, one failure would lock now.
  t.equal((await login(h, email, 'wrong wrong wrong', OWNER_TRAVEL)).statusCode, 401)
  t.equal((await login(h, email, newPassword, OWNER_TRAVEL)).statusCode, 200)
})

t.test('the credential rate limit covers re-authentication', async (t) => {
  const h = await build(t, { ...lockoutEnv(100), RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_CREDENTIALS_MAX: '3' })
  const email = 'limit@example.test'
  await signup(h, email)
  const { accessToken } = json<{ accessToken: string }>(await login(h, email, PASSWORD, OWNER_HOME))
  const codes: number[] = []
  for (let i = 0; i < 5; i++) {
    const res = await h.app.inject({
      method: 'DELETE',
      url: '/api/auth/me',
      remoteAddress: OWNER_TRAVEL,
      headers: bearer(accessToken),
      payload: { password: `guess ${String(i)} guess` },
    })
    codes.push(res.statusCode)
  }
  t.same(codes, [401, 401, 401, 429, 429])
})

t.test('answers that carry tokens or personal data are not cacheable', async (t) => {
  const h = await build(t, lockoutEnv(5))
  const email = 'cache@example.test'
  await signup(h, email)
  const first = await login(h, email, PASSWORD, OWNER_HOME)
  const { accessToken, refreshToken } = json<{ accessToken: string; refreshToken: string }>(first)
  const refresh = await h.app.inject({ method: 'POST', url: '/api/auth/refresh', payload: { refreshToken } })
  const me = await h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(accessToken) })
  const sessions = await h.app.inject({ method: 'GET', url: '/api/auth/sessions', headers: bearer(accessToken) })
  for (const [name, res] of Object.entries({ login: first, refresh, me, sessions })) {
    t.equal(res.statusCode, 200, name)
    t.equal(res.headers['cache-control'], 'no-store', `${name}: Cache-Control no-store`)
  }
  const failed = await login(h, email, 'not the password', OWNER_HOME)
  t.equal(failed.headers['cache-control'], 'no-store', 'a failed login too')
})
