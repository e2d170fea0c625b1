// Stored procedures through their typed wrappers, as auth_api_user (what the
// service does): the normal path and each error path. Shared setup: ./setup.ts.
// Accounts: signup, lookup, verification, last login, password change,
// deactivation and the removal of unverified accounts.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import {
  checkSession,
  cleanupUnverifiedUsers,
  consumeEmailToken,
  createEmailToken,
  createUser,
  deactivateUser,
  getUserByEmail,
  getUserById,
  getValidRefreshToken,
  listUserSessions,
  recordSuccessfulLogin,
  rotateRefreshToken,
  updateLastLogin,
  updatePassword,
  verifyUserEmail,
} from '../../../src/db/procedures.ts'
import { dbError, fakeHash, hex64, newSession, newUser, rows, uniqueEmail } from '../../helpers/fixtures.ts'
import { setup, NO_USER, auditActions, lastAudit, tokenRows, deactivated } from './setup.ts'

t.test('signing up stores the address normalised and refuses it again in any letter case', async (t) => {
  const ctx = await setup(t)
  const hash = fakeHash()
  const user = await createUser(ctx.api, {
    email: '  Alice.Smith@Example.COM ',
    hashedPassword: hash,
    ctx: { ip: '203.0.113.7', userAgent: 'ua/1', requestId: 'req-1' },
  })
  t.match(user, { email: 'alice.smith@example.com', isVerified: false, isActive: true })
  t.type(user.createdAt, Date)

  for (const email of ['alice.smith@example.com', 'ALICE.SMITH@EXAMPLE.COM', '  aLiCe.smith@example.com   ']) {
    await t.rejects(createUser(ctx.api, { email, hashedPassword: fakeHash() }), dbError('email_taken'), `taken: ${JSON.stringify(email)}`)
  }
  const [count] = await rows<{ n: number }>(ctx.admin, 'SELECT count(*)::int AS n FROM activity.users')
  t.equal(count?.n, 1, 'still one account')

  const byEmail = await getUserByEmail(ctx.api, { email: ' ALICE.smith@example.com ' })
  t.match(byEmail, {
    id: user.id,
    email: 'alice.smith@example.com',
    hashedPassword: hash,
    isVerified: false,
    verifiedAt: null,
    lastLoginAt: null,
    lockedUntil: null,
  })
  t.same(await getUserById(ctx.api, { userId: user.id }), byEmail)
  t.equal(await getUserByEmail(ctx.api, { email: 'bob@example.com' }), undefined, 'unknown email: no row')
  t.equal(await getUserById(ctx.api, { userId: NO_USER }), undefined, 'unknown id: no row')

  const audit = await lastAudit(ctx.admin, 'user_created')
  t.same(audit, {
    details: { email: 'alice.smith@example.com' },
    user_id: user.id,
    ip: '203.0.113.7',
    user_agent: 'ua/1',
    request_id: 'req-1',
  })
})

t.test('signing up with a malformed address or a non-argon2 hash is refused', async (t) => {
  const ctx = await setup(t)
  const bad = ['', '   ', 'no-at-sign.example.com', 'a@b', 'two words@example.com', 'a@@example.com', `${'x'.repeat(250)}@example.com`]
  for (const email of bad) {
    await t.rejects(createUser(ctx.api, { email, hashedPassword: fakeHash() }), dbError('invalid_email'), `invalid: ${email.slice(0, 20)}`)
  }
  await t.rejects(createUser(ctx.api, { email: uniqueEmail(), hashedPassword: 'plaintext' }), dbError('invalid_argument'))
  await t.rejects(
    createUser(ctx.api, { email: uniqueEmail(), hashedPassword: `$argon2id$${'a'.repeat(250)}` }),
    dbError('invalid_argument'),
  )
  const [count] = await rows<{ n: number }>(ctx.admin, 'SELECT count(*)::int AS n FROM activity.users')
  t.equal(count?.n, 0, 'nothing stored')
})

