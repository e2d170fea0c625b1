// /api/auth/mfa/*: two-factor sign-in (docs/security.md, "Two-factor"). The login's
// second step (verify) takes the challenge token instead of a Bearer token; enrolment
// and the changes of a signed-in account take a Bearer token. Every operation that
// checks a code is under the credential rate limit, and the code under the lockout.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { MfaService } from '../../auth/mfa/service.ts'
import { LoginTokensSchema } from '../../schemas/auth.ts'
import { MfaChangeBody, MfaConfirmBody, MfaEnrolmentSchema, MfaVerifyBody, RecoveryCodesSchema } from '../../schemas/mfa.ts'
import { json, noContent, responses, type Exposure } from '../../schemas/responses.ts'
import { MFA_MISSING, MFA_WRONG } from './index.ts'
import { authOf, noStore, requestContext } from './request.ts'

export interface MfaRoutesOptions {
  mfa: MfaService
  /** The credential routes' per-IP limit. */
  credentialRateLimit: { max: number; timeWindow: number } | false
}

const tags = ['mfa']
const bearer = { tags, security: [{ bearerAuth: [] }] }
const open = { tags, security: [] }
const api: Exposure = { rateLimited: true, database: true }
const withBody: Exposure = { ...api, body: true }
const withToken: Exposure = { ...api, bearer: true, body: true }

const LOCKED = 'too many failed attempts (`too_many_attempts`); wait Retry-After seconds'
const WRONG_PASSWORD = 'the password is wrong (`invalid_credentials`; counts as a failed login)'
const NOT_ENABLED = 'two-factor sign-in is not on (`mfa_not_enabled`)'
const PASSWORD_MISSING = 'the account has a password and none was sent (`password_required`)'

const mfaRoutes: FastifyPluginAsyncTypebox<MfaRoutesOptions> = async (app, opts) => {
  const { mfa } = opts
  const limited: { rateLimit?: { max: number; timeWindow: number } } =
    opts.credentialRateLimit === false ? {} : { rateLimit: opts.credentialRateLimit }

  app.post(
    '/verify',
    {
      config: limited,
      onRequest: noStore,
      schema: {
        ...open,
        operationId: 'mfaVerify',
        summary: "The login's second step: the challenge token and a current code (or a recovery code) for the session",
        body: MfaVerifyBody,
        response: responses(
          { 200: json('A new session: the token pair and the device token, as a login without two-factor answers', LoginTokensSchema) },
          {
            ...withBody,
            errors: {
              400: 'neither `code` nor `recoveryCode` was sent (`validation_failed`)',
              401: `the mfaToken is unknown, expired or used (\`invalid_mfa_token\`: log in again); or ${MFA_WRONG}`,
              429: LOCKED,
            },
          },
        ),
      },
    },
    async (request) => {
      const { mfaToken, deviceToken, ...proof } = request.body
      return mfa.verify(mfaToken, proof, deviceToken, requestContext(request))
    },
  )

  app.post(
    '/totp',
    {
      onRequest: noStore,
      preHandler: app.authenticate,
      schema: {
        ...bearer,
        operationId: 'mfaEnrol',
        summary: 'Start two-factor enrolment: a new TOTP secret, not active until confirmed',
        response: responses(
          { 200: json('The secret, its otpauth URI and a QR code of it for the authenticator app', MfaEnrolmentSchema) },
          { ...withToken, errors: { 409: 'two-factor sign-in is already on (`mfa_already_enabled`)' } },
        ),
      },
    },
    async (request) => mfa.enrol(authOf(request).userId, requestContext(request)),
  )

  app.post(
    '/totp/confirm',
    {
      config: limited,
      onRequest: noStore,
      preHandler: app.authenticate,
      schema: {
        ...bearer,
        operationId: 'mfaConfirm',
        summary: 'Turn two-factor sign-in on with a current code of the new secret',
        body: MfaConfirmBody,
        response: responses(
          { 200: json('Two-factor sign-in is on; the recovery codes are shown this once', RecoveryCodesSchema) },
          {
            ...withToken,
            errors: {
              400: 'the code does not match the new secret (`invalid_mfa_code`)',
              409: 'no enrolment was started, or two-factor sign-in is already on (`mfa_not_enrolled`, `mfa_already_enabled`)',
            },
          },
        ),
      },
    },
    async (request) => ({ recoveryCodes: await mfa.confirm(authOf(request).userId, request.body.code, requestContext(request)) }),
  )

  const bothFactors = {
    400: PASSWORD_MISSING,
    401: `${WRONG_PASSWORD}; or ${MFA_WRONG}`,
    403: MFA_MISSING,
    409: NOT_ENABLED,
    429: LOCKED,
  }

  app.delete(
    '/totp',
    {
      config: limited,
      preHandler: app.authenticate,
      schema: {
        ...bearer,
        operationId: 'mfaDisable',
        summary: 'Turn two-factor sign-in off (the password and a current code or a recovery code)',
        body: MfaChangeBody,
        response: responses(
          { 204: noContent('Two-factor sign-in is off; the owner is told by mail') },
          { ...withToken, errors: bothFactors },
        ),
      },
    },
    async (request, reply) => {
      const { password, ...proof } = request.body
      await mfa.disable(authOf(request).userId, password, proof, requestContext(request))
      return reply.code(204).send()
    },
  )

  app.post(
    '/recovery-codes',
    {
      config: limited,
      onRequest: noStore,
      preHandler: app.authenticate,
      schema: {
        ...bearer,
        operationId: 'mfaReplaceRecoveryCodes',
        summary: 'Replace every recovery code with ten new ones (the password and a current code)',
        body: MfaChangeBody,
        response: responses(
          { 200: json('The new recovery codes, shown this once; the old ones no longer work', RecoveryCodesSchema) },
          { ...withToken, errors: bothFactors },
        ),
      },
    },
    async (request) => {
      const { password, ...proof } = request.body
      return { recoveryCodes: await mfa.replaceRecoveryCodes(authOf(request).userId, password, proof, requestContext(request)) }
    },
  )
}

export default mfaRoutes
