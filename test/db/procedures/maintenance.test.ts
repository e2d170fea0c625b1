// Stored procedures through their typed wrappers, as auth_api_user (what the
// service does): the normal path and each error path. Shared setup: ./setup.ts.
// Maintenance and readiness: expiry cleanup, what the audit log may hold,
// the applied migrations.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import { migrationNames } from '../../../src/db/migrate.ts'
import {
  cleanupExpired,
  consumeEmailToken,
  createEmailToken,
  createUser,
  recordFailedLogin,
  recordSuccessfulLogin,
  revokeRefreshToken,
  rotateRefreshToken,
  saveRefreshToken,
  schemaMigrations,
  updatePassword,
} from '../../../src/db/procedures.ts'
import { dbError, fakeHash, hex64, newSession, newUser, rows, uniqueEmail } from '../../helpers/fixtures.ts'
import { setup, lastAudit, LOCKOUT } from './setup.ts'

t.test('sp_cleanup_expired removes what is past its boundary and keeps what is just inside', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const live = await newSession(ctx.api, user.id)
  const liveNext = hex64()
  await rotateRefreshToken(ctx.api, {
    tokenHash: live.tokenHash,
    newTokenHash: liveNext,
    newJti: randomUUID(),
    idleTtlSeconds: 600,
    graceSeconds: 0,
  })
  const idleGone = await newSession(ctx.api, user.id)
  const idleStays = await newSession(ctx.api, user.id)
  const familyGone = await newSession(ctx.api, user.id)
  const loggedOut = await newSession(ctx.api, user.id)
  await revokeRefreshToken(ctx.api, { tokenHash: loggedOut.tokenHash })
  const setToken = (sql: string, tokenHash: string) =>
    ctx.admin.query(`UPDATE activity.refresh_tokens SET created_at = now() - interval '2 hours', ${sql} WHERE token = $1`, [tokenHash])
  await setToken(`expires_at = now() - interval '1 s'`, idleGone.tokenHash)
  await setToken(`expires_at = now() + interval '1 minute'`, idleStays.tokenHash)
  await setToken(`family_expires_at = now() - interval '1 s'`, familyGone.tokenHash)

  const unused = hex64()
  const used = hex64()
  const expired = hex64()
  const other = await newUser(ctx.api)
  const third = await newUser(ctx.api)
  await createEmailToken(ctx.api, { userId: user.id, purpose: 'verify_email', tokenHash: unused, ttlSeconds: 60 })
  await createEmailToken(ctx.api, { userId: other.id, purpose: 'verify_email', tokenHash: used, ttlSeconds: 3600 })
  await consumeEmailToken(ctx.api, { tokenHash: used, purpose: 'verify_email' })
  await createEmailToken(ctx.api, { userId: third.id, purpose: 'verify_email', tokenHash: expired, ttlSeconds: 60 })
  await ctx.admin.query(
    `UPDATE activity.email_tokens SET created_at = now() - interval '1 hour', expires_at = now() - interval '1 s' WHERE token_hash = $1`,
    [expired],
  )

  await ctx.admin.query(`
    INSERT INTO activity.login_attempts (scope, key, failed_count, first_failed_at, last_failed_at, locked_until) VALUES
      ('email', 'stale@example.com',        1, now() - interval '25 hours', now() - interval '24 hours 1 second', NULL),
      ('email', 'recent@example.com',       1, now() - interval '25 hours', now() - interval '23 hours 59 minutes', NULL),
      ('email', 'still-locked@example.com', 9, now() - interval '25 hours', now() - interval '24 hours 1 second', now() + interval '1 minute'),
      ('ip',    '192.0.2.200',              9, now() - interval '25 hours', now() - interval '24 hours 1 second', now() - interval '1 s')`)
  await ctx.admin.query(`
    INSERT INTO activity.audit_logs (action, created_at) VALUES
      ('test_old', now() - interval '30 days 1 second'), ('test_recent', now() - interval '29 days 23 hours 59 minutes')`)

  const result = await cleanupExpired(ctx.api, { auditRetentionDays: 30 })
  t.same(result, [
    { item: 'refresh_tokens', deleted: 3 },
    { item: 'email_tokens', deleted: 2 },
    { item: 'login_attempts', deleted: 2 },
    { item: 'audit_logs', deleted: 1 },
    { item: 'trusted_devices', deleted: 0 },
    { item: 'mail_budget', deleted: 0 },
    { item: 'oauth_states', deleted: 0 },
    { item: 'oauth_codes', deleted: 0 },
  ])

  const tokens = await rows<{ token: string }>(ctx.admin, 'SELECT token FROM activity.refresh_tokens ORDER BY id')
  t.same(
    tokens.map((r) => r.token),
    [live.tokenHash, liveNext, idleStays.tokenHash],
    'a live family keeps its rotated tokens (reuse stays detectable); dead families go',
  )
  const mail = await rows<{ token_hash: string }>(ctx.admin, 'SELECT token_hash FROM activity.email_tokens')
  t.same(
    mail.map((r) => r.token_hash),
    [unused],
  )
  const attempts = await rows<{ key: string }>(ctx.admin, 'SELECT key FROM activity.login_attempts ORDER BY key')
  t.same(
    attempts.map((r) => r.key),
    ['recent@example.com', 'still-locked@example.com'],
  )
  const tests = await rows<{ action: string }>(ctx.admin, `SELECT action FROM activity.audit_logs WHERE action LIKE 'test_%'`)
  t.same(
    tests.map((r) => r.action),
    ['test_recent'],
  )
  t.match(await lastAudit(ctx.admin, 'cleanup'), {
    user_id: null,
    details: { refresh_tokens: 3, email_tokens: 2, login_attempts: 2, audit_logs: 1 },
  })

  t.match(
    await rotateRefreshToken(ctx.api, {
      tokenHash: live.tokenHash,
      newTokenHash: hex64(),
      newJti: randomUUID(),
      idleTtlSeconds: 600,
      graceSeconds: 0,
    }),
    { status: 'reuse_detected' },
    'after cleanup a rotated token of a live family is still caught',
  )

  await t.rejects(cleanupExpired(ctx.api, { auditRetentionDays: 0 }), dbError('invalid_argument'))
  await t.rejects(cleanupExpired(ctx.api, { auditRetentionDays: 30, attemptRetentionHours: 0 }), dbError('invalid_argument'))
})