t.test('verifying an address: once, not for unknown or deactivated users', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const verified = await verifyUserEmail(ctx.api, { userId: user.id })
  t.equal(verified.id, user.id)
  t.equal(verified.email, user.email)
  t.type(verified.verifiedAt, Date)
  t.match(await getUserById(ctx.api, { userId: user.id }), { isVerified: true, verifiedAt: verified.verifiedAt })
  t.same(await auditActions(ctx.admin, user.id), ['user_created', 'email_verified'])

  await t.rejects(verifyUserEmail(ctx.api, { userId: user.id }), dbError('already_verified'))
  await t.rejects(verifyUserEmail(ctx.api, { userId: NO_USER }), dbError('user_not_found'))
  await t.rejects(verifyUserEmail(ctx.api, { userId: await deactivated(ctx) }), dbError('user_inactive'))
})

t.test('updateLastLogin records time and address, and knows no unknown user', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  await updateLastLogin(ctx.api, { userId: user.id, ip: ' 198.51.100.4 ' })
  const [row] = await rows<{ ip: string; set: boolean }>(
    ctx.admin,
    'SELECT host(last_login_ip) AS ip, last_login_at IS NOT NULL AS set FROM activity.users WHERE id = $1',
    [user.id],
  )
  t.same(row, { ip: '198.51.100.4', set: true })
  await t.rejects(updateLastLogin(ctx.api, { userId: NO_USER }), dbError('user_not_found'))
})

t.test('changing the password ends the other sessions; a rehash ends none', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const keep = await newSession(ctx.api, user.id)
  const other1 = await newSession(ctx.api, user.id)
  const other2 = await newSession(ctx.api, user.id)
  const before = await getUserById(ctx.api, { userId: user.id })

  const rehash = fakeHash()
  t.equal(await updatePassword(ctx.api, { userId: user.id, hashedPassword: rehash, endSessions: false }), 0)
  const afterRehash = await getUserById(ctx.api, { userId: user.id })
  t.equal(afterRehash?.hashedPassword, rehash)
  t.same(afterRehash?.passwordChangedAt, before?.passwordChangedAt, 'a rehash is not a password change')
  t.equal((await listUserSessions(ctx.api, { userId: user.id })).length, 3, 'a rehash ends no session')

  const changed = fakeHash()
  t.equal(await updatePassword(ctx.api, { userId: user.id, hashedPassword: changed, keepFamilyId: keep.familyId }), 2)
  const after = await getUserById(ctx.api, { userId: user.id })
  t.equal(after?.hashedPassword, changed)
  t.ok((after?.passwordChangedAt.getTime() ?? 0) > (before?.passwordChangedAt.getTime() ?? Infinity), 'password_changed_at moved on')
  t.ok(await checkSession(ctx.api, { userId: user.id, familyId: keep.familyId }), 'the current session stays')
  t.notOk(await checkSession(ctx.api, { userId: user.id, familyId: other1.familyId }))
  t.equal(await getValidRefreshToken(ctx.api, { tokenHash: other2.tokenHash }), undefined)
  t.same(
    (await tokenRows(ctx.admin, other1.familyId)).map((r) => r.revoked_reason),
    ['password_changed'],
  )
  t.match(await lastAudit(ctx.admin, 'password_changed'), {
    user_id: user.id,
    details: { sessions_ended: 2, kept_family_id: keep.familyId },
  })
  t.match(await lastAudit(ctx.admin, 'password_rehashed'), { user_id: user.id })

  t.equal(await updatePassword(ctx.api, { userId: user.id, hashedPassword: fakeHash() }), 1, 'without keepFamilyId every session ends')
  t.notOk(await checkSession(ctx.api, { userId: user.id, familyId: keep.familyId }))

  await t.rejects(updatePassword(ctx.api, { userId: user.id, hashedPassword: 'md5:abc' }), dbError('invalid_argument'))
  await t.rejects(updatePassword(ctx.api, { userId: NO_USER, hashedPassword: fakeHash() }), dbError('user_not_found'))
  await t.rejects(updatePassword(ctx.api, { userId: await deactivated(ctx), hashedPassword: fakeHash() }), dbError('user_inactive'))
  await t.rejects(
    updatePassword(ctx.api, { userId: await deactivated(ctx), hashedPassword: fakeHash(), endSessions: false }),
    dbError('user_inactive'),
  )
})

