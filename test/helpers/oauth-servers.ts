// Real local authorization servers for the sign-in tests, shaped like the two
// providers the service trusts: a Google-like OpenID Provider (oauth2-mock-server:
// claims set through its event hooks, and a gate in front of it refusing what
// Google refuses, which the mock itself accepts) and a
// GitHub-like OAuth 2.0 server written on node:http (GitHub has no discovery and
// no id_token, and answers its token errors with HTTP 200).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { once } from 'node:events'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import { Events, OAuth2Issuer, OAuth2Service, type MutableRedirectUri, type MutableResponse, type MutableToken } from 'oauth2-mock-server'
import type { Test } from 'tap'

// ---------- shared pieces ----------

const s256 = (verifier: string) => createHash('sha256').update(verifier).digest('base64url')
const randomToken = (bytes: number) => randomBytes(bytes).toString('base64url')

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** RFC 6749 §2.3.1: Basic credentials are form-encoded before base64 (openid-client does so). */
function basicCredentials(header: string | undefined): { id: string; secret: string } | undefined {
  const m = /^Basic\s+(\S+)$/i.exec(header ?? '')
  if (m?.[1] === undefined) return undefined
  const decoded = Buffer.from(m[1], 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon < 0) return undefined
  const formDecode = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '))
  return { id: formDecode(decoded.slice(0, colon)), secret: formDecode(decoded.slice(colon + 1)) }
}

type Body = Record<string, unknown>

const str = (v: unknown) => (typeof v === 'string' ? v : undefined)

/** Client credentials from HTTP Basic, else from the body (client_secret_post). */
function clientCredentials(req: IncomingMessage, body: Body): { id: string; secret: string } {
  const basic = basicCredentials(req.headers.authorization)
  if (basic !== undefined) return basic
  return { id: str(body.client_id) ?? '', secret: str(body.client_secret) ?? '' }
}

/** The `code` a redirect-less GET of an authorization URL would hand back. */
async function codeFrom(url: URL): Promise<string> {
  const res = await fetch(url, { redirect: 'manual' })
  const location = res.headers.get('location')
  const code = location === null ? null : new URL(location).searchParams.get('code')
  if (code === null) throw new Error(`no code from ${url.pathname}: HTTP ${res.status} ${await res.text()}`)
  return code
}

