// Every stored procedure through its typed wrapper, as auth_api_user (what the
// service does): the normal path and each error path. The superuser connection
// only inspects tables and moves timestamps into the past.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import type pg from 'pg'
import { migrationNames } from '../../src/db/migrate.ts'
import {
  checkLoginLock,
  checkSession,
  cleanupExpired,
  cleanupUnverifiedUsers,
  consumeEmailToken,
  createEmailToken,
  createUser,
  deactivateUser,
  getUserByEmail,
  getUserById,
  getValidRefreshToken,
  listUserSessions,
  recordFailedLogin,
  recordSuccessfulLogin,
  revokeRefreshToken,
  revokeUserSession,
  revokeUserSessions,
  rotateRefreshToken,
  saveRefreshToken,
  schemaMigrations,
  updateLastLogin,
  updatePassword,
  verifyUserEmail,
  type RevokeReason,
} from '../../src/db/procedures.ts'
import { createTestDatabase, testPool } from '../helpers/db.ts'
import { dbError, fakeHash, hex64, newSession, newUser, rows, uniqueEmail } from '../helpers/fixtures.ts'

interface Ctx {
  /** auth_api_user: every procedure call goes through here. */
  api: pg.Pool
  /** Superuser: inspection and time travel only. */
  admin: pg.Pool
}

/** A fresh migrated database per test: cleanup and counts see only their own rows. */
async function setup(t: Parameters<typeof createTestDatabase>[0]): Promise<Ctx> {
  const db = await createTestDatabase(t)
  return { api: testPool(t, db.url, 4), admin: testPool(t, db.adminUrl, 2) }
}

const NO_USER = '00000000-0000-4000-8000-000000000000'

async function auditActions(admin: pg.Pool, userId: string | null): Promise<string[]> {
  const found = await rows<{ action: string }>(
    admin,
    'SELECT action FROM activity.audit_logs WHERE user_id IS NOT DISTINCT FROM $1 ORDER BY id',
    [userId],
  )
  return found.map((r) => r.action)
}

async function lastAudit(admin: pg.Pool, action: string): Promise<Record<string, unknown> | undefined> {
  const [row] = await rows<{ details: Record<string, unknown>; user_id: string | null; ip: string | null; user_agent: string | null; request_id: string | null }>(
    admin,
    'SELECT details, user_id, host(ip) AS ip, user_agent, request_id FROM activity.audit_logs WHERE action = $1 ORDER BY id DESC LIMIT 1',
    [action],
  )
  return row
}

async function tokenRows(admin: pg.Pool, familyId: string): Promise<{ token: string; revoked: boolean; revoked_reason: string | null }[]> {
  return rows(admin, 'SELECT token, revoked, revoked_reason FROM activity.refresh_tokens WHERE family_id = $1 ORDER BY id', [familyId])
}

async function deactivated(ctx: Ctx): Promise<string> {
  const user = await newUser(ctx.api)
  await deactivateUser(ctx.api, { userId: user.id })
  return user.id
}

const LOCKOUT = { threshold: 3, baseSeconds: 60, maxSeconds: 600, ipThreshold: 100, windowSeconds: 900 }

// ---------------------------------------------------------------------------
// Users

t.test('signing up stores the address normalised and refuses it again in any letter case', async (t) => {
  const ctx = await setup(t)
  const hash = fakeHash()
  const user = await createUser(ctx.api, { email: '  Alice.Smith@Example.COM ', hashedPassword: hash, ctx: { ip: '203.0.113.7', userAgent: 'ua/1', requestId: 'req-1' } })
  t.match(user, { email: 'alice.smith@example.com', isVerified: false, isActive: true })
  t.type(user.createdAt, Date)

  for (const email of ['alice.smith@example.com', 'ALICE.SMITH@EXAMPLE.COM', '  aLiCe.smith@example.com   ']) {
    await t.rejects(createUser(ctx.api, { email, hashedPassword: fakeHash() }), dbError('email_taken'), `taken: ${JSON.stringify(email)}`)
  }
  const [count] = await rows<{ n: number }>(ctx.admin, 'SELECT count(*)::int AS n FROM activity.users')
  t.equal(count?.n, 1, 'still one account')

  const byEmail = await getUserByEmail(ctx.api, { email: ' ALICE.smith@example.com ' })
  t.match(byEmail, { id: user.id, email: 'alice.smith@example.com', hashedPassword: hash, isVerified: false, verifiedAt: null, lastLoginAt: null, lockedUntil: null })
  t.same(await getUserById(ctx.api, { userId: user.id }), byEmail)
  t.equal(await getUserByEmail(ctx.api, { email: 'bob@example.com' }), undefined, 'unknown email: no row')
  t.equal(await getUserById(ctx.api, { userId: NO_USER }), undefined, 'unknown id: no row')

  const audit = await lastAudit(ctx.admin, 'user_created')
  t.same(audit, { details: { email: 'alice.smith@example.com' }, user_id: user.id, ip: '203.0.113.7', user_agent: 'ua/1', request_id: 'req-1' })
})

