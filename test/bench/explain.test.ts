// The growth rows of the bench hold only if every lookup the hot procedures make
// is an index lookup. With a moderate amount of data (bench/lib/seed.ts, COPY),
// each query of the procedures' bodies (sql/migrations, same predicates, the
// procedure's variables as parameters) is EXPLAINed both as a custom plan (what
// PL/pgSQL uses for its first executions) and as a generic plan (what it may
// cache afterwards): neither may scan users, refresh_tokens, login_attempts or
// email_tokens sequentially.
import t from 'tap'
import pg from 'pg'
import { benchEmail, benchUserId, seed } from '../../bench/lib/seed.ts'
import { createTestDatabase } from '../helpers/db.ts'
import { fakeHash, hex64 } from '../helpers/fixtures.ts'

const TABLES = ['users', 'refresh_tokens', 'login_attempts', 'email_tokens']
const INDEX_NODE = /Index Scan|Index Only Scan|Bitmap Index Scan/

interface Lookup {
  /** Procedure(s) and what the query finds. */
  name: string
  types: string[]
  sql: string
  params: (string | number | null)[]
}

// The procedures' own spelling: the inlined function must still match the partial indexes.
const LIVE = `activity.fn_refresh_token_is_live(t.revoked, t.expires_at, t.family_expires_at)`

