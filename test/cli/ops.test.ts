// The operations CLI beyond migrations: seed, reset, cleanup, health and the
// backup-directory commands, each against the run's real server.
import { spawnSync } from 'node:child_process'
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { withClient, withDatabase } from '../../src/db/admin-connection.ts'
import { cleanupBackups } from '../../src/ops/backup.ts'
import type { HealthReport } from '../../src/ops/health.ts'
import { SEED_EMAILS, SEED_PASSWORD, seedToken } from '../../src/ops/seed.ts'
import { createPasswordHasher } from '../../src/auth/passwords.ts'
import { hashToken } from '../../src/auth/tokens.ts'
import { cli, cliEnv, cliJson } from '../helpers/cli.ts'
import { nodeArgs } from '../helpers/child.ts'
import { readRun } from '../helpers/cluster.ts'

/** A database initialised by the CLI itself, dropped after the test. */
async function initDatabase(t: Test, suffix: string): Promise<{ env: NodeJS.ProcessEnv; adminUrl: string }> {
  const run = readRun()
  const database = `${run.prefix}_${suffix}`
  t.teardown(() => withClient(run.adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)))
  const env = cliEnv(database)
  t.equal((await cli(['init'], env)).code, 0)
  return { env, adminUrl: withDatabase(run.adminUrl, database) }
}

type Snapshot = Record<string, string>
/** Every row of the seeded tables, as text, minus what a reseed may legitimately move (timestamps, the hash). */
async function seededRows(adminUrl: string): Promise<Snapshot> {
  return withClient(adminUrl, async (c) => {
    const q = async (sql: string) => JSON.stringify((await c.query(sql)).rows)
    return {
      users: await q(`SELECT id, email, is_verified, is_active, failed_login_attempts, locked_until IS NOT NULL AS locked
                        FROM activity.users ORDER BY email`),
      tokens: await q(`SELECT id, user_id, token, jti, family_id, revoked, revoked_reason, expires_at > now() AS live
                         FROM activity.refresh_tokens ORDER BY jti`),
      attempts: await q(`SELECT scope, key, failed_count, locked_until > now() AS locked FROM activity.login_attempts ORDER BY key`),
    }
  })
}

t.test('seed: every user and session state, with a known password and token; twice gives the same rows', async (t) => {
  const { env, adminUrl } = await initDatabase(t, 'seed')
  const first = await cliJson<{ users: number; sessions: number; password: string; liveRefreshToken: string }>(['seed'], env)
  t.same(first.body, { users: 4, sessions: 3, password: SEED_PASSWORD, liveRefreshToken: seedToken('live') })
  const before = await seededRows(adminUrl)
  const second = await cli(['seed'], env)
  t.match(second.out, /seeded 4 users .* and 3 sessions/)
  t.same(await seededRows(adminUrl), before, 'same rows after a second run')

  await withClient(adminUrl, async (c) => {
    const users = await c.query<{ email: string; is_verified: boolean; is_active: boolean; locked: boolean; hashed_password: string }>(
      `SELECT email, is_verified, is_active, coalesce(locked_until > now(), false) AS locked, hashed_password FROM activity.users ORDER BY email`,
    )
    t.same(
      users.rows.map((u) => [u.email, u.is_verified, u.is_active, u.locked]),
      [
        ['active@example.com', true, true, false],
        ['deactivated@example.com', true, false, false],
        ['locked@example.com', true, true, true],
        ['unverified@example.com', false, true, false],
      ],
    )
    t.same(users.rows.map((u) => u.email).sort(), [...SEED_EMAILS].sort())
    const hasher = createPasswordHasher({ memoryKiB: 1024, timeCost: 1, parallelism: 1 })
    for (const u of users.rows) t.ok(await hasher.verify(u.hashed_password, SEED_PASSWORD), `${u.email} has the seed password`)
    // The printed token is the live session's: its SHA-256 is what is stored.
    const live = await c.query(`SELECT 1 FROM activity.refresh_tokens WHERE token = $1 AND NOT revoked AND expires_at > now()`, [
      hashToken(seedToken('live')),
    ])
    t.equal(live.rowCount, 1)
  })
})