t.test('signing up with a malformed address or a non-argon2 hash is refused', async (t) => {
  const ctx = await setup(t)
  const bad = ['', '   ', 'no-at-sign.example.com', 'a@b', 'two words@example.com', 'a@@example.com', `${'x'.repeat(250)}@example.com`]
  for (const email of bad) {
    await t.rejects(createUser(ctx.api, { email, hashedPassword: fakeHash() }), dbError('invalid_email'), `invalid: ${email.slice(0, 20)}`)
  }
  await t.rejects(createUser(ctx.api, { email: uniqueEmail(), hashedPassword: 'plaintext' }), dbError('invalid_argument'))
  await t.rejects(createUser(ctx.api, { email: uniqueEmail(), hashedPassword: `$argon2id$${'a'.repeat(250)}` }), dbError('invalid_argument'))
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
  const [row] = await rows<{ ip: string; set: boolean }>(ctx.admin, 'SELECT host(last_login_ip) AS ip, last_login_at IS NOT NULL AS set FROM activity.users WHERE id = $1', [user.id])
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
  t.same((await tokenRows(ctx.admin, other1.familyId)).map((r) => r.revoked_reason), ['password_changed'])
  t.match(await lastAudit(ctx.admin, 'password_changed'), { user_id: user.id, details: { sessions_ended: 2, kept_family_id: keep.familyId } })
  t.match(await lastAudit(ctx.admin, 'password_rehashed'), { user_id: user.id })

  t.equal(await updatePassword(ctx.api, { userId: user.id, hashedPassword: fakeHash() }), 1, 'without keepFamilyId every session ends')
  t.notOk(await checkSession(ctx.api, { userId: user.id, familyId: keep.familyId }))

  await t.rejects(updatePassword(ctx.api, { userId: user.id, hashedPassword: 'md5:abc' }), dbError('invalid_argument'))
  await t.rejects(updatePassword(ctx.api, { userId: NO_USER, hashedPassword: fakeHash() }), dbError('user_not_found'))
  await t.rejects(updatePassword(ctx.api, { userId: await deactivated(ctx), hashedPassword: fakeHash() }), dbError('user_inactive'))
  await t.rejects(updatePassword(ctx.api, { userId: await deactivated(ctx), hashedPassword: fakeHash(), endSessions: false }), dbError('user_inactive'))
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
  t.same((await tokenRows(ctx.admin, s1.familyId)).map((r) => r.revoked_reason), ['user_deactivated'])
  t.same((await tokenRows(ctx.admin, s2.familyId)).map((r) => r.revoked_reason), ['user_deactivated'])
  t.notOk(await checkSession(ctx.api, { userId: user.id, familyId: s1.familyId }))
  t.same(await listUserSessions(ctx.api, { userId: user.id }), [])
  await t.rejects(consumeEmailToken(ctx.api, { tokenHash: link, purpose: 'verify_email' }), dbError('token_used'), 'mailed link burnt')
  t.match(await lastAudit(ctx.admin, 'user_deactivated'), { user_id: user.id, details: { sessions_ended: 2 } })

  await t.rejects(deactivateUser(ctx.api, { userId: user.id }), dbError('user_inactive'), 'twice')
  await t.rejects(deactivateUser(ctx.api, { userId: NO_USER }), dbError('user_not_found'))
  await t.rejects(newSession(ctx.api, user.id), dbError('user_inactive'))
  await t.rejects(createEmailToken(ctx.api, { userId: user.id, purpose: 'reset_password', tokenHash: hex64(), ttlSeconds: 60 }), dbError('user_inactive'))
  await t.rejects(recordSuccessfulLogin(ctx.api, { userId: user.id }), dbError('user_inactive'))
  t.match(await rotateRefreshToken(ctx.api, { tokenHash: s1.tokenHash, newTokenHash: hex64(), newJti: randomUUID(), idleTtlSeconds: 60, graceSeconds: 10 }),
    { status: 'invalid', tokenId: null }, 'a deactivated user cannot refresh')
})

t.test('cleanupUnverifiedUsers deletes unverified accounts just past the age, keeps those just inside and every verified one', async (t) => {
  const ctx = await setup(t)
  const old = await newUser(ctx.api)
  const young = await newUser(ctx.api)
  const verifiedOld = await newUser(ctx.api)
  await verifyUserEmail(ctx.api, { userId: verifiedOld.id })
  const fresh = await newUser(ctx.api)
  await ctx.admin.query(`UPDATE activity.users SET created_at = now() - interval '168 hours 1 second' WHERE id = ANY($1)`, [[old.id, verifiedOld.id]])
  await ctx.admin.query(`UPDATE activity.users SET created_at = now() - interval '167 hours 59 minutes' WHERE id = $1`, [young.id])

  t.equal(await cleanupUnverifiedUsers(ctx.api), 1)
  const left = await rows<{ id: string }>(ctx.admin, 'SELECT id FROM activity.users ORDER BY id')
  t.same(left.map((r) => r.id).sort(), [young.id, verifiedOld.id, fresh.id].sort())
  t.match(await lastAudit(ctx.admin, 'cleanup'), { user_id: null, details: { item: 'unverified_users', deleted: 1, older_than_hours: 168 } })

  t.equal(await cleanupUnverifiedUsers(ctx.api, { olderThanHours: 1 }), 1, 'a shorter age takes the younger one')
  await t.rejects(cleanupUnverifiedUsers(ctx.api, { olderThanHours: 0 }), dbError('invalid_argument'))
})

// ---------------------------------------------------------------------------
// Refresh tokens

