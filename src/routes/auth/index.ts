// /api/auth/*: the HTTP contract of DESIGN.md. Handlers validate (TypeBox),
// call the AuthService, and shape the answer; no SQL, no policy here.
import type {} from '@fastify/rate-limit'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { AuthService } from '../../auth/service.ts'
import { badRequest } from '../../http/problem.ts'
import {
  ChangePasswordBody,
  EmailBody,
  LinkTokenBody,
  LoginBody,
  LoginSchema,
  MeSchema,
  PasswordBody,
  RefreshTokenBody,
  ResetPasswordBody,
  SessionParams,
  SessionsSchema,
  SignupBody,
  TokenPairSchema,
  VerifiedSchema,
} from '../../schemas/auth.ts'
import { authOf, noStore, requestContext } from './request.ts'
import { Accepted } from '../../schemas/common.ts'
import { json, noContent, responses, type Exposure } from '../../schemas/responses.ts'

export interface AuthRoutesOptions {
  service: AuthService
  /** Stricter per-IP limit for the credential endpoints (login, signup, forgot, reset). */
  credentialRateLimit: { max: number; timeWindow: number } | false
}

const tags = ['auth']
/** Operations with a Bearer access token, and those without any credential. */
const bearer = { tags, security: [{ bearerAuth: [] }] }
const open = { tags, security: [] }

// Every /api/auth operation is under the per-IP limit and reaches the database; a
// POST or DELETE has its body parsed whether or not it declares one.
const api: Exposure = { rateLimited: true, database: true }
const withBody: Exposure = { ...api, body: true }
const withToken: Exposure = { ...api, bearer: true }

// The codes routes answer beyond what the plugins do (DESIGN.md, docs/security.md).
const PASSWORD_POLICY =
  'the password breaks the policy (`password_too_short`, `password_too_long`, `password_too_common`, `password_breached`)'
const LINK = 'the link is invalid, expired or already used (`invalid_token`, `token_expired`, `token_used`)'
const BREACH_CHECK = 'the breached-password check is unavailable (`breach_check_unavailable`, when PASSWORD_BREACH_FAIL_OPEN=false)'
const WRONG_PASSWORD = 'the password is wrong (`invalid_credentials`; counts as a failed login)'
const LOCKED = 'too many failed logins (`too_many_attempts`); wait Retry-After seconds'
/** The sensitive operations' second factor (two-factor on): docs/security.md, "Two-factor". */
export const MFA_MISSING = 'two-factor sign-in is on and neither `code` nor `recoveryCode` was sent (`mfa_required`)'
export const MFA_WRONG = 'the two-factor code is wrong or used (`invalid_mfa_code`; counts as a failed login)'
const ACCEPTED_WHY = 'Accepted; the same answer whether or not the address has an account'

type Account = Awaited<ReturnType<AuthService['me']>>

/**
 * The answer built for each account row: the session cache hands GET /me the same row
 * object until it is invalidated or expires, so the body (dates formatted, providers
 * mapped) is built once per row, not per call; a new row is a new key.
 */
const meBodies = new WeakMap<Account, ReturnType<typeof buildMeBody>>()

/** The GET /me answer (also PATCH /me's, routes/auth/profile.ts). */
export function meBody(user: Account): ReturnType<typeof buildMeBody> {
  let body = meBodies.get(user)
  if (body === undefined) {
    body = buildMeBody(user)
    meBodies.set(user, body)
  }
  return body
}

function buildMeBody(user: Account) {
  return {
    id: user.id,
    email: user.email,
    isVerified: user.isVerified,
    createdAt: user.createdAt.toISOString(),
    lastLoginAt: user.lastLoginAt?.toISOString() ?? null,
    hasPassword: user.hashedPassword !== null,
    mfaEnabled: user.mfaEnabled,
    username: user.username,
    firstName: user.firstName,
    lastName: user.lastName,
    phone: user.phone,
    providers: user.providers.map((p) => ({
      provider: p.provider,
      email: p.email,
      linkedAt: p.createdAt.toISOString(),
      lastLoginAt: p.lastLoginAt?.toISOString() ?? null,
    })),
  }
}

const ACCEPTED = { message: 'if the address can receive mail, a message is on its way' }

