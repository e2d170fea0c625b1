// The login-guard procedures under real concurrency, as auth_api_user: every
// contender runs on its own connection, so the database really interleaves them.
import t from 'tap'
import {
  beginLogin,
  cleanupExpired,
  completeLogin,
  endLoginAttempt,
  requestEmailLink,
  signup,
  type LockoutPolicy,
} from '../../src/db/procedures.ts'
import { createTestDatabase, testPool } from '../helpers/db.ts'
import { dbError, fakeHash, hex64, newUser, rows, uniqueEmail } from '../helpers/fixtures.ts'

const POLICY: LockoutPolicy = { threshold: 5, baseSeconds: 60, maxSeconds: 900, ipThreshold: 1000, windowSeconds: 3600 }
const MAIL = { max: 3, windowSeconds: 3600 }

async function setup(t: Parameters<typeof createTestDatabase>[0], connections: number) {
  const db = await createTestDatabase(t)
  const api = testPool(t, db.url, connections + 1)
  const admin = testPool(t, db.adminUrl, 1)
  const clients = await Promise.all(Array.from({ length: connections }, () => api.connect()))
  t.teardown(() => clients.forEach((c) => c.release()))
  return { api, admin, clients }
}

t.test('50 simultaneous reservations for one account: exactly the threshold is let through', async (t) => {
  const { api, admin, clients } = await setup(t, 50)
  const user = await newUser(api)
  const results = await Promise.all(
    clients.map((c, i) =>
      beginLogin(c, { email: user.email.toUpperCase(), ip: `198.51.100.${String(i)}`, deviceHash: null, policy: POLICY }),
    ),
  )
  t.equal(results.filter((r) => r.allowed).length, POLICY.threshold)
  t.ok(
    results.filter((r) => !r.allowed).every((r) => r.lockedUntil !== null && r.userId === null && r.hashedPassword === null),
    'a refusal carries the lock and no account data',
  )
  const [row] = await rows<{ failed_count: number }>(
    admin,
    `SELECT failed_count FROM activity.login_attempts WHERE scope = 'email' AND key = $1`,
    [user.email],
  )
  t.equal(row?.failed_count, POLICY.threshold, 'refused attempts are not counted: the lock cannot be stretched by hammering it')
  const ips = await rows<{ n: number }>(admin, `SELECT sum(failed_count)::int AS n FROM activity.login_attempts WHERE scope = 'ip'`)
  t.equal(ips[0]?.n, POLICY.threshold, 'the ips of refused attempts got their reservation back')
})

t.test('unknown addresses are reserved and locked the same way', async (t) => {
  const { clients } = await setup(t, 20)
  const email = uniqueEmail('ghost')
  const results = await Promise.all(clients.map((c) => beginLogin(c, { email, ip: null, deviceHash: null, policy: POLICY })))
  t.equal(results.filter((r) => r.allowed).length, POLICY.threshold)
  t.ok(results.every((r) => r.userId === null))
})

t.test('a trusted device is counted apart; completing clears only its counter', async (t) => {
  const { api, admin, clients } = await setup(t, 12)
  const user = await newUser(api)
  const device = hex64()
  t.equal(
    await completeLogin(api, {
      userId: user.id,
      ip: null,
      deviceHash: null,
      newDeviceHash: device,
      deviceTtlSeconds: 600,
      ipThreshold: 10,
    }),
    device,
  )
  // The account gets locked by strangers...
  for (let i = 0; i < POLICY.threshold; i++) await beginLogin(api, { email: user.email, ip: null, deviceHash: null, policy: POLICY })
  t.equal((await beginLogin(api, { email: user.email, ip: null, deviceHash: null, policy: POLICY })).allowed, false)
  // ...the device is not; and a burst through the device is capped by its own counter.
  const burst = await Promise.all(clients.map((c) => beginLogin(c, { email: user.email, ip: null, deviceHash: device, policy: POLICY })))
  t.equal(burst.filter((r) => r.allowed && r.trusted).length, POLICY.threshold)
  await completeLogin(api, {
    userId: user.id,
    ip: null,
    deviceHash: device,
    newDeviceHash: hex64(),
    deviceTtlSeconds: 600,
    ipThreshold: 10,
  })
  const counters = await rows<{ scope: string; failed_count: number }>(
    admin,
    `SELECT scope, failed_count FROM activity.login_attempts ORDER BY scope`,
  )
  t.same(counters, [{ scope: 'email', failed_count: POLICY.threshold }], 'the device counter is gone, the account counter stays')
  const trusted = await rows<{ n: number }>(admin, `SELECT count(*)::int AS n FROM activity.trusted_devices WHERE user_id = $1`, [user.id])
  t.equal(trusted[0]?.n, 1, 'a trusted device keeps its one row')
})

t.test('a user keeps at most ten trusted devices', async (t) => {
  const { api, admin } = await setup(t, 1)
  const user = await newUser(api)
  for (let i = 0; i < 12; i++) {
    await completeLogin(api, {
      userId: user.id,
      ip: null,
      deviceHash: null,
      newDeviceHash: hex64(),
      deviceTtlSeconds: 600,
      ipThreshold: 10,
    })
  }
  const [row] = await rows<{ n: number }>(admin, `SELECT count(*)::int AS n FROM activity.trusted_devices WHERE user_id = $1`, [user.id])
  t.equal(row?.n, 10)
})

