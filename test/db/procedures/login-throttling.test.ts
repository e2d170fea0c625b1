// Stored procedures through their typed wrappers, as auth_api_user (what the
// service does): the normal path and each error path. Shared setup: ./setup.ts.
// Login throttling: failure counters per address and per IP, locks and their
// lifting on success.
import t from 'tap'
import { checkLoginLock, getUserById, recordFailedLogin, recordSuccessfulLogin } from '../../../src/db/procedures.ts'
import { dbError, newUser, rows, uniqueEmail } from '../../helpers/fixtures.ts'
import { setup, NO_USER, auditActions, lastAudit, LOCKOUT } from './setup.ts'

t.test('failed logins lock after the threshold with doubling waits, capped', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const waits: (number | null)[] = []
  const counts: number[] = []
  for (let i = 0; i < 8; i++) {
    const r = await recordFailedLogin(ctx.api, { email: user.email.toUpperCase(), ip: null, ...LOCKOUT })
    counts.push(r.failedCount)
    // The lock is now() + wait and last_failed_at is now(), in the same transaction: exact.
    const [row] = await rows<{ wait: number | null; locked_until: Date | null }>(
      ctx.admin,
      `SELECT extract(epoch FROM locked_until - last_failed_at)::float8 AS wait, locked_until FROM activity.login_attempts WHERE scope = 'email' AND key = $1`,
      [user.email],
    )
    waits.push(row?.wait ?? null)
    t.same(r.lockedUntil, row?.locked_until ?? null, `failure ${i + 1}: the returned lock is the stored one`)
  }
  t.same(counts, [1, 2, 3, 4, 5, 6, 7, 8])
  t.same(waits, [null, null, 60, 120, 240, 480, 600, 600], 'base * 2^(n - threshold), capped at max')

  const account = await getUserById(ctx.api, { userId: user.id })
  const [mirror] = await rows<{ failed_login_attempts: number }>(
    ctx.admin,
    'SELECT failed_login_attempts FROM activity.users WHERE id = $1',
    [user.id],
  )
  t.equal(mirror?.failed_login_attempts, 8, 'mirrored onto the account')
  t.type(account?.lockedUntil, Date)
  t.same(await checkLoginLock(ctx.api, { email: ` ${user.email.toUpperCase()} `, ip: null }), account?.lockedUntil)
  const actions = await auditActions(ctx.admin, user.id)
  t.equal(actions.filter((a) => a === 'login_failed').length, 8)
  t.equal(actions.filter((a) => a === 'account_locked').length, 6)

  await t.rejects(recordFailedLogin(ctx.api, { email: '  ', ip: null, ...LOCKOUT }), dbError('invalid_argument'))
  await t.rejects(recordFailedLogin(ctx.api, { email: user.email, ip: null, ...LOCKOUT, threshold: 0 }), dbError('invalid_argument'))
  await t.rejects(recordFailedLogin(ctx.api, { email: user.email, ip: null, ...LOCKOUT, maxSeconds: 1 }), dbError('invalid_argument'))
  await t.rejects(recordFailedLogin(ctx.api, { email: user.email, ip: null, ...LOCKOUT, windowSeconds: 0 }), dbError('invalid_argument'))
})

t.test('an address with no account is counted and locked exactly like one with an account', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const ghost = uniqueEmail('ghost')
  const seen: Record<string, unknown[]> = { account: [], ghost: [] }
  for (let i = 0; i < 4; i++) {
    for (const [who, email] of [
      ['account', user.email],
      ['ghost', ghost],
    ] as const) {
      const r = await recordFailedLogin(ctx.api, { email, ip: null, ...LOCKOUT })
      seen[who]?.push([r.failedCount, r.lockedUntil === null])
    }
  }
  t.same(seen.ghost, seen.account, 'same counts, same lock points')
  t.same(seen.ghost, [
    [1, true],
    [2, true],
    [3, false],
    [4, false],
  ])
  t.type(await checkLoginLock(ctx.api, { email: ghost, ip: null }), Date)
  t.type(await checkLoginLock(ctx.api, { email: user.email, ip: null }), Date)
  t.equal(await checkLoginLock(ctx.api, { email: uniqueEmail(), ip: null }), null, 'an untouched address is not locked')
  t.match(await lastAudit(ctx.admin, 'account_locked'), { details: { email: ghost, count: 4 } })
})

t.test('failures from one address lock that address for every email', async (t) => {
  const ctx = await setup(t)
  const policy = { ...LOCKOUT, ipThreshold: 2 }
  const first = await recordFailedLogin(ctx.api, { email: uniqueEmail(), ip: '203.0.113.50', ...policy })
  t.same(first, { failedCount: 1, lockedUntil: null })
  const second = await recordFailedLogin(ctx.api, { email: uniqueEmail(), ip: '203.0.113.50', ...policy })
  t.equal(second.failedCount, 1, 'the email counter is per email')
  t.type(second.lockedUntil, Date, 'the ip lock is reported')
  t.same(await checkLoginLock(ctx.api, { email: uniqueEmail(), ip: '203.0.113.50' }), second.lockedUntil)
  t.equal(await checkLoginLock(ctx.api, { email: uniqueEmail(), ip: '203.0.113.51' }), null)
  t.match(await lastAudit(ctx.admin, 'ip_locked'), { details: { ip: '203.0.113.50', count: 2 } })
})

t.test('a counter idle for longer than the window starts again at 1', async (t) => {
  const ctx = await setup(t)
  const email = uniqueEmail()
  await recordFailedLogin(ctx.api, { email, ip: null, ...LOCKOUT })
  await recordFailedLogin(ctx.api, { email, ip: null, ...LOCKOUT })
  await ctx.admin.query(
    `UPDATE activity.login_attempts SET first_failed_at = now() - interval '901 s', last_failed_at = now() - interval '901 s' WHERE key = $1`,
    [email],
  )
  t.same(await recordFailedLogin(ctx.api, { email, ip: null, ...LOCKOUT }), { failedCount: 1, lockedUntil: null })
})

t.test('a successful login resets the counter and lifts the lock', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  for (let i = 0; i < LOCKOUT.threshold; i++) await recordFailedLogin(ctx.api, { email: user.email, ip: null, ...LOCKOUT })
  t.type(await checkLoginLock(ctx.api, { email: user.email, ip: null }), Date)

  await recordSuccessfulLogin(ctx.api, { userId: user.id, ctx: { ip: '192.0.2.77' } })
  t.equal(await checkLoginLock(ctx.api, { email: user.email, ip: null }), null)
  const [row] = await rows<{ failed_login_attempts: number; locked_until: Date | null; ip: string; attempts: number }>(
    ctx.admin,
    `SELECT failed_login_attempts, locked_until, host(last_login_ip) AS ip,
            (SELECT count(*)::int FROM activity.login_attempts WHERE key = u.email) AS attempts
       FROM activity.users u WHERE id = $1`,
    [user.id],
  )
  t.same(row, { failed_login_attempts: 0, locked_until: null, ip: '192.0.2.77', attempts: 0 })
  t.type((await getUserById(ctx.api, { userId: user.id }))?.lastLoginAt, Date)
  t.same(
    await recordFailedLogin(ctx.api, { email: user.email, ip: null, ...LOCKOUT }),
    { failedCount: 1, lockedUntil: null },
    'counting starts over',
  )
  t.match(await lastAudit(ctx.admin, 'login_success'), { user_id: user.id, ip: '192.0.2.77' })

  await t.rejects(recordSuccessfulLogin(ctx.api, { userId: NO_USER }), dbError('user_not_found'))
})