t.test('reset --yes drops every row and leaves a migrated, empty schema', async (t) => {
  const { env, adminUrl } = await initDatabase(t, 'reset')
  await cli(['seed'], env)
  const reset = await cliJson<{ applied: string[] }>(['reset', '--yes'], env)
  t.equal(reset.code, 0)
  t.ok(reset.body.applied.length > 0, 'migrations applied again')
  const users = await withClient(adminUrl, (c) => c.query<{ n: number }>('SELECT count(*)::int AS n FROM activity.users'))
  t.equal(users.rows[0]?.n, 0)
  const status = await cliJson<{ pending: string[]; roles: { ok: boolean }[] }>(['status'], env)
  t.same(status.body.pending, [])
  t.ok(
    status.body.roles.every((r) => r.ok),
    'grants restored by bootstrap + migrate',
  )
})

t.test('cleanup removes what is past retention, keeps what is inside, and yields to a running cleanup', async (t) => {
  const { env, adminUrl } = await initDatabase(t, 'cleanup')
  await cli(['seed'], env)
  await withClient(adminUrl, async (c) => {
    const hash = (await c.query<{ h: string }>(`SELECT hashed_password AS h FROM activity.users LIMIT 1`)).rows[0]?.h
    // Unverified accounts 2 h old ± a minute around a 2 h retention.
    await c.query(
      `INSERT INTO activity.users (email, hashed_password, created_at) VALUES
         ('old@example.com', $1, now() - interval '2 hours 1 minute'),
         ('young@example.com', $1, now() - interval '1 hour 59 minutes')`,
      [hash],
    )
    await c.query(`INSERT INTO activity.audit_logs (action, created_at) VALUES
                     ('ancient', now() - interval '91 days'), ('recent', now() - interval '89 days')`)
  })
  // Another instance is cleaning: this run must not.
  await withClient(adminUrl, async (holder) => {
    await holder.query('SELECT pg_advisory_lock(8152, 0)')
    await t.rejects(cli(['cleanup', '--retention', '2'], env), /another cleanup is running/)
    await holder.query('SELECT pg_advisory_unlock(8152, 0)')
  })
  const counts = await cliJson<Record<string, number>>(['cleanup', '--retention', '2'], env)
  t.same(counts.body, {
    refresh_tokens: 2,
    email_tokens: 0,
    login_attempts: 0,
    audit_logs: 1,
    trusted_devices: 0,
    mail_budget: 0,
    oauth_states: 0,
    oauth_codes: 0,
    unverified_users: 1,
    events: 0,
  })
  await withClient(adminUrl, async (c) => {
    const emails = (await c.query<{ email: string }>(`SELECT email FROM activity.users ORDER BY email`)).rows.map((r) => r.email)
    t.ok(emails.includes('young@example.com') && !emails.includes('old@example.com'), 'the retention boundary holds')
    t.ok(emails.includes('unverified@example.com'), 'a fresh unverified user stays')
    const jtis = (await c.query<{ jti: string }>(`SELECT jti FROM activity.refresh_tokens`)).rows.map((r) => r.jti)
    t.same(jtis, ['seed-live'], 'the expired and the revoked session are gone, the live one stays')
    const audit = (await c.query<{ action: string }>(`SELECT action FROM activity.audit_logs WHERE action IN ('ancient', 'recent')`)).rows
    t.same(audit, [{ action: 'recent' }])
  })
  t.same(
    (await cliJson<Record<string, number>>(['cleanup', '--retention', '2'], env)).body.unverified_users,
    0,
    'a second run finds nothing',
  )
  await t.rejects(cli(['cleanup', '--retention', '0'], env), /--retention must be a positive whole number/)
})