function send(res: ServerResponse, status: number, body: unknown, contentType = 'application/json; charset=utf-8') {
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function parseBody(req: IncomingMessage, raw: string): Body {
  if (raw === '') return {}
  if ((req.headers['content-type'] ?? '').includes('application/json')) {
    const parsed: unknown = JSON.parse(raw)
    return typeof parsed === 'object' && parsed !== null ? (parsed as Body) : {}
  }
  return Object.fromEntries(new URLSearchParams(raw))
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/** An HTTP server on 127.0.0.1 with an OS-picked port, closed at teardown. */
async function listen(t: Test, handler: http.RequestListener) {
  const server = http.createServer(handler)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const stop = () => new Promise<void>((resolve) => server.close(() => resolve()))
  t.teardown(stop)
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, stop }
}

// ---------- Google-like ----------

export interface GoogleUser {
  /** Google's subject: a numeric string, stable per account. */
  sub: string
  email: string
  email_verified: boolean
  name: string
}

/** Applied to the next id_token only: the helper clears `state.tamper` once it has signed one. */
export interface IdTokenTamper {
  aud?: string
  iss?: string
  /** exp (and iat) this many seconds in the past; openid-client tolerates 30 s of skew. */
  expiredSeconds?: number
  nonce?: string
  dropNonce?: boolean
}

export interface GoogleState {
  user: GoogleUser
  tamper: IdTokenTamper | undefined
}

export interface GoogleOptions {
  user?: Partial<GoogleUser>
  clientId?: string
  clientSecret?: string
}

interface IssuedCode {
  clientId: string
  redirectUri: string
  codeChallenge: string | undefined
  method: string
  used: boolean
}

type Refusal = [error: string, description: string]

const VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/

function pkceRefusal(issued: IssuedCode, verifier: string | undefined): Refusal | undefined {
  if (issued.codeChallenge === undefined)
    return verifier === undefined ? undefined : ['invalid_grant', 'code_verifier or verifier is not needed.']
  if (verifier === undefined) return ['invalid_grant', 'Missing code verifier.']
  const derived = issued.method === 'S256' ? s256(verifier) : verifier
  if (!VERIFIER.test(verifier) || derived !== issued.codeChallenge) return ['invalid_grant', 'Invalid code verifier.']
  return undefined
}

/** Why Google would refuse this /token request, or undefined if it would not. */
function tokenRefusal(
  req: IncomingMessage,
  body: Body,
  codes: Map<string, IssuedCode>,
  client: { id: string; secret: string },
): Refusal | undefined {
  const given = clientCredentials(req, body)
  if (given.id !== client.id || !sameSecret(given.secret, client.secret)) return ['invalid_client', 'The OAuth client was not found.']
  if (body.grant_type !== 'authorization_code') return ['unsupported_grant_type', 'Invalid grant_type.']
  const issued = codes.get(str(body.code) ?? '')
  if (issued === undefined || issued.used) return ['invalid_grant', 'Bad Request']
  issued.used = true
  if (issued.clientId !== given.id) return ['invalid_grant', 'Bad Request']
  if (issued.redirectUri !== body.redirect_uri) return ['redirect_uri_mismatch', 'Bad Request']
  return pkceRefusal(issued, str(body.code_verifier))
}

/** The same request again, for a handler that reads the body this gate already read. */
function replay(req: IncomingMessage, raw: Buffer): IncomingMessage {
  const copy = Object.assign(Readable.from([raw]), { method: req.method, url: req.url, headers: req.headers })
  return copy as unknown as IncomingMessage
}

/**
 * The mock accepts any client and any code, and answers its own PKCE failures
 * as application/problem+json; Google answers OAuth errors. So /authorize and
 * /token pass this gate first, and only what Google would accept reaches the mock.
 */
function gate(service: OAuth2Service, clientId: string, check: (req: IncomingMessage, body: Body) => Refusal | undefined) {
  async function handle(req: IncomingMessage, res: ServerResponse) {
    const raw = await readBody(req)
    const refusal = check(req, parseBody(req, raw.toString('utf8')))
    if (refusal !== undefined) return send(res, 400, { error: refusal[0], error_description: refusal[1] })
    service.requestHandler(replay(req, raw), res)
  }
  return (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    const route = `${req.method} ${url.pathname}`
    // Google shows an error page, and does not redirect, for an unknown client.
    if (route === 'GET /authorize' && url.searchParams.get('client_id') !== clientId)
      return send(res, 401, 'Error 401: invalid_client. The OAuth client was not found.', 'text/plain; charset=utf-8')
    if (route !== 'POST /token') return service.requestHandler(req, res)
    handle(req, res).catch(() => send(res, 400, { error: 'invalid_request', error_description: 'Bad Request' }))
  }
}

function applyTamper(payload: Record<string, unknown>, tamper: IdTokenTamper) {
  if (tamper.aud !== undefined) payload.aud = tamper.aud
  if (tamper.iss !== undefined) payload.iss = tamper.iss
  if (tamper.expiredSeconds !== undefined) {
    const now = Math.floor(Date.now() / 1000)
    payload.exp = now - tamper.expiredSeconds
    payload.iat = now - tamper.expiredSeconds - 3600
    payload.nbf = payload.iat
  }
  if (tamper.nonce !== undefined) payload.nonce = tamper.nonce
  if (tamper.dropNonce === true) delete payload.nonce
}

/**
 * A Google-shaped OpenID Provider on 127.0.0.1 (oauth2-mock-server behind a
 * /token gate). /authorize approves at once; /token refuses, with 400 and
 * Google's error JSON, a wrong client, an unknown or reused code, a redirect_uri
 * other than the authorize request's, and a missing or wrong PKCE verifier. The
 * id_token and /userinfo carry `state.user` as it is when /token answers.
 */
export async function startGoogleLike(t: Test, opts: GoogleOptions = {}) {
  const clientId = opts.clientId ?? `${randomBytes(6).readUIntBE(0, 6)}-test.apps.googleusercontent.com`
  const clientSecret = opts.clientSecret ?? `GOCSPX-${randomToken(21)}`
  const state: GoogleState = {
    user: {
      sub: String(100000000000000000000n + BigInt(randomBytes(6).readUIntBE(0, 6))),
      email: 'ada@example.com',
      email_verified: true,
      name: 'Ada Lovelace',
      ...opts.user,
    },
    tamper: undefined,
  }
  const authorizeRequests: Record<string, string | string[]>[] = []
  const codes = new Map<string, IssuedCode>()
  const accessTokens = new Map<string, GoogleUser>()
  const idTokenRequests = new WeakSet<IncomingMessage>()

  const keys = new OAuth2Issuer()
  await keys.keys.generate('RS256')
  const service = new OAuth2Service(keys)
  const check = (req: IncomingMessage, body: Body) => tokenRefusal(req, body, codes, { id: clientId, secret: clientSecret })
  const { url: issuer, stop } = await listen(t, gate(service, clientId, check))
  keys.url = issuer

  service.on(Events.BeforeWellKnownOpenIdConfiguration, (res: MutableResponse) => {
    if (res.body !== '')
      Object.assign(res.body, {
        token_endpoint_auth_methods_supported: ['client_secret_post', 'client_secret_basic'],
        scopes_supported: ['openid', 'email', 'profile'],
        claims_supported: ['aud', 'email', 'email_verified', 'exp', 'iat', 'iss', 'name', 'sub'],
      })
  })

  service.on(Events.BeforeAuthorizeRedirect, ({ url }: MutableRedirectUri, req: IncomingMessage & { query?: unknown }) => {
    const query = (req.query ?? {}) as Record<string, string | string[]>
    authorizeRequests.push(query)
    const code = url.searchParams.get('code')
    if (code === null) return
    codes.set(code, {
      clientId: str(query.client_id) ?? '',
      redirectUri: str(query.redirect_uri) ?? '',
      codeChallenge: str(query.code_challenge),
      method: str(query.code_challenge_method) ?? 'plain',
      used: false,
    })
  })

  // Fired twice per authorization_code request (the mock signs the access token
  // first, then the id_token); only the id_token carries the user.
  service.on(Events.BeforeTokenSigning, (token: MutableToken, req: IncomingMessage) => {
    if (!idTokenRequests.has(req)) {
      idTokenRequests.add(req)
      return
    }
    Object.assign(token.payload, { ...state.user, aud: clientId, azp: clientId })
    if (state.tamper !== undefined) {
      applyTamper(token.payload, state.tamper)
      state.tamper = undefined
    }
  })

  service.on(Events.BeforeResponse, (res: MutableResponse) => {
    if (res.body !== '' && typeof res.body.access_token === 'string') accessTokens.set(res.body.access_token, { ...state.user })
  })

  service.on(Events.BeforeUserinfo, (res: MutableResponse, req: IncomingMessage) => {
    const token = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1]
    const user = token === undefined ? undefined : accessTokens.get(token)
    res.statusCode = user === undefined ? 401 : 200
    res.body = user === undefined ? { error: 'invalid_request', error_description: 'Invalid Credentials' } : { ...user }
  })

  return {
    issuer,
    clientId,
    clientSecret,
    state,
    authorizeRequests,
    /** A code bound to the caller's own PKCE challenge, as an attacker holding another login would get. */
    mintCode({ codeChallenge, nonce, redirectUri }: { codeChallenge?: string; nonce?: string; redirectUri: string }) {
      const url = new URL('/authorize', issuer)
      const params: Record<string, string> = { client_id: clientId, redirect_uri: redirectUri, response_type: 'code' }
      params.scope = 'openid email profile'
      if (codeChallenge !== undefined) Object.assign(params, { code_challenge: codeChallenge, code_challenge_method: 'S256' })
      if (nonce !== undefined) params.nonce = nonce
      for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v)
      return codeFrom(url)
    },
    stop,
  }
}