t.test('saving a refresh token starts a session; bad input is refused', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const s = await newSession(ctx.api, user.id, { idleTtlSeconds: 600, familyTtlSeconds: 3600, ip: '192.0.2.1', userAgent: 'browser' })
  t.ok(s.expiresAt < s.familyExpiresAt, 'idle expiry before family expiry')
  const valid = await getValidRefreshToken(ctx.api, { tokenHash: s.tokenHash })
  t.match(valid, { id: s.id, userId: user.id, familyId: s.familyId, expiresAt: s.expiresAt, familyExpiresAt: s.familyExpiresAt })
  t.equal(await getValidRefreshToken(ctx.api, { tokenHash: hex64() }), undefined, 'unknown token: no row')
  t.match(await lastAudit(ctx.admin, 'session_started'), { user_id: user.id, ip: '192.0.2.1', user_agent: 'browser', details: { family_id: s.familyId } })

  const capped = await newSession(ctx.api, user.id, { idleTtlSeconds: 7200, familyTtlSeconds: 60 })
  t.same(capped.expiresAt, capped.familyExpiresAt, 'idle expiry never outlives the family')

  const base = { userId: user.id, tokenHash: hex64(), jti: randomUUID(), idleTtlSeconds: 60, familyTtlSeconds: 120 }
  await t.rejects(saveRefreshToken(ctx.api, { ...base, idleTtlSeconds: 0 }), dbError('invalid_argument'))
  await t.rejects(saveRefreshToken(ctx.api, { ...base, familyTtlSeconds: -1 }), dbError('invalid_argument'))
  await t.rejects(saveRefreshToken(ctx.api, { ...base, tokenHash: base.tokenHash.toUpperCase() }), dbError('invalid_argument'), 'uppercase hex')
  await t.rejects(saveRefreshToken(ctx.api, { ...base, tokenHash: 'abc' }), dbError('invalid_argument'))
  await t.rejects(saveRefreshToken(ctx.api, { ...base, jti: '' }), dbError('invalid_argument'))
  await t.rejects(saveRefreshToken(ctx.api, { ...base, jti: 'j'.repeat(51) }), dbError('invalid_argument'))
  await t.rejects(saveRefreshToken(ctx.api, { ...base, tokenHash: s.tokenHash }), dbError('invalid_argument'), 'hash already used')
  await t.rejects(saveRefreshToken(ctx.api, { ...base, userId: NO_USER }), dbError('user_not_found'))
})

t.test('expired, revoked and unknown refresh tokens are not valid and do not rotate', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const rotate = (tokenHash: string, graceSeconds = 10) =>
    rotateRefreshToken(ctx.api, { tokenHash, newTokenHash: hex64(), newJti: randomUUID(), idleTtlSeconds: 600, graceSeconds })

  const idle = await newSession(ctx.api, user.id)
  await ctx.admin.query(`UPDATE activity.refresh_tokens SET created_at = now() - interval '1 hour', expires_at = now() - interval '1 s' WHERE token = $1`, [idle.tokenHash])
  t.equal(await getValidRefreshToken(ctx.api, { tokenHash: idle.tokenHash }), undefined, 'idle-expired: no row')
  t.match(await rotate(idle.tokenHash), { status: 'expired', userId: user.id, familyId: idle.familyId, tokenId: null })

  const family = await newSession(ctx.api, user.id)
  await ctx.admin.query(`UPDATE activity.refresh_tokens SET created_at = now() - interval '1 hour', family_expires_at = now() - interval '1 s' WHERE token = $1`, [family.tokenHash])
  t.equal(await getValidRefreshToken(ctx.api, { tokenHash: family.tokenHash }), undefined, 'family-expired: no row')
  t.match(await rotate(family.tokenHash), { status: 'expired', familyId: family.familyId, tokenId: null })
  t.notOk(await checkSession(ctx.api, { userId: user.id, familyId: family.familyId }))

  const loggedOut = await newSession(ctx.api, user.id)
  t.equal(await revokeRefreshToken(ctx.api, { tokenHash: loggedOut.tokenHash }), true)
  t.equal(await revokeRefreshToken(ctx.api, { tokenHash: loggedOut.tokenHash }), false, 'already ended')
  t.equal(await revokeRefreshToken(ctx.api, { tokenHash: idle.tokenHash }), false, 'expired: nothing live to end')
  t.equal(await revokeRefreshToken(ctx.api, { tokenHash: hex64() }), false, 'unknown')
  t.same((await tokenRows(ctx.admin, loggedOut.familyId)).map((r) => r.revoked_reason), ['logout'])
  t.match(await lastAudit(ctx.admin, 'logout'), { user_id: user.id, details: { family_id: loggedOut.familyId, reason: 'logout' } })
  t.equal(await getValidRefreshToken(ctx.api, { tokenHash: loggedOut.tokenHash }), undefined, 'revoked: no row')
  t.match(await rotate(loggedOut.tokenHash), { status: 'revoked', userId: user.id, familyId: loggedOut.familyId, tokenId: null },
    'a logged-out token presented again is refused, and is no reuse')
  t.same((await tokenRows(ctx.admin, loggedOut.familyId)).map((r) => r.revoked_reason), ['logout'], 'its revocation stays a logout')
  t.notOk(await lastAudit(ctx.admin, 'refresh_token_reuse'), 'no reuse audited')

  t.same(await rotate(hex64()), { status: 'invalid', userId: null, familyId: null, tokenId: null, expiresAt: null, familyExpiresAt: null })
  await t.rejects(revokeRefreshToken(ctx.api, { tokenHash: hex64(), reason: 'bogus' as RevokeReason }), dbError('invalid_argument'))
})

