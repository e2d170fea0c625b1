// /api/auth/oauth/*: sign in with Google and GitHub, link and unlink (docs/security.md,
// "Sign in with a provider"). The browser-facing pair (start, callback) answers with
// redirects; the app's calls (exchange, link, unlink) with JSON. The binding cookie is
// the only cookie this service sets, so @fastify/cookie is registered here alone.
import cookie from '@fastify/cookie'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { BINDING_COOKIE } from '../../auth/oauth/binding.ts'
import type { OAuthService } from '../../auth/oauth/service.ts'
import { OAUTH_PROVIDERS } from '../../db/procedures.ts'
import { TokenPairSchema } from '../../schemas/auth.ts'
import { MfaChallengeSchema, UnlinkBody } from '../../schemas/mfa.ts'
import { closed, OpaqueToken, Password } from '../../schemas/common.ts'
import { json, noContent, responses, type Exposure } from '../../schemas/responses.ts'
import { MFA_MISSING, MFA_WRONG } from './index.ts'
import { authOf, requestContext } from './request.ts'

export interface OAuthRoutesOptions {
  oauth: OAuthService
  /** The credential routes' per-IP limit (callback, exchange, link). */
  credentialRateLimit: { max: number; timeWindow: number } | false
  /** Secure cookies when the service is reached over https (APP_URL). */
  secureCookie: boolean
  stateTtlSeconds: number
}

const tags = ['oauth']
const open = { tags, security: [] }
const bearer = { tags, security: [{ bearerAuth: [] }] }
const api: Exposure = { rateLimited: true, database: true }

const Provider = Type.Union(
  OAUTH_PROVIDERS.map((p) => Type.Literal(p)),
  { description: 'The provider: `google` or `github`' },
)
const ProviderParams = closed({ provider: Provider })
const Redirect = Type.String({
  maxLength: 2048,
  description: 'Where the browser goes back to (an allowed app URL, OAUTH_REDIRECT_URLS); unset: LOGIN_URL or APP_URL',
})
const StartQuery = closed({ redirect: Type.Optional(Redirect) })
// What the provider sends back; it may add more (Google: scope, authuser, prompt; iss).
const CallbackQuery = Type.Object(
  {
    state: Type.Optional(Type.String({ maxLength: 512 })),
    code: Type.Optional(Type.String({ maxLength: 2048 })),
    error: Type.Optional(Type.String({ maxLength: 256 })),
  },
  { additionalProperties: true },
)
const ExchangeBody = closed({ code: OpaqueToken })
const LinkBody = closed({
  password: Type.Optional({ ...Password, description: 'The account password; required when the account has one' }),
  redirect: Type.Optional(Redirect),
})
const LinkStartSchema = closed({ authorizationUrl: Type.String({ format: 'uri', description: 'Send the browser here' }) })

const REDIRECT_ANSWER = {
  type: 'null' as const,
  description:
    'To the provider (start), or back to the app (callback) with the outcome in the URL fragment: `code` (a one-time code for POST /api/auth/oauth/exchange), `linked` (the provider now linked), or `error` (`account_exists_link_required`, `oauth_email_unverified`, `oauth_email_missing`, `oauth_denied`, `oauth_failed`, `oauth_state_expired`, `account_disabled`, `oauth_identity_taken`, `oauth_provider_in_use`, `email_not_verified`)',
  headers: { location: { description: 'Where the browser goes next', type: 'string' } },
}
const NOT_CONFIGURED = 'the provider is not configured on this service (`provider_not_configured`)'
const BAD_REDIRECT = 'the redirect is not an allowed app URL (`invalid_redirect`)'

/** Redirect answers carry codes and state: no cache may keep them, no Referer may repeat them. */
function privateRedirect(reply: FastifyReply, location: string): FastifyReply {
  return reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer').redirect(location, 302)
}

