// The browser's part of a provider sign-in, played over real HTTP against the local
// authorization servers (test/helpers/oauth-servers.ts) and app.inject() against the
// service: start → provider (auto-approves) → callback → the app's fragment → exchange.
import type { LightMyRequestResponse } from 'fastify'
import type { Test } from 'tap'
import { build, json, type TestApp } from './app.ts'
import { startGitHubLike, startGoogleLike } from './oauth-servers.ts'

export type Provider = 'google' | 'github'

export interface OAuthHarness {
  h: TestApp
  google: Awaited<ReturnType<typeof startGoogleLike>>
  github: Awaited<ReturnType<typeof startGitHubLike>>
}

/** The app (APP_URL http://app.test, so redirects under http://app.test/ are allowed) with both providers on. */
export async function oauthHarness(t: Test, env: Record<string, string> = {}): Promise<OAuthHarness> {
  const google = await startGoogleLike(t)
  const github = await startGitHubLike(t)
  const h = await build(t, { ...providerEnv(google, github), ...env })
  return { h, google, github }
}

/** The settings that point the service at the two local authorization servers. */
export function providerEnv(google: OAuthHarness['google'], github: OAuthHarness['github']): Record<string, string> {
  return {
    OAUTH_GOOGLE_CLIENT_ID: google.clientId,
    OAUTH_GOOGLE_CLIENT_SECRET: google.clientSecret,
    OAUTH_GOOGLE_ISSUER: google.issuer,
    OAUTH_GITHUB_CLIENT_ID: github.clientId,
    OAUTH_GITHUB_CLIENT_SECRET: github.clientSecret,
    OAUTH_GITHUB_AUTHORIZATION_URL: `${github.baseUrl}/login/oauth/authorize`,
    OAUTH_GITHUB_TOKEN_URL: `${github.baseUrl}/login/oauth/access_token`,
    OAUTH_GITHUB_API_URL: github.baseUrl,
  }
}

/** The value of the binding cookie a response sets. */
export function bindingCookie(res: LightMyRequestResponse): string {
  const found = res.cookies.find((c) => c.name === 'oauth_binding')
  if (found === undefined) throw new Error(`no binding cookie (status ${String(res.statusCode)}: ${res.body})`)
  return found.value
}

export interface Started {
  res: LightMyRequestResponse
  authorizeUrl: URL
  cookie: string
}

/** GET /oauth/{provider}/start as a browser would (optionally with the binding cookie it already has). */
export async function start(h: TestApp, provider: Provider, opts: { redirect?: string; cookie?: string } = {}): Promise<Started> {
  const query = opts.redirect === undefined ? '' : `?redirect=${encodeURIComponent(opts.redirect)}`
  const res = await h.app.inject({
    method: 'GET',
    url: `/api/auth/oauth/${provider}/start${query}`,
    ...(opts.cookie === undefined ? {} : { cookies: { oauth_binding: opts.cookie } }),
  })
  if (res.statusCode !== 302) throw new Error(`start answered ${String(res.statusCode)}: ${res.body}`)
  return { res, authorizeUrl: new URL(String(res.headers.location)), cookie: bindingCookie(res) }
}

/** The provider's answer to the authorization request: where it sends the browser back (our callback URL). */
export async function atProvider(authorizeUrl: URL): Promise<URL> {
  const res = await fetch(authorizeUrl, { redirect: 'manual' })
  const location = res.headers.get('location')
  if (res.status < 300 || res.status > 399 || location === null) {
    throw new Error(`provider answered ${String(res.status)}: ${await res.text()}`)
  }
  return new URL(location, authorizeUrl)
}

/** GET the callback URL on the service with (or without) the binding cookie. */
export async function callback(h: TestApp, callbackUrl: URL, cookie: string | undefined): Promise<LightMyRequestResponse> {
  return h.app.inject({
    method: 'GET',
    url: `${callbackUrl.pathname}${callbackUrl.search}`,
    ...(cookie === undefined ? {} : { cookies: { oauth_binding: cookie } }),
  })
}

/** The outcome the callback put in the fragment of its redirect to the app. */
export function fragment(res: LightMyRequestResponse): { to: URL; values: URLSearchParams } {
  if (res.statusCode !== 302) throw new Error(`callback answered ${String(res.statusCode)}: ${res.body}`)
  const to = new URL(String(res.headers.location))
  return { to, values: new URLSearchParams(to.hash.slice(1)) }
}

export interface TokenPair {
  accessToken: string
  refreshToken: string
}

/** POST /oauth/exchange. */
export async function exchange(h: TestApp, code: string): Promise<LightMyRequestResponse> {
  return h.app.inject({ method: 'POST', url: '/api/auth/oauth/exchange', payload: { code } })
}

/** A whole sign-in; returns the fragment's values and, for a code, the token pair. */
export async function signIn(
  h: TestApp,
  provider: Provider,
  opts: { redirect?: string } = {},
): Promise<{ values: URLSearchParams; to: URL; tokens?: TokenPair }> {
  const started = await start(h, provider, opts)
  const back = await atProvider(started.authorizeUrl)
  const { to, values } = fragment(await callback(h, back, started.cookie))
  const code = values.get('code')
  if (code === null) return { to, values }
  const res = await exchange(h, code)
  if (res.statusCode !== 200) throw new Error(`exchange answered ${String(res.statusCode)}: ${res.body}`)
  return { to, values, tokens: json<TokenPair>(res) }
}

export interface Me {
  id: string
  email: string
  isVerified: boolean
  hasPassword: boolean
  providers: { provider: Provider; email: string | null }[]
}

export async function me(h: TestApp, accessToken: string): Promise<Me> {
  const res = await h.app.inject({ method: 'GET', url: '/api/auth/me', headers: { authorization: `Bearer ${accessToken}` } })
  if (res.statusCode !== 200) throw new Error(`me answered ${String(res.statusCode)}: ${res.body}`)
  return json<Me>(res)
}

export const PASSWORD = 'correct horse battery staple'

/** An account made by password: signed up, verified by its mailed link unless `verified: false`. */
export async function passwordAccount(h: TestApp, email: string, opts: { verified?: boolean } = {}): Promise<void> {
  const signup = await h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email, password: PASSWORD } })
  if (signup.statusCode !== 202) throw new Error(`signup answered ${String(signup.statusCode)}: ${signup.body}`)
  if (opts.verified === false) return
  const token = await h.tokenFor(email, /Confirm your email/)
  const verified = await h.app.inject({ method: 'POST', url: '/api/auth/verify-email', payload: { token } })
  if (verified.statusCode !== 200) throw new Error(`verify answered ${String(verified.statusCode)}: ${verified.body}`)
}

/** A password login; the token pair. */
export async function passwordLogin(h: TestApp, email: string, password = PASSWORD): Promise<LightMyRequestResponse> {
  return h.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email, password } })
}