t.test('argument checks raise AU007; an unknown re-authenticating user AU002', async (t) => {
  const { api } = await setup(t, 1)
  await t.rejects(beginLogin(api, { email: 'x@example.test', ip: null, deviceHash: 'nothex', policy: POLICY }), dbError('invalid_argument'))
  await t.rejects(
    beginLogin(api, { email: 'x@example.test', ip: null, deviceHash: null, policy: { ...POLICY, threshold: 0 } }),
    dbError('invalid_argument'),
  )
  await t.rejects(beginLogin(api, { email: ' ', ip: null, deviceHash: null, policy: POLICY }), dbError('invalid_argument'))
  await t.rejects(
    beginLogin(api, { email: null, userId: '00000000-0000-4000-8000-000000000000', ip: null, deviceHash: null, policy: POLICY }),
    dbError('user_not_found'),
  )
  await t.rejects(
    endLoginAttempt(api, { email: 'x@example.test', ip: null, deviceHash: null, outcome: 'nope' as never, policy: POLICY }),
    dbError('invalid_argument'),
  )
  const user = await newUser(api)
  await t.rejects(
    completeLogin(api, { userId: user.id, ip: null, deviceHash: null, newDeviceHash: 'bad', deviceTtlSeconds: 600, ipThreshold: 10 }),
    dbError('invalid_argument'),
  )
  await t.rejects(
    signup(api, {
      email: 'ok@example.test',
      hashedPassword: fakeHash(),
      tokenHash: hex64(),
      ttlSeconds: 60,
      mail: { max: 0, windowSeconds: 60 },
    }),
    dbError('invalid_argument'),
  )
  await t.rejects(
    requestEmailLink(api, { email: 'ok@example.test', purpose: 'nope' as never, tokenHash: hex64(), ttlSeconds: 60, mail: MAIL }),
    dbError('invalid_argument'),
  )
})

t.test('20 simultaneous signups of one address: one account, one verification link, the budget holds', async (t) => {
  const { admin, clients } = await setup(t, 20)
  const email = uniqueEmail('race')
  const results = await Promise.all(
    clients.map((c) => signup(c, { email, hashedPassword: fakeHash(), tokenHash: hex64(), ttlSeconds: 600, mail: MAIL })),
  )
  t.equal(results.filter((r) => r.status === 'created').length, 1)
  t.equal(results.filter((r) => r.status === 'created' && r.send).length, 1, 'the new account gets its link')
  t.equal(results.filter((r) => r.status === 'taken' && r.send).length, MAIL.max, 'notices up to the budget')
  const [tokens] = await rows<{ n: number }>(
    admin,
    `SELECT count(*)::int AS n FROM activity.email_tokens e JOIN activity.users u ON u.id = e.user_id WHERE u.email = $1`,
    [email],
  )
  t.equal(tokens?.n, 1)
})

t.test('20 simultaneous reset requests: the budget holds and only the newest link works', async (t) => {
  const { api, admin, clients } = await setup(t, 20)
  const user = await newUser(api)
  const results = await Promise.all(
    clients.map((c) =>
      requestEmailLink(c, { email: user.email, purpose: 'reset_password', tokenHash: hex64(), ttlSeconds: 600, mail: MAIL }),
    ),
  )
  t.equal(results.filter((r) => r.send).length, MAIL.max)
  t.equal(results.filter((r) => r.suppressed).length, 20 - MAIL.max)
  const [live] = await rows<{ n: number }>(
    admin,
    `SELECT count(*)::int AS n FROM activity.email_tokens WHERE user_id = $1 AND used_at IS NULL`,
    [user.id],
  )
  t.equal(live?.n, 1)
  const unknown = await requestEmailLink(api, {
    email: uniqueEmail('nobody'),
    purpose: 'reset_password',
    tokenHash: hex64(),
    ttlSeconds: 600,
    mail: MAIL,
  })
  t.same(unknown, { send: false, email: null, suppressed: false }, 'an unknown address: the same call, nothing to send')
})

t.test('cleanup forgets expired devices and spent mail windows, and keeps the rest', async (t) => {
  const { api, admin } = await setup(t, 1)
  const user = await newUser(api)
  await completeLogin(api, { userId: user.id, ip: null, deviceHash: null, newDeviceHash: hex64(), deviceTtlSeconds: 600, ipThreshold: 10 })
  await admin.query(
    `INSERT INTO activity.trusted_devices (user_id, token_hash, created_at, last_used_at, expires_at)
                     VALUES ($1, $2, now() - interval '2 days', now() - interval '2 days', now() - interval '1 second')`,
    [user.id, hex64()],
  )
  await admin.query(`INSERT INTO activity.mail_budget (recipient, kind, window_start, sent) VALUES
                       ('old@example.test', 'reset_password', now() - interval '25 hours', 3),
                       ('new@example.test', 'reset_password', now() - interval '23 hours', 3)`)
  const result = await cleanupExpired(api, { auditRetentionDays: 30 })
  t.match(result, [{}, {}, {}, {}, { item: 'trusted_devices', deleted: 1 }, { item: 'mail_budget', deleted: 1 }])
  const left = await rows<{ recipient: string }>(admin, 'SELECT recipient FROM activity.mail_budget')
  t.same(left, [{ recipient: 'new@example.test' }])
})