const oauthRoutes: FastifyPluginAsyncTypebox<OAuthRoutesOptions> = async (app, opts) => {
  const { oauth } = opts
  const limited: { rateLimit?: { max: number; timeWindow: number } } =
    opts.credentialRateLimit === false ? {} : { rateLimit: opts.credentialRateLimit }
  await app.register(cookie)

  const bindingCookie = (request: FastifyRequest): string | undefined => request.cookies[BINDING_COOKIE]
  const setBinding = (reply: FastifyReply, binding: string): void => {
    void reply.setCookie(BINDING_COOKIE, binding, {
      path: '/api/auth/oauth/',
      httpOnly: true,
      // Lax: the provider's redirect back is a top-level cross-site navigation.
      sameSite: 'lax',
      secure: opts.secureCookie,
      maxAge: opts.stateTtlSeconds,
    })
  }

  app.get(
    '/:provider/start',
    {
      schema: {
        ...open,
        operationId: 'oauthStart',
        summary: 'Start signing in with a provider (a browser navigation, not a fetch)',
        params: ProviderParams,
        querystring: StartQuery,
        response: responses({ 302: REDIRECT_ANSWER }, { ...api, params: true, errors: { 400: BAD_REDIRECT, 404: NOT_CONFIGURED } }),
      },
    },
    async (request, reply) => {
      const started = await oauth.start(request.params.provider, request.query.redirect, bindingCookie(request), requestContext(request))
      setBinding(reply, started.binding)
      return privateRedirect(reply, started.authorizationUrl)
    },
  )

  app.get(
    '/:provider/callback',
    {
      config: limited,
      schema: {
        ...open,
        operationId: 'oauthCallback',
        summary: 'Where the provider sends the browser back (registered at the provider)',
        params: ProviderParams,
        querystring: CallbackQuery,
        response: responses(
          { 302: REDIRECT_ANSWER },
          {
            ...api,
            params: true,
            errors: {
              400: 'the state is missing, unknown, used, of another provider or of another browser (`invalid_oauth_state`)',
              404: NOT_CONFIGURED,
            },
          },
        ),
      },
    },
    async (request, reply) => {
      const query = request.url.includes('?') ? request.url.slice(request.url.indexOf('?') + 1) : ''
      const location = await oauth.callback(request.params.provider, query, bindingCookie(request), requestContext(request))
      return privateRedirect(reply, location)
    },
  )

  app.post(
    '/exchange',
    {
      config: limited,
      onRequest: async (_request, reply) => void reply.header('cache-control', 'no-store'),
      schema: {
        ...open,
        operationId: 'oauthExchange',
        summary: 'Exchange the one-time code of the callback for a token pair',
        body: ExchangeBody,
        response: responses(
          {
            200: json(
              'A new session: the token pair; or, when the account has two-factor sign-in on, `{mfaRequired: true, mfaToken}` (no tokens yet: POST /api/auth/mfa/verify)',
              Type.Union([TokenPairSchema, MfaChallengeSchema]),
            ),
          },
          { ...api, body: true, errors: { 400: 'the code is invalid, expired or used (`invalid_oauth_code`)' } },
        ),
      },
    },
    async (request) => oauth.exchange(request.body.code, requestContext(request)),
  )

  app.post(
    '/:provider/link',
    {
      config: limited,
      preHandler: app.authenticate,
      schema: {
        ...bearer,
        operationId: 'oauthLinkStart',
        summary: 'Start linking a provider to the signed-in account (the password again, if the account has one)',
        params: ProviderParams,
        body: LinkBody,
        response: responses(
          { 200: json('Send the browser to authorizationUrl; the binding cookie is set on this answer', LinkStartSchema) },
          {
            ...api,
            bearer: true,
            body: true,
            params: true,
            errors: {
              400: `the password is missing (\`password_required\`), or ${BAD_REDIRECT}`,
              401: 'the password is wrong (`invalid_credentials`; counts as a failed login)',
              403: 'an account without a password must have signed in within 10 minutes (`reauthentication_required`)',
              404: NOT_CONFIGURED,
              429: 'too many failed logins (`too_many_attempts`); wait Retry-After seconds',
            },
          },
        ),
      },
    },
    async (request, reply) => {
      const started = await oauth.startLink(
        authOf(request),
        request.params.provider,
        request.body,
        bindingCookie(request),
        requestContext(request),
      )
      setBinding(reply, started.binding)
      return { authorizationUrl: started.authorizationUrl }
    },
  )

  app.delete(
    '/:provider',
    {
      // With two-factor on it checks a code: the credential limit and the lockout apply.
      config: limited,
      preHandler: app.authenticate,
      schema: {
        ...bearer,
        operationId: 'oauthUnlink',
        summary: 'Unlink a provider from the signed-in account (never the last way in; the second factor when two-factor is on)',
        params: ProviderParams,
        body: UnlinkBody,
        response: responses(
          { 204: noContent('The provider is unlinked') },
          {
            ...api,
            bearer: true,
            body: true,
            params: true,
            errors: {
              401: MFA_WRONG,
              403: MFA_MISSING,
              404: 'the provider is not linked to this account (`provider_not_linked`)',
              409: 'it is the only way in: no password and no other provider (`last_way_in`)',
              429: 'too many failed logins (`too_many_attempts`); wait Retry-After seconds',
            },
          },
        ),
      },
    },
    async (request, reply) => {
      await oauth.unlink(authOf(request).userId, request.params.provider, request.body ?? {}, requestContext(request))
      return reply.code(204).send()
    },
  )
}

export default oauthRoutes
