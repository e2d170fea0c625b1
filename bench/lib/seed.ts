// Bulk data for the bench and the EXPLAIN test, loaded with COPY: users with a
// real argon2id hash of BENCH_PASSWORD (so any of them can log in), and refresh
// tokens shaped like a live system's — per user one session whose earlier tokens
// were rotated (revoked, replaced_by the next) and whose newest token is live.
// Optionally login_attempts and email_tokens rows. Emails and user ids are a
// function of the row number, so the bench finds its users without a query.
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import pg from 'pg'
import { chunked, copyFrom } from './copy.ts'

export const BENCH_PASSWORD = 'correct horse battery staple'

export function benchEmail(i: number): string {
  return `bench-${i}@bench.example`
}

/** A uuid scattered like gen_random_uuid()'s, but reproducible from the row number. */
export function benchUserId(i: number): string {
  const h = createHash('md5').update(`bench-user-${i}`).digest('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`
}

export interface SeedOptions {
  users: number
  /** Refresh tokens in total, spread over the users (at most 5 per session). */
  tokens: number
  /** argon2id PHC string every seeded user gets. */
  passwordHash: string
  loginAttempts?: number
  emailTokens?: number
  /**
   * Drop the secondary indexes of users and refresh_tokens for the load and build
   * them again afterwards (default: from 100,000 tokens on, where it saves minutes).
   */
  rebuildIndexes?: boolean
  /** VACUUM ANALYZE afterwards (default true), as autovacuum would have done on a live system. */
  vacuum?: boolean
  log?: (line: string) => void
}

export interface SeedResult {
  users: number
  tokens: number
  loginAttempts: number
  emailTokens: number
  seconds: number
}

const DAY = 86_400_000
const SESSION_LENGTH = 5

/** ISO timestamps on a one-minute grid, cached: formatting millions of dates would dominate. */
function timeGrid(base: number) {
  const cache = new Map<number, string>()
  return (offsetMs: number): string => {
    const minute = Math.floor(offsetMs / 60_000)
    let s = cache.get(minute)
    if (s === undefined) {
      s = new Date(base + minute * 60_000).toISOString()
      cache.set(minute, s)
    }
    return s
  }
}

function* userRows(count: number, hash: string, at: (offset: number) => string): Generator<string> {
  for (let i = 0; i < count; i++) {
    const created = at(-((i * 7919) % (30 * 1440)) * 60_000)
    // id, email, hashed_password, is_verified, created_at, verified_at, updated_at, password_changed_at
    yield `${benchUserId(i)}\t${benchEmail(i)}\t${hash}\tt\t${created}\t${created}\t${created}\t${created}\n`
  }
}

function* tokenRows(users: number, tokens: number, firstId: number, at: (offset: number) => string): Generator<string> {
  const perUser = Math.floor(tokens / users)
  const extra = tokens % users
  let id = firstId
  let hex = ''
  let hexAt = 0
  const randomHex = (): string => {
    if (hexAt >= hex.length) {
      hex = randomBytes(32 * 4096).toString('hex')
      hexAt = 0
    }
    const s = hex.slice(hexAt, hexAt + 64)
    hexAt += 64
    return s
  }
  for (let u = 0; u < users; u++) {
    const userId = benchUserId(u)
    let left = perUser + (u < extra ? 1 : 0)
    while (left > 0) {
      const length = Math.min(SESSION_LENGTH, left)
      left -= length
      const family = randomUUID()
      // Sessions started up to 6 days ago, one rotation an hour.
      const start = -((id * 104_729) % (6 * 1440)) * 60_000
      const familyExpires = at(start + 30 * DAY)
      for (let k = 0; k < length; k++) {
        const created = start + k * 3_600_000
        const last = k === length - 1
        const expires = at(created + 7 * DAY)
        const revoked = last ? 'f\t' : 't\t'
        const replacedBy = last ? '\\N' : String(id + 1)
        const revokedAt = last ? '\\N' : at(created + 3_600_000)
        const reason = last ? '\\N' : 'rotated'
        const lastUsed = last ? '\\N' : revokedAt
        // id, user_id, token, jti, expires_at, created_at, revoked, family_id, family_expires_at,
        // replaced_by, revoked_at, revoked_reason, last_used_at, user_agent, ip
        yield `${id}\t${userId}\t${randomHex()}\t${randomUUID()}\t${expires}\t${at(created)}\t${revoked}${family}\t${familyExpires}\t${replacedBy}\t${revokedAt}\t${reason}\t${lastUsed}\tbench-seed/1.0\t10.0.${(u >> 8) & 255}.${u & 255}\n`
        id++
      }
    }
  }
}

function* loginAttemptRows(count: number, at: (offset: number) => string): Generator<string> {
  for (let i = 0; i < count; i++) {
    const key = i % 2 === 0 ? `nobody-${i}@elsewhere.example` : `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`
    const when = at(-(i % 1440) * 60_000)
    yield `${i % 2 === 0 ? 'email' : 'ip'}\t${key}\t1\t${when}\t${when}\t\\N\n`
  }
}

function* emailTokenRows(count: number, users: number, at: (offset: number) => string): Generator<string> {
  for (let i = 0; i < count; i++) {
    const u = (i * 7) % users
    const created = -(i % 1440) * 60_000
    const used = i % 3 === 0 ? '\\N' : at(created + 60_000)
    // user_id, purpose, token_hash, email, created_at, expires_at, used_at
    yield `${benchUserId(u)}\t${i % 2 === 0 ? 'verify_email' : 'reset_password'}\t${randomBytes(32).toString('hex')}\t${benchEmail(u)}\t${at(created)}\t${at(created + DAY)}\t${used}\n`
  }
}

async function withAdmin<T>(adminUrl: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl })
  client.on('error', () => undefined)
  await client.connect()
  try {
    // The rows are consistent by construction: skip the per-row foreign-key triggers.
    await client.query(`SET session_replication_role = replica`)
    return await fn(client)
  } finally {
    await client.end()
  }
}

