// Stored procedures through their typed wrappers, as auth_api_user (what the
// service does): the normal path and each error path. Shared setup: ./setup.ts.
// Refresh tokens: saving, validity, rotation, the grace window and reuse
// detection.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import {
  checkSession,
  getValidRefreshToken,
  revokeRefreshToken,
  revokeUserSession,
  revokeUserSessions,
  rotateRefreshToken,
  saveRefreshToken,
  updatePassword,
  type RevokeReason,
} from '../../../src/db/procedures.ts'
import { dbError, fakeHash, hex64, newSession, newUser, rows } from '../../helpers/fixtures.ts'
import { setup, NO_USER, auditActions, lastAudit, tokenRows } from './setup.ts'

t.test('saving a refresh token starts a session; bad input is refused', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const s = await newSession(ctx.api, user.id, { idleTtlSeconds: 600, familyTtlSeconds: 3600, ip: '192.0.2.1', userAgent: 'browser' })
  t.ok(s.expiresAt < s.familyExpiresAt, 'idle expiry before family expiry')
  const valid = await getValidRefreshToken(ctx.api, { tokenHash: s.tokenHash })
  t.match(valid, { id: s.id, userId: user.id, familyId: s.familyId, expiresAt: s.expiresAt, familyExpiresAt: s.familyExpiresAt })
  t.equal(await getValidRefreshToken(ctx.api, { tokenHash: hex64() }), undefined, 'unknown token: no row')
  t.match(await lastAudit(ctx.admin, 'session_started'), {
    user_id: user.id,
    ip: '192.0.2.1',
    user_agent: 'browser',
    details: { family_id: s.familyId },
  })

  const capped = await newSession(ctx.api, user.id, { idleTtlSeconds: 7200, familyTtlSeconds: 60 })
  t.same(capped.expiresAt, capped.familyExpiresAt, 'idle expiry never outlives the family')

  const base = { userId: user.id, tokenHash: hex64(), jti: randomUUID(), idleTtlSeconds: 60, familyTtlSeconds: 120 }
  await t.rejects(saveRefreshToken(ctx.api, { ...base, idleTtlSeconds: 0 }), dbError('invalid_argument'))
  await t.rejects(saveRefreshToken(ctx.api, { ...base, familyTtlSeconds: -1 }), dbError('invalid_argument'))
  await t.rejects(
    saveRefreshToken(ctx.api, { ...base, tokenHash: base.tokenHash.toUpperCase() }),
    dbError('invalid_argument'),
    'uppercase hex',
  )
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
  await ctx.admin.query(
    `UPDATE activity.refresh_tokens SET created_at = now() - interval '1 hour', expires_at = now() - interval '1 s' WHERE token = $1`,
    [idle.tokenHash],
  )
  t.equal(await getValidRefreshToken(ctx.api, { tokenHash: idle.tokenHash }), undefined, 'idle-expired: no row')
  t.match(await rotate(idle.tokenHash), { status: 'expired', userId: user.id, familyId: idle.familyId, tokenId: null })

  const family = await newSession(ctx.api, user.id)
  await ctx.admin.query(
    `UPDATE activity.refresh_tokens SET created_at = now() - interval '1 hour', family_expires_at = now() - interval '1 s' WHERE token = $1`,
    [family.tokenHash],
  )
  t.equal(await getValidRefreshToken(ctx.api, { tokenHash: family.tokenHash }), undefined, 'family-expired: no row')
  t.match(await rotate(family.tokenHash), { status: 'expired', familyId: family.familyId, tokenId: null })
  t.notOk(await checkSession(ctx.api, { userId: user.id, familyId: family.familyId }))

  const loggedOut = await newSession(ctx.api, user.id)
  t.equal(await revokeRefreshToken(ctx.api, { tokenHash: loggedOut.tokenHash }), true)
  t.equal(await revokeRefreshToken(ctx.api, { tokenHash: loggedOut.tokenHash }), false, 'already ended')
  t.equal(await revokeRefreshToken(ctx.api, { tokenHash: idle.tokenHash }), false, 'expired: nothing live to end')
  t.equal(await revokeRefreshToken(ctx.api, { tokenHash: hex64() }), false, 'unknown')
  t.same(
    (await tokenRows(ctx.admin, loggedOut.familyId)).map((r) => r.revoked_reason),
    ['logout'],
  )
  t.match(await lastAudit(ctx.admin, 'logout'), { user_id: user.id, details: { family_id: loggedOut.familyId, reason: 'logout' } })
  t.equal(await getValidRefreshToken(ctx.api, { tokenHash: loggedOut.tokenHash }), undefined, 'revoked: no row')
  t.match(
    await rotate(loggedOut.tokenHash),
    { status: 'revoked', userId: user.id, familyId: loggedOut.familyId, tokenId: null },
    'a logged-out token presented again is refused, and is no reuse',
  )
  t.same(
    (await tokenRows(ctx.admin, loggedOut.familyId)).map((r) => r.revoked_reason),
    ['logout'],
    'its revocation stays a logout',
  )
  t.notOk(await lastAudit(ctx.admin, 'refresh_token_reuse'), 'no reuse audited')

  t.same(await rotate(hex64()), {
    status: 'invalid',
    userId: null,
    familyId: null,
    tokenId: null,
    expiresAt: null,
    familyExpiresAt: null,
    amr: null,
  })
  await t.rejects(revokeRefreshToken(ctx.api, { tokenHash: hex64(), reason: 'bogus' as RevokeReason }), dbError('invalid_argument'))
})

