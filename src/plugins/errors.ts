// One error handler and one not-found handler for the whole app: every error
// answer is application/problem+json with a stable `code`, and a 5xx body never
// carries a message, stack or SQL. Register it before any route: it collects
// the routes' methods to tell 405 from 404, and it must own the root handlers.
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify'
import { DbError } from '../db/errors.ts'
import { dbProblem, HttpProblem, PROBLEM_CONTENT_TYPE, PROBLEM_SCHEMA_ID, ProblemSchema } from '../http/problem.ts'
import { responseRequestId } from '../logging.ts'

interface ErrorLike {
  message?: unknown
  code?: unknown
  statusCode?: unknown
  validation?: unknown
  validationContext?: unknown
}

interface ValidationIssue {
  instancePath?: string
  message?: string
  keyword?: string
  params?: Record<string, unknown>
}

type Outcome = { problem: HttpProblem; log?: 'error' }

const INTERNAL: Outcome = { problem: new HttpProblem(500, 'internal_error', 'internal error'), log: 'error' }
/** Seconds a client waits before retrying a 503: a pool reconnects or a failover settles in about that. */
export const UNAVAILABLE_RETRY_AFTER_SECONDS = 2
const UNAVAILABLE: Outcome = {
  problem: new HttpProblem(503, 'service_unavailable', 'service temporarily unavailable', {
    headers: { 'retry-after': String(UNAVAILABLE_RETRY_AFTER_SECONDS) },
  }),
  log: 'error',
}

/** Codes for 4xx errors that carry a status but no code of ours (plugins, Fastify itself). */
const CODE_BY_STATUS: Readonly<Record<number, string>> = {
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  406: 'not_acceptable',
  409: 'conflict',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
}

/** A code that is already one of ours (e.g. 'invalid_token' from the auth preHandler). */
const OWN_CODE = /^[a-z][a-z0-9_]{0,63}$/

/**
 * Connection-level failures, by code: class 08 (connection exception), 57P01-03
 * (server shutting down or starting), 53300 (too many connections), and the
 * socket errors of a server that is gone, unreachable or cut off (refused,
 * reset, timed out, broken pipe, DNS not answering).
 */
const PG_UNAVAILABLE =
  /^(08[0-9A-Z]{3}|57P0[123]|53300|ECONNREFUSED|ECONNRESET|ECONNABORTED|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|ENETDOWN|EHOSTDOWN|EAI_AGAIN)$/

/**
 * The same, for the errors node-postgres and pg-pool raise without a code when a
 * connection ends under a query, a connect times out or the pool is ending.
 */
const PG_UNAVAILABLE_MESSAGE =
  /^(Connection terminated( unexpectedly| due to connection timeout)?|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error and is not queryable|Client was closed and is not queryable|Cannot use a pool after calling end on the pool)$/

const MAX_CAUSE_DEPTH = 3

/** A lost, refused or timed-out database connection: the request may succeed on retry. */
function isConnectionFailure(error: ErrorLike): boolean {
  let current: unknown = error
  for (let depth = 0; depth <= MAX_CAUSE_DEPTH && isObject(current); depth++) {
    if (current instanceof HttpProblem || typeof current.statusCode === 'number') return false
    if (typeof current.code === 'string' && PG_UNAVAILABLE.test(current.code)) return true
    if (current.code === undefined && typeof current.message === 'string' && PG_UNAVAILABLE_MESSAGE.test(current.message)) {
      return true
    }
    current = (current as { cause?: unknown }).cause
  }
  return false
}

const MAX_VALIDATION_ISSUES = 5

function isObject(value: unknown): value is ErrorLike {
  return typeof value === 'object' && value !== null
}

/** "body/email must match format \"email\"" — paths and messages only, no schema internals. */
function describeValidation(issues: readonly ValidationIssue[], context: unknown): string {
  const where = typeof context === 'string' ? context : 'request'
  const lines = issues.slice(0, MAX_VALIDATION_ISSUES).map((issue) => {
    const extra =
      issue.keyword === 'additionalProperties' && typeof issue.params?.additionalProperty === 'string'
        ? ` '${issue.params.additionalProperty}'`
        : ''
    return `${where}${issue.instancePath ?? ''} ${issue.message ?? 'is invalid'}${extra}`
  })
  return lines.join('; ')
}

// Returns boolean, not a type guard: narrowing to SyntaxError would hide statusCode and code.
function isSyntaxError(value: unknown): boolean {
  return value instanceof SyntaxError
}

