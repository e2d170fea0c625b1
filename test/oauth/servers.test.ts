// The local authorization servers behave like Google and GitHub do toward a real
// OAuth client (openid-client): what they issue verifies, and what the providers
// refuse — wrong PKCE verifier, reused code, wrong client, tampered id_token — fails.
import * as client from 'openid-client'
import t from 'tap'
import { startGitHubLike, startGoogleLike } from '../helpers/oauth-servers.ts'

const REDIRECT = 'http://127.0.0.1:1/auth/callback'
// Deprecated only to stand out: these servers are plain http on 127.0.0.1.
// eslint-disable-next-line @typescript-eslint/no-deprecated
const allowHttp: (config: client.Configuration) => void = client.allowInsecureRequests
const insecure = { execute: [allowHttp] }

/** What a promise rejects with, to match the reason and not just the failure. */
const failure = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (err: unknown) => err,
  )

/** Follows the authorization URL one hop, as a browser would, and returns the callback URL. */
async function approve(url: URL): Promise<URL> {
  const res = await fetch(url, { redirect: 'manual' })
  const location = res.headers.get('location')
  if (res.status !== 302 || location === null) throw new Error(`authorize answered ${res.status}`)
  return new URL(location)
}

/** Starts a sign-in: the PKCE verifier, nonce and state a client keeps, and the callback URL. */
async function begin(config: client.Configuration, scope: string) {
  const verifier = client.randomPKCECodeVerifier()
  const nonce = client.randomNonce()
  const state = client.randomState()
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
  })
  return { verifier, nonce, state, callback: await approve(url) }
}

t.test('Google-like', async (t) => {
  const g = await startGoogleLike(t, { user: { sub: '112233445566778899001', email: 'g@example.com' } })
  const config = await client.discovery(new URL(g.issuer), g.clientId, g.clientSecret, undefined, insecure)
  const grant = (f: Awaited<ReturnType<typeof begin>>, verifier = f.verifier) =>
    client.authorizationCodeGrant(config, f.callback, {
      pkceCodeVerifier: verifier,
      expectedNonce: f.nonce,
      expectedState: f.state,
      idTokenExpected: true,
    })

  t.test('code + PKCE + nonce: id_token claims and userinfo are the user knob', async (t) => {
    const flow = await begin(config, 'openid email profile')
    const sent = g.authorizeRequests.at(-1)
    t.match(sent, { code_challenge_method: 'S256', nonce: flow.nonce, state: flow.state, redirect_uri: REDIRECT })
    const tokens = await grant(flow)
    t.match(tokens.claims(), {
      iss: g.issuer,
      aud: g.clientId,
      sub: '112233445566778899001',
      email: 'g@example.com',
      email_verified: true,
      nonce: flow.nonce,
    })
    const info = await client.fetchUserInfo(config, tokens.access_token, '112233445566778899001')
    t.equal(info.email, 'g@example.com')
  })

  t.test('client_secret_basic is accepted too; a wrong secret is invalid_client', async (t) => {
    const basic = await client.discovery(new URL(g.issuer), g.clientId, undefined, client.ClientSecretBasic(g.clientSecret), insecure)
    const flow = await begin(basic, 'openid email')
    const opts = { pkceCodeVerifier: flow.verifier, expectedNonce: flow.nonce, expectedState: flow.state }
    t.ok((await client.authorizationCodeGrant(basic, flow.callback, opts)).id_token)
    const wrong = await client.discovery(new URL(g.issuer), g.clientId, 'not-the-secret', undefined, insecure)
    const again = await begin(wrong, 'openid email')
    const opts2 = { pkceCodeVerifier: again.verifier, expectedNonce: again.nonce, expectedState: again.state }
    t.match(await failure(client.authorizationCodeGrant(wrong, again.callback, opts2)), { error: 'invalid_client' })
  })

  t.test('a wrong verifier, a missing verifier and a reused code are refused', async (t) => {
    t.match(await failure(grant(await begin(config, 'openid'), client.randomPKCECodeVerifier())), {
      error: 'invalid_grant',
      error_description: 'Invalid code verifier.',
    })
    const noVerifier = await begin(config, 'openid')
    const res = await fetch(new URL('/token', g.issuer), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code: noVerifier.callback.searchParams.get('code') ?? '',
        redirect_uri: REDIRECT,
        client_id: g.clientId,
        client_secret: g.clientSecret,
      }),
    })
    t.same([res.status, await res.json()], [400, { error: 'invalid_grant', error_description: 'Missing code verifier.' }])
    const flow = await begin(config, 'openid')
    await grant(flow)
    t.match(await failure(grant(flow)), { error: 'invalid_grant' })
  })

  t.test('an unknown client_id gets an error page, not a redirect', async (t) => {
    const url = new URL('/authorize', g.issuer)
    url.search = new URLSearchParams({
      client_id: 'other.apps.googleusercontent.com',
      redirect_uri: REDIRECT,
      response_type: 'code',
    }).toString()
    const res = await fetch(url, { redirect: 'manual' })
    t.same([res.status, res.headers.get('location')], [401, null])
  })

  t.test('a minted code carries the attacker challenge and nonce', async (t) => {
    const verifier = client.randomPKCECodeVerifier()
    const code = await g.mintCode({
      codeChallenge: await client.calculatePKCECodeChallenge(verifier),
      nonce: 'attacker-nonce',
      redirectUri: REDIRECT,
    })
    const callback = new URL(`${REDIRECT}?code=${code}`)
    const tokens = await client.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: verifier,
      expectedNonce: 'attacker-nonce',
      idTokenExpected: true,
    })
    t.equal(tokens.claims()?.nonce, 'attacker-nonce')
  })

  const tampers = {
    aud: { aud: 'someone-else.apps.googleusercontent.com', claim: /"aud"/ },
    iss: { iss: 'https://accounts.google.com', claim: /"iss"/ },
    exp: { expiredSeconds: 120, claim: /"exp"/ },
    nonce: { nonce: 'another-nonce', claim: /"nonce"/ },
    'no nonce': { dropNonce: true, claim: /"nonce"/ },
  }
  for (const [name, { claim, ...tamper }] of Object.entries(tampers)) {
    t.test(`a tampered id_token (${name}) is refused, and only the next one is tampered`, async (t) => {
      g.state.tamper = tamper
      t.match(await failure(grant(await begin(config, 'openid'))), { cause: { message: claim } })
      t.equal(g.state.tamper, undefined)
      t.ok(await grant(await begin(config, 'openid')))
    })
  }
})