function lookups(ids: {
  userId: string
  email: string
  tokenHash: string
  familyId: string
  tokenId: number
  emailHash: string
}): Lookup[] {
  const { userId, email, tokenHash, familyId, tokenId, emailHash } = ids
  return [
    // users by email
    {
      name: 'sp_get_user_by_email: users by email',
      types: ['text'],
      sql: `SELECT u.id, u.hashed_password FROM activity.users u WHERE u.email = lower(btrim($1))`,
      params: [email],
    },
    {
      name: 'sp_record_failed_login: lock the account by email',
      types: ['text'],
      sql: `SELECT u.id FROM activity.users u WHERE u.email = $1 FOR NO KEY UPDATE`,
      params: [email],
    },
    {
      name: 'sp_record_failed_login: mirror the counter by email',
      types: ['text', 'integer'],
      sql: `UPDATE activity.users u SET failed_login_attempts = $2, locked_until = NULL WHERE u.email = $1`,
      params: [email, 1],
    },
    // users by id
    {
      name: 'sp_get_user_by_id: users by id',
      types: ['uuid'],
      sql: `SELECT u.id, u.email FROM activity.users u WHERE u.id = $1`,
      params: [userId],
    },
    {
      name: 'sp_rotate/sp_save_refresh_token: users row FOR KEY SHARE',
      types: ['uuid'],
      sql: `SELECT u.is_active FROM activity.users u WHERE u.id = $1 FOR KEY SHARE`,
      params: [userId],
    },
    {
      name: 'sp_record_successful_login: update by id',
      types: ['uuid'],
      sql: `UPDATE activity.users u SET last_login_at = now(), failed_login_attempts = 0, locked_until = NULL WHERE u.id = $1`,
      params: [userId],
    },
    // refresh_tokens by token hash
    {
      name: 'sp_rotate/sp_revoke_refresh_token: token by hash',
      types: ['text'],
      sql: `SELECT t.user_id, t.family_id FROM activity.refresh_tokens t WHERE t.token = $1`,
      params: [tokenHash],
    },
    {
      name: 'sp_rotate_refresh_token: token by hash FOR UPDATE',
      types: ['text'],
      sql: `SELECT * FROM activity.refresh_tokens t WHERE t.token = $1 FOR UPDATE`,
      params: [tokenHash],
    },
    {
      name: 'sp_get_valid_refresh_token: live token by hash with its user',
      types: ['text'],
      sql: `SELECT t.id FROM activity.refresh_tokens t JOIN activity.users u ON u.id = t.user_id WHERE t.token = $1 AND ${LIVE} AND u.is_active`,
      params: [tokenHash],
    },
    // refresh_tokens by id
    {
      name: 'sp_rotate_refresh_token: the replacing token by id',
      types: ['integer'],
      sql: `SELECT * FROM activity.refresh_tokens t WHERE t.id = $1`,
      params: [tokenId],
    },
    {
      name: 'sp_rotate_refresh_token: mark rotated by id',
      types: ['integer'],
      sql: `UPDATE activity.refresh_tokens t SET last_used_at = now() WHERE t.id = $1`,
      params: [tokenId],
    },
    // refresh_tokens by family
    {
      name: 'sp_rotate (reuse)/sp_revoke_refresh_token: revoke a family',
      types: ['uuid'],
      sql: `UPDATE activity.refresh_tokens t SET revoked = true, revoked_at = now(), revoked_reason = 'reuse_detected' WHERE t.family_id = $1 AND ${LIVE}`,
      params: [familyId],
    },
    {
      name: 'sp_check_session: live token of the family and user',
      types: ['uuid', 'uuid'],
      sql: `SELECT EXISTS (SELECT 1 FROM activity.refresh_tokens t JOIN activity.users u ON u.id = t.user_id WHERE t.family_id = $2 AND t.user_id = $1 AND ${LIVE} AND u.is_active)`,
      params: [userId, familyId],
    },
    {
      name: 'sp_revoke_user_session: revoke one family of the user',
      types: ['uuid', 'uuid'],
      sql: `UPDATE activity.refresh_tokens t SET revoked = true, revoked_at = now(), revoked_reason = 'session_ended' WHERE t.family_id = $2 AND t.user_id = $1 AND ${LIVE}`,
      params: [userId, familyId],
    },
    // refresh_tokens: a user's live tokens
    {
      name: 'fn_revoke_user_families: live families of the user',
      types: ['uuid', 'uuid'],
      sql: `SELECT DISTINCT t.family_id FROM activity.refresh_tokens t WHERE t.user_id = $1 AND ${LIVE} AND t.family_id IS DISTINCT FROM $2 ORDER BY t.family_id`,
      params: [userId, null],
    },
    {
      name: 'fn_revoke_user_families: revoke them',
      types: ['uuid', 'uuid'],
      sql: `UPDATE activity.refresh_tokens t SET revoked = true, revoked_at = now(), revoked_reason = 'logout_all' WHERE t.user_id = $1 AND ${LIVE} AND t.family_id IS DISTINCT FROM $2`,
      params: [userId, null],
    },
    {
      name: 'sp_list_user_sessions: live sessions with their first and last use',
      types: ['uuid'],
      sql: `SELECT l.family_id, f.created_at, f.last_used_at
              FROM (SELECT DISTINCT ON (t.family_id) t.family_id, t.expires_at, t.ip, t.user_agent
                      FROM activity.refresh_tokens t
                      JOIN activity.users u ON u.id = t.user_id AND u.is_active
                     WHERE t.user_id = $1 AND ${LIVE}
                     ORDER BY t.family_id, t.id DESC) l
             CROSS JOIN LATERAL (
                   SELECT min(a.created_at) AS created_at, max(COALESCE(a.last_used_at, a.created_at)) AS last_used_at
                     FROM activity.refresh_tokens a WHERE a.family_id = l.family_id) f
             ORDER BY f.created_at DESC, l.family_id`,
      params: [userId],
    },
    // login_attempts by key
    {
      name: 'sp_check_login_lock: email and ip locks',
      types: ['text', 'text'],
      sql: `SELECT max(a.locked_until) FROM activity.login_attempts a
             WHERE a.locked_until > now()
               AND ((a.scope = 'email' AND a.key = left(lower(btrim($1)), 255)) OR (a.scope = 'ip' AND a.key = left(btrim($2), 255)))`,
      params: [email, '10.1.2.3'],
    },
    {
      name: 'sp_record_successful_login: clear the email counter',
      types: ['text'],
      sql: `DELETE FROM activity.login_attempts a WHERE a.scope = 'email' AND a.key = $1`,
      params: [email],
    },
    // email_tokens by hash, by user
    {
      name: 'sp_consume_email_token: token by hash and purpose',
      types: ['text', 'text'],
      sql: `SELECT e.user_id FROM activity.email_tokens e WHERE e.token_hash = $1::bpchar AND e.purpose = $2::activity.email_token_purpose`,
      params: [emailHash, 'verify_email'],
    },
    {
      name: 'sp_consume_email_token: token by hash FOR UPDATE',
      types: ['text'],
      sql: `SELECT * FROM activity.email_tokens e WHERE e.token_hash = $1::bpchar FOR UPDATE`,
      params: [emailHash],
    },
    {
      name: 'sp_create_email_token: burn earlier links of the user',
      types: ['uuid', 'text'],
      sql: `UPDATE activity.email_tokens e SET used_at = now() WHERE e.user_id = $1 AND e.purpose = $2::activity.email_token_purpose AND e.used_at IS NULL`,
      params: [userId, 'reset_password'],
    },
    {
      name: 'sp_deactivate_user: burn every link of the user',
      types: ['uuid'],
      sql: `UPDATE activity.email_tokens e SET used_at = now() WHERE e.user_id = $1 AND e.used_at IS NULL`,
      params: [userId],
    },
  ]
}