const authRoutes: FastifyPluginAsyncTypebox<AuthRoutesOptions> = async (app, opts) => {
  const { service } = opts
  const limited: { rateLimit?: { max: number; timeWindow: number } } =
    opts.credentialRateLimit === false ? {} : { rateLimit: opts.credentialRateLimit }

  app.post(
    '/signup',
    {
      config: limited,
      schema: {
        ...open,
        operationId: 'signup',
        summary: 'Create an account and mail a verification link',
        body: SignupBody,
        response: responses(
          { 202: json(ACCEPTED_WHY, Accepted) },
          { ...withBody, errors: { 400: `${PASSWORD_POLICY} or the address is not valid (\`invalid_email\`)`, 503: BREACH_CHECK } },
        ),
      },
    },
    async (request, reply) => {
      const { email, password } = request.body
      await service.signup(email, password, requestContext(request))
      return reply.code(202).send(ACCEPTED)
    },
  )

  app.post(
    '/verify-email',
    {
      schema: {
        ...open,
        operationId: 'verifyEmail',
        summary: 'Confirm an email address with the token of the mailed link',
        body: LinkTokenBody,
        response: responses({ 200: json('The address is verified', VerifiedSchema) }, { ...withBody, errors: { 400: LINK } }),
      },
    },
    async (request) => {
      await service.verifyEmail(request.body.token, requestContext(request))
      return { verified: true as const }
    },
  )

  app.post(
    '/resend-verification',
    {
      config: limited,
      schema: {
        ...open,
        operationId: 'resendVerification',
        summary: 'Mail a new verification link',
        body: EmailBody,
        response: responses({ 202: json(ACCEPTED_WHY, Accepted) }, withBody),
      },
    },
    async (request, reply) => {
      await service.resendVerification(request.body.email, requestContext(request))
      return reply.code(202).send(ACCEPTED)
    },
  )

  app.post(
    '/login',
    {
      config: limited,
      onRequest: noStore,
      schema: {
        ...open,
        operationId: 'login',
        summary: 'Log in with email or username and password: a token pair and a device token',
        body: LoginBody,
        response: responses(
          {
            200: json(
              'A new session: the token pair and the device token to send at the next login; or, when the account has two-factor sign-in on, `{mfaRequired: true, mfaToken}` (no tokens yet: POST /api/auth/mfa/verify)',
              LoginSchema,
            ),
          },
          {
            ...withBody,
            errors: {
              400: 'neither or both of email and identifier (`validation_failed`)',
              401: 'the email, username or password is wrong (`invalid_credentials`; an unknown username answers the same)',
              403: 'the address is not verified yet (`email_not_verified`, when REQUIRE_EMAIL_VERIFICATION is on)',
              429: LOCKED,
            },
          },
        ),
      },
    },
    async (request) => {
      const { email, identifier, password, deviceToken } = request.body
      // Either name of the account, never both: a client sends what its user typed.
      const name = email ?? identifier
      if (name === undefined || (email !== undefined && identifier !== undefined)) {
        throw badRequest('validation_failed', 'send exactly one of email and identifier')
      }
      return service.login(name, password, deviceToken, requestContext(request))
    },
  )

  app.post(
    '/refresh',
    {
      onRequest: noStore,
      schema: {
        ...open,
        operationId: 'refresh',
        summary: 'Exchange a refresh token for a new pair (the old one is spent)',
        body: RefreshTokenBody,
        response: responses(
          { 200: json('A new token pair', TokenPairSchema) },
          {
            ...withBody,
            errors: { 401: 'the refresh token is invalid, expired or revoked (`invalid_refresh_token`); a reused one ends its session' },
          },
        ),
      },
    },
    async (request) => service.refresh(request.body.refreshToken, requestContext(request)),
  )

  app.post(
    '/logout',
    {
      schema: {
        ...open,
        operationId: 'logout',
        summary: 'End the session of a refresh token',
        body: RefreshTokenBody,
        response: responses({ 204: noContent('The session has ended (also when it had already)') }, withBody),
      },
    },
    async (request, reply) => {
      await service.logout(request.body.refreshToken, requestContext(request))
      return reply.code(204).send()
    },
  )

  app.post(
    '/logout-all',
    {
      preHandler: app.authenticate,
      schema: {
        ...bearer,
        operationId: 'logoutAll',
        summary: 'End every session of the account',
        response: responses({ 204: noContent('Every session has ended') }, { ...withToken, body: true }),
      },
    },
    async (request, reply) => {
      await service.logoutAll(authOf(request).userId, requestContext(request))
      return reply.code(204).send()
    },
  )

  app.get(
    '/me',
    {
      onRequest: noStore,
      preHandler: app.authenticate,
      schema: {
        ...bearer,
        operationId: 'getMe',
        summary: 'The signed-in account',
        response: responses({ 200: json('The account', MeSchema) }, withToken),
      },
    },
    async (request) => meBody(await service.me(authOf(request).userId)),
  )

  app.delete(
    '/me',
    {
      // A re-authentication is a password guess: the credential limit and the lockout apply.
      config: limited,
      preHandler: app.authenticate,
      schema: {
        ...bearer,
        operationId: 'deleteMe',
        summary: 'Deactivate the account (the password again, and the second factor when two-factor is on)',
        body: PasswordBody,
        response: responses(
          { 204: noContent('The account is deactivated and its sessions ended') },
          { ...withToken, body: true, errors: { 401: `${WRONG_PASSWORD}; or ${MFA_WRONG}`, 403: MFA_MISSING, 429: LOCKED } },
        ),
      },
    },
    async (request, reply) => {
      const { password, ...proof } = request.body
      await service.deleteAccount(authOf(request).userId, password, proof, requestContext(request))
      return reply.code(204).send()
    },
  )

  app.post(
    '/change-password',
    {
      config: limited,
      preHandler: app.authenticate,
      schema: {
        ...bearer,
        operationId: 'changePassword',
        summary: 'Change the password (ends the other sessions; the second factor too when two-factor is on)',
        body: ChangePasswordBody,
        response: responses(
          { 204: noContent('The password is changed; the other sessions have ended') },
          {
            ...withToken,
            body: true,
            errors: { 400: PASSWORD_POLICY, 401: `${WRONG_PASSWORD}; or ${MFA_WRONG}`, 403: MFA_MISSING, 429: LOCKED, 503: BREACH_CHECK },
          },
        ),
      },
    },
    async (request, reply) => {
      const { userId, sessionId } = authOf(request)
      const { currentPassword, newPassword, ...proof } = request.body
      await service.changePassword(userId, sessionId, currentPassword, newPassword, proof, requestContext(request))
      return reply.code(204).send()
    },
  )

  app.post(
    '/forgot-password',
    {
      config: limited,
      schema: {
        ...open,
        operationId: 'forgotPassword',
        summary: 'Mail a password reset link',
        body: EmailBody,
        response: responses({ 202: json(ACCEPTED_WHY, Accepted) }, withBody),
      },
    },
    async (request, reply) => {
      await service.forgotPassword(request.body.email, requestContext(request))
      return reply.code(202).send(ACCEPTED)
    },
  )

  app.post(
    '/reset-password',
    {
      config: limited,
      schema: {
        ...open,
        operationId: 'resetPassword',
        summary: 'Set a new password with the token of the mailed link (ends every session)',
        body: ResetPasswordBody,
        response: responses(
          { 204: noContent('The password is set; every session has ended') },
          { ...withBody, errors: { 400: `${LINK}, or ${PASSWORD_POLICY}`, 503: BREACH_CHECK } },
        ),
      },
    },
    async (request, reply) => {
      const { token, newPassword } = request.body
      await service.resetPassword(token, newPassword, requestContext(request))
      return reply.code(204).send()
    },
  )

  app.get(
    '/sessions',
    {
      onRequest: noStore,
      preHandler: app.authenticate,
      schema: {
        ...bearer,
        operationId: 'listSessions',
        summary: 'The live sessions of the account',
        response: responses({ 200: json('The live sessions, the current one marked', SessionsSchema) }, withToken),
      },
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
      schema: {
        ...bearer,
        operationId: 'endSession',
        summary: 'End one session of the account',
        params: SessionParams,
        response: responses(
          { 204: noContent('The session has ended') },
          { ...withToken, body: true, params: true, errors: { 404: 'no such live session of this account (`session_not_found`)' } },
        ),
      },
    },
    async (request, reply) => {
      await service.endSession(authOf(request).userId, request.params.id, requestContext(request))
      return reply.code(204).send()
    },
  )
}

export default authRoutes