function classify(error: unknown): Outcome {
  if (error instanceof HttpProblem) return { problem: error }
  if (error instanceof DbError) return { problem: dbProblem(error.sqlstate) }
  if (!isObject(error)) return INTERNAL

  if (Array.isArray(error.validation)) {
    const detail = describeValidation(error.validation as ValidationIssue[], error.validationContext)
    return { problem: new HttpProblem(400, 'validation_failed', detail) }
  }

  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { problem: new HttpProblem(415, 'unsupported_media_type', 'send the body as application/json') }
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { problem: new HttpProblem(413, 'payload_too_large', 'request body too large') }
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { problem: new HttpProblem(400, 'malformed_json', 'request body is not valid JSON') }
  }
  // A custom body parser may throw a plain SyntaxError with statusCode 400.
  if (isSyntaxError(error) && error.statusCode === 400) {
    return { problem: new HttpProblem(400, 'malformed_json', 'request body is not valid JSON') }
  }
  if (isConnectionFailure(error)) return UNAVAILABLE

  const status = typeof error.statusCode === 'number' ? error.statusCode : 500
  if (status === 429) {
    // @fastify/rate-limit has already set Retry-After on the reply; it stays.
    return { problem: new HttpProblem(429, 'rate_limited', 'too many requests, retry later') }
  }
  if (status >= 400 && status < 500) {
    const code = typeof error.code === 'string' && OWN_CODE.test(error.code) ? error.code : (CODE_BY_STATUS[status] ?? 'bad_request')
    // 4xx messages come from our code, Fastify or its plugins: about the request, not our internals.
    const detail = typeof error.message === 'string' && error.message !== '' ? error.message.slice(0, 200) : code
    return { problem: new HttpProblem(status, code, detail) }
  }
  if (status === 503) return UNAVAILABLE
  return INTERNAL
}

function sendProblem(request: FastifyRequest, reply: FastifyReply, problem: HttpProblem): void {
  if (problem.headers !== undefined) void reply.headers(problem.headers)
  void reply
    .header('x-request-id', responseRequestId(request))
    .code(problem.status)
    .type(PROBLEM_CONTENT_TYPE)
    .send(problem.toBody(request.id))
}

/** Answers any error as a problem; exported for `frameworkErrors` and for tests. */
export function replyWithError(error: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const { problem, log } = classify(error)
  if (log === 'error') request.log.error({ err: error }, `${problem.code}: ${String(problem.status)}`)
  sendProblem(request, reply, problem)
}

/**
 * Server constructor options this plugin relies on: unknown body fields are a
 * 400 instead of being silently dropped (Fastify's Ajv default is
 * removeAdditional: true); a value of the wrong type is a 400 instead of being
 * coerced (the default coerceTypes: 'array' turns `{"refreshToken": 12345}` into
 * "12345", `true` into "true" and `["x"]` into "x", so a client bug reaches the
 * service as a plausible string); and router-level errors (bad percent-encoding in
 * a URL) are problems too.
 * Fastify has one Ajv for bodies, params and querystrings, so no coercion anywhere:
 * path and query values arrive as strings, and every params/querystring schema here
 * declares strings (a number there would have to be a pattern-checked string).
 */
export function errorServerOptions(): Pick<FastifyServerOptions, 'ajv' | 'frameworkErrors'> {
  return {
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
    frameworkErrors: replyWithError,
  }
}

/** Methods checked for 405 even if their routes were added before this plugin. */
const COMMON_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']

export interface ErrorsPluginOptions {
  /**
   * Headers every answer carries besides x-request-id (the API's security headers,
   * external.ts): set by the same hook, so a request pays for one hook, not two.
   */
  headers?: Readonly<Record<string, string>>
}

async function errorsPlugin(app: FastifyInstance, opts: ErrorsPluginOptions = {}): Promise<void> {
  // Shared by every route's error responses (src/schemas/responses.ts): one schema to
  // serialize problems with, one component in the OpenAPI document.
  app.addSchema({ ...ProblemSchema, $id: PROBLEM_SCHEMA_ID })

  const methods = new Set<string>(COMMON_METHODS)
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) methods.add(method.toUpperCase())
  })

  // Fastify parses text/plain by default; this API takes JSON only, so any
  // other body is a 415 rather than a confusing "body must be object".
  app.removeContentTypeParser('text/plain')

  // Synchronous: an async hook costs a promise on every request.
  const headers = opts.headers ?? {}
  app.addHook('onRequest', (request, reply, done) => {
    void reply.headers(headers).header('x-request-id', responseRequestId(request))
    done()
  })

  app.setErrorHandler((error, request, reply) => {
    replyWithError(error, request, reply)
  })

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?', 1)[0] ?? request.url
    const allowed = [...methods].filter((method) => {
      // findRoute matches a concrete path against the router (parametric routes included); null when none.
      const found: unknown = app.findRoute({ method, url: path })
      return found !== null
    })
    // OPTIONS alone comes from CORS's catch-all preflight route: it does not make a path known.
    if (allowed.some((method) => method !== 'OPTIONS')) {
      const allow = allowed.sort().join(', ')
      sendProblem(
        request,
        reply,
        new HttpProblem(405, 'method_not_allowed', `${request.method} is not allowed here; use ${allow}`, {
          headers: { allow },
        }),
      )
      return
    }
    sendProblem(request, reply, new HttpProblem(404, 'not_found', `no route for ${request.method} ${path.slice(0, 200)}`))
  })
}

export default fp(errorsPlugin, { name: 'errors', fastify: '5.x' })
