// /api/auth: the profile (PATCH /me) and the change of email (issue 17). Handlers
// validate (TypeBox), call the ProfileService, and shape the answer.
import type {} from '@fastify/rate-limit'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { ProfileService } from '../../auth/profile.ts'
import type { AuthService } from '../../auth/service.ts'
import { ChangeEmailBody, EmailChangedSchema, LinkTokenBody, MeSchema, ProfilePatchBody } from '../../schemas/auth.ts'
import { Accepted } from '../../schemas/common.ts'
import { json, responses, type Exposure } from '../../schemas/responses.ts'
import { meBody } from './index.ts'
import { authOf, noStore, requestContext } from './request.ts'

export interface ProfileRoutesOptions {
  profile: ProfileService
  /** GET /me's account, which PATCH /me answers with. */
  service: AuthService
  /** The credential endpoints' per-IP limit (change-email takes the password). */
  credentialRateLimit: { max: number; timeWindow: number } | false
}

const tags = ['auth']
const bearer = { tags, security: [{ bearerAuth: [] }] }
const open = { tags, security: [] }
const api: Exposure = { rateLimited: true, database: true }
const withBody: Exposure = { ...api, body: true }
const withToken: Exposure = { ...api, bearer: true, body: true }

const PROFILE_RULES =
  'a field breaks its rule (`invalid_username`: 3–32 letters, digits, `_` or `.`; `username_reserved`; `invalid_phone`: not a valid number with its country code; `invalid_name`: over 100 characters)'
const LINK = 'the link is invalid, expired or already used (`invalid_token`, `token_expired`, `token_used`)'
const ACCEPTED = { message: 'if the address can receive mail, a message is on its way' }

const profileRoutes: FastifyPluginAsyncTypebox<ProfileRoutesOptions> = async (app, opts) => {
  const { profile, service } = opts
  const limited: { rateLimit?: { max: number; timeWindow: number } } =
    opts.credentialRateLimit === false ? {} : { rateLimit: opts.credentialRateLimit }

  app.patch(
    '/me',
    {
      onRequest: noStore,
      preHandler: app.authenticate,
      schema: {
        ...bearer,
        operationId: 'updateMe',
        summary: 'Change the profile: username, first and last name, phone (null clears a field)',
        body: ProfilePatchBody,
        response: responses(
          { 200: json('The account after the change, as GET /me answers it', MeSchema) },
          { ...withToken, errors: { 400: PROFILE_RULES, 409: 'another account has the username, in any letter case (`username_taken`)' } },
        ),
      },
    },
    async (request) => {
      const userId = authOf(request).userId
      await profile.update(userId, request.body, requestContext(request))
      return meBody(await service.me(userId))
    },
  )

  app.post(
    '/change-email',
    {
      // A re-authentication is a password guess: the credential limit and the lockout apply.
      config: limited,
      preHandler: app.authenticate,
      schema: {
        ...bearer,
        operationId: 'changeEmail',
        summary: 'Ask to move the account to a new address (the password again): a link goes to it, a notice to the current one',
        body: ChangeEmailBody,
        response: responses(
          { 202: json('Accepted; the same answer whether or not the new address has an account', Accepted) },
          {
            ...withToken,
            errors: {
              400: 'the new address is not valid (`invalid_email`)',
              401: 'the password is wrong (`invalid_credentials`; counts as a failed login)',
              429: 'too many failed logins (`too_many_attempts`); wait Retry-After seconds',
            },
          },
        ),
      },
    },
    async (request, reply) => {
      const { password, newEmail } = request.body
      await profile.requestEmailChange(authOf(request).userId, password, newEmail, requestContext(request))
      return reply.code(202).send(ACCEPTED)
    },
  )

  app.post(
    '/confirm-email-change',
    {
      config: limited,
      schema: {
        ...open,
        operationId: 'confirmEmailChange',
        summary: 'Confirm a change of email with the token of the link mailed to the new address (ends every session)',
        body: LinkTokenBody,
        response: responses(
          { 200: json('The account has the new address, verified; every session has ended', EmailChangedSchema) },
          { ...withBody, errors: { 400: LINK, 409: 'another account took the address meanwhile (`email_taken`)' } },
        ),
      },
    },
    async (request) => {
      const done = await profile.confirmEmailChange(request.body.token, requestContext(request))
      return { email: done.newEmail, sessionsEnded: done.sessionsEnded }
    },
  )
}

export default profileRoutes