t.test('rotation replaces the token inside the same family', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const s = await newSession(ctx.api, user.id, { familyTtlSeconds: 3600 })
  const next = hex64()
  const r = await rotateRefreshToken(ctx.api, { tokenHash: s.tokenHash, newTokenHash: next, newJti: randomUUID(), idleTtlSeconds: 600, graceSeconds: 10, ctx: { ip: '192.0.2.9' } })
  t.match(r, { status: 'rotated', userId: user.id, familyId: s.familyId })
  t.ok(r.tokenId !== null && r.tokenId !== s.id, 'a new token id')
  t.same(r.familyExpiresAt, s.familyExpiresAt, 'the family keeps its absolute expiry')
  t.equal(await getValidRefreshToken(ctx.api, { tokenHash: s.tokenHash }), undefined, 'old token no longer valid')
  t.match(await getValidRefreshToken(ctx.api, { tokenHash: next }), { id: r.tokenId, familyId: s.familyId })
  t.ok(await checkSession(ctx.api, { userId: user.id, familyId: s.familyId }))
  const family = await tokenRows(ctx.admin, s.familyId)
  t.same(family.map((x) => [x.token, x.revoked, x.revoked_reason]), [[s.tokenHash, true, 'rotated'], [next, false, null]])
  t.match(await lastAudit(ctx.admin, 'refresh_token_rotated'), { ip: '192.0.2.9', details: { family_id: s.familyId, token_id: r.tokenId, status: 'rotated' } })

  const base = { tokenHash: next, newTokenHash: hex64(), newJti: randomUUID(), idleTtlSeconds: 60, graceSeconds: 0 }
  await t.rejects(rotateRefreshToken(ctx.api, { ...base, idleTtlSeconds: 0 }), dbError('invalid_argument'))
  await t.rejects(rotateRefreshToken(ctx.api, { ...base, graceSeconds: -1 }), dbError('invalid_argument'))
  await t.rejects(rotateRefreshToken(ctx.api, { ...base, newTokenHash: 'nothex' }), dbError('invalid_argument'))
  await t.rejects(rotateRefreshToken(ctx.api, { ...base, newTokenHash: s.tokenHash }), dbError('invalid_argument'), 'new hash already used')
  t.match(await getValidRefreshToken(ctx.api, { tokenHash: next }), { id: r.tokenId }, 'failed rotations changed nothing')
})

t.test('the same token presented again within the grace window gets the same successor back; nothing is inserted', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const s = await newSession(ctx.api, user.id)
  // The service derives the successor from the presented token: every presentation passes the same hash.
  const b = hex64()
  const rotate = (newTokenHash: string) =>
    rotateRefreshToken(ctx.api, { tokenHash: s.tokenHash, newTokenHash, newJti: randomUUID(), idleTtlSeconds: 600, graceSeconds: 10 })
  const first = await rotate(b)
  t.match(first, { status: 'rotated', userId: user.id, familyId: s.familyId })
  for (let i = 0; i < 3; i++) {
    const again = await rotate(b)
    t.same(again, { ...first, status: 'grace' }, `retry ${String(i + 1)}: the successor the first rotation inserted`)
  }
  const family = await tokenRows(ctx.admin, s.familyId)
  t.same(family.map((x) => [x.token, x.revoked, x.revoked_reason]), [[s.tokenHash, true, 'rotated'], [b, false, null]],
    'no second successor: one live token')
  t.same(await auditActions(ctx.admin, user.id),
    ['user_created', 'session_started', 'refresh_token_rotated', 'refresh_token_rotated', 'refresh_token_rotated', 'refresh_token_rotated'])
  t.match(await lastAudit(ctx.admin, 'refresh_token_rotated'), { details: { family_id: s.familyId, token_id: first.tokenId, status: 'grace' } })

  // A hash that is not the successor's (rotated by an older release, another pepper):
  // refused, and nothing changes — no second successor, no revocation, no audit.
  t.same(await rotate(hex64()),
    { status: 'invalid', userId: user.id, familyId: s.familyId, tokenId: null, expiresAt: null, familyExpiresAt: null })
  t.same(await tokenRows(ctx.admin, s.familyId), family, 'family unchanged')
  t.equal((await auditActions(ctx.admin, user.id)).length, 6, 'nothing audited')

  // Past the window the same presentation is reuse, even with the right hash.
  await ctx.admin.query(`UPDATE activity.refresh_tokens SET revoked_at = now() - interval '11 s' WHERE token = $1`, [s.tokenHash])
  t.match(await rotate(b), { status: 'reuse_detected', familyId: s.familyId, tokenId: null })
  t.notOk(await checkSession(ctx.api, { userId: user.id, familyId: s.familyId }))
})

t.test('grace needs an unused successor: once it has been rotated, the predecessor is reuse', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const a = await newSession(ctx.api, user.id)
  const [b, c] = [hex64(), hex64()]
  const rotate = (tokenHash: string, newTokenHash: string) =>
    rotateRefreshToken(ctx.api, { tokenHash, newTokenHash, newJti: randomUUID(), idleTtlSeconds: 600, graceSeconds: 30 })
  const first = await rotate(a.tokenHash, b)
  t.match(first, { status: 'rotated' })
  t.match(await rotate(a.tokenHash, b), { status: 'grace', tokenId: first.tokenId }, 'while b is unused: grace, b again')
  t.match(await rotate(b, c), { status: 'rotated' })
  t.match(await rotate(a.tokenHash, b), { status: 'reuse_detected', familyId: a.familyId },
    'the retry re-derives the right successor, but that one was used: reuse')
  t.same((await tokenRows(ctx.admin, a.familyId)).map((x) => [x.token, x.revoked_reason]), [[a.tokenHash, 'rotated'], [b, 'rotated'], [c, 'reuse_detected']])
})

