// Stored procedures through their typed wrappers, as auth_api_user (what the
// service does): the normal path and each error path. Shared setup: ./setup.ts.
// Sessions (refresh-token families): listing, checking and ending them.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import { checkSession, listUserSessions, revokeUserSession, revokeUserSessions, rotateRefreshToken } from '../../../src/db/procedures.ts'
import { dbError, hex64, newSession, newUser } from '../../helpers/fixtures.ts'
import { setup, NO_USER, lastAudit, tokenRows } from './setup.ts'

t.test('sessions: listed newest first, ended one by one or all but one', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const stranger = await newUser(ctx.api)
  const oldest = await newSession(ctx.api, user.id, { ip: '192.0.2.1', userAgent: 'phone' })
  const middle = await newSession(ctx.api, user.id, { ip: '192.0.2.2', userAgent: 'laptop' })
  const newest = await newSession(ctx.api, user.id, { ip: '2001:db8::3', userAgent: 'tablet' })
  const strangers = await newSession(ctx.api, stranger.id)
  await rotateRefreshToken(ctx.api, {
    tokenHash: oldest.tokenHash,
    newTokenHash: hex64(),
    newJti: randomUUID(),
    idleTtlSeconds: 600,
    graceSeconds: 0,
    ctx: { ip: '192.0.2.11', userAgent: 'phone v2' },
  })

  const list = await listUserSessions(ctx.api, { userId: user.id })
  t.same(
    list.map((s) => s.familyId),
    [newest.familyId, middle.familyId, oldest.familyId],
    'one row per family, newest first',
  )
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
  t.same(
    (await tokenRows(ctx.admin, middle.familyId)).map((r) => r.revoked_reason),
    ['session_ended'],
  )
  t.match(await lastAudit(ctx.admin, 'session_ended'), { user_id: user.id, details: { family_id: middle.familyId } })

  t.equal(await revokeUserSessions(ctx.api, { userId: user.id, exceptFamilyId: newest.familyId }), 1, 'only the oldest was left to end')
  t.same(
    (await listUserSessions(ctx.api, { userId: user.id })).map((s) => s.familyId),
    [newest.familyId],
  )
  t.ok(await checkSession(ctx.api, { userId: user.id, familyId: newest.familyId }))
  t.notOk(await checkSession(ctx.api, { userId: user.id, familyId: oldest.familyId }))
  t.same(
    (await tokenRows(ctx.admin, oldest.familyId)).map((r) => r.revoked_reason),
    ['rotated', 'logout_all'],
  )
  t.match(await lastAudit(ctx.admin, 'sessions_revoked'), {
    user_id: user.id,
    details: { reason: 'logout_all', sessions_ended: 1, kept_family_id: newest.familyId },
  })

  t.equal(await revokeUserSessions(ctx.api, { userId: user.id }), 1)
  t.same(await listUserSessions(ctx.api, { userId: user.id }), [])
  t.ok(await checkSession(ctx.api, { userId: stranger.id, familyId: strangers.familyId }), "the other user's session survives")

  await t.rejects(revokeUserSessions(ctx.api, { userId: NO_USER }), dbError('user_not_found'))
  await t.rejects(
    revokeUserSessions(ctx.api, { userId: user.id, reason: 'rotated' }),
    dbError('invalid_argument'),
    "'rotated' is no reason to end sessions",
  )
})