t.test('health: healthy with auth figures (exit 0), degraded with a pending migration (1), down when unreachable (2)', async (t) => {
  const { env } = await initDatabase(t, 'health')
  await cli(['seed'], env)
  const healthy = await cliJson<HealthReport>(['health'], env)
  t.equal(healthy.code, 0)
  t.equal(healthy.body.status, 'healthy')
  t.same(healthy.body.problems, [])
  t.type(healthy.body.latencyMs, 'number')
  t.same(healthy.body.pool, { max: 20, min: 5, idleTimeoutMs: 30_000, connectTimeoutMs: 10_000 })
  t.same(healthy.body.auth, {
    users: { active: 2, unverified: 1, deactivated: 1, locked: 1 },
    liveSessions: 1,
    lastHour: { failedLogins: 0, lockouts: 0, reuseDetections: 0 },
  })
  t.same(
    healthy.body.tables?.map((x) => x.table),
    [
      'audit_logs',
      'email_tokens',
      'events',
      'login_attempts',
      'mail_budget',
      'mfa_challenges',
      'mfa_recovery_codes',
      'mfa_totp',
      'oauth_codes',
      'oauth_providers',
      'oauth_states',
      'pgmigrations',
      'refresh_tokens',
      'trusted_devices',
      'users',
    ],
  )
  t.match(healthy.body.locks, { waiting: 0 })
  t.match((await cli(['health'], env)).out, /^database healthy \(latency [\d.]+ ms\)\n(.|\n)*users {4}2 active, 1 unverified/)

  // In production the CLI needs neither a signing key nor SMTP (the service does).
  t.equal((await cli(['health'], { ...env, NODE_ENV: 'production' })).code, 0)

  await cli(['rollback'], env)
  const degraded = await cliJson<HealthReport>(['health'], env)
  t.equal(degraded.code, 1)
  t.equal(degraded.body.status, 'degraded')
  t.same(degraded.body.problems, ['1 pending migration(s)'])

  const down = await cliJson<HealthReport>(['health'], { ...env, DATABASE_ADMIN_URL: 'postgresql://postgres@127.0.0.1:1/postgres' })
  t.equal(down.code, 2)
  t.equal(down.body.status, 'down')
})

t.test('list-backups and cleanup-backups work on the backup directory alone', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'activity-backups-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const env = { ...cliEnv('unused'), BACKUP_DIR: dir }
  t.match((await cli(['list-backups'], env)).out, /^no backups in /)
  const day = 86_400_000
  const now = Date.now()
  for (const [i, age] of [1, 5, 10, 40].entries()) {
    const file = path.join(dir, `activitydb-${i}.dump`)
    await writeFile(file, 'x')
    const createdAt = new Date(now - age * day).toISOString()
    await writeFile(`${file}.json`, JSON.stringify({ file: path.basename(file), createdAt, migrationHead: 'm1' }))
  }
  // A stray file without metadata is listed by its modification time.
  await writeFile(path.join(dir, 'manual.sql'), 'x')
  await utimes(path.join(dir, 'manual.sql'), new Date(now - 20 * day), new Date(now - 20 * day))
  const listed = await cliJson<{ file: string; hasMetadata: boolean }[]>(['list-backups'], env)
  t.same(
    listed.body.map((b) => [b.file, b.hasMetadata]),
    [
      ['activitydb-0.dump', true],
      ['activitydb-1.dump', true],
      ['activitydb-2.dump', true],
      ['manual.sql', false],
      ['activitydb-3.dump', true],
    ],
    'newest first',
  )
  const older = await cliJson<{ removed: { file: string }[] }>(['cleanup-backups', '--older-than', '15'], env)
  t.same(
    older.body.removed.map((b) => b.file),
    ['manual.sql', 'activitydb-3.dump'],
  )
  const kept = await cli(['cleanup-backups', '--keep', '2'], env)
  t.match(kept.out, /^removed 1 backup\(s\)\n {2}activitydb-2\.dump$/)
  t.same((await readdir(dir)).sort(), ['activitydb-0.dump', 'activitydb-0.dump.json', 'activitydb-1.dump', 'activitydb-1.dump.json'])
  t.same(await cleanupBackups({ dir: path.join(dir, 'missing'), keep: 1 }), [], 'a missing directory holds no backups')
})

t.test('the real command: --json output on stdout, one line and exit 1 for a mistake, exit 2 for a down database', async (t) => {
  const env = { ...process.env, ...cliEnv('unused'), DATABASE_ADMIN_URL: 'postgresql://postgres@127.0.0.1:1/postgres' }
  const health = spawnSync(process.execPath, nodeArgs('src/cli/db.ts', 'health', '--json'), { env, encoding: 'utf8' })
  t.equal(health.status, 2)
  t.equal((JSON.parse(health.stdout) as HealthReport).status, 'down')
  const restore = spawnSync(process.execPath, nodeArgs('src/cli/db.ts', 'restore', '/nonexistent.dump', '--yes'), {
    env: { ...env, DATABASE_ADMIN_URL: readRun().adminUrl },
    encoding: 'utf8',
  })
  t.equal(restore.status, 1)
  t.equal(restore.stderr.trim(), 'activity-db: no such backup file: /nonexistent.dump')
})