/**
 * Drops the indexes of users and refresh_tokens other than the primary keys and
 * those a foreign key depends on (unique constraints included); returns the SQL
 * that builds them again, read back from the catalogue.
 */
async function dropSecondaryIndexes(adminUrl: string): Promise<string[]> {
  return withAdmin(adminUrl, async (c) => {
    const { rows } = await c.query<{ index: string; rel: string; constraint: string | null; def: string }>(
      `SELECT i.indexrelid::regclass::text AS index, i.indrelid::regclass::text AS rel, k.conname AS constraint,
              CASE WHEN k.oid IS NULL THEN pg_get_indexdef(i.indexrelid) ELSE pg_get_constraintdef(k.oid) END AS def
         FROM pg_index i
         LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.contype IN ('u', 'p', 'x')
        WHERE i.indrelid IN ('activity.users'::regclass, 'activity.refresh_tokens'::regclass)
          AND NOT i.indisprimary
          AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = i.indexrelid)
        ORDER BY 1`,
    )
    const rebuild: string[] = []
    for (const row of rows) {
      if (row.constraint === null) {
        await c.query(`DROP INDEX ${row.index}`)
        rebuild.push(row.def)
      } else {
        await c.query(`ALTER TABLE ${row.rel} DROP CONSTRAINT ${c.escapeIdentifier(row.constraint)}`)
        rebuild.push(`ALTER TABLE ${row.rel} ADD CONSTRAINT ${c.escapeIdentifier(row.constraint)} ${row.def}`)
      }
    }
    return rebuild
  })
}

/** Builds the dropped indexes again, two at a time (one per core). */
async function recreateIndexes(adminUrl: string, defs: string[]): Promise<void> {
  const queue = [...defs]
  const worker = () =>
    withAdmin(adminUrl, async (c) => {
      await c.query(`SET maintenance_work_mem = '512MB'`)
      for (let def = queue.shift(); def !== undefined; def = queue.shift()) await c.query(def)
    })
  await Promise.all([worker(), worker()])
}

