// Prometheus metrics on GET /metrics. The registry is this app's own, not
// prom-client's global one, so several apps in one process (the tests) don't clash.
import { METHODS } from 'node:http'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export interface PoolStats {
  totalCount: number
  idleCount: number
  waitingCount: number
}

export interface MetricsPluginOptions {
  /** A pg Pool (or anything with its counters), read at every scrape. */
  pool?: PoolStats
}

export interface AppMetrics {
  /** Count a login attempt by outcome ('success', 'invalid_credentials', 'locked', ...). */
  loginOutcome(outcome: string): void
  /** Count a refresh token presented again after rotation (a family was revoked). */
  refreshReuse(): void
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: AppMetrics
  }
}

const KNOWN_METHODS = new Set(METHODS)

async function metricsPlugin(app: FastifyInstance, opts: MetricsPluginOptions): Promise<void> {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })

  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by method, route pattern and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  })
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

  const { pool } = opts
  if (pool !== undefined) {
    const poolGauge = (name: string, help: string, read: (p: PoolStats) => number): void => {
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

  app.decorate('metrics', {
    loginOutcome: (outcome: string) => logins.inc({ outcome }),
    refreshReuse: () => refreshReuse.inc(),
  } satisfies AppMetrics)

  app.addHook('onResponse', async (request, reply) => {
    // Labels are the route pattern and a known method, never the raw URL or
    // whatever a client sends as a method: each distinct label value is a new series.
    duration.observe(
      {
        method: KNOWN_METHODS.has(request.method) ? request.method : 'OTHER',
        route: request.routeOptions.url ?? 'unmatched',
        status_code: String(reply.statusCode),
      },
      reply.elapsedTime / 1000,
    )
  })

  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    const body = await registry.metrics()
    return reply.type(registry.contentType).send(body)
  })

  app.addHook('onClose', async () => {
    registry.clear()
  })
}

export default fp(metricsPlugin, { name: 'metrics', fastify: '5.x' })