async function plan(client: pg.Client, lookup: Lookup, mode: 'force_custom_plan' | 'force_generic_plan'): Promise<string> {
  await client.query(`SET plan_cache_mode = ${mode}`)
  await client.query(`PREPARE lookup(${lookup.types.join(', ')}) AS ${lookup.sql}`)
  try {
    const literals = lookup.params.map((p) => (p === null ? 'NULL' : typeof p === 'number' ? String(p) : client.escapeLiteral(p)))
    const { rows } = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN EXECUTE lookup(${literals.join(', ')})`)
    return rows.map((r) => r['QUERY PLAN']).join('\n')
  } finally {
    await client.query('DEALLOCATE lookup')
  }
}

t.test('every lookup of the hot procedures is an index lookup, custom and generic plans', async (t) => {
  const db = await createTestDatabase(t)
  const client = new pg.Client({ connectionString: db.adminUrl })
  await client.connect()
  t.teardown(() => client.end())
  const indexes = async () =>
    (await client.query<{ indexdef: string }>(`SELECT indexdef FROM pg_indexes WHERE schemaname = 'activity' ORDER BY indexname`)).rows
  const before = await indexes()
  // The seeder drops and rebuilds secondary indexes around the COPY: the plans below
  // must be those of the migration's own indexes, so the set must come back unchanged.
  await seed(db.adminUrl, {
    users: 20_000,
    tokens: 50_000,
    passwordHash: fakeHash(),
    loginAttempts: 20_000,
    emailTokens: 20_000,
    rebuildIndexes: true,
  })
  t.same(await indexes(), before, "the seeder leaves the schema's indexes as the migration made them")
  const userId = benchUserId(12_345)
  const { rows } = await client.query<{ token: string; family_id: string; id: number }>(
    `SELECT token, family_id, id FROM activity.refresh_tokens WHERE user_id = $1 ORDER BY id LIMIT 1`,
    [userId],
  )
  const token = rows[0]
  if (token === undefined) throw new Error('the seeded user has no refresh token')
  const hash = await client.query<{ token_hash: string }>(`SELECT token_hash FROM activity.email_tokens LIMIT 1`)
  const ids = {
    userId,
    email: benchEmail(12_345),
    tokenHash: token.token,
    familyId: token.family_id,
    tokenId: token.id,
    emailHash: hash.rows[0]?.token_hash ?? hex64(),
  }

  for (const lookup of lookups(ids)) {
    for (const mode of ['force_custom_plan', 'force_generic_plan'] as const) {
      const text = await plan(client, lookup, mode)
      const seqScans = TABLES.filter((table) => new RegExp(`Seq Scan on ${table}\\b`).test(text))
      t.same(seqScans, [], `${lookup.name} (${mode}): no sequential scan\n${text}`)
      t.match(text, INDEX_NODE, `${lookup.name} (${mode}): an index lookup`)
    }
  }

  // fn_count_failure's upsert finds the row through the primary key (ON CONFLICT arbiter).
  const upsert = await client.query<{ 'QUERY PLAN': string }>(
    `EXPLAIN INSERT INTO activity.login_attempts AS a (scope, key, failed_count) VALUES ('email', 'x@example.com', 1)
       ON CONFLICT (scope, key) DO UPDATE SET failed_count = a.failed_count + 1`,
  )
  t.match(upsert.rows.map((r) => r['QUERY PLAN']).join('\n'), /Conflict Arbiter Indexes: login_attempts_pkey/)
})