t.test('a token whose session was ended (logout, session end, logout-all, password change or reset, reuse) is revoked, never a new reuse', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const rotate = (tokenHash: string, newTokenHash = hex64(), graceSeconds = 10) =>
    rotateRefreshToken(ctx.api, { tokenHash, newTokenHash, newJti: randomUUID(), idleTtlSeconds: 600, graceSeconds })
  /** A session rotated once: its first token (revoked, 'rotated') and its live one. */
  const rotatedSession = async () => {
    const s = await newSession(ctx.api, user.id)
    const next = hex64()
    await rotate(s.tokenHash, next)
    return { familyId: s.familyId, tokens: [s.tokenHash, next] }
  }
  const reuses = async () => (await rows<{ n: number }>(ctx.admin,
    `SELECT count(*)::int AS n FROM activity.audit_logs WHERE action = 'refresh_token_reuse'`))[0]?.n

  const ended: [string, { familyId: string; tokens: string[] }][] = []
  const logout = await rotatedSession()
  t.ok(await revokeRefreshToken(ctx.api, { tokenHash: logout.tokens[1] ?? '' }))
  ended.push(['logout', logout])
  const single = await rotatedSession()
  t.ok(await revokeUserSession(ctx.api, { userId: user.id, familyId: single.familyId }))
  ended.push(['session_ended', single])
  const all = await rotatedSession()
  await revokeUserSessions(ctx.api, { userId: user.id, reason: 'logout_all' })
  ended.push(['logout_all', all])
  const changed = await rotatedSession()
  await updatePassword(ctx.api, { userId: user.id, hashedPassword: fakeHash() })
  ended.push(['password_changed', changed])
  const reset = await rotatedSession()
  await revokeUserSessions(ctx.api, { userId: user.id, reason: 'password_reset' })
  ended.push(['password_reset', reset])

  // The one real reuse: a rotated token presented after its successor was rotated.
  const stolen = await newSession(ctx.api, user.id)
  const [b, c] = [hex64(), hex64()]
  await rotate(stolen.tokenHash, b)
  await rotate(b, c)
  t.match(await rotate(stolen.tokenHash), { status: 'reuse_detected', familyId: stolen.familyId })
  t.equal(await reuses(), 1, 'one reuse, one audit row')
  ended.push(['reuse_detected', { familyId: stolen.familyId, tokens: [stolen.tokenHash, b, c] }])

  for (const [reason, session] of ended) {
    t.equal((await tokenRows(ctx.admin, session.familyId)).at(-1)?.revoked_reason, reason, `${reason}: the session ended that way`)
    for (const token of session.tokens) {
      for (let i = 0; i < 3; i++) {
        for (const graceSeconds of [0, 10]) {
          const r = await rotate(token, hex64(), graceSeconds)
          if (r.status !== 'revoked' || r.familyId !== session.familyId || r.tokenId !== null) {
            t.fail(`${reason}: presenting one of its tokens again gave ${r.status}`, { r })
          }
        }
      }
    }
  }
  t.equal(await reuses(), 1, 'presenting ended sessions\' tokens again audited no further reuse')
  t.equal((await rows<{ n: number }>(ctx.admin, 'SELECT count(*)::int AS n FROM activity.refresh_tokens WHERE NOT revoked'))[0]?.n, 0,
    'and minted nothing')
})

t.test('a rotated token presented again without grace revokes the whole family', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const s = await newSession(ctx.api, user.id)
  const other = await newSession(ctx.api, user.id)
  const b = hex64()
  await rotateRefreshToken(ctx.api, { tokenHash: s.tokenHash, newTokenHash: b, newJti: randomUUID(), idleTtlSeconds: 600, graceSeconds: 0 })
  const reuse = await rotateRefreshToken(ctx.api, { tokenHash: s.tokenHash, newTokenHash: hex64(), newJti: randomUUID(), idleTtlSeconds: 600, graceSeconds: 0, ctx: { ip: '198.51.100.66' } })
  t.match(reuse, { status: 'reuse_detected', userId: user.id, familyId: s.familyId, tokenId: null, expiresAt: null })

  const family = await tokenRows(ctx.admin, s.familyId)
  t.same(family.map((x) => [x.token, x.revoked, x.revoked_reason]), [[s.tokenHash, true, 'rotated'], [b, true, 'reuse_detected']],
    'every token of the family revoked, no new one minted')
  t.equal(await getValidRefreshToken(ctx.api, { tokenHash: b }), undefined)
  t.notOk(await checkSession(ctx.api, { userId: user.id, familyId: s.familyId }))
  t.ok(await checkSession(ctx.api, { userId: user.id, familyId: other.familyId }), 'other sessions untouched')
  t.match(await lastAudit(ctx.admin, 'refresh_token_reuse'), {
    user_id: user.id, ip: '198.51.100.66',
    details: { family_id: s.familyId, token_id: s.id, revoked_reason: 'rotated', tokens_revoked: 1 },
  })
})

t.test('a token two generations old is reuse even inside the grace window', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const a = await newSession(ctx.api, user.id)
  const b = hex64()
  const c = hex64()
  await rotateRefreshToken(ctx.api, { tokenHash: a.tokenHash, newTokenHash: b, newJti: randomUUID(), idleTtlSeconds: 600, graceSeconds: 30 })
  await rotateRefreshToken(ctx.api, { tokenHash: b, newTokenHash: c, newJti: randomUUID(), idleTtlSeconds: 600, graceSeconds: 30 })
  t.match(await rotateRefreshToken(ctx.api, { tokenHash: a.tokenHash, newTokenHash: hex64(), newJti: randomUUID(), idleTtlSeconds: 600, graceSeconds: 30 }),
    { status: 'reuse_detected', familyId: a.familyId })
  t.same((await tokenRows(ctx.admin, a.familyId)).map((x) => x.revoked_reason), ['rotated', 'rotated', 'reuse_detected'])
  t.equal(await getValidRefreshToken(ctx.api, { tokenHash: c }), undefined)
})

