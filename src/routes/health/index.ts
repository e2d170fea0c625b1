// Liveness (the process answers) and readiness (the database answers as
// auth_api_user and every migration in the code is applied).
import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import { compareMigrations, migrationNames } from '../../db/migrate.ts'
import { schemaMigrations } from '../../db/procedures.ts'

const Live = Type.Object({ status: Type.Literal('ok') }, { additionalProperties: false })
const Ready = Type.Object(
  {
    status: Type.Union([Type.Literal('ready'), Type.Literal('not_ready')]),
    database: Type.Union([Type.Literal('up'), Type.Literal('down')]),
    pendingMigrations: Type.Array(Type.String()),
  },
  { additionalProperties: false },
)

export default async function healthRoutes(app: FastifyInstance): Promise<void> {
  // The code's migrations do not change while the process runs: read them once.
  const inCode = await migrationNames()

  app.get('/api/health/live', { schema: { response: { 200: Live } } }, async () => ({ status: 'ok' as const }))

  app.get('/api/health/ready', { schema: { response: { 200: Ready, 503: Ready } } }, async (_request, reply) => {
    try {
      const applied = await schemaMigrations(app.db)
      const { pending } = compareMigrations(applied, inCode)
      const ready = pending.length === 0
      return await reply
        .code(ready ? 200 : 503)
        .send({ status: ready ? 'ready' : 'not_ready', database: 'up', pendingMigrations: pending })
    } catch (err) {
      app.log.warn({ err }, 'readiness check: database unreachable')
      return reply.code(503).send({ status: 'not_ready', database: 'down', pendingMigrations: [] })
    }
  })
}