t.test('rotation replaces the token inside the same family', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const s = await newSession(ctx.api, user.id, { familyTtlSeconds: 3600 })
  const next = hex64()
  const r = await rotateRefreshToken(ctx.api, {
    tokenHash: s.tokenHash,
    newTokenHash: next,
    newJti: randomUUID(),
    idleTtlSeconds: 600,
    graceSeconds: 10,
    ctx: { ip: '192.0.2.9' },
  })
  t.match(r, { status: 'rotated', userId: user.id, familyId: s.familyId })
  t.ok(r.tokenId !== null && r.tokenId !== s.id, 'a new token id')
  t.same(r.familyExpiresAt, s.familyExpiresAt, 'the family keeps its absolute expiry')
  t.equal(await getValidRefreshToken(ctx.api, { tokenHash: s.tokenHash }), undefined, 'old token no longer valid')
  t.match(await getValidRefreshToken(ctx.api, { tokenHash: next }), { id: r.tokenId, familyId: s.familyId })
  t.ok(await checkSession(ctx.api, { userId: user.id, familyId: s.familyId }))
  const family = await tokenRows(ctx.admin, s.familyId)
  t.same(
    family.map((x) => [x.token, x.revoked, x.revoked_reason]),
    [
      [s.tokenHash, true, 'rotated'],
      [next, false, null],
    ],
  )
  t.match(await lastAudit(ctx.admin, 'refresh_token_rotated'), {
    ip: '192.0.2.9',
    details: { family_id: s.familyId, token_id: r.tokenId, status: 'rotated' },
  })

  const base = { tokenHash: next, newTokenHash: hex64(), newJti: randomUUID(), idleTtlSeconds: 60, graceSeconds: 0 }
  await t.rejects(rotateRefreshToken(ctx.api, { ...base, idleTtlSeconds: 0 }), dbError('invalid_argument'))
  await t.rejects(rotateRefreshToken(ctx.api, { ...base, graceSeconds: -1 }), dbError('invalid_argument'))
  await t.rejects(rotateRefreshToken(ctx.api, { ...base, newTokenHash: 'nothex' }), dbError('invalid_argument'))
  await t.rejects(rotateRefreshToken(ctx.api, { ...base, newTokenHash: s.tokenHash }), dbError('invalid_argument'), 'new hash already used')
  t.match(await getValidRefreshToken(ctx.api, { tokenHash: next }), { id: r.tokenId }, 'failed rotations changed nothing')
})