t.test('audit rows never hold a password hash or a token hash', async (t) => {
  const ctx = await setup(t)
  const hash = fakeHash()
  const user = await createUser(ctx.api, { email: uniqueEmail(), hashedPassword: hash })
  const s = await newSession(ctx.api, user.id)
  const next = hex64()
  // Audited (every rotation), so its row is among those searched for a hash.
  await rotateRefreshToken(ctx.api, {
    tokenHash: s.tokenHash,
    newTokenHash: next,
    newJti: randomUUID(),
    idleTtlSeconds: 60,
    graceSeconds: 0,
    auditEveryRotation: true,
  })
  await rotateRefreshToken(ctx.api, {
    tokenHash: s.tokenHash,
    newTokenHash: hex64(),
    newJti: randomUUID(),
    idleTtlSeconds: 60,
    graceSeconds: 0,
  })
  const link = hex64()
  const newHash = fakeHash()
  await createEmailToken(ctx.api, { userId: user.id, purpose: 'reset_password', tokenHash: link, ttlSeconds: 60 })
  await consumeEmailToken(ctx.api, { tokenHash: link, purpose: 'reset_password', newHashedPassword: newHash })
  await updatePassword(ctx.api, { userId: user.id, hashedPassword: fakeHash() })

  const audit = await rows<{ line: string }>(ctx.admin, 'SELECT row_to_json(l)::text AS line FROM activity.audit_logs l')
  t.ok(audit.length >= 7, 'the flow was audited')
  const text = audit.map((r) => r.line).join('\n')
  for (const secret of [hash, newHash, s.tokenHash, next, link]) t.notOk(text.includes(secret), 'no secret in the audit log')
  t.notOk(text.includes('$argon2'), 'no argon2 string at all')
})

t.test('schemaMigrations lists the applied migrations by name', async (t) => {
  const ctx = await setup(t)
  const applied = await schemaMigrations(ctx.api)
  t.same(
    applied.map((m) => m.name),
    await migrationNames(),
  )
  t.ok(applied.some((m) => m.name === '1763870000000_initial-schema'))
  for (const m of applied) t.type(m.runOn, Date)
})

t.test('a request address PostgreSQL cannot parse (forged X-Forwarded-For, IPv6 zone id) breaks no procedure', async (t) => {
  // The context is best-effort audit data. If it made a procedure raise, a failed
  // login would not be counted (the exception rolls the counter back) and signup,
  // login and refresh would answer 5xx for such a client.
  const ctx = await setup(t)
  for (const ip of ['not-an-ip', 'fe80::1%eth0']) {
    await t.resolves(createUser(ctx.api, { email: uniqueEmail(), hashedPassword: fakeHash(), ctx: { ip } }), `signup from ${ip}`)
    const user = await newUser(ctx.api)
    await t.resolves(recordFailedLogin(ctx.api, { email: user.email, ip, ...LOCKOUT, ctx: { ip } }), `failed login from ${ip}`)
    const [count] = await rows<{ n: number }>(
      ctx.admin,
      `SELECT count(*)::int AS n FROM activity.login_attempts WHERE scope = 'email' AND key = $1`,
      [user.email],
    )
    t.equal(count?.n, 1, `the failure from ${ip} is counted`)
    await t.resolves(recordSuccessfulLogin(ctx.api, { userId: user.id, ctx: { ip } }), `successful login from ${ip}`)
    await t.resolves(
      saveRefreshToken(ctx.api, {
        userId: user.id,
        tokenHash: hex64(),
        jti: randomUUID(),
        idleTtlSeconds: 60,
        familyTtlSeconds: 60,
        ctx: { ip },
      }),
      `session start from ${ip}`,
    )
  }
})
