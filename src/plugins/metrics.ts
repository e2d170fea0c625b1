// Prometheus metrics on GET /metrics. The registry is this app's own, not
// prom-client's global one, so several apps in one process (the tests) don't clash.
// With a token, scrapers must send it as a Bearer token; production serves
// /metrics only with one (route names, outcomes and pool sizes are reconnaissance).
import { createHash, timingSafeEqual } from 'node:crypto'
import { METHODS } from 'node:http'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type pg from 'pg'
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client'
import { HttpProblem } from '../http/problem.ts'
import type { RequestLogController } from '../logging.ts'
import { responses, text } from '../schemas/responses.ts'
import { RouteDurations } from './route-durations.ts'

export type PoolCounters = Pick<pg.Pool, 'totalCount' | 'idleCount' | 'waitingCount'>

export interface MetricsPluginOptions {
  /** A pg Pool (or anything with its counters), read at every scrape. */
  pool?: PoolCounters
  /** Register GET /metrics at all (default true); the counters exist either way. */
  serve?: boolean
  /** When set, GET /metrics requires `Authorization: Bearer <token>`. */
  token?: string
  /** Whether the rate-limit store answers (false while Redis is down and limits run in memory). */
  rateLimitStoreUp?: () => boolean
  /** The outbox's backlog (eventsLag), read at every scrape. */
  outboxLag?: () => Promise<OutboxLag>
  /**
   * Where completed requests are reported (the app's RequestLogController): set, the
   * duration histogram is fed from there instead of an onResponse hook of its own.
   */
  requests?: Pick<RequestLogController, 'onCompleted'>
}

export interface OutboxLag {
  /** Events not yet published. */
  unpublished: number
  /** When the oldest of them was written; null when none waits. */
  oldestCreatedAt: Date | null
}

/** The `outcome` label of auth_login_total: every value the service reports. */
export type LoginOutcome = 'success' | 'failure' | 'locked' | 'unverified'

export interface AppMetrics {
  /** Count a login attempt by outcome. */
  loginOutcome(outcome: LoginOutcome): void
  /** Count a refresh token presented again after rotation (a family was revoked). */
  refreshReuse(): void
  /** Count a mail not sent because its recipient is over the mail budget. */
  mailSuppressed(kind: string): void
  /** Count events the outbox publisher delivered (one committed batch). */
  eventsPublished(count: number): void
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: AppMetrics
  }
}

const KNOWN_METHODS = new Set(METHODS)

const sha256 = (value: string): Buffer => createHash('sha256').update(value).digest()

/**
 * A check of `Authorization: Bearer <token>`. Both sides are hashed first, so
 * timingSafeEqual compares equal lengths and the time says nothing about the token.
 */
function bearerCheck(token: string): (authorization: string | undefined) => boolean {
  const expected = sha256(token)
  return (authorization) => {
    const presented = /^Bearer (\S+)$/.exec(authorization ?? '')?.[1]
    return presented !== undefined && timingSafeEqual(sha256(presented), expected)
  }
}

