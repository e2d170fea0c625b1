// /api/auth/*: the HTTP contract of DESIGN.md. Handlers validate (TypeBox),
// call the AuthService, and shape the answer; no SQL, no policy here.
import { Type } from '@sinclair/typebox'
import type {} from '@fastify/rate-limit'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { AuthService, Ctx } from '../../auth/service.ts'
import { ProblemSchema } from '../../http/problem.ts'
import { Accepted, closed, Email, OpaqueToken, Password, Uuid } from '../../schemas/common.ts'

export interface AuthRoutesOptions {
  service: AuthService
  /** Stricter per-IP limit for the credential endpoints (login, signup, forgot, reset). */
  credentialRateLimit: { max: number; timeWindow: number } | false
}

const TokenPairSchema = closed({
  accessToken: Type.String(),
  refreshToken: Type.String(),
  tokenType: Type.Literal('Bearer'),
  expiresIn: Type.Integer(),
})
const LoginSchema = closed({
  ...TokenPairSchema.properties,
  // OWASP device cookie: sent back at the next login from this device, its guesses
  // count against it alone, so nobody else can lock the owner out (docs/security.md).
  deviceToken: Type.String(),
})
const MeSchema = closed({
  id: Uuid,
  email: Type.String(),
  isVerified: Type.Boolean(),
  createdAt: Type.String({ format: 'date-time' }),
  lastLoginAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
})
const SessionSchema = closed({
  id: Uuid,
  device: Type.Union([Type.String(), Type.Null()]),
  ip: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
  lastUsedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  expiresAt: Type.String({ format: 'date-time' }),
  current: Type.Boolean(),
})

const problems = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, ProblemSchema]))
const tags = ['auth']
const bearer = [{ bearerAuth: [] }]

export function requestContext(request: FastifyRequest): Ctx {
  const ua = request.headers['user-agent']
  return { ip: request.ip, userAgent: typeof ua === 'string' ? ua.slice(0, 512) : null, requestId: request.id }
}

function authOf(request: FastifyRequest): { userId: string; sessionId: string } {
  // Set by app.authenticate (preHandler) on every protected route.
  const auth = request.auth
  if (auth === undefined) throw new Error('authenticate preHandler missing')
  return auth
}

/** Answers that carry tokens or personal data must not be kept by a browser or proxy cache. */
async function noStore(_request: FastifyRequest, reply: FastifyReply): Promise<void> {
  void reply.header('cache-control', 'no-store')
}

const ACCEPTED = { message: 'if the address can receive mail, a message is on its way' }

