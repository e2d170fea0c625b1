// The HTTP ceiling: a bare Fastify with the service's constructor options
// (logger, request ids, error options: src/app.ts serverOptions) and nothing
// else — no plugins, no hooks, no database — answering the same JSON as
// GET /api/health/live and GET /api/auth/me, with the same response schemas
// (the service's own Me schema). Its log lines go where the service's go, the same
// way (stdoutLog), and its live route is a probe as the service's is (logged at debug).
import Fastify from 'fastify'
import { Type } from '@sinclair/typebox'
import { serverOptions } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { stdoutLog } from '../../src/logging.ts'
import { MeSchema } from '../../src/schemas/auth.ts'

const config = loadConfig()
const app = Fastify(serverOptions(config, stdoutLog()))
const me = JSON.parse(process.env.BENCH_ME_BODY ?? '{}') as Record<string, unknown>

const Live = Type.Object({ status: Type.Literal('ok') }, { additionalProperties: false })

app.get('/api/health/live', { config: { probe: true }, schema: { response: { 200: Live } } }, async () => ({ status: 'ok' as const }))
app.get('/api/auth/me', { schema: { response: { 200: MeSchema } } }, async () => me)

process.on('SIGTERM', () => {
  void app.close().finally(() => process.exit(0))
})
await app.listen({ host: config.http.host, port: config.http.port })