// ---------- GitHub-like ----------

export interface GitHubEmail {
  email: string
  primary: boolean
  verified: boolean
  /** GitHub: 'public' | 'private' on the primary address, null on the others. Default: 'private' on primary. */
  visibility?: 'public' | 'private' | null
}

export interface GitHubUser {
  id: number
  login: string
  name: string | null
  emails: GitHubEmail[]
}

export interface GitHubOptions {
  user?: Partial<GitHubUser>
  clientId?: string
  clientSecret?: string
  /** GitHub answers token errors with HTTP 200; false answers them with 400 instead. */
  errorsAs200?: boolean
}

export interface LoggedRequest {
  method: string
  path: string
  query: Record<string, string>
  headers: http.IncomingHttpHeaders
  body: string
}

interface GitHubCode {
  clientId: string
  redirectUri: string
  codeChallenge: string | undefined
  scope: string
  user: GitHubUser
  expiresAt: number
}

const CODE_TTL_MS = 10 * 60 * 1000

const visibilityOf = (e: GitHubEmail) => (e.visibility !== undefined ? e.visibility : e.primary ? 'private' : null)

/**
 * A GitHub-shaped OAuth 2.0 server on 127.0.0.1: /login/oauth/authorize,
 * /login/oauth/access_token, /user and /user/emails, all on one base URL.
 */
