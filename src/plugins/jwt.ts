// Access tokens: @fastify/jwt with the asymmetric key of auth/keys.ts. Verification
// pins the algorithm(s) of our own keys (never HS*, never none), the issuer and
// the audience, and picks the public key by `kid`, so tokens signed by a previous
// key stay valid after a rotation. app.authenticate also asks the database whether
// the session (sid) is still live and the user still active.
// Tokens are typed `at+jwt` (RFC 9068) and only that type is accepted, so no other
// JWT signed with the same key (an ID token, a future mail token) passes as an access token.
import fastifyJwt, { type TokenOrHeader } from '@fastify/jwt'
import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { randomUUID } from 'node:crypto'
import { HttpProblem } from '../http/problem.ts'
import type { SigningKeys } from '../auth/keys.ts'
import { VerifiedTokens } from '../auth/verified-tokens.ts'

export interface AuthContext {
  userId: string
  sessionId: string
  jti: string
  /** How the user authenticated (RFC 8176 amr: pwd, fed, otp); absent in tokens of sessions that stated none. */
  amr?: string[]
}

/** What an access token says: the user, the session and, when known, how the user authenticated. */
export interface AccessClaims {
  userId: string
  sessionId: string
  amr?: readonly string[] | null
}

declare module 'fastify' {
  interface FastifyInstance {
    signAccessToken: (claims: AccessClaims) => Promise<{ token: string; expiresIn: number }>
    /** preHandler for protected routes: sets request.auth or answers 401 invalid_token. */
    authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
  }
  interface FastifyRequest {
    auth?: AuthContext
  }
}

export interface JwtPluginOptions {
  keys: SigningKeys
  issuer: string
  audience: string
  accessTokenTtlSeconds: number
  checkSession: (userId: string, sessionId: string) => Promise<boolean>
}

/** The claims authenticate reads; the rest of the token is fast-jwt's to check. */
type TokenClaims = { sub?: unknown; sid?: unknown; jti?: unknown; iat?: unknown; exp?: unknown; amr?: unknown }

const invalidToken = (detail: string) =>
  new HttpProblem(401, 'invalid_token', detail, { headers: { 'www-authenticate': 'Bearer error="invalid_token"' } })

const BEARER = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/

/** RFC 9068 §2.1: the `typ` header of a JWT access token. */
const ACCESS_TOKEN_TYP = 'at+jwt'

/**
 * How far in the future `iat` may be (the clocks of instances differ a little). A token
 * dated later than that was not issued by this service at this time: it was minted with
 * a stolen key or on a badly wrong clock, and an exp counted from a future iat would
 * keep it valid for longer than ACCESS_TOKEN_TTL_SECONDS.
 */
const MAX_CLOCK_SKEW_SECONDS = 60

/** sub and sid go into uuid parameters of the session check: anything else is not ours. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** decode.complete is on, so the callback sees { header, payload }; read the header either way. */
function headerOf(tokenOrHeader: TokenOrHeader): { kid?: unknown; alg?: unknown } {
  const header: unknown = 'header' in tokenOrHeader ? tokenOrHeader.header : tokenOrHeader
  return typeof header === 'object' && header !== null ? header : {}
}

export default fp<JwtPluginOptions>(
  async (app, opts) => {
    const { keys } = opts
    await app.register(fastifyJwt, {
      secret: {
        private: keys.privateKeyPem,
        // The key for the token's kid, and only if the token claims that key's algorithm.
        public: async (_request: FastifyRequest, tokenOrHeader: TokenOrHeader) => {
          const header = headerOf(tokenOrHeader)
          const entry = typeof header.kid === 'string' ? keys.publicKeyFor(header.kid) : undefined
          if (entry === undefined || header.alg !== entry.alg) throw new Error('unknown signing key')
          return entry.pem
        },
      },
      decode: { complete: true },
      sign: {
        algorithm: keys.alg,
        // fast-jwt writes typ: JWT unless the header says otherwise.
        header: { alg: keys.alg, typ: ACCESS_TOKEN_TYP },
        kid: keys.kid,
        iss: opts.issuer,
        aud: opts.audience,
        expiresIn: opts.accessTokenTtlSeconds,
      },
      verify: {
        algorithms: keys.algorithms,
        // fast-jwt compares case-insensitively and accepts `application/at+jwt` too (RFC 9068 §4).
        checkTyp: ACCESS_TOKEN_TYP,
        allowedIss: opts.issuer,
        allowedAud: opts.audience,
        requiredClaims: ['sub', 'sid', 'jti', 'iat', 'exp', 'iss', 'aud'],
        // Tokens seen before are answered by `verified` below, before fast-jwt is asked.
        cache: false,
      },
    })

    app.decorate('signAccessToken', async ({ userId, sessionId, amr }: AccessClaims) => {
      // amr (RFC 8176) lets other services require a second factor: ["pwd","otp"].
      const token = app.jwt.sign({ sub: userId, sid: sessionId, jti: randomUUID(), ...(amr == null ? {} : { amr: [...amr] }) })
      return { token, expiresIn: opts.accessTokenTtlSeconds }
    })

    // A token seen before is not verified again until its exp (auth/verified-tokens.ts);
    // 10,000: the bound fast-jwt's cache had here before.
    const verified = new VerifiedTokens<TokenClaims>({ maxEntries: 10_000 })

    app.decorate('authenticate', async (request: FastifyRequest) => {
      const header = request.headers.authorization
      const token = typeof header === 'string' ? BEARER.exec(header)?.[1] : undefined
      if (token === undefined) throw invalidToken('a Bearer access token is required')
      let payload = verified.get(token)
      if (payload === undefined) {
        try {
          payload = await request.jwtVerify<TokenClaims>()
        } catch {
          throw invalidToken('access token is invalid or expired')
        }
        if (typeof payload.exp === 'number') verified.set(token, payload, payload.exp)
      }
      const { sub, sid, jti, iat } = payload
      if (typeof sub !== 'string' || typeof sid !== 'string' || typeof jti !== 'string') {
        throw invalidToken('access token is invalid or expired')
      }
      if (typeof iat !== 'number' || iat > Date.now() / 1000 + MAX_CLOCK_SKEW_SECONDS) {
        throw invalidToken('access token is invalid or expired')
      }
      // A well-signed token with a malformed id must answer 401, not reach the database as a bad uuid.
      if (!UUID.test(sub) || !UUID.test(sid)) throw invalidToken('access token is invalid or expired')
      if (!(await opts.checkSession(sub, sid))) throw invalidToken('session has ended')
      const { amr } = payload
      request.auth = { userId: sub, sessionId: sid, jti }
      if (Array.isArray(amr) && amr.every((m) => typeof m === 'string')) request.auth.amr = amr
    })
  },
  { name: 'jwt', fastify: '5.x' },
)