t.test('an ordinary rotation is audited when the address or the user agent changed, or when every rotation is', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const s = await newSession(ctx.api, user.id, { ip: '192.0.2.1', userAgent: 'app/1' })
  let token = s.tokenHash
  let previous = token
  const rotate = async (client: { ip: string; userAgent: string }, auditEveryRotation?: boolean, presented = token) => {
    const next = hex64()
    const r = await rotateRefreshToken(ctx.api, {
      tokenHash: presented,
      newTokenHash: next,
      newJti: randomUUID(),
      idleTtlSeconds: 600,
      graceSeconds: 10,
      ctx: client,
      ...(auditEveryRotation === undefined ? {} : { auditEveryRotation }),
    })
    if (r.status === 'rotated') [previous, token] = [presented, next]
    return r
  }
  const rotated = async () =>
    rows<{ ip: string; user_agent: string; status: string }>(
      ctx.admin,
      `SELECT host(ip) AS ip, user_agent, details->>'status' AS status FROM activity.audit_logs
        WHERE user_id = $1 AND action = 'refresh_token_rotated' ORDER BY id`,
      [user.id],
    )

  t.match(await rotate({ ip: '192.0.2.1', userAgent: 'app/1' }), { status: 'rotated' })
  t.match(await rotate({ ip: '192.0.2.1', userAgent: 'app/1' }, false), { status: 'rotated' })
  t.same(await rotated(), [], 'the same client: the token rows say it all, no audit row')
  await rotate({ ip: '198.51.100.7', userAgent: 'app/1' })
  await rotate({ ip: '198.51.100.7', userAgent: 'app/2' })
  await rotate({ ip: '198.51.100.7', userAgent: 'app/2' })
  t.same(
    await rotated(),
    [
      { ip: '198.51.100.7', user_agent: 'app/1', status: 'rotated' },
      { ip: '198.51.100.7', user_agent: 'app/2', status: 'rotated' },
    ],
    'a new address, then a new agent: one row each; then the same client again: none',
  )
  await rotate({ ip: '198.51.100.7', userAgent: 'app/2' }, true)
  t.equal((await rotated()).length, 3, 'auditEveryRotation: the same client is audited too')

  // A retry inside the grace window (the predecessor presented again, the same successor
  // derived) is audited as grace when it comes from elsewhere, and not when it does not.
  const retry = (ip: string) =>
    rotateRefreshToken(ctx.api, {
      tokenHash: previous,
      newTokenHash: token,
      newJti: randomUUID(),
      idleTtlSeconds: 600,
      graceSeconds: 10,
      ctx: { ip, userAgent: 'app/2' },
    })
  t.match(await retry('198.51.100.7'), { status: 'grace' })
  t.equal((await rotated()).length, 3, 'a retry from the same client: no row')
  t.match(await retry('203.0.113.5'), { status: 'grace' })
  t.match((await rotated())[3], { ip: '203.0.113.5', status: 'grace' })
  // Reuse is audited whatever the setting.
  t.match(await rotate({ ip: '192.0.2.1', userAgent: 'app/1' }, false, s.tokenHash), { status: 'reuse_detected' })
  t.match(await lastAudit(ctx.admin, 'refresh_token_reuse'), { ip: '192.0.2.1', details: { family_id: s.familyId } })
})

t.test('the same token presented again within the grace window gets the same successor back; nothing is inserted', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const s = await newSession(ctx.api, user.id)
  // The service derives the successor from the presented token: every presentation passes the same hash.
  const b = hex64()
  // Every rotation audited, so the audit trail shows each retry.
  const rotate = (newTokenHash: string) =>
    rotateRefreshToken(ctx.api, {
      tokenHash: s.tokenHash,
      newTokenHash,
      newJti: randomUUID(),
      idleTtlSeconds: 600,
      graceSeconds: 10,
      auditEveryRotation: true,
    })
  const first = await rotate(b)
  t.match(first, { status: 'rotated', userId: user.id, familyId: s.familyId })
  for (let i = 0; i < 3; i++) {
    const again = await rotate(b)
    t.same(again, { ...first, status: 'grace' }, `retry ${String(i + 1)}: the successor the first rotation inserted`)
  }
  const family = await tokenRows(ctx.admin, s.familyId)
  t.same(
    family.map((x) => [x.token, x.revoked, x.revoked_reason]),
    [
      [s.tokenHash, true, 'rotated'],
      [b, false, null],
    ],
    'no second successor: one live token',
  )
  t.same(await auditActions(ctx.admin, user.id), [
    'user_created',
    'session_started',
    'refresh_token_rotated',
    'refresh_token_rotated',
    'refresh_token_rotated',
    'refresh_token_rotated',
  ])
  t.match(await lastAudit(ctx.admin, 'refresh_token_rotated'), {
    details: { family_id: s.familyId, token_id: first.tokenId, status: 'grace' },
  })

  // A hash that is not the successor's (rotated by an older release, another pepper):
  // refused, and nothing changes — no second successor, no revocation, no audit.
  t.same(await rotate(hex64()), {
    status: 'invalid',
    userId: user.id,
    familyId: s.familyId,
    tokenId: null,
    expiresAt: null,
    familyExpiresAt: null,
    amr: null,
  })
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
  t.match(
    await rotate(a.tokenHash, b),
    { status: 'reuse_detected', familyId: a.familyId },
    'the retry re-derives the right successor, but that one was used: reuse',
  )
  t.same(
    (await tokenRows(ctx.admin, a.familyId)).map((x) => [x.token, x.revoked_reason]),
    [
      [a.tokenHash, 'rotated'],
      [b, 'rotated'],
      [c, 'reuse_detected'],
    ],
  )
})

