// The linking rules (docs/security.md, "Linking rules"): automatic only when both
// sides have verified the address; a clear code otherwise; linking and unlinking
// from a session; never the last way in; and the pre-account takeover, played out.
import t from 'tap'
import { bearer, json } from '../helpers/app.ts'
import {
  atProvider,
  callback,
  fragment,
  me,
  oauthHarness,
  PASSWORD,
  passwordAccount,
  passwordLogin,
  signIn,
  type OAuthHarness,
  type Provider,
} from '../helpers/oauth-flow.ts'

async function accessTokenOf(h: OAuthHarness['h'], email: string, password = PASSWORD): Promise<string> {
  const res = await passwordLogin(h, email, password)
  if (res.statusCode !== 200) throw new Error(`login answered ${String(res.statusCode)}: ${res.body}`)
  return json<{ accessToken: string }>(res).accessToken
}

/** Linking from a session: POST /link, then the browser goes through the provider and the callback. */
async function linkFromSession(
  h: OAuthHarness['h'],
  provider: Provider,
  accessToken: string,
  body: Record<string, string>,
): Promise<URLSearchParams> {
  const res = await h.app.inject({ method: 'POST', url: `/api/auth/oauth/${provider}/link`, headers: bearer(accessToken), payload: body })
  if (res.statusCode !== 200) throw new Error(`link answered ${String(res.statusCode)}: ${res.body}`)
  const cookie = res.cookies.find((c) => c.name === 'oauth_binding')?.value
  const back = await atProvider(new URL(json<{ authorizationUrl: string }>(res).authorizationUrl))
  return fragment(await callback(h, back, cookie)).values
}

t.test('an existing verified account is linked automatically when the provider verified the address', async (t) => {
  const { h, google } = await oauthHarness(t)
  await passwordAccount(h, 'ada@example.com')
  const before = await me(h, await accessTokenOf(h, 'ada@example.com'))
  google.state.user = { sub: '31', email: 'ada@example.com', email_verified: true, name: 'Ada' }
  const signedIn = await signIn(h, 'google')
  const after = await me(h, signedIn.tokens?.accessToken ?? '')
  t.equal(after.id, before.id, 'the same account')
  t.equal(after.hasPassword, true, 'its password stays')
  t.same(
    after.providers.map((p) => p.provider),
    ['google'],
  )
})

t.test('no silent link when either side has not verified the address', async (t) => {
  const { h, google, github } = await oauthHarness(t)
  // Our account unverified, the provider verified.
  await passwordAccount(h, 'unverified@example.com', { verified: false })
  google.state.user = { sub: '41', email: 'unverified@example.com', email_verified: true, name: 'U' }
  const refused = await signIn(h, 'google')
  t.equal(refused.values.get('error'), 'account_exists_link_required')
  t.notOk(refused.values.get('code'), 'no code, no session')

  // Our account verified, the provider not: the same answer as for an address without an account.
  await passwordAccount(h, 'verified@example.com')
  github.state.user = { id: 51, login: 'v', name: 'V', emails: [{ email: 'verified@example.com', primary: true, verified: false }] }
  const unverifiedProvider = await signIn(h, 'github')
  t.equal(unverifiedProvider.values.get('error'), 'oauth_email_unverified')
  github.state.user = { id: 52, login: 'w', name: 'W', emails: [{ email: 'nobody-here@example.com', primary: true, verified: false }] }
  const noAccount = await signIn(h, 'github')
  t.equal(noAccount.values.get('error'), 'oauth_email_unverified', 'indistinguishable: no enumeration through the refusal')

  const owner = await me(h, await accessTokenOf(h, 'verified@example.com'))
  t.same(owner.providers, [], 'nothing was linked')
})

t.test('the pre-account takeover: an attacker who registered the address first gets nothing', async (t) => {
  const { h, google } = await oauthHarness(t)
  const victim = 'victim@example.com'
  // The attacker signs up with the victim's address and a password of their own; never verifies.
  const attackerPassword = 'attacker knows this one'
  const signup = await h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email: victim, password: attackerPassword } })
  t.equal(signup.statusCode, 202)
  // The victim signs in with Google, which has verified the address.
  google.state.user = { sub: '61', email: victim, email_verified: true, name: 'Victim' }
  const first = await signIn(h, 'google')
  t.equal(first.values.get('error'), 'account_exists_link_required', 'no link, no session for anybody')
  // The victim proves the mailbox with "forgot password".
  await h.app.inject({ method: 'POST', url: '/api/auth/forgot-password', payload: { email: victim } })
  const token = await h.tokenFor(victim, /Reset your password/)
  const reset = await h.app.inject({ method: 'POST', url: '/api/auth/reset-password', payload: { token, newPassword: PASSWORD } })
  t.equal(reset.statusCode, 204)
  t.equal((await passwordLogin(h, victim, attackerPassword)).statusCode, 401, "the attacker's password is gone")
  // The victim, now signed in, links Google deliberately.
  const access = await accessTokenOf(h, victim)
  const linked = await linkFromSession(h, 'google', access, { password: PASSWORD })
  t.equal(linked.get('linked'), 'google')
  const viaGoogle = await signIn(h, 'google')
  t.equal((await me(h, viaGoogle.tokens?.accessToken ?? '')).email, victim)
})