async function metricsPlugin(app: FastifyInstance, opts: MetricsPluginOptions): Promise<void> {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })

  const duration = new RouteDurations({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by method, route pattern and status code',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  })
  registry.registerMetric(duration as unknown as Metric)
  const logins = new Counter({
    name: 'auth_login_total',
    help: 'Login attempts by outcome',
    labelNames: ['outcome'] as const,
    registers: [registry],
  })
  const refreshReuse = new Counter({
    name: 'auth_refresh_reuse_total',
    help: 'Rotated refresh tokens presented again (the session family was revoked)',
    registers: [registry],
  })
  const mailSuppressed = new Counter({
    name: 'auth_mail_suppressed_total',
    help: 'Mails not sent because the recipient address is over its mail budget, by kind',
    labelNames: ['kind'] as const,
    registers: [registry],
  })

  const eventsPublished = new Counter({
    name: 'auth_events_published_total',
    help: 'Security events delivered from the outbox to Redis (at least once: a batch retried after a crash counts again)',
    registers: [registry],
  })

  const { pool } = opts
  if (pool !== undefined) {
    const poolGauge = (name: string, help: string, read: (p: PoolCounters) => number): void => {
      new Gauge({
        name,
        help,
        registers: [registry],
        collect() {
          this.set(read(pool))
        },
      })
    }
    poolGauge('db_pool_total', 'Connections in the database pool', (p) => p.totalCount)
    poolGauge('db_pool_idle', 'Idle connections in the database pool', (p) => p.idleCount)
    poolGauge('db_pool_waiting', 'Queries waiting for a database connection', (p) => p.waitingCount)
  }

  const { rateLimitStoreUp } = opts
  if (rateLimitStoreUp !== undefined) {
    new Gauge({
      name: 'rate_limit_store_up',
      help: '1 while the rate-limit store answers; 0 while Redis is down and limits run per instance in memory',
      registers: [registry],
      collect() {
        this.set(rateLimitStoreUp() ? 1 : 0)
      },
    })
  }

  const { outboxLag } = opts
  if (outboxLag !== undefined) {
    // Both gauges come from one query per scrape: a scrape collects every metric at
    // once, so the second collect() finds the first one's query still in flight.
    let reading: Promise<OutboxLag | undefined> | undefined
    const read = (): Promise<OutboxLag | undefined> => {
      reading ??= outboxLag()
        .catch(() => undefined)
        .finally(() => (reading = undefined))
      return reading
    }
    new Gauge({
      name: 'auth_events_outbox_lag',
      help: 'Security events in the outbox not yet published (NaN when the database does not answer)',
      registers: [registry],
      async collect() {
        this.set((await read())?.unpublished ?? Number.NaN)
      },
    })
    new Gauge({
      name: 'auth_events_outbox_oldest_seconds',
      help: 'Age of the oldest unpublished security event in seconds (0 when none waits; NaN when the database does not answer)',
      registers: [registry],
      async collect() {
        const lag = await read()
        if (lag === undefined) this.set(Number.NaN)
        else this.set(lag.oldestCreatedAt === null ? 0 : Math.max(0, (Date.now() - lag.oldestCreatedAt.getTime()) / 1000))
      },
    })
  }

  app.decorate('metrics', {
    loginOutcome: (outcome: LoginOutcome) => logins.inc({ outcome }),
    refreshReuse: () => refreshReuse.inc(),
    mailSuppressed: (kind: string) => mailSuppressed.inc({ kind }),
    eventsPublished: (count: number) => eventsPublished.inc(count),
  } satisfies AppMetrics)

  // Methods are a known list and routes are patterns, never the raw URL or whatever a
  // client sends as a method, so the set of series stays bounded.
  const observe = (request: FastifyRequest, reply: FastifyReply): void => {
    const method = KNOWN_METHODS.has(request.method) ? request.method : 'OTHER'
    duration.observe(method, request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000)
  }
  if (opts.requests !== undefined) opts.requests.onCompleted(observe)
  else
    app.addHook('onResponse', (request, reply, done) => {
      observe(request, reply)
      done()
    })

  if (opts.serve === false) {
    app.log.info('GET /metrics is not served: set METRICS_TOKEN to scrape it in production')
  } else {
    const authorized = opts.token === undefined ? undefined : bearerCheck(opts.token)
    app.get(
      '/metrics',
      {
        // Scrapes are outside the per-IP rate limit.
        config: { rateLimit: false },
        // Documented as this deployment serves it: with a token, only for its holder.
        schema: {
          tags: ['metrics'],
          security: authorized === undefined ? [] : [{ metricsToken: [] }],
          operationId: 'getMetrics',
          summary: 'Prometheus metrics',
          response: responses(
            { 200: text('text/plain', 'The Prometheus text exposition format (version 0.0.4)') },
            authorized === undefined ? {} : { errors: { 401: 'the metrics token is missing or wrong (`invalid_token`)' } },
          ),
        },
        onRequest: async (request) => {
          if (authorized !== undefined && !authorized(request.headers.authorization)) {
            throw new HttpProblem(401, 'invalid_token', 'a valid metrics token is required', {
              headers: { 'www-authenticate': 'Bearer realm="metrics", error="invalid_token"' },
            })
          }
        },
      },
      async (_request, reply) => {
        const body = await registry.metrics()
        return reply.type(registry.contentType).send(body)
      },
    )
  }

  app.addHook('onClose', async () => {
    registry.clear()
  })
}

export default fp(metricsPlugin, { name: 'metrics', fastify: '5.x' })