/** openid-client's view of GitHub's HTTP 200 error body: a token response without access_token. */
const githubError = (error: string) => ({ code: 'OAUTH_INVALID_RESPONSE', cause: { cause: { body: { error } } } })

t.test('GitHub-like', async (t) => {
  const gh = await startGitHubLike(t, {
    user: {
      id: 583231,
      login: 'octo',
      emails: [
        { email: 'octo@example.com', primary: true, verified: true, visibility: 'public' },
        { email: 'old@example.com', primary: false, verified: false },
      ],
    },
  })
  const server = { issuer: gh.baseUrl, authorization_endpoint: gh.authorizationUrl, token_endpoint: gh.tokenUrl }
  const configure = (auth?: client.ClientAuth, secret = gh.clientSecret) => {
    const config = new client.Configuration(server, gh.clientId, secret, auth)
    allowHttp(config)
    return config
  }
  const config = configure()
  const grant = (c: client.Configuration, f: Awaited<ReturnType<typeof begin>>, verifier = f.verifier) =>
    client.authorizationCodeGrant(c, f.callback, { pkceCodeVerifier: verifier, expectedState: f.state })
  const api = async (path: string, token?: string) => {
    const res = await fetch(new URL(path, gh.apiUrl), {
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    })
    return { status: res.status, body: await res.json() }
  }

  t.test('code + PKCE, then /user and /user/emails with the token', async (t) => {
    const tokens = await grant(config, await begin(config, 'read:user user:email'))
    t.match(tokens, { access_token: /^gho_\w{36}$/, token_type: 'bearer', scope: 'read:user,user:email' })
    t.match(await api('/user', tokens.access_token), {
      status: 200,
      body: { id: 583231, login: 'octo', email: 'octo@example.com' },
    })
    t.same((await api('/user/emails', tokens.access_token)).body, [
      { email: 'octo@example.com', primary: true, verified: true, visibility: 'public' },
      { email: 'old@example.com', primary: false, verified: false, visibility: null },
    ])
    t.equal((await api('/user')).status, 401)
    t.equal((await api('/user', 'gho_forged')).status, 401)
  })

  t.test('client_secret_basic works; a wrong secret is incorrect_client_credentials (HTTP 200)', async (t) => {
    const basic = configure(client.ClientSecretBasic(gh.clientSecret))
    t.ok((await grant(basic, await begin(basic, 'read:user'))).access_token)
    const wrong = configure(undefined, 'wrong')
    t.match(await failure(grant(wrong, await begin(wrong, 'read:user'))), githubError('incorrect_client_credentials'))
    const last = gh.requests.filter((r) => r.path === '/login/oauth/access_token').at(-1)
    t.match(last?.body, /client_secret=wrong/)
  })

  t.test('a wrong verifier and a reused code are bad_verification_code', async (t) => {
    const flow = await begin(config, 'read:user')
    t.match(await failure(grant(config, flow, client.randomPKCECodeVerifier())), githubError('bad_verification_code'))
    const retry = await failure(grant(config, flow))
    t.match(retry, githubError('bad_verification_code'), 'the failed attempt used the code up')
    const ok = await begin(config, 'read:user')
    await grant(config, ok)
    const res = await fetch(gh.tokenUrl, {
      method: 'POST',
      headers: { accept: 'application/json', 'content-type': 'application/json' },
      body: JSON.stringify({
        client_id: gh.clientId,
        client_secret: gh.clientSecret,
        code: ok.callback.searchParams.get('code'),
        code_verifier: ok.verifier,
      }),
    })
    t.equal(res.status, 200)
    t.match(await res.json(), { error: 'bad_verification_code' })
  })

  t.test('unknown client_id at authorize is a 400; minted codes redeem with their own verifier', async (t) => {
    const bad = new URL(gh.authorizationUrl)
    bad.searchParams.set('client_id', 'Ov23liUnknown')
    bad.searchParams.set('redirect_uri', REDIRECT)
    t.equal((await fetch(bad, { redirect: 'manual' })).status, 400)
    const verifier = client.randomPKCECodeVerifier()
    const code = await gh.mintCode({ codeChallenge: await client.calculatePKCECodeChallenge(verifier), redirectUri: REDIRECT })
    const tokens = await client.authorizationCodeGrant(config, new URL(`${REDIRECT}?code=${code}`), {
      pkceCodeVerifier: verifier,
    })
    t.ok(tokens.access_token)
  })

  t.test('errorsAs200: false answers token errors with 400', async (t) => {
    const strict = await startGitHubLike(t, { errorsAs200: false })
    const res = await fetch(strict.tokenUrl, {
      method: 'POST',
      headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: strict.clientId, client_secret: strict.clientSecret, code: 'nope' }),
    })
    t.equal(res.status, 400)
    t.match(await res.json(), { error: 'bad_verification_code' })
  })
})
