// The tiny pages the mail links open (GET /verify-email, GET /reset-password,
// GET /confirm-email-change) and the form posts behind their buttons (POST of the same paths).
// - Opening a page never spends its token (mail scanners prefetch links): GET and
//   HEAD read nothing from the database. Only the button's POST does the work.
// - Plain HTML forms, handled here server-side: the pages work with JavaScript off,
//   and a password only ever travels in a POST body, never in a URL.
// - A repeated press of a completed action (double-click, reload, back and press
//   again) answers success: AuthService.verifyEmailFromLink / resetPasswordFromLink.
// - Form bodies are parsed in this plugin's own scope only (@fastify/formbody is
//   registered here, not app-wide), so /api/* still answers 415 to a form body.
// - Their own CSP (csp.ts) replaces helmet's on these routes.
import helmet from '@fastify/helmet'
import formbody from '@fastify/formbody'
import type {} from '@fastify/rate-limit'
import type { FastifyInstance, FastifyReply } from 'fastify'
import { PASSWORD_MAX_LENGTH } from '../../auth/passwords.ts'
import { isWellFormedToken } from '../../auth/tokens.ts'
import { HttpProblem, unsupportedMediaType } from '../../http/problem.ts'
import { replyWithError } from '../../plugins/errors.ts'
import {
  emailChangeFormSchema,
  emailChangePageSchema,
  resetFormSchema,
  resetPageSchema,
  scriptSchema,
  stylesSchema,
  verifyFormSchema,
  verifyPageSchema,
} from '../../schemas/pages.ts'
import { requestContext } from '../auth/request.ts'
import { SCRIPT, STYLES } from './assets.ts'
import { pagesContentSecurityPolicy, pagesDroppedHeaders } from './csp.ts'
import { EMAIL_TAKEN_NOTICE, isLinkProblem, linkNotice, passwordMessage, type LinkKind } from './messages.ts'
import {
  emailChangeFormPage,
  errorPage,
  resetFormPage,
  SCRIPT_PATH,
  STYLES_PATH,
  successPage,
  verifyFormPage,
  type PageContext,
} from './templates.ts'

export interface PageRoutesOptions {
  /** APP_NAME: the product name the pages show. */
  appName: string
  /** APP_URL: the base of the mail links; https here turns on upgrade-insecure-requests. */
  appUrl: string
  /** LOGIN_URL: where "back to the app" goes; APP_URL when unset. */
  loginUrl?: string | undefined
  /** PASSWORD_MIN_LENGTH and whether breached passwords are refused: the rules shown before typing. */
  password: { minLength: number; breachCheck: boolean }
  /** The API's credential limit (per IP), applied to the form posts as to POST /api/auth/reset-password. */
  credentialRateLimit: { max: number; timeWindow: number } | false
}

const HTML = 'text/html; charset=utf-8'

/** A field of a query or form as a browser sent it (unvalidated: attachValidation), when it is a string. */
function field(fields: unknown, name: string): string | undefined {
  const value: unknown = typeof fields === 'object' && fields !== null ? Reflect.get(fields, name) : undefined
  return typeof value === 'string' ? value : undefined
}

/** The token of a query or form, when it has the shape of one; anything else is an incomplete link. */
function tokenIn(fields: unknown): string | undefined {
  const token = field(fields, 'token')
  return token !== undefined && isWellFormedToken(token) ? token : undefined
}

function page(reply: FastifyReply, status: number, body: string): FastifyReply {
  // no-store: the page holds a token (in its form) or the outcome of one.
  return reply.code(status).type(HTML).header('cache-control', 'no-store').send(body)
}

