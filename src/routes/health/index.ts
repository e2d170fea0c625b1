// Health: liveness (the process answers), readiness (the database answers as
// auth_api_user and every migration in the code is applied), a summary, and
// database details (latency, pool) for operators.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { compareMigrations, migrationNames } from '../../db/migrate.ts'
import { poolStats } from '../../db/pool.ts'
import { schemaMigrations } from '../../db/procedures.ts'
import { DatabaseHealth, Live, Ready, Summary } from '../../schemas/health.ts'
import { json, responses } from '../../schemas/responses.ts'

const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  // The code's migrations do not change while the process runs: read them once.
  const inCode = await migrationNames()
  // Probes need no credential.
  const open = { tags: ['health'], security: [] }
  // A probe's 503 is its report (application/json, the same schema as its 200), not a
  // problem: balancers read the status, operators the body. Only a bug answers a problem.
  const report = <T extends Parameters<typeof json>[1]>(schema: T, ok: string, failing: string) =>
    responses({ 200: json(ok, schema), 503: json(failing, schema) }, {})
  // Probes (a balancer checks every second) are outside the per-IP rate limit, and their
  // successful answers are logged at debug (logging.ts).
  const config = { rateLimit: false as const, probe: true }

  /** One round trip as auth_api_user: reachability, latency and migration state together. */
  async function probe() {
    const started = performance.now()
    try {
      const applied = await schemaMigrations(app.db)
      const latencyMs = Math.round((performance.now() - started) * 100) / 100
      return { up: true as const, latencyMs, applied: applied.length, pending: compareMigrations(applied, inCode).pending }
    } catch (err) {
      app.log.warn({ err }, 'health check: database unreachable')
      return { up: false as const, latencyMs: null, applied: 0, pending: [] }
    }
  }

  app.get(
    '/api/health/live',
    {
      config,
      schema: {
        ...open,
        operationId: 'getLiveness',
        summary: 'Liveness: the process answers',
        response: responses({ 200: json('The process answers', Live) }, {}),
      },
    },
    async () => ({ status: 'ok' as const }),
  )

  const readiness = {
    ...open,
    operationId: 'getReadiness',
    summary: 'Readiness: the database answers and every migration is applied',
    response: report(Ready, 'Ready to serve', 'Not ready: the database is down or migrations are pending'),
  }
  app.get('/api/health/ready', { config, schema: readiness }, async (_request, reply) => {
    const p = await probe()
    const ready = p.up && p.pending.length === 0
    return reply
      .code(ready ? 200 : 503)
      .send({ status: ready ? 'ready' : 'not_ready', database: p.up ? 'up' : 'down', pendingMigrations: p.pending })
  })

  const summary = {
    ...open,
    operationId: 'getHealth',
    summary: 'Summary: uptime, database, migrations and the rate-limit store',
    response: report(Summary, 'Healthy', 'Degraded: the database is down or migrations are pending'),
  }
  app.get('/api/health', { config, schema: summary }, async (_request, reply) => {
    const p = await probe()
    const ok = p.up && p.pending.length === 0
    return reply.code(ok ? 200 : 503).send({
      status: ok ? 'ok' : 'degraded',
      uptimeSeconds: Math.round(process.uptime()),
      database: p.up ? 'up' : 'down',
      migrations: p.pending.length === 0 ? 'current' : 'pending',
      rateLimitStore: app.rateLimitStore(),
    })
  })

  const database = {
    ...open,
    operationId: 'getDatabaseHealth',
    summary: 'The database: latency, migrations and the connection pool',
    response: report(DatabaseHealth, 'The database answers', 'The database does not answer'),
  }
  app.get('/api/health/database', { config, schema: database }, async (_request, reply) => {
    const p = await probe()
    return reply.code(p.up ? 200 : 503).send({
      status: p.up ? 'up' : 'down',
      latencyMs: p.latencyMs,
      appliedMigrations: p.applied,
      pendingMigrations: p.pending,
      pool: poolStats(app.db),
    })
  })
}

export default healthRoutes
