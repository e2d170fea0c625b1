// The service's one pg Pool (seed-000 settings, all configurable), connected as
// auth_api_user. Stats feed /api/health/database and /metrics.
import pg from 'pg'
import type { PoolSettings } from '../config.ts'
import { setStatementCache } from './procedures.ts'

export interface PoolStats {
  total: number
  idle: number
  waiting: number
  max: number
  min: number
}

export function createPool(settings: PoolSettings, connectionString: string): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max: settings.max,
    min: Math.min(settings.min, settings.max),
    idleTimeoutMillis: settings.idleTimeoutMs,
    connectionTimeoutMillis: settings.connectTimeoutMs,
    ssl: settings.ssl ? { rejectUnauthorized: true } : undefined,
    application_name: 'activity-auth',
    // A connection whose peer vanished without a reset (host down, a NAT or
    // balancer forgetting it) is eventually found dead by TCP keepalive (probes
    // after 10 s idle, interval and count from the OS) and replaced, instead of
    // holding a pool slot for ever.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  })
  // An idle client losing its connection (server restart, a cut connection)
  // must not crash the process; the pool drops it and the next query gets a
  // fresh one. A query on a lost connection fails and its client is discarded
  // (procedures.ts), and the error is answered 503 (plugins/errors.ts).
  pool.on('error', () => undefined)
  setStatementCache(pool, settings.statementCache)
  // A client checked out of the pool (a transaction, e.g. the events publisher's) is
  // another object: it takes the pool's setting when its connection is made, so named
  // statements never reach a transaction pooler through it either.
  pool.on('connect', (client) => setStatementCache(client, settings.statementCache))
  return pool
}

export function poolStats(pool: pg.Pool): PoolStats {
  return {
    total: pool.totalCount,
    idle: pool.idleCount,
    waiting: pool.waitingCount,
    max: pool.options.max,
    min: pool.options.min ?? 0,
  }
}
