// Sign in with Google and GitHub end to end, against local authorization servers
// shaped like each: a new user through each provider, the returning user, the
// one-time code, what GET /me shows, and the events other services receive.
import t from 'tap'
import pg from 'pg'
import { json } from '../helpers/app.ts'
import { atProvider, callback, exchange, fragment, me, oauthHarness, signIn, start } from '../helpers/oauth-flow.ts'

t.test('a new user through Google: created verified, without a password, and signed in', async (t) => {
  const { h, google } = await oauthHarness(t)
  google.state.user = { sub: '1000001', email: 'Grace@Example.com', email_verified: true, name: 'Grace' }
  const first = await signIn(h, 'google', { redirect: 'http://app.test/signed-in' })
  t.equal(first.to.origin + first.to.pathname, 'http://app.test/signed-in', 'back to the redirect it asked for')
  t.ok(first.tokens, 'the fragment carried a code the exchange took')
  const account = await me(h, first.tokens?.accessToken ?? '')
  t.equal(account.email, 'grace@example.com')
  t.equal(account.isVerified, true, 'the provider asserted the address verified')
  t.equal(account.hasPassword, false)
  t.same(
    account.providers.map((p) => [p.provider, p.email]),
    [['google', 'grace@example.com']],
  )

  const authorize = google.authorizeRequests.at(-1)
  t.equal(authorize?.code_challenge_method, 'S256', 'PKCE S256')
  t.ok(authorize?.nonce, 'a nonce for the id_token')
  t.equal(authorize?.redirect_uri, 'http://app.test/api/auth/oauth/google/callback', 'the callback under APP_URL')

  const again = await signIn(h, 'google')
  t.equal((await me(h, again.tokens?.accessToken ?? '')).id, account.id, 'the returning user is the same account')
  t.equal(again.to.toString().split('#')[0], 'http://app.test/', 'no redirect: APP_URL')

  // Other services hear of it: user.created, user.verified, oauth.linked, session.created.
  const admin = new pg.Client({ connectionString: h.db.adminUrl })
  await admin.connect()
  t.teardown(() => admin.end())
  const { rows } = await admin.query<{ type: string; payload: Record<string, unknown> }>(
    'SELECT type, payload FROM activity.events WHERE user_id = $1 ORDER BY id',
    [account.id],
  )
  t.same(
    rows.map((r) => r.type),
    ['user.created', 'user.verified', 'oauth.linked', 'session.created', 'session.created'],
  )
  t.same(rows.find((r) => r.type === 'oauth.linked')?.payload, { provider: 'google' })
})

t.test('a new user through GitHub: its primary address, verified', async (t) => {
  const { h, github } = await oauthHarness(t)
  github.state.user = {
    id: 424242,
    login: 'octo',
    name: 'Octo Cat',
    emails: [
      { email: 'old@example.org', primary: false, verified: true },
      { email: 'Octo@Example.org', primary: true, verified: true },
    ],
  }
  const first = await signIn(h, 'github')
  const account = await me(h, first.tokens?.accessToken ?? '')
  t.equal(account.email, 'octo@example.org', 'the primary address, lower-cased')
  t.equal(account.isVerified, true)
  t.same(
    account.providers.map((p) => p.provider),
    ['github'],
  )
  const returning = await signIn(h, 'github')
  t.equal((await me(h, returning.tokens?.accessToken ?? '')).id, account.id, 'the returning user')

  github.state.user = { ...github.state.user, id: 777, emails: [{ email: 'nobody@example.org', primary: true, verified: false }] }
  const unverified = await signIn(h, 'github')
  t.equal(unverified.values.get('error'), 'oauth_email_unverified', 'no account from an address GitHub has not verified')
  t.notOk(unverified.tokens)
})

t.test('the one-time code: once, and never a token in a URL', async (t) => {
  const { h, google } = await oauthHarness(t)
  google.state.user = { sub: '2000002', email: 'once@example.com', email_verified: true, name: 'Once' }
  const started = await start(h, 'google')
  t.equal(started.res.headers['cache-control'], 'no-store')
  t.match(String(started.res.headers['set-cookie']), /HttpOnly/i, 'the binding cookie is HttpOnly')
  t.match(String(started.res.headers['set-cookie']), /SameSite=Lax/i)
  const res = await callback(h, await atProvider(started.authorizeUrl), started.cookie)
  t.equal(res.headers['referrer-policy'], 'no-referrer')
  const { to, values } = fragment(res)
  t.equal(to.search, '', 'nothing in the query string: the fragment never reaches a server or its logs')
  const code = values.get('code') ?? ''
  t.notMatch(to.toString(), /eyJ/, 'no JWT in the URL')
  const first = await exchange(h, code)
  t.equal(first.statusCode, 200)
  t.equal(first.headers['cache-control'], 'no-store')
  const second = await exchange(h, code)
  t.equal(second.statusCode, 400)
  t.equal(json(second).code, 'invalid_oauth_code', 'a used code is refused')
  const garbage = await exchange(h, 'x'.repeat(43))
  t.equal(json(garbage).code, 'invalid_oauth_code')

  const parallel = await Promise.all(
    Array.from({ length: 2 }, async () => {
      const s = await start(h, 'google')
      const { values: v } = fragment(await callback(h, await atProvider(s.authorizeUrl), s.cookie))
      return v.get('code') ?? ''
    }),
  )
  const raced = await Promise.all([...parallel, ...parallel].map((c) => exchange(h, c)))
  t.same(raced.map((r) => r.statusCode).sort(), [200, 200, 400, 400], 'each code of two flows works exactly once under a race')
})

t.test('a provider that is not configured is 404; an unknown one 400', async (t) => {
  const google = await import('../helpers/oauth-servers.ts').then((m) => m.startGoogleLike(t))
  const { build } = await import('../helpers/app.ts')
  const h = await build(t, {
    OAUTH_GOOGLE_CLIENT_ID: google.clientId,
    OAUTH_GOOGLE_CLIENT_SECRET: google.clientSecret,
    OAUTH_GOOGLE_ISSUER: google.issuer,
  })
  const off = await h.app.inject({ method: 'GET', url: '/api/auth/oauth/github/start' })
  t.equal(off.statusCode, 404)
  t.equal(json(off).code, 'provider_not_configured')
  const unknown = await h.app.inject({ method: 'GET', url: '/api/auth/oauth/facebook/start' })
  t.equal(unknown.statusCode, 400)
  t.equal(json(unknown).code, 'validation_failed')
})

t.test('callback and exchange are credential routes: under the stricter per-address limit', async (t) => {
  const { h } = await oauthHarness(t, { RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_CREDENTIALS_MAX: '3' })
  const statuses: number[] = []
  for (let i = 0; i < 4; i++) statuses.push((await exchange(h, 'x'.repeat(43))).statusCode)
  t.same(statuses, [400, 400, 400, 429], 'the fourth code guess from one address is refused')
  const callbacks: number[] = []
  for (let i = 0; i < 4; i++) {
    const res = await h.app.inject({ method: 'GET', url: `/api/auth/oauth/google/callback?state=${'s'.repeat(43)}&code=x` })
    callbacks.push(res.statusCode)
  }
  t.same(callbacks, [400, 400, 400, 429])
})