// ---------------------------------------------------------------------------
// Sessions

t.test('sessions: listed newest first, ended one by one or all but one', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const stranger = await newUser(ctx.api)
  const oldest = await newSession(ctx.api, user.id, { ip: '192.0.2.1', userAgent: 'phone' })
  const middle = await newSession(ctx.api, user.id, { ip: '192.0.2.2', userAgent: 'laptop' })
  const newest = await newSession(ctx.api, user.id, { ip: '2001:db8::3', userAgent: 'tablet' })
  const strangers = await newSession(ctx.api, stranger.id)
  await rotateRefreshToken(ctx.api, { tokenHash: oldest.tokenHash, newTokenHash: hex64(), newJti: randomUUID(), idleTtlSeconds: 600, graceSeconds: 0, ctx: { ip: '192.0.2.11', userAgent: 'phone v2' } })

  const list = await listUserSessions(ctx.api, { userId: user.id })
  t.same(list.map((s) => s.familyId), [newest.familyId, middle.familyId, oldest.familyId], 'one row per family, newest first')
  t.match(list[2], { ip: '192.0.2.11', userAgent: 'phone v2' }, 'address and agent of the latest token')
  t.match(list[0], { ip: '2001:db8::3', userAgent: 'tablet' })
  t.ok((list[2]?.lastUsedAt.getTime() ?? 0) > (list[2]?.createdAt.getTime() ?? Infinity), 'rotation counts as use')
  for (const s of [oldest, middle, newest]) t.ok(await checkSession(ctx.api, { userId: user.id, familyId: s.familyId }))
  t.notOk(await checkSession(ctx.api, { userId: stranger.id, familyId: middle.familyId }), 'a session is checked against its owner')

  t.equal(await revokeUserSession(ctx.api, { userId: stranger.id, familyId: middle.familyId }), false, "another user's session")
  t.ok(await checkSession(ctx.api, { userId: user.id, familyId: middle.familyId }), 'and it is still alive')
  t.equal(await revokeUserSession(ctx.api, { userId: NO_USER, familyId: middle.familyId }), false, 'unknown user')
  t.equal(await revokeUserSession(ctx.api, { userId: user.id, familyId: middle.familyId }), true)
  t.equal(await revokeUserSession(ctx.api, { userId: user.id, familyId: middle.familyId }), false, 'already ended')
  t.notOk(await checkSession(ctx.api, { userId: user.id, familyId: middle.familyId }))
  t.same((await tokenRows(ctx.admin, middle.familyId)).map((r) => r.revoked_reason), ['session_ended'])
  t.match(await lastAudit(ctx.admin, 'session_ended'), { user_id: user.id, details: { family_id: middle.familyId } })

  t.equal(await revokeUserSessions(ctx.api, { userId: user.id, exceptFamilyId: newest.familyId }), 1, 'only the oldest was left to end')
  t.same((await listUserSessions(ctx.api, { userId: user.id })).map((s) => s.familyId), [newest.familyId])
  t.ok(await checkSession(ctx.api, { userId: user.id, familyId: newest.familyId }))
  t.notOk(await checkSession(ctx.api, { userId: user.id, familyId: oldest.familyId }))
  t.same((await tokenRows(ctx.admin, oldest.familyId)).map((r) => r.revoked_reason), ['rotated', 'logout_all'])
  t.match(await lastAudit(ctx.admin, 'sessions_revoked'), { user_id: user.id, details: { reason: 'logout_all', sessions_ended: 1, kept_family_id: newest.familyId } })

  t.equal(await revokeUserSessions(ctx.api, { userId: user.id }), 1)
  t.same(await listUserSessions(ctx.api, { userId: user.id }), [])
  t.ok(await checkSession(ctx.api, { userId: stranger.id, familyId: strangers.familyId }), "the other user's session survives")

  await t.rejects(revokeUserSessions(ctx.api, { userId: NO_USER }), dbError('user_not_found'))
  await t.rejects(revokeUserSessions(ctx.api, { userId: user.id, reason: 'rotated' }), dbError('invalid_argument'), "'rotated' is no reason to end sessions")
})

// ---------------------------------------------------------------------------
// Email tokens