export default async function authRoutes(app: FastifyInstance, opts: AuthRoutesOptions): Promise<void> {
  const { service } = opts
  const limited: { rateLimit?: { max: number; timeWindow: number } } =
    opts.credentialRateLimit === false ? {} : { rateLimit: opts.credentialRateLimit }

  app.post(
    '/signup',
    {
      config: limited,
      schema: { tags, body: closed({ email: Email, password: Password }), response: { 202: Accepted, ...problems(400, 413, 415, 429) } },
    },
    async (request, reply) => {
      const { email, password } = request.body as { email: string; password: string }
      await service.signup(email, password, requestContext(request))
      return reply.code(202).send(ACCEPTED)
    },
  )

  app.post(
    '/verify-email',
    { schema: { tags, body: closed({ token: OpaqueToken }), response: { 200: closed({ verified: Type.Literal(true) }), ...problems(400) } } },
    async (request) => {
      await service.verifyEmail((request.body as { token: string }).token, requestContext(request))
      return { verified: true as const }
    },
  )

  app.post(
    '/resend-verification',
    { config: limited, schema: { tags, body: closed({ email: Email }), response: { 202: Accepted, ...problems(400, 429) } } },
    async (request, reply) => {
      await service.resendVerification((request.body as { email: string }).email, requestContext(request))
      return reply.code(202).send(ACCEPTED)
    },
  )

  app.post(
    '/login',
    {
      config: limited,
      onRequest: noStore,
      schema: {
        tags,
        body: closed({ email: Email, password: Password, deviceToken: Type.Optional(OpaqueToken) }),
        response: { 200: LoginSchema, ...problems(400, 401, 403, 429) },
      },
    },
    async (request) => {
      const { email, password, deviceToken } = request.body as { email: string; password: string; deviceToken?: string }
      return service.login(email, password, deviceToken, requestContext(request))
    },
  )

  app.post(
    '/refresh',
    { onRequest: noStore, schema: { tags, body: closed({ refreshToken: OpaqueToken }), response: { 200: TokenPairSchema, ...problems(400, 401) } } },
    async (request) => service.refresh((request.body as { refreshToken: string }).refreshToken, requestContext(request)),
  )

  app.post(
    '/logout',
    { schema: { tags, body: closed({ refreshToken: OpaqueToken }), response: { 204: Type.Null(), ...problems(400) } } },
    async (request, reply) => {
      await service.logout((request.body as { refreshToken: string }).refreshToken, requestContext(request))
      return reply.code(204).send()
    },
  )

  app.post(
    '/logout-all',
    { preHandler: app.authenticate, schema: { tags, security: bearer, response: { 204: Type.Null(), ...problems(401) } } },
    async (request, reply) => {
      await service.logoutAll(authOf(request).userId, requestContext(request))
      return reply.code(204).send()
    },
  )

  app.get(
    '/me',
    { onRequest: noStore, preHandler: app.authenticate, schema: { tags, security: bearer, response: { 200: MeSchema, ...problems(401) } } },
    async (request) => {
      const user = await service.me(authOf(request).userId)
      return {
        id: user.id,
        email: user.email,
        isVerified: user.isVerified,
        createdAt: user.createdAt.toISOString(),
        lastLoginAt: user.lastLoginAt?.toISOString() ?? null,
      }
    },
  )

  app.delete(
    '/me',
    {
      // A re-authentication is a password guess: the credential limit and the lockout apply.
      config: limited,
      preHandler: app.authenticate,
      schema: { tags, security: bearer, body: closed({ password: Password }), response: { 204: Type.Null(), ...problems(400, 401, 429) } },
    },
    async (request, reply) => {
      await service.deleteAccount(authOf(request).userId, (request.body as { password: string }).password, requestContext(request))
      return reply.code(204).send()
    },
  )

  app.post(
    '/change-password',
    {
      config: limited,
      preHandler: app.authenticate,
      schema: {
        tags,
        security: bearer,
        body: closed({ currentPassword: Password, newPassword: Password }),
        response: { 204: Type.Null(), ...problems(400, 401, 429) },
      },
    },
    async (request, reply) => {
      const { userId, sessionId } = authOf(request)
      const { currentPassword, newPassword } = request.body as { currentPassword: string; newPassword: string }
      await service.changePassword(userId, sessionId, currentPassword, newPassword, requestContext(request))
      return reply.code(204).send()
    },
  )

  app.post(
    '/forgot-password',
    { config: limited, schema: { tags, body: closed({ email: Email }), response: { 202: Accepted, ...problems(400, 429) } } },
    async (request, reply) => {
      await service.forgotPassword((request.body as { email: string }).email, requestContext(request))
      return reply.code(202).send(ACCEPTED)
    },
  )

  app.post(
    '/reset-password',
    {
      config: limited,
      schema: { tags, body: closed({ token: OpaqueToken, newPassword: Password }), response: { 204: Type.Null(), ...problems(400, 429) } },
    },
    async (request, reply) => {
      const { token, newPassword } = request.body as { token: string; newPassword: string }
      await service.resetPassword(token, newPassword, requestContext(request))
      return reply.code(204).send()
    },
  )

  app.get(
    '/sessions',
    {
      onRequest: noStore,
      preHandler: app.authenticate,
      schema: { tags, security: bearer, response: { 200: Type.Array(SessionSchema), ...problems(401) } },
    },
    async (request) => {
      const { userId, sessionId } = authOf(request)
      const rows = await service.sessions(userId, sessionId)
      return rows.map((s) => ({
        id: s.familyId,
        device: s.userAgent,
        ip: s.ip,
        createdAt: s.createdAt.toISOString(),
        lastUsedAt: s.lastUsedAt.toISOString(),
        expiresAt: s.expiresAt.toISOString(),
        current: s.current,
      }))
    },
  )

  app.delete(
    '/sessions/:id',
    {
      preHandler: app.authenticate,
      schema: { tags, security: bearer, params: closed({ id: Uuid }), response: { 204: Type.Null(), ...problems(400, 401, 404) } },
    },
    async (request, reply) => {
      await service.endSession(authOf(request).userId, (request.params as { id: string }).id, requestContext(request))
      return reply.code(204).send()
    },
  )
}
