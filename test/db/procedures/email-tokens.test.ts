// Stored procedures through their typed wrappers, as auth_api_user (what the
// service does): the normal path and each error path. Shared setup: ./setup.ts.
// Mailed links (email tokens): verification and password reset.
import t from 'tap'
import {
  checkLoginLock,
  consumeEmailToken,
  createEmailToken,
  getUserById,
  listUserSessions,
  recordFailedLogin,
} from '../../../src/db/procedures.ts'
import { dbError, fakeHash, hex64, newSession, newUser } from '../../helpers/fixtures.ts'
import { setup, NO_USER, lastAudit, tokenRows, LOCKOUT } from './setup.ts'

t.test('a verification link works once, for its purpose, before it expires', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const link = hex64()
  const created = await createEmailToken(ctx.api, { userId: user.id, purpose: 'verify_email', tokenHash: link, ttlSeconds: 3600 })
  t.equal(created.email, user.email)
  t.type(created.expiresAt, Date)
  t.match(await lastAudit(ctx.admin, 'email_token_created'), {
    user_id: user.id,
    details: { purpose: 'verify_email', token_id: Number(created.id) },
  })

  await t.rejects(
    consumeEmailToken(ctx.api, { tokenHash: link, purpose: 'reset_password', newHashedPassword: fakeHash() }),
    dbError('token_invalid'),
    'wrong purpose',
  )
  await t.rejects(consumeEmailToken(ctx.api, { tokenHash: hex64(), purpose: 'verify_email' }), dbError('token_invalid'), 'unknown')
  t.same(await consumeEmailToken(ctx.api, { tokenHash: link, purpose: 'verify_email' }), { userId: user.id, email: user.email })
  t.match(await getUserById(ctx.api, { userId: user.id }), { isVerified: true })
  t.match(await lastAudit(ctx.admin, 'email_verified'), { user_id: user.id, details: { email: user.email, already_verified: false } })
  await t.rejects(consumeEmailToken(ctx.api, { tokenHash: link, purpose: 'verify_email' }), dbError('token_used'), 'used twice')
  await t.rejects(
    createEmailToken(ctx.api, { userId: user.id, purpose: 'verify_email', tokenHash: hex64(), ttlSeconds: 60 }),
    dbError('already_verified'),
  )

  const other = await newUser(ctx.api)
  const stale = hex64()
  await createEmailToken(ctx.api, { userId: other.id, purpose: 'verify_email', tokenHash: stale, ttlSeconds: 60 })
  await ctx.admin.query(
    `UPDATE activity.email_tokens SET created_at = now() - interval '1 hour', expires_at = now() - interval '1 s' WHERE token_hash = $1`,
    [stale],
  )
  await t.rejects(consumeEmailToken(ctx.api, { tokenHash: stale, purpose: 'verify_email' }), dbError('token_expired'))
  t.match(await getUserById(ctx.api, { userId: other.id }), { isVerified: false })
})

t.test('only the newest link of a purpose works', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const first = hex64()
  const second = hex64()
  const reset = hex64()
  await createEmailToken(ctx.api, { userId: user.id, purpose: 'verify_email', tokenHash: first, ttlSeconds: 3600 })
  await createEmailToken(ctx.api, { userId: user.id, purpose: 'reset_password', tokenHash: reset, ttlSeconds: 3600 })
  await createEmailToken(ctx.api, { userId: user.id, purpose: 'verify_email', tokenHash: second, ttlSeconds: 3600 })
  await t.rejects(consumeEmailToken(ctx.api, { tokenHash: first, purpose: 'verify_email' }), dbError('token_used'), 'superseded')
  t.match(await consumeEmailToken(ctx.api, { tokenHash: second, purpose: 'verify_email' }), { userId: user.id })
  t.match(
    await consumeEmailToken(ctx.api, { tokenHash: reset, purpose: 'reset_password', newHashedPassword: fakeHash() }),
    { userId: user.id },
    'a link of the other purpose is not superseded',
  )
})

t.test('creating a link: bad input is refused', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const used = hex64()
  await createEmailToken(ctx.api, { userId: user.id, purpose: 'reset_password', tokenHash: used, ttlSeconds: 60 })
  const base = { userId: user.id, purpose: 'reset_password' as const, tokenHash: hex64(), ttlSeconds: 60 }
  await t.rejects(createEmailToken(ctx.api, { ...base, ttlSeconds: 0 }), dbError('invalid_argument'))
  await t.rejects(createEmailToken(ctx.api, { ...base, tokenHash: 'F'.repeat(64) }), dbError('invalid_argument'))
  await t.rejects(createEmailToken(ctx.api, { ...base, tokenHash: used }), dbError('invalid_argument'), 'hash already used')
  await t.rejects(createEmailToken(ctx.api, { ...base, purpose: 'login' as 'verify_email' }), dbError('invalid_argument'))
  await t.rejects(createEmailToken(ctx.api, { ...base, userId: NO_USER }), dbError('user_not_found'))
  await t.rejects(
    consumeEmailToken(ctx.api, { tokenHash: used, purpose: 'reset_password' }),
    dbError('invalid_argument'),
    'reset without a new hash',
  )
  await t.rejects(
    consumeEmailToken(ctx.api, { tokenHash: used, purpose: 'reset_password', newHashedPassword: 'plain' }),
    dbError('invalid_argument'),
  )
  t.match(
    await consumeEmailToken(ctx.api, { tokenHash: used, purpose: 'reset_password', newHashedPassword: fakeHash() }),
    { userId: user.id },
    'the refused calls burnt nothing',
  )
})

t.test('a password reset sets the new hash, verifies the address, lifts the lock and ends every session', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const s1 = await newSession(ctx.api, user.id)
  const s2 = await newSession(ctx.api, user.id)
  for (let i = 0; i < LOCKOUT.threshold; i++) await recordFailedLogin(ctx.api, { email: user.email, ip: null, ...LOCKOUT })
  t.ok(await checkLoginLock(ctx.api, { email: user.email, ip: null }), 'locked before the reset')

  const link = hex64()
  await createEmailToken(ctx.api, { userId: user.id, purpose: 'reset_password', tokenHash: link, ttlSeconds: 900 })
  const newHash = fakeHash()
  t.same(
    await consumeEmailToken(ctx.api, { tokenHash: link, purpose: 'reset_password', newHashedPassword: newHash, ctx: { requestId: 'r-9' } }),
    { userId: user.id, email: user.email },
  )

  t.match(await getUserById(ctx.api, { userId: user.id }), { hashedPassword: newHash, isVerified: true, lockedUntil: null })
  t.equal(await checkLoginLock(ctx.api, { email: user.email, ip: null }), null, 'lock lifted')
  t.same(await listUserSessions(ctx.api, { userId: user.id }), [])
  t.same(
    (await tokenRows(ctx.admin, s1.familyId)).map((r) => r.revoked_reason),
    ['password_reset'],
  )
  t.same(
    (await tokenRows(ctx.admin, s2.familyId)).map((r) => r.revoked_reason),
    ['password_reset'],
  )
  t.match(await lastAudit(ctx.admin, 'password_reset'), { user_id: user.id, request_id: 'r-9', details: { sessions_ended: 2 } })
  await t.rejects(
    consumeEmailToken(ctx.api, { tokenHash: link, purpose: 'reset_password', newHashedPassword: fakeHash() }),
    dbError('token_used'),
  )
})