t.test(
  'a token whose session was ended (logout, session end, logout-all, password change or reset, reuse) is revoked, never a new reuse',
  async (t) => {
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
    const reuses = async () =>
      (await rows<{ n: number }>(ctx.admin, `SELECT count(*)::int AS n FROM activity.audit_logs WHERE action = 'refresh_token_reuse'`))[0]
        ?.n

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
            // Widened: the row is checked as the database returned it, not as the union promises.
            const r: { status: string; familyId: string | null; tokenId: number | null } = await rotate(token, hex64(), graceSeconds)
            if (r.status !== 'revoked' || r.familyId !== session.familyId || r.tokenId !== null) {
              t.fail(`${reason}: presenting one of its tokens again gave ${r.status}`, { r })
            }
          }
        }
      }
    }
    t.equal(await reuses(), 1, "presenting ended sessions' tokens again audited no further reuse")
    t.equal(
      (await rows<{ n: number }>(ctx.admin, 'SELECT count(*)::int AS n FROM activity.refresh_tokens WHERE NOT revoked'))[0]?.n,
      0,
      'and minted nothing',
    )
  },
)

t.test('a rotated token presented again without grace revokes the whole family', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const s = await newSession(ctx.api, user.id)
  const other = await newSession(ctx.api, user.id)
  const b = hex64()
  await rotateRefreshToken(ctx.api, { tokenHash: s.tokenHash, newTokenHash: b, newJti: randomUUID(), idleTtlSeconds: 600, graceSeconds: 0 })
  const reuse = await rotateRefreshToken(ctx.api, {
    tokenHash: s.tokenHash,
    newTokenHash: hex64(),
    newJti: randomUUID(),
    idleTtlSeconds: 600,
    graceSeconds: 0,
    ctx: { ip: '198.51.100.66' },
  })
  t.match(reuse, { status: 'reuse_detected', userId: user.id, familyId: s.familyId, tokenId: null, expiresAt: null })

  const family = await tokenRows(ctx.admin, s.familyId)
  t.same(
    family.map((x) => [x.token, x.revoked, x.revoked_reason]),
    [
      [s.tokenHash, true, 'rotated'],
      [b, true, 'reuse_detected'],
    ],
    'every token of the family revoked, no new one minted',
  )
  t.equal(await getValidRefreshToken(ctx.api, { tokenHash: b }), undefined)
  t.notOk(await checkSession(ctx.api, { userId: user.id, familyId: s.familyId }))
  t.ok(await checkSession(ctx.api, { userId: user.id, familyId: other.familyId }), 'other sessions untouched')
  t.match(await lastAudit(ctx.admin, 'refresh_token_reuse'), {
    user_id: user.id,
    ip: '198.51.100.66',
    details: { family_id: s.familyId, token_id: s.id, revoked_reason: 'rotated', tokens_revoked: 1 },
  })
})

t.test('a token two generations old is reuse even inside the grace window', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const a = await newSession(ctx.api, user.id)
  const b = hex64()
  const c = hex64()
  await rotateRefreshToken(ctx.api, {
    tokenHash: a.tokenHash,
    newTokenHash: b,
    newJti: randomUUID(),
    idleTtlSeconds: 600,
    graceSeconds: 30,
  })
  await rotateRefreshToken(ctx.api, { tokenHash: b, newTokenHash: c, newJti: randomUUID(), idleTtlSeconds: 600, graceSeconds: 30 })
  t.match(
    await rotateRefreshToken(ctx.api, {
      tokenHash: a.tokenHash,
      newTokenHash: hex64(),
      newJti: randomUUID(),
      idleTtlSeconds: 600,
      graceSeconds: 30,
    }),
    { status: 'reuse_detected', familyId: a.familyId },
  )
  t.same(
    (await tokenRows(ctx.admin, a.familyId)).map((x) => x.revoked_reason),
    ['rotated', 'rotated', 'reuse_detected'],
  )
  t.equal(await getValidRefreshToken(ctx.api, { tokenHash: c }), undefined)
})
