// Logging: pino JSON with secrets redacted, the service's own request ids (a
// caller's id is echoed and logged beside it, never adopted), and one log line per request.
import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { LogController, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import { destination, type DestinationStream } from 'pino'

const SECRET_KEYS = ['password', 'currentPassword', 'newPassword', 'token', 'refreshToken', 'accessToken']
const SECRET = new Set(SECRET_KEYS)
const CENSOR = '[redacted]'

/** pino redact paths: headers that carry credentials (fixed paths, cheap; the secret keys are maskSecrets'). */
const REDACT_PATHS: readonly string[] = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
]

/**
 * A logged object with every secret key (SECRET_KEYS) masked at the top and up to two
 * levels below it, where pino's `*.key` and `*.*.key` redact paths reached. Those
 * wildcard paths cost ~25 µs on every line, the request line included (measured: 31 µs
 * vs 6 µs per line), five times the line itself. This walk returns the very object when
 * there is nothing to mask, so a line without secrets (every request line) is not copied;
 * a copy keeps the prototype and every own property, so an Error stays an Error for pino's
 * serializer.
 */
export function maskSecrets<T>(value: T, depth = 0): T {
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return value
  const source = value as Record<string, unknown>
  let copy: Record<string, unknown> | undefined
  for (const key of Object.keys(source)) {
    const inner = source[key]
    const masked = SECRET.has(key) && inner !== undefined ? CENSOR : depth < 2 ? maskSecrets(inner, depth + 1) : inner
    if (masked === inner) continue
    copy ??= Array.isArray(source)
      ? (source.slice() as unknown as Record<string, unknown>)
      : (Object.create(Object.getPrototypeOf(source) as object, Object.getOwnPropertyDescriptors(source)) as Record<string, unknown>)
    copy[key] = masked
  }
  return (copy ?? value) as T
}

/** One-time tokens travel in mail links (`/verify-email?token=`): keep them out of logged URLs. */
const SECRET_QUERY = new RegExp(`([?&](?:${SECRET_KEYS.join('|')})=)[^&#]*`, 'gi')

function redactUrl(url: string): string {
  // Most URLs have no query at all; the pattern needs a `?` to match anything.
  return url.includes('?') ? url.replace(SECRET_QUERY, '$1[redacted]') : url
}

type LoggedRequest = Pick<IncomingMessage, 'method' | 'url'> & { routeOptions?: { url?: string } }

function loggerOptions(level: string, stream?: DestinationStream): FastifyServerOptions['logger'] {
  return {
    level,
    redact: { paths: [...REDACT_PATHS], censor: CENSOR },
    formatters: { log: (object) => maskSecrets(object) },
    serializers: {
      // Method, URL (secrets masked) and route pattern: never headers or bodies.
      req: (req: LoggedRequest) => ({
        method: req.method,
        url: redactUrl(req.url ?? ''),
        route: req.routeOptions?.url,
      }),
    },
    ...(stream === undefined ? {} : { stream }),
  }
}

/** The levels at which a debug line is written. */
const DEBUG_LEVELS = new Set(['trace', 'debug'])

/** What a caller may send as x-request-id: anything else could forge or flood log lines. */
const CALLER_REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/

/**
 * request.id is always our own random UUID: it goes into audit rows and problem
 * bodies, where a caller-chosen id could collide with another request's on purpose
 * or point an investigation at the wrong rows.
 */
function genReqId(): string {
  return randomUUID()
}

/** The caller's x-request-id when short and well-formed; undefined otherwise. */
export function callerRequestId(req: Pick<IncomingMessage, 'headers'>): string | undefined {
  const incoming = req.headers['x-request-id']
  return typeof incoming === 'string' && CALLER_REQUEST_ID.test(incoming) ? incoming : undefined
}

/**
 * The x-request-id of the response: the caller's own id echoed (so a gateway's trace
 * still lines up), else ours. The completion log line carries both.
 */
export function responseRequestId(request: Pick<FastifyRequest, 'id' | 'headers'>): string {
  return callerRequestId(request) ?? request.id
}

/**
 * requestIdHeader is false on purpose: with a header name set, Fastify takes
 * the header verbatim as request.id and never calls genReqId.
 */
function requestIdOptions(): Pick<FastifyServerOptions, 'requestIdHeader' | 'genReqId'> {
  return { requestIdHeader: false, genReqId }
}

/**
 * Fastify's request log is two lines (incoming, completed) with little in them;
 * this one line has what operators search for. The route is the pattern
 * (`/api/auth/sessions/:id`), so lines group by endpoint. A LogController
 * replaces the deprecated disableRequestLogging + onResponse hook pairing.
 */
export class RequestLogController extends LogController {
  private readonly observers: ((request: FastifyRequest, reply: FastifyReply) => void)[] = []

  /**
   * Also call fn for every completed request (the metrics histogram): Fastify calls this
   * controller for every request anyway, so an observer here costs no hook of its own.
   */
  onCompleted(fn: (request: FastifyRequest, reply: FastifyReply) => void): void {
    this.observers.push(fn)
  }

  override incomingRequest(): void {
    // Logged once, on completion.
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    for (const observe of this.observers) observe(request, reply)
    // A probe that succeeded is a debug line: balancers and orchestrators probe every few
    // seconds per instance, and those lines buried the others (and cost a tenth of the
    // probe's CPU, issue 18). A failed probe is logged like any other request.
    const quiet = error == null && reply.statusCode < 400 && request.routeOptions.config.probe === true
    if (quiet && !DEBUG_LEVELS.has(reply.log.level)) return
    const line = {
      method: request.method,
      route: request.routeOptions.url ?? 'unmatched',
      url: redactUrl(request.url),
      statusCode: reply.statusCode,
      durationMs: Math.round(reply.elapsedTime * 100) / 100,
      requestId: request.id,
      callerRequestId: callerRequestId(request),
    }
    if (error) reply.log.error({ ...line, err: error }, 'request failed')
    else if (quiet) reply.log.debug(line, 'request completed')
    else reply.log.info(line, 'request completed')
  }
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A health probe: its successful answers are logged at debug, not info. */
    probe?: boolean
  }
}

/**
 * Where the server's log lines go: stdout, asynchronously. pino's default destination
 * makes one write(2) per line on the event loop, about a tenth of an authenticated
 * call's CPU (issue 18); asynchronous, the lines written while one write is in flight
 * leave together in the next. pino flushes what is left when the process exits.
 */
export function stdoutLog(): DestinationStream {
  return destination({ dest: 1, sync: false })
}

/** Everything above, to spread into the Fastify constructor options. */
export function loggingServerOptions(
  level: string,
  stream?: DestinationStream,
): Pick<FastifyServerOptions, 'logger' | 'logController' | 'requestIdHeader' | 'genReqId'> {
  return {
    logger: loggerOptions(level, stream),
    logController: new RequestLogController(),
    ...requestIdOptions(),
  }
}