t.test('a verification link works once, for its purpose, before it expires', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const link = hex64()
  const created = await createEmailToken(ctx.api, { userId: user.id, purpose: 'verify_email', tokenHash: link, ttlSeconds: 3600 })
  t.equal(created.email, user.email)
  t.type(created.expiresAt, Date)
  t.match(await lastAudit(ctx.admin, 'email_token_created'), { user_id: user.id, details: { purpose: 'verify_email', token_id: Number(created.id) } })

  await t.rejects(consumeEmailToken(ctx.api, { tokenHash: link, purpose: 'reset_password', newHashedPassword: fakeHash() }), dbError('token_invalid'), 'wrong purpose')
  await t.rejects(consumeEmailToken(ctx.api, { tokenHash: hex64(), purpose: 'verify_email' }), dbError('token_invalid'), 'unknown')
  t.same(await consumeEmailToken(ctx.api, { tokenHash: link, purpose: 'verify_email' }), { userId: user.id, email: user.email })
  t.match(await getUserById(ctx.api, { userId: user.id }), { isVerified: true })
  t.match(await lastAudit(ctx.admin, 'email_verified'), { user_id: user.id, details: { email: user.email, already_verified: false } })
  await t.rejects(consumeEmailToken(ctx.api, { tokenHash: link, purpose: 'verify_email' }), dbError('token_used'), 'used twice')
  await t.rejects(createEmailToken(ctx.api, { userId: user.id, purpose: 'verify_email', tokenHash: hex64(), ttlSeconds: 60 }), dbError('already_verified'))

  const other = await newUser(ctx.api)
  const stale = hex64()
  await createEmailToken(ctx.api, { userId: other.id, purpose: 'verify_email', tokenHash: stale, ttlSeconds: 60 })
  await ctx.admin.query(`UPDATE activity.email_tokens SET created_at = now() - interval '1 hour', expires_at = now() - interval '1 s' WHERE token_hash = $1`, [stale])
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
  t.match(await consumeEmailToken(ctx.api, { tokenHash: reset, purpose: 'reset_password', newHashedPassword: fakeHash() }), { userId: user.id },
    'a link of the other purpose is not superseded')
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
  await t.rejects(consumeEmailToken(ctx.api, { tokenHash: used, purpose: 'reset_password' }), dbError('invalid_argument'), 'reset without a new hash')
  await t.rejects(consumeEmailToken(ctx.api, { tokenHash: used, purpose: 'reset_password', newHashedPassword: 'plain' }), dbError('invalid_argument'))
  t.match(await consumeEmailToken(ctx.api, { tokenHash: used, purpose: 'reset_password', newHashedPassword: fakeHash() }), { userId: user.id },
    'the refused calls burnt nothing')
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
  t.same(await consumeEmailToken(ctx.api, { tokenHash: link, purpose: 'reset_password', newHashedPassword: newHash, ctx: { requestId: 'r-9' } }), { userId: user.id, email: user.email })

  t.match(await getUserById(ctx.api, { userId: user.id }), { hashedPassword: newHash, isVerified: true, lockedUntil: null })
  t.equal(await checkLoginLock(ctx.api, { email: user.email, ip: null }), null, 'lock lifted')
  t.same(await listUserSessions(ctx.api, { userId: user.id }), [])
  t.same((await tokenRows(ctx.admin, s1.familyId)).map((r) => r.revoked_reason), ['password_reset'])
  t.same((await tokenRows(ctx.admin, s2.familyId)).map((r) => r.revoked_reason), ['password_reset'])
  t.match(await lastAudit(ctx.admin, 'password_reset'), { user_id: user.id, request_id: 'r-9', details: { sessions_ended: 2 } })
  await t.rejects(consumeEmailToken(ctx.api, { tokenHash: link, purpose: 'reset_password', newHashedPassword: fakeHash() }), dbError('token_used'))
})

// ---------------------------------------------------------------------------
// Login throttling

t.test('failed logins lock after the threshold with doubling waits, capped', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const waits: (number | null)[] = []
  const counts: number[] = []
  for (let i = 0; i < 8; i++) {
    const r = await recordFailedLogin(ctx.api, { email: user.email.toUpperCase(), ip: null, ...LOCKOUT })
    counts.push(r.failedCount)
    // The lock is now() + wait and last_failed_at is now(), in the same transaction: exact.
    const [row] = await rows<{ wait: number | null; locked_until: Date | null }>(ctx.admin,
      `SELECT extract(epoch FROM locked_until - last_failed_at)::float8 AS wait, locked_until FROM activity.login_attempts WHERE scope = 'email' AND key = $1`, [user.email])
    waits.push(row?.wait ?? null)
    t.same(r.lockedUntil, row?.locked_until ?? null, `failure ${i + 1}: the returned lock is the stored one`)
  }
  t.same(counts, [1, 2, 3, 4, 5, 6, 7, 8])
  t.same(waits, [null, null, 60, 120, 240, 480, 600, 600], 'base * 2^(n - threshold), capped at max')

  const account = await getUserById(ctx.api, { userId: user.id })
  const [mirror] = await rows<{ failed_login_attempts: number }>(ctx.admin, 'SELECT failed_login_attempts FROM activity.users WHERE id = $1', [user.id])
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
    for (const [who, email] of [['account', user.email], ['ghost', ghost]] as const) {
      const r = await recordFailedLogin(ctx.api, { email, ip: null, ...LOCKOUT })
      seen[who]?.push([r.failedCount, r.lockedUntil === null])
    }
  }
  t.same(seen.ghost, seen.account, 'same counts, same lock points')
  t.same(seen.ghost, [[1, true], [2, true], [3, false], [4, false]])
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
  await ctx.admin.query(`UPDATE activity.login_attempts SET first_failed_at = now() - interval '901 s', last_failed_at = now() - interval '901 s' WHERE key = $1`, [email])
  t.same(await recordFailedLogin(ctx.api, { email, ip: null, ...LOCKOUT }), { failedCount: 1, lockedUntil: null })
})

