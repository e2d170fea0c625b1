// Replies of the health probes (/api/health/*). A probe's 503 has the schema of its
// 200: the body is the report either way.
import { Type } from '@sinclair/typebox'
import { closed } from './common.ts'

const UpOrDown = Type.Union([Type.Literal('up'), Type.Literal('down')])

export const Live = closed({ status: Type.Literal('ok') })
export const Ready = closed({
  status: Type.Union([Type.Literal('ready'), Type.Literal('not_ready')]),
  database: UpOrDown,
  pendingMigrations: Type.Array(Type.String()),
})
const Pool = closed({ total: Type.Integer(), idle: Type.Integer(), waiting: Type.Integer(), max: Type.Integer(), min: Type.Integer() })
export const DatabaseHealth = closed({
  status: UpOrDown,
  latencyMs: Type.Union([Type.Number(), Type.Null()]),
  appliedMigrations: Type.Integer(),
  pendingMigrations: Type.Array(Type.String()),
  pool: Pool,
})
export const Summary = closed({
  status: Type.Union([Type.Literal('ok'), Type.Literal('degraded')]),
  uptimeSeconds: Type.Number(),
  database: UpOrDown,
  migrations: Type.Union([Type.Literal('current'), Type.Literal('pending')]),
  /** Where rate limits are counted; `memory-fallback` while the configured Redis is down. */
  rateLimitStore: Type.Union([Type.Literal('redis'), Type.Literal('memory-fallback'), Type.Literal('memory'), Type.Literal('off')]),
})
