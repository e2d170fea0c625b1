// `npm run db -- health`: one look at the database an operator would otherwise
// assemble from a dozen psql queries. Read-only; runs as the admin connection.
// Verdict: down (no connection), degraded (something needs a person), healthy.
import type pg from 'pg'
import type { PoolSettings } from '../config.ts'
import { withClient } from '../db/admin-connection.ts'
import { migrationStatus } from '../db/migrate.ts'
import { checkRoles, serverFacts, type RoleCheck } from './status.ts'

export type HealthStatus = 'healthy' | 'degraded' | 'down'

// A query running longer than this is worth a look; in an auth database every
// procedure call takes milliseconds.
const LONG_QUERY_SECONDS = 60
// Below this share of reads served from shared buffers the server needs memory
// (only judged once enough blocks were read for the ratio to mean something).
const MIN_CACHE_HIT_RATIO = 0.9
const MIN_BLOCKS_FOR_RATIO = 10_000

export interface TableHealth {
  table: string
  rows: number
  totalBytes: number
  seqScans: number
  indexScans: number
}

export interface HealthReport {
  status: HealthStatus
  /** Why the status is not healthy. */
  problems: string[]
  latencyMs: number | null
  serverVersion?: string
  pool?: PoolLimits
  migrations?: { applied: number; pending: string[] }
  roles?: RoleCheck[]
  tables?: TableHealth[]
  cacheHitRatio?: number | null
  unusedIndexes?: string[]
  longRunningQueries?: { pid: number; seconds: number; state: string; query: string }[]
  locks?: { waiting: number; deadlocks: number }
  auth?: {
    users: { active: number; unverified: number; deactivated: number; locked: number }
    liveSessions: number
    lastHour: { failedLogins: number; lockouts: number; reuseDetections: number }
  }
  error?: string
}

/** The pool settings the report shows (the service's, from the same configuration). */
export type PoolLimits = Pick<PoolSettings, 'max' | 'min' | 'idleTimeoutMs' | 'connectTimeoutMs'>

export async function databaseHealth(options: { adminUrl: string; pool: PoolLimits }): Promise<HealthReport> {
  const started = performance.now()
  try {
    return await withClient(options.adminUrl, async (c) => {
      await c.query('SELECT 1')
      const latencyMs = Math.round((performance.now() - started) * 10) / 10
      return await inspect(c, latencyMs, options.pool)
    })
  } catch (err) {
    return {
      status: 'down',
      problems: ['database unreachable'],
      latencyMs: null,
      error: err instanceof Error ? err.message : String(err),
    }
  }
}

async function inspect(
  c: pg.ClientBase,
  latencyMs: number,
  { max, min, idleTimeoutMs, connectTimeoutMs }: PoolLimits,
): Promise<HealthReport> {
  const one = async <T>(sql: string): Promise<T> => (await c.query(sql)).rows[0] as T
  const { serverVersion } = await serverFacts(c)
  const migrations = await migrationStatus(c)
  const roles = await checkRoles(c)
  const tables = (
    await c.query<{ table: string; rows: string; total_bytes: string; seq_scan: string; idx_scan: string | null }>(`
      SELECT s.relname AS table, s.n_live_tup AS rows, pg_total_relation_size(s.relid) AS total_bytes,
             s.seq_scan, s.idx_scan
        FROM pg_stat_user_tables s WHERE s.schemaname = 'activity' ORDER BY s.relname`)
  ).rows.map((r) => ({
    table: r.table,
    rows: Number(r.rows),
    totalBytes: Number(r.total_bytes),
    seqScans: Number(r.seq_scan),
    indexScans: Number(r.idx_scan ?? 0),
  }))
  const cache = await one<{ hit: string; read: string; deadlocks: string }>(`
    SELECT blks_hit AS hit, blks_read AS read, deadlocks FROM pg_stat_database WHERE datname = current_database()`)
  const hit = Number(cache.hit)
  const read = Number(cache.read)
  const cacheHitRatio = hit + read === 0 ? null : Math.round((hit / (hit + read)) * 10_000) / 10_000
  const unusedIndexes = (
    await c.query<{ name: string }>(`
      SELECT i.indexrelname AS name FROM pg_stat_user_indexes i
        JOIN pg_index x ON x.indexrelid = i.indexrelid
       WHERE i.schemaname = 'activity' AND i.idx_scan = 0 AND NOT x.indisunique
       ORDER BY 1`)
  ).rows.map((r) => r.name)
  const longRunningQueries = (
    await c.query<{ pid: number; seconds: string; state: string; query: string }>(
      `SELECT pid, extract(epoch FROM now() - query_start)::int AS seconds, state, left(query, 200) AS query
         FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'
          AND backend_type = 'client backend' AND query_start < now() - make_interval(secs => $1)
        ORDER BY query_start`,
      [LONG_QUERY_SECONDS],
    )
  ).rows.map((r) => ({ pid: r.pid, seconds: Number(r.seconds), state: r.state, query: r.query }))
  const waiting = await one<{ n: number }>(`SELECT count(*)::int AS n FROM pg_locks l
    JOIN pg_database d ON d.oid = l.database WHERE d.datname = current_database() AND NOT l.granted`)
  const auth = migrations.applied.length === 0 ? undefined : await authFigures(c)

  const problems: string[] = []
  if (migrations.pending.length > 0) problems.push(`${migrations.pending.length} pending migration(s)`)
  for (const r of roles.filter((r) => !r.ok)) problems.push(`role ${r.role}: ${r.problems.join('; ')}`)
  if (cacheHitRatio !== null && hit + read >= MIN_BLOCKS_FOR_RATIO && cacheHitRatio < MIN_CACHE_HIT_RATIO) {
    problems.push(`cache hit ratio ${cacheHitRatio} below ${MIN_CACHE_HIT_RATIO}`)
  }
  if (longRunningQueries.length > 0) problems.push(`${longRunningQueries.length} query(ies) running over ${LONG_QUERY_SECONDS} s`)
  if (waiting.n > 0) problems.push(`${waiting.n} lock(s) waiting`)

  return {
    status: problems.length === 0 ? 'healthy' : 'degraded',
    problems,
    latencyMs,
    serverVersion,
    pool: { max, min, idleTimeoutMs, connectTimeoutMs },
    migrations: { applied: migrations.applied.length, pending: migrations.pending },
    roles,
    tables,
    cacheHitRatio,
    unusedIndexes,
    longRunningQueries,
    locks: { waiting: waiting.n, deadlocks: Number(cache.deadlocks) },
    ...(auth === undefined ? {} : { auth }),
  }
}