t.test('deactivating a user ends every session, burns mail links and locks the account out of every procedure', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const s1 = await newSession(ctx.api, user.id)
  const s2 = await newSession(ctx.api, user.id)
  const link = hex64()
  await createEmailToken(ctx.api, { userId: user.id, purpose: 'verify_email', tokenHash: link, ttlSeconds: 3600 })

  await deactivateUser(ctx.api, { userId: user.id })
  t.match(await getUserById(ctx.api, { userId: user.id }), { isActive: false }, 'the row stays, inactive')
  t.same(
    (await tokenRows(ctx.admin, s1.familyId)).map((r) => r.revoked_reason),
    ['user_deactivated'],
  )
  t.same(
    (await tokenRows(ctx.admin, s2.familyId)).map((r) => r.revoked_reason),
    ['user_deactivated'],
  )
  t.notOk(await checkSession(ctx.api, { userId: user.id, familyId: s1.familyId }))
  t.same(await listUserSessions(ctx.api, { userId: user.id }), [])
  await t.rejects(consumeEmailToken(ctx.api, { tokenHash: link, purpose: 'verify_email' }), dbError('token_used'), 'mailed link burnt')
  t.match(await lastAudit(ctx.admin, 'user_deactivated'), { user_id: user.id, details: { sessions_ended: 2 } })

  await t.rejects(deactivateUser(ctx.api, { userId: user.id }), dbError('user_inactive'), 'twice')
  await t.rejects(deactivateUser(ctx.api, { userId: NO_USER }), dbError('user_not_found'))
  await t.rejects(newSession(ctx.api, user.id), dbError('user_inactive'))
  await t.rejects(
    createEmailToken(ctx.api, { userId: user.id, purpose: 'reset_password', tokenHash: hex64(), ttlSeconds: 60 }),
    dbError('user_inactive'),
  )
  await t.rejects(recordSuccessfulLogin(ctx.api, { userId: user.id }), dbError('user_inactive'))
  t.match(
    await rotateRefreshToken(ctx.api, {
      tokenHash: s1.tokenHash,
      newTokenHash: hex64(),
      newJti: randomUUID(),
      idleTtlSeconds: 60,
      graceSeconds: 10,
    }),
    { status: 'invalid', tokenId: null },
    'a deactivated user cannot refresh',
  )
})

t.test(
  'cleanupUnverifiedUsers deletes unverified accounts just past the age, keeps those just inside and every verified one',
  async (t) => {
    const ctx = await setup(t)
    const old = await newUser(ctx.api)
    const young = await newUser(ctx.api)
    const verifiedOld = await newUser(ctx.api)
    await verifyUserEmail(ctx.api, { userId: verifiedOld.id })
    const fresh = await newUser(ctx.api)
    await ctx.admin.query(`UPDATE activity.users SET created_at = now() - interval '168 hours 1 second' WHERE id = ANY($1)`, [
      [old.id, verifiedOld.id],
    ])
    await ctx.admin.query(`UPDATE activity.users SET created_at = now() - interval '167 hours 59 minutes' WHERE id = $1`, [young.id])

    t.equal(await cleanupUnverifiedUsers(ctx.api), 1)
    const left = await rows<{ id: string }>(ctx.admin, 'SELECT id FROM activity.users ORDER BY id')
    t.same(left.map((r) => r.id).sort(), [young.id, verifiedOld.id, fresh.id].sort())
    t.match(await lastAudit(ctx.admin, 'cleanup'), {
      user_id: null,
      details: { item: 'unverified_users', deleted: 1, older_than_hours: 168 },
    })

    t.equal(await cleanupUnverifiedUsers(ctx.api, { olderThanHours: 1 }), 1, 'a shorter age takes the younger one')
    await t.rejects(cleanupUnverifiedUsers(ctx.api, { olderThanHours: 0 }), dbError('invalid_argument'))
  },
)