export default async function pageRoutes(app: FastifyInstance, opts: PageRoutesOptions): Promise<void> {
  const ctx: PageContext = {
    appName: opts.appName,
    backUrl: opts.loginUrl ?? opts.appUrl,
    rules: { minLength: opts.password.minLength, maxLength: PASSWORD_MAX_LENGTH, breachCheck: opts.password.breachCheck },
  }
  const csp = pagesContentSecurityPolicy(opts.appUrl)
  const limited: { rateLimit?: { max: number; timeWindow: number } } =
    opts.credentialRateLimit === false ? {} : { rateLimit: opts.credentialRateLimit }

  // HTML: helmet's headers for this scope only (the API's JSON answers carry a short set).
  await app.register(helmet)
  // These routes take HTML forms only; JSON belongs to /api/auth.
  app.removeContentTypeParser('application/json')
  await app.register(formbody)

  const dropped = pagesDroppedHeaders(opts.appUrl)
  // Helmet set its headers in onRequest; this replaces its CSP on every answer of this scope.
  app.addHook('onSend', async (_request, reply, payload) => {
    void reply.header('content-security-policy', csp)
    for (const name of dropped) reply.removeHeader(name)
    return payload
  })

  // The app's problem answers, with a 415 that names the type these routes take
  // (the app-wide one asks for JSON).
  app.setErrorHandler((error, request, reply) => {
    const code = (error as { code?: unknown }).code
    replyWithError(
      code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? unsupportedMediaType('send the form as application/x-www-form-urlencoded') : error,
      request,
      reply,
    )
  })

  /** A refused link or password as a page; anything else (database down, a bug) goes on to the error handler. */
  const refused = (reply: FastifyReply, kind: LinkKind, token: string, err: unknown): FastifyReply => {
    if (!(err instanceof HttpProblem)) throw err
    if (isLinkProblem(err.code)) return page(reply, err.status, errorPage(ctx, linkNotice(kind, err.code)))
    const message = kind === 'reset' ? passwordMessage(err.code, ctx.rules) : undefined
    if (message === undefined) throw err
    return page(reply, err.status, resetFormPage(ctx, token, message))
  }

  const incomplete = (reply: FastifyReply, kind: LinkKind) => page(reply, 400, errorPage(ctx, linkNotice(kind, 'incomplete')))

  app.get('/verify-email', { schema: verifyPageSchema, attachValidation: true }, async (request, reply) => {
    const token = tokenIn(request.query)
    return token === undefined ? incomplete(reply, 'verify') : page(reply, 200, verifyFormPage(ctx, token))
  })

  app.get('/reset-password', { schema: resetPageSchema, attachValidation: true }, async (request, reply) => {
    const token = tokenIn(request.query)
    return token === undefined ? incomplete(reply, 'reset') : page(reply, 200, resetFormPage(ctx, token))
  })

  app.post('/verify-email', { config: limited, schema: verifyFormSchema, attachValidation: true }, async (request, reply) => {
    const token = tokenIn(request.body)
    if (token === undefined) return incomplete(reply, 'verify')
    try {
      await app.auth.verifyEmailFromLink(token, requestContext(request))
    } catch (err) {
      return refused(reply, 'verify', token, err)
    }
    return page(reply, 200, successPage(ctx, 'verify'))
  })

  app.post('/reset-password', { config: limited, schema: resetFormSchema, attachValidation: true }, async (request, reply) => {
    const token = tokenIn(request.body)
    if (token === undefined) return incomplete(reply, 'reset')
    const newPassword = field(request.body, 'newPassword')
    if (newPassword === undefined || newPassword === '') {
      return page(reply, 400, resetFormPage(ctx, token, passwordMessage('password_missing', ctx.rules)))
    }
    try {
      await app.auth.resetPasswordFromLink(token, newPassword, requestContext(request))
    } catch (err) {
      return refused(reply, 'reset', token, err)
    }
    return page(reply, 200, successPage(ctx, 'reset'))
  })

  app.get('/confirm-email-change', { schema: emailChangePageSchema, attachValidation: true }, async (request, reply) => {
    const token = tokenIn(request.query)
    return token === undefined ? incomplete(reply, 'email_change') : page(reply, 200, emailChangeFormPage(ctx, token))
  })

  app.post('/confirm-email-change', { config: limited, schema: emailChangeFormSchema, attachValidation: true }, async (request, reply) => {
    const token = tokenIn(request.body)
    if (token === undefined) return incomplete(reply, 'email_change')
    try {
      await app.profile.confirmEmailChange(token, requestContext(request))
    } catch (err) {
      if (err instanceof HttpProblem && err.code === 'email_taken') return page(reply, err.status, errorPage(ctx, EMAIL_TAKEN_NOTICE))
      return refused(reply, 'email_change', token, err)
    }
    return page(reply, 200, successPage(ctx, 'email_change'))
  })

  app.get(SCRIPT_PATH, { schema: scriptSchema }, async (_request, reply) =>
    reply.type('text/javascript; charset=utf-8').header('cache-control', 'public, max-age=3600').send(SCRIPT),
  )
  app.get(STYLES_PATH, { schema: stylesSchema }, async (_request, reply) =>
    reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=3600').send(STYLES),
  )
}