async function authFigures(c: pg.ClientBase): Promise<NonNullable<HealthReport['auth']>> {
  const { rows } = await c.query<Record<string, number>>(`
    SELECT
      (SELECT count(*)::int FROM activity.users WHERE is_active AND is_verified) AS active,
      (SELECT count(*)::int FROM activity.users WHERE is_active AND NOT is_verified) AS unverified,
      (SELECT count(*)::int FROM activity.users WHERE NOT is_active) AS deactivated,
      (SELECT count(*)::int FROM activity.users WHERE locked_until > now()) AS locked,
      (SELECT count(DISTINCT family_id)::int FROM activity.refresh_tokens
        WHERE NOT revoked AND expires_at > now() AND family_expires_at > now()) AS live_sessions,
      (SELECT count(*)::int FROM activity.audit_logs WHERE action = 'login_failed' AND created_at > now() - interval '1 hour') AS failed,
      (SELECT count(*)::int FROM activity.audit_logs
        WHERE action IN ('account_locked', 'ip_locked') AND created_at > now() - interval '1 hour') AS lockouts,
      (SELECT count(*)::int FROM activity.audit_logs WHERE action = 'refresh_token_reuse' AND created_at > now() - interval '1 hour') AS reuse`)
  const r = rows[0] ?? {}
  const n = (k: string) => r[k] ?? 0
  return {
    users: { active: n('active'), unverified: n('unverified'), deactivated: n('deactivated'), locked: n('locked') },
    liveSessions: n('live_sessions'),
    lastHour: { failedLogins: n('failed'), lockouts: n('lockouts'), reuseDetections: n('reuse') },
  }
}

export function describeHealth(report: HealthReport): string {
  const lines = [`database ${report.status}${report.latencyMs === null ? '' : ` (latency ${report.latencyMs} ms)`}`]
  for (const p of report.problems) lines.push(`  problem  ${p}`)
  if (report.error !== undefined) lines.push(`  error    ${report.error}`)
  if (report.pool !== undefined) {
    const p = report.pool
    lines.push(`  pool     max ${p.max}, min ${p.min}, idle ${p.idleTimeoutMs} ms, connect ${p.connectTimeoutMs} ms`)
  }
  if (report.serverVersion !== undefined) lines.push(`  server   PostgreSQL ${report.serverVersion}`)
  for (const t of report.tables ?? []) {
    lines.push(`  table    ${t.table}: ~${t.rows} rows, ${t.totalBytes} bytes, ${t.seqScans} seq / ${t.indexScans} index scans`)
  }
  if (report.cacheHitRatio !== undefined) lines.push(`  cache    hit ratio ${report.cacheHitRatio ?? 'n/a'}`)
  if (report.unusedIndexes !== undefined && report.unusedIndexes.length > 0)
    lines.push(`  indexes  unused: ${report.unusedIndexes.join(', ')}`)
  if (report.locks !== undefined)
    lines.push(`  locks    ${report.locks.waiting} waiting, ${report.locks.deadlocks} deadlocks since stats reset`)
  for (const q of report.longRunningQueries ?? []) lines.push(`  slow     pid ${q.pid} ${q.seconds} s ${q.state}: ${q.query}`)
  if (report.auth !== undefined) {
    const a = report.auth
    lines.push(
      `  users    ${a.users.active} active, ${a.users.unverified} unverified, ${a.users.deactivated} deactivated, ${a.users.locked} locked`,
      `  sessions ${a.liveSessions} live`,
      `  hour     ${a.lastHour.failedLogins} failed logins, ${a.lastHour.lockouts} lockouts, ${a.lastHour.reuseDetections} reuse detections`,
    )
  }
  return lines.join('\n')
}