export async function startGitHubLike(t: Test, opts: GitHubOptions = {}) {
  const clientId = opts.clientId ?? `Ov23li${randomBytes(7).toString('hex')}`
  const clientSecret = opts.clientSecret ?? randomBytes(20).toString('hex')
  const errorsAs200 = opts.errorsAs200 ?? true
  const state: { user: GitHubUser } = {
    user: {
      id: 1000 + randomBytes(3).readUIntBE(0, 3),
      login: 'octocat',
      name: 'The Octocat',
      emails: [{ email: 'octocat@example.com', primary: true, verified: true }],
      ...opts.user,
    },
  }
  const requests: LoggedRequest[] = []
  const codes = new Map<string, GitHubCode>()
  const tokens = new Map<string, GitHubUser>()

  function authorize(query: Record<string, string>, res: ServerResponse) {
    if (query.client_id !== clientId || query.redirect_uri === undefined) return send(res, 400, 'Not Found', 'text/plain')
    const code = randomBytes(10).toString('hex')
    codes.set(code, {
      clientId,
      redirectUri: query.redirect_uri,
      codeChallenge: query.code_challenge,
      scope: (query.scope ?? '')
        .split(/[\s,]+/)
        .filter(Boolean)
        .join(','),
      user: state.user,
      expiresAt: Date.now() + CODE_TTL_MS,
    })
    const to = new URL(query.redirect_uri)
    to.searchParams.set('code', code)
    if (query.state !== undefined) to.searchParams.set('state', query.state)
    res.writeHead(302, { location: to.href }).end()
  }

  /** The error GitHub would answer this redemption with, or the code's grant. */
  function redeem(req: IncomingMessage, body: Body): { error: string; description: string } | GitHubCode {
    const given = clientCredentials(req, body)
    if (given.id !== clientId || !sameSecret(given.secret, clientSecret))
      return { error: 'incorrect_client_credentials', description: 'The client_id and/or client_secret passed are incorrect.' }
    const code = str(body.code) ?? ''
    const grant = codes.get(code)
    codes.delete(code)
    const bad = { error: 'bad_verification_code', description: 'The code passed is incorrect or expired.' }
    if (grant === undefined || grant.expiresAt < Date.now() || grant.clientId !== given.id) return bad
    if (body.redirect_uri !== undefined && body.redirect_uri !== grant.redirectUri)
      return {
        error: 'redirect_uri_mismatch',
        description: 'The redirect_uri MUST match the registered callback URL for this application.',
      }
    if (grant.codeChallenge !== undefined) {
      const verifier = str(body.code_verifier)
      if (verifier === undefined || s256(verifier) !== grant.codeChallenge) return bad
    }
    return grant
  }

  function accessToken(req: IncomingMessage, body: Body, res: ServerResponse) {
    const result = redeem(req, body)
    const json = (req.headers.accept ?? '').includes('application/json')
    const reply = (status: number, fields: Record<string, string>) =>
      json
        ? send(res, status, fields)
        : send(res, status, new URLSearchParams(fields).toString(), 'application/x-www-form-urlencoded; charset=utf-8')
    if ('error' in result) {
      const fields = {
        error: result.error,
        error_description: result.description,
        error_uri: 'https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors',
      }
      return reply(errorsAs200 ? 200 : 400, fields)
    }
    const token = `gho_${randomBytes(27).toString('base64url').replace(/[-_]/g, 'x').slice(0, 36)}`
    tokens.set(token, result.user)
    reply(200, { access_token: token, token_type: 'bearer', scope: result.scope })
  }

  function api(path: string, req: IncomingMessage, res: ServerResponse) {
    const m = /^(?:Bearer|token)\s+(\S+)$/i.exec(req.headers.authorization ?? '')
    const docs = 'https://docs.github.com/rest'
    if (m?.[1] === undefined) return send(res, 401, { message: 'Requires authentication', documentation_url: docs })
    const user = tokens.get(m[1])
    if (user === undefined) return send(res, 401, { message: 'Bad credentials', documentation_url: docs })
    const emails = user.emails.map((e) => ({ email: e.email, primary: e.primary, verified: e.verified, visibility: visibilityOf(e) }))
    if (path === '/user/emails') return send(res, 200, emails)
    const publicEmail = emails.find((e) => e.visibility === 'public')?.email ?? null
    send(res, 200, { id: user.id, login: user.login, name: user.name, email: publicEmail, type: 'User' })
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    const raw = (await readBody(req)).toString('utf8')
    const query = Object.fromEntries(url.searchParams)
    requests.push({ method: req.method ?? '', path: url.pathname, query, headers: req.headers, body: raw })
    const route = `${req.method} ${url.pathname}`
    if (route === 'GET /login/oauth/authorize') return authorize(query, res)
    if (route === 'POST /login/oauth/access_token') return accessToken(req, parseBody(req, raw), res)
    if (route === 'GET /user' || route === 'GET /user/emails') return api(url.pathname, req, res)
    send(res, 404, { message: 'Not Found' })
  }

  const { url: baseUrl, stop } = await listen(t, (req, res) => {
    handle(req, res).catch((err: unknown) => send(res, 400, { message: String(err) }))
  })

  return {
    baseUrl,
    authorizationUrl: `${baseUrl}/login/oauth/authorize`,
    tokenUrl: `${baseUrl}/login/oauth/access_token`,
    apiUrl: baseUrl,
    clientId,
    clientSecret,
    state,
    requests,
    /** A code bound to the caller's own PKCE challenge, as an attacker holding another login would get. */
    mintCode({ codeChallenge, redirectUri }: { codeChallenge?: string; redirectUri: string }) {
      const url = new URL('/login/oauth/authorize', baseUrl)
      url.searchParams.set('client_id', clientId)
      url.searchParams.set('redirect_uri', redirectUri)
      url.searchParams.set('scope', 'read:user user:email')
      if (codeChallenge !== undefined) {
        url.searchParams.set('code_challenge', codeChallenge)
        url.searchParams.set('code_challenge_method', 'S256')
      }
      return codeFrom(url)
    },
    stop,
  }
}