/** Load the rows with COPY (users and tokens on two connections at once). adminUrl: a superuser on the database. */
export async function seed(adminUrl: string, opts: SeedOptions): Promise<SeedResult> {
  const log = opts.log ?? (() => undefined)
  const started = performance.now()
  const at = timeGrid(Date.now())
  const firstId = await withAdmin(adminUrl, async (c) => {
    const { rows } = await c.query<{ next: number }>(`SELECT COALESCE(max(id), 0)::int + 1 AS next FROM activity.refresh_tokens`)
    return rows[0]?.next ?? 1
  })
  // Secondary indexes that back no constraint are dropped for the load and built
  // again afterwards (a sort per index instead of millions of random inserts):
  // the same definitions, read back from the catalogue.
  const rebuild = (opts.rebuildIndexes ?? opts.tokens >= 100_000) ? await dropSecondaryIndexes(adminUrl) : []
  const loadUsers = withAdmin(adminUrl, (c) =>
    copyFrom(
      c,
      'activity.users (id, email, hashed_password, is_verified, created_at, verified_at, updated_at, password_changed_at)',
      chunked(userRows(opts.users, opts.passwordHash, at)),
    ),
  )
  const loadTokens =
    opts.tokens > 0 && opts.users > 0
      ? withAdmin(adminUrl, (c) =>
          copyFrom(
            c,
            'activity.refresh_tokens (id, user_id, token, jti, expires_at, created_at, revoked, family_id, family_expires_at, replaced_by, revoked_at, revoked_reason, last_used_at, user_agent, ip)',
            chunked(tokenRows(opts.users, opts.tokens, firstId, at)),
          ),
        )
      : Promise.resolve(0)
  let users: number
  let tokens: number
  try {
    ;[users, tokens] = await Promise.all([loadUsers, loadTokens])
  } finally {
    const indexStarted = performance.now()
    await recreateIndexes(adminUrl, rebuild)
    if (rebuild.length > 0)
      log(
        `COPY in ${((indexStarted - started) / 1000).toFixed(1)} s, ${rebuild.length} indexes rebuilt in ${((performance.now() - indexStarted) / 1000).toFixed(1)} s`,
      )
  }
  log(`seeded ${users} users and ${tokens} refresh tokens in ${((performance.now() - started) / 1000).toFixed(1)} s`)

  const extra = await withAdmin(adminUrl, async (c) => {
    await c.query(
      `SELECT setval(pg_get_serial_sequence('activity.refresh_tokens', 'id'), GREATEST((SELECT max(id) FROM activity.refresh_tokens), 1))`,
    )
    const attempts =
      (opts.loginAttempts ?? 0) > 0
        ? await copyFrom(
            c,
            'activity.login_attempts (scope, key, failed_count, first_failed_at, last_failed_at, locked_until)',
            chunked(loginAttemptRows(opts.loginAttempts ?? 0, at)),
          )
        : 0
    const emailTokens =
      (opts.emailTokens ?? 0) > 0 && opts.users > 0
        ? await copyFrom(
            c,
            'activity.email_tokens (user_id, purpose, token_hash, email, created_at, expires_at, used_at)',
            chunked(emailTokenRows(opts.emailTokens ?? 0, opts.users, at)),
          )
        : 0
    return { attempts, emailTokens }
  })

  if (opts.vacuum ?? true) {
    const vacuumStarted = performance.now()
    await withAdmin(adminUrl, async (c) => {
      for (const table of ['users', 'refresh_tokens', 'login_attempts', 'email_tokens']) {
        await c.query(`VACUUM (ANALYZE) activity.${table}`)
      }
    })
    log(`VACUUM ANALYZE in ${((performance.now() - vacuumStarted) / 1000).toFixed(1)} s`)
  }
  // Write the load out now, not in a checkpoint in the middle of the next measurement.
  await withAdmin(adminUrl, (c) => c.query('CHECKPOINT'))
  return {
    users,
    tokens,
    loginAttempts: extra.attempts,
    emailTokens: extra.emailTokens,
    seconds: (performance.now() - started) / 1000,
  }
}