t.test('an attacker cannot link a provider to an unverified account they squat', async (t) => {
  const { h, github } = await oauthHarness(t, { REQUIRE_EMAIL_VERIFICATION: 'false' })
  await passwordAccount(h, 'squatted@example.com', { verified: false })
  const access = await accessTokenOf(h, 'squatted@example.com')
  github.state.user = { id: 71, login: 'attacker', name: 'A', emails: [{ email: 'attacker@example.net', primary: true, verified: true }] }
  const outcome = await linkFromSession(h, 'github', access, { password: PASSWORD })
  t.equal(outcome.get('error'), 'email_not_verified')
  t.same((await me(h, access)).providers, [])
})

t.test('link and unlink from a session, and never the last way in', async (t) => {
  const { h, google, github } = await oauthHarness(t)
  await passwordAccount(h, 'linker@example.com')
  const access = await accessTokenOf(h, 'linker@example.com')

  const noPassword = await h.app.inject({ method: 'POST', url: '/api/auth/oauth/github/link', headers: bearer(access), payload: {} })
  t.equal(noPassword.statusCode, 400)
  t.equal(json(noPassword).code, 'password_required')
  const wrong = await h.app.inject({
    method: 'POST',
    url: '/api/auth/oauth/github/link',
    headers: bearer(access),
    payload: { password: 'not the password' },
  })
  t.equal(wrong.statusCode, 401)
  t.equal(json(wrong).code, 'invalid_credentials', 'a wrong password is a failed login')
  const noToken = await h.app.inject({ method: 'POST', url: '/api/auth/oauth/github/link', payload: { password: PASSWORD } })
  t.equal(noToken.statusCode, 401)

  github.state.user = { id: 81, login: 'linker', name: 'L', emails: [{ email: 'elsewhere@example.org', primary: true, verified: true }] }
  t.equal(
    (await linkFromSession(h, 'github', access, { password: PASSWORD })).get('linked'),
    'github',
    'any address: the owner proved both',
  )
  google.state.user = { sub: '82', email: 'linker@example.com', email_verified: true, name: 'L' }
  t.equal((await linkFromSession(h, 'google', access, { password: PASSWORD })).get('linked'), 'google')
  t.same(
    (await me(h, access)).providers.map((p) => p.provider),
    ['google', 'github'],
  )
  const viaGitHub = await signIn(h, 'github')
  t.equal((await me(h, viaGitHub.tokens?.accessToken ?? '')).email, 'linker@example.com', 'the linked GitHub signs in to the account')

  // Somebody else's identity cannot be linked here.
  await passwordAccount(h, 'other@example.com')
  const otherAccess = await accessTokenOf(h, 'other@example.com')
  t.equal((await linkFromSession(h, 'github', otherAccess, { password: PASSWORD })).get('error'), 'oauth_identity_taken')

  const unlink = await h.app.inject({ method: 'DELETE', url: '/api/auth/oauth/github', headers: bearer(access) })
  t.equal(unlink.statusCode, 204)
  const again = await h.app.inject({ method: 'DELETE', url: '/api/auth/oauth/github', headers: bearer(access) })
  t.equal(again.statusCode, 404)
  t.equal(json(again).code, 'provider_not_linked')
  t.same(
    (await me(h, access)).providers.map((p) => p.provider),
    ['google'],
  )
  const gone = await signIn(h, 'github')
  const stranger = await me(h, gone.tokens?.accessToken ?? '')
  t.not(stranger.email, 'linker@example.com', 'the unlinked GitHub no longer reaches the account (it made its own)')
})

t.test('an account made through a provider keeps at least one way in', async (t) => {
  const { h, google, github } = await oauthHarness(t)
  google.state.user = { sub: '91', email: 'only@example.com', email_verified: true, name: 'O' }
  const first = await signIn(h, 'google')
  const access = first.tokens?.accessToken ?? ''
  const last = await h.app.inject({ method: 'DELETE', url: '/api/auth/oauth/google', headers: bearer(access) })
  t.equal(last.statusCode, 409)
  t.equal(json(last).code, 'last_way_in')

  // A passwordless account links within minutes of signing in, without a password.
  github.state.user = { id: 92, login: 'only', name: 'O', emails: [{ email: 'only@example.com', primary: true, verified: true }] }
  t.equal((await linkFromSession(h, 'github', access, {})).get('linked'), 'github')
  const both = await Promise.all(
    (['google', 'github'] as const).map((p) => h.app.inject({ method: 'DELETE', url: `/api/auth/oauth/${p}`, headers: bearer(access) })),
  )
  t.same(both.map((r) => r.statusCode).sort(), [204, 409], 'two parallel unlinks of the last two ways in: one passes, one is refused')
  t.equal((await me(h, access)).providers.length, 1)
})