t.test('a successful login resets the counter and lifts the lock', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  for (let i = 0; i < LOCKOUT.threshold; i++) await recordFailedLogin(ctx.api, { email: user.email, ip: null, ...LOCKOUT })
  t.type(await checkLoginLock(ctx.api, { email: user.email, ip: null }), Date)

  await recordSuccessfulLogin(ctx.api, { userId: user.id, ctx: { ip: '192.0.2.77' } })
  t.equal(await checkLoginLock(ctx.api, { email: user.email, ip: null }), null)
  const [row] = await rows<{ failed_login_attempts: number; locked_until: Date | null; ip: string; attempts: number }>(ctx.admin,
    `SELECT failed_login_attempts, locked_until, host(last_login_ip) AS ip,
            (SELECT count(*)::int FROM activity.login_attempts WHERE key = u.email) AS attempts
       FROM activity.users u WHERE id = $1`, [user.id])
  t.same(row, { failed_login_attempts: 0, locked_until: null, ip: '192.0.2.77', attempts: 0 })
  t.type((await getUserById(ctx.api, { userId: user.id }))?.lastLoginAt, Date)
  t.same(await recordFailedLogin(ctx.api, { email: user.email, ip: null, ...LOCKOUT }), { failedCount: 1, lockedUntil: null }, 'counting starts over')
  t.match(await lastAudit(ctx.admin, 'login_success'), { user_id: user.id, ip: '192.0.2.77' })

  await t.rejects(recordSuccessfulLogin(ctx.api, { userId: NO_USER }), dbError('user_not_found'))
})

// ---------------------------------------------------------------------------
// Maintenance and readiness

t.test('sp_cleanup_expired removes what is past its boundary and keeps what is just inside', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const live = await newSession(ctx.api, user.id)
  const liveNext = hex64()
  await rotateRefreshToken(ctx.api, { tokenHash: live.tokenHash, newTokenHash: liveNext, newJti: randomUUID(), idleTtlSeconds: 600, graceSeconds: 0 })
  const idleGone = await newSession(ctx.api, user.id)
  const idleStays = await newSession(ctx.api, user.id)
  const familyGone = await newSession(ctx.api, user.id)
  const loggedOut = await newSession(ctx.api, user.id)
  await revokeRefreshToken(ctx.api, { tokenHash: loggedOut.tokenHash })
  const setToken = (sql: string, tokenHash: string) => ctx.admin.query(`UPDATE activity.refresh_tokens SET created_at = now() - interval '2 hours', ${sql} WHERE token = $1`, [tokenHash])
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
  await ctx.admin.query(`UPDATE activity.email_tokens SET created_at = now() - interval '1 hour', expires_at = now() - interval '1 s' WHERE token_hash = $1`, [expired])

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
  ])

  const tokens = await rows<{ token: string }>(ctx.admin, 'SELECT token FROM activity.refresh_tokens ORDER BY id')
  t.same(tokens.map((r) => r.token), [live.tokenHash, liveNext, idleStays.tokenHash],
    'a live family keeps its rotated tokens (reuse stays detectable); dead families go')
  const mail = await rows<{ token_hash: string }>(ctx.admin, 'SELECT token_hash FROM activity.email_tokens')
  t.same(mail.map((r) => r.token_hash), [unused])
  const attempts = await rows<{ key: string }>(ctx.admin, 'SELECT key FROM activity.login_attempts ORDER BY key')
  t.same(attempts.map((r) => r.key), ['recent@example.com', 'still-locked@example.com'])
  const tests = await rows<{ action: string }>(ctx.admin, `SELECT action FROM activity.audit_logs WHERE action LIKE 'test_%'`)
  t.same(tests.map((r) => r.action), ['test_recent'])
  t.match(await lastAudit(ctx.admin, 'cleanup'), { user_id: null, details: { refresh_tokens: 3, email_tokens: 2, login_attempts: 2, audit_logs: 1 } })

  t.match(await rotateRefreshToken(ctx.api, { tokenHash: live.tokenHash, newTokenHash: hex64(), newJti: randomUUID(), idleTtlSeconds: 600, graceSeconds: 0 }),
    { status: 'reuse_detected' }, 'after cleanup a rotated token of a live family is still caught')

  await t.rejects(cleanupExpired(ctx.api, { auditRetentionDays: 0 }), dbError('invalid_argument'))
  await t.rejects(cleanupExpired(ctx.api, { auditRetentionDays: 30, attemptRetentionHours: 0 }), dbError('invalid_argument'))
})

t.test('audit rows never hold a password hash or a token hash', async (t) => {
  const ctx = await setup(t)
  const hash = fakeHash()
  const user = await createUser(ctx.api, { email: uniqueEmail(), hashedPassword: hash })
  const s = await newSession(ctx.api, user.id)
  const next = hex64()
  await rotateRefreshToken(ctx.api, { tokenHash: s.tokenHash, newTokenHash: next, newJti: randomUUID(), idleTtlSeconds: 60, graceSeconds: 0 })
  await rotateRefreshToken(ctx.api, { tokenHash: s.tokenHash, newTokenHash: hex64(), newJti: randomUUID(), idleTtlSeconds: 60, graceSeconds: 0 })
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
  t.same(applied.map((m) => m.name), await migrationNames())
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
    const [count] = await rows<{ n: number }>(ctx.admin, `SELECT count(*)::int AS n FROM activity.login_attempts WHERE scope = 'email' AND key = $1`, [user.email])
    t.equal(count?.n, 1, `the failure from ${ip} is counted`)
    await t.resolves(recordSuccessfulLogin(ctx.api, { userId: user.id, ctx: { ip } }), `successful login from ${ip}`)
    await t.resolves(saveRefreshToken(ctx.api, { userId: user.id, tokenHash: hex64(), jti: randomUUID(), idleTtlSeconds: 60, familyTtlSeconds: 60, ctx: { ip } }),
      `session start from ${ip}`)
  }
})
