// The outbox (issue 15): every state-changing procedure writes its events in its
// own transaction (fn_audit), the publisher claims and marks them, other services
// page through them (sp_events_after) and check sessions (sp_session_is_live).
// Procedures are driven through their typed wrappers as auth_api_user; the
// superuser connection only inspects activity.events.
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import pg from 'pg'
import {
  beginLogin,
  claimEvents,
  cleanupEvents,
  completeLogin,
  consumeEmailToken,
  createEmailToken,
  createUser,
  deactivateUser,
  endLoginAttempt,
  eventsAfter,
  eventsLag,
  markEventsPublished,
  recordFailedLogin,
  revokeRefreshToken,
  revokeUserSession,
  revokeUserSessions,
  rotateRefreshToken,
  sessionIsLive,
  signup,
  updatePassword,
  type Queryable,
  type EventCursor,
  type PagedEvent,
} from '../../src/db/procedures.ts'
import { TEST_PASSWORDS } from '../helpers/cluster.ts'
import { createTestDatabase, testPool, type TestDatabase } from '../helpers/db.ts'
import { dbError, fakeHash, hex64, newSession, newUser, rows, uniqueEmail, type Session } from '../helpers/fixtures.ts'

type Teardown = Parameters<typeof createTestDatabase>[0]

interface Ctx {
  db: TestDatabase
  /** auth_api_user: every procedure call goes through here. */
  api: pg.Pool
  /** Superuser: reads activity.events, moves timestamps. */
  admin: pg.Pool
}

async function setup(t: Teardown): Promise<Ctx> {
  const db = await createTestDatabase(t)
  return { db, api: testPool(t, db.url, 4), admin: testPool(t, db.adminUrl, 2) }
}

async function connect(t: Teardown, url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url })
  client.on('error', () => undefined) // the database is dropped WITH (FORCE) at teardown
  await client.connect()
  t.teardown(() => client.end())
  return client
}

function asRole(url: string, user: string, password: string): string {
  const u = new URL(url)
  u.username = user
  u.password = password
  return u.toString()
}

type Emitted = [type: string, sessionId: string | null, payload: Record<string, unknown>]

async function lastId(db: Queryable): Promise<number> {
  const [row] = await rows<{ id: string | null }>(db, 'SELECT max(id) AS id FROM activity.events')
  return Number(row?.id ?? 0)
}

/** The events fn ran into being, oldest first (user id checked against `userId` when given). */
async function emitted(ctx: Ctx, fn: () => Promise<unknown>, userId?: string): Promise<Emitted[]> {
  const before = await lastId(ctx.admin)
  await fn()
  const found = await rows<{ type: string; session_id: string | null; payload: Record<string, unknown>; user_id: string | null }>(
    ctx.admin,
    'SELECT type, session_id, payload, user_id FROM activity.events WHERE id > $1 ORDER BY id',
    [before],
  )
  if (userId !== undefined) for (const e of found) if (e.user_id !== userId) throw new Error(`${e.type} of another user`)
  return found.map((e) => [e.type, e.session_id, e.payload])
}

/**
 * Waits until no event is held back by a transaction still running on the server
 * (other test files share it): the feed shows only rows below the snapshot xmin.
 */
async function settle(admin: pg.Pool): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const [row] = await rows<{ held: boolean }>(
      admin,
      'SELECT EXISTS (SELECT 1 FROM activity.events WHERE NOT tx_id < pg_snapshot_xmin(pg_current_snapshot())) AS held',
    )
    if (row?.held === false) return
    await sleep(25)
  }
  throw new Error('events never settled')
}

const LOCKOUT = { threshold: 3, baseSeconds: 60, maxSeconds: 600, ipThreshold: 100, windowSeconds: 900 }
const MAIL = { max: 5, windowSeconds: 3600 }
const sorted = (ids: string[]): string[] => [...ids].sort()

t.test('every state-changing path emits exactly its events; the others emit none', async (t) => {
  const ctx = await setup(t)

  // signup and verification
  let userId = ''
  const email = uniqueEmail('events')
  const link = hex64()
  t.same(
    await emitted(ctx, async () => {
      userId = (await signup(ctx.api, { email, hashedPassword: fakeHash(), tokenHash: link, ttlSeconds: 3600, mail: MAIL })).userId
    }),
    [['user.created', null, { email }]],
    'signup: user.created',
  )
  t.same(
    await emitted(ctx, () => signup(ctx.api, { email, hashedPassword: fakeHash(), tokenHash: hex64(), ttlSeconds: 3600, mail: MAIL })),
    [],
    'signup with a taken address: none',
  )
  t.same(
    await emitted(ctx, () => consumeEmailToken(ctx.api, { tokenHash: link, purpose: 'verify_email' }), userId),
    [['user.verified', null, { email }]],
    'verification: user.verified',
  )
  const other = await newUser(ctx.api)
  t.same(
    await emitted(ctx, () => createUser(ctx.api, { email: uniqueEmail(), hashedPassword: fakeHash() })).then((e) => e.map((x) => x[0])),
    ['user.created'],
    'createUser: user.created',
  )

  // login, session start, rotation, logout
  const policy = LOCKOUT
  t.same(
    await emitted(ctx, async () => {
      await beginLogin(ctx.api, { email, ip: '192.0.2.1', deviceHash: null, policy })
      await completeLogin(ctx.api, {
        userId,
        ip: '192.0.2.1',
        deviceHash: null,
        newDeviceHash: hex64(),
        deviceTtlSeconds: 3600,
        ipThreshold: policy.ipThreshold,
      })
    }),
    [],
    'a successful password check starts no session by itself: none',
  )
  const started: Session[] = []
  const startedEvents = await emitted(ctx, async () => {
    started.push(await newSession(ctx.api, userId))
  })
  const [a] = started
  if (a === undefined) throw new Error('no session')
  t.same(startedEvents, [['session.created', a.familyId, {}]], 'session start: session.created, with the session id')
  const rotatedHash = hex64()
  t.same(
    await emitted(ctx, () =>
      rotateRefreshToken(ctx.api, {
        tokenHash: a.tokenHash,
        newTokenHash: rotatedHash,
        newJti: randomUUID(),
        idleTtlSeconds: 600,
        graceSeconds: 0,
      }),
    ),
    [],
    'rotation: none',
  )
  t.same(
    await emitted(ctx, () => revokeRefreshToken(ctx.api, { tokenHash: rotatedHash }), userId),
    [['session.revoked', a.familyId, { reason: 'logout' }]],
    'logout: session.revoked (logout)',
  )
  t.same(await emitted(ctx, () => revokeRefreshToken(ctx.api, { tokenHash: rotatedHash })), [], 'logging out an ended session: none')

  const one = await newSession(ctx.api, userId)
  t.same(
    await emitted(ctx, () => revokeUserSession(ctx.api, { userId, familyId: one.familyId }), userId),
    [['session.revoked', one.familyId, { reason: 'session_ended' }]],
    'ending one session: session.revoked (session_ended)',
  )

  // revoke-all: one event per ended session, in session id order
  const [s1, s2, keep] = [await newSession(ctx.api, userId), await newSession(ctx.api, userId), await newSession(ctx.api, userId)]
  t.same(
    await emitted(ctx, () => revokeUserSessions(ctx.api, { userId, exceptFamilyId: keep.familyId }), userId),
    sorted([s1.familyId, s2.familyId]).map((sid) => ['session.revoked', sid, { reason: 'logout_all' }]),
    'logout-all: one session.revoked (logout_all) per ended session',
  )
  t.same(await emitted(ctx, () => revokeUserSessions(ctx.api, { userId, exceptFamilyId: keep.familyId })), [], 'nothing left: none')

  // password change (and a rehash, which is none)
  const [p1, p2] = [await newSession(ctx.api, userId), await newSession(ctx.api, userId)]
  t.same(
    await emitted(ctx, () => updatePassword(ctx.api, { userId, hashedPassword: fakeHash(), keepFamilyId: keep.familyId }), userId),
    [
      ['user.password_changed', null, { sessionsEnded: 2, keptSessionId: keep.familyId }],
      ...sorted([p1.familyId, p2.familyId]).map((sid): Emitted => ['session.revoked', sid, { reason: 'password_changed' }]),
    ],
    'password change: user.password_changed + session.revoked (password_changed) per ended session',
  )
  t.same(await emitted(ctx, () => updatePassword(ctx.api, { userId, hashedPassword: fakeHash(), endSessions: false })), [], 'rehash: none')

  // password reset
  const reset = hex64()
  await createEmailToken(ctx.api, { userId, purpose: 'reset_password', tokenHash: reset, ttlSeconds: 600 })
  t.same(
    await emitted(
      ctx,
      () => consumeEmailToken(ctx.api, { tokenHash: reset, purpose: 'reset_password', newHashedPassword: fakeHash() }),
      userId,
    ),
    [
      ['user.password_reset', null, { sessionsEnded: 1 }],
      ['session.revoked', keep.familyId, { reason: 'password_reset' }],
    ],
    'reset: user.password_reset + session.revoked (password_reset)',
  )

  // reuse detection
  const r = await newSession(ctx.api, userId)
  await rotateRefreshToken(ctx.api, {
    tokenHash: r.tokenHash,
    newTokenHash: hex64(),
    newJti: randomUUID(),
    idleTtlSeconds: 600,
    graceSeconds: 0,
  })
  t.same(
    await emitted(
      ctx,
      () =>
        rotateRefreshToken(ctx.api, {
          tokenHash: r.tokenHash,
          newTokenHash: hex64(),
          newJti: randomUUID(),
          idleTtlSeconds: 600,
          graceSeconds: 0,
        }),
      userId,
    ),
    [['session.reuse_detected', r.familyId, { tokensRevoked: 1 }]],
    'reuse: session.reuse_detected',
  )

  // failed logins and the lockout
  t.same(
    await emitted(ctx, async () => {
      await beginLogin(ctx.api, { email: other.email, ip: null, deviceHash: null, policy })
      await endLoginAttempt(ctx.api, { email: other.email, ip: null, deviceHash: null, outcome: 'login_failed', policy })
    }),
    [],
    'a failed login: none',
  )
  const locker = await newUser(ctx.api)
  const locked = await emitted(ctx, async () => {
    for (let i = 0; i < LOCKOUT.threshold; i++) await recordFailedLogin(ctx.api, { email: locker.email, ip: null, ...LOCKOUT })
  })
  t.match(locked, [['account.locked', null, { failedCount: LOCKOUT.threshold, lockedUntil: String }]], 'lockout: one account.locked')
  t.equal(locked.length, 1)
  t.same(
    await emitted(ctx, async () => {
      for (let i = 0; i < LOCKOUT.threshold; i++) await recordFailedLogin(ctx.api, { email: uniqueEmail('ghost'), ip: null, ...LOCKOUT })
    }),
    [],
    'failures for an address with no account: none',
  )

  // deactivation
  const [d1, d2] = [await newSession(ctx.api, other.id), await newSession(ctx.api, other.id)]
  t.same(
    await emitted(ctx, () => deactivateUser(ctx.api, { userId: other.id }), other.id),
    [
      ['user.deactivated', null, { sessionsEnded: 2 }],
      ...sorted([d1.familyId, d2.familyId]).map((sid): Emitted => ['session.revoked', sid, { reason: 'user_deactivated' }]),
    ],
    'deactivation: user.deactivated + session.revoked (user_deactivated) per ended session',
  )
  t.same(
    await emitted(ctx, () => t.rejects(deactivateUser(ctx.api, { userId: other.id }), dbError('user_inactive'))),
    [],
    'a refused call: none',
  )
})

t.test('events commit and roll back with the change', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const session = await newSession(ctx.api, user.id)
  // A superuser session acting as auth_api_user, so the same transaction can look at the table.
  const client = await connect(t, ctx.db.adminUrl)
  const ownEvents = async (): Promise<string[]> =>
    (await rows<{ type: string }>(client, 'SELECT type FROM activity.events WHERE user_id = $1 ORDER BY id', [user.id])).map((r) => r.type)
  const before = await ownEvents()
  t.same(before, ['user.created', 'session.created'])

  await client.query('BEGIN')
  await client.query('SET LOCAL ROLE auth_api_user')
  await deactivateUser(client, { userId: user.id })
  await client.query('RESET ROLE')
  t.same(await ownEvents(), [...before, 'user.deactivated', 'session.revoked'], 'inside the transaction: the events are there')
  await client.query('ROLLBACK')

  t.same(await ownEvents(), before, 'rolled back: no event')
  t.ok(await sessionIsLive(ctx.api, { sessionId: session.familyId }), 'and no change')

  await client.query('BEGIN')
  await client.query('SET LOCAL ROLE auth_api_user')
  await deactivateUser(client, { userId: user.id })
  await client.query('COMMIT')
  t.same(await ownEvents(), [...before, 'user.deactivated', 'session.revoked'], 'committed: change and events')
  t.notOk(await sessionIsLive(ctx.api, { sessionId: session.familyId }))
})

t.test('NOTIFY activity_events: on commit only, once per transaction', async (t) => {
  const ctx = await setup(t)
  const listener = await connect(t, ctx.db.adminUrl)
  const heard: string[] = []
  listener.on('notification', (n) => heard.push(n.channel))
  await listener.query('LISTEN activity_events')
  const quiet = async (): Promise<number> => {
    await sleep(300)
    return heard.splice(0).length
  }

  const user = await newUser(ctx.api)
  await Promise.all([newSession(ctx.api, user.id), newSession(ctx.api, user.id)])
  await quiet()
  t.equal(await revokeUserSessions(ctx.api, { userId: user.id }), 2)
  t.equal(await quiet(), 1, 'two events in one transaction: one notification')
  await recordFailedLogin(ctx.api, { email: user.email, ip: null, ...LOCKOUT })
  t.equal(await quiet(), 0, 'no event: no notification')

  const client = await connect(t, ctx.db.url)
  await client.query('BEGIN')
  await newSession(client, user.id)
  t.equal(await quiet(), 0, 'not before commit')
  await client.query('ROLLBACK')
  t.equal(await quiet(), 0, 'nor after a rollback')
})

t.test('claim and mark: one publisher at a time, oldest first, batch after batch', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  for (let i = 0; i < 4; i++) await newSession(ctx.api, user.id)
  await settle(ctx.admin)
  const all = await rows<{ id: string }>(ctx.admin, 'SELECT id FROM activity.events ORDER BY id')
  t.equal(all.length, 5)
  t.match(await eventsLag(ctx.api), { unpublished: 5, oldestCreatedAt: Date })

  const [first, second] = [await connect(t, ctx.db.url), await connect(t, ctx.db.url)]
  await first.query('BEGIN')
  const batch = await claimEvents(first, { limit: 2 })
  t.same(
    batch.map((e) => e.id),
    all.slice(0, 2).map((e) => e.id),
    'the two oldest',
  )
  t.match(batch[0], { type: 'user.created', version: 1, userId: user.id, sessionId: null, payload: { email: user.email }, createdAt: Date })

  await second.query('BEGIN')
  t.same(await claimEvents(second, { limit: 10 }), [], 'a second publisher gets nothing while the first holds the lock')
  await second.query('COMMIT')

  t.equal(await markEventsPublished(first, { ids: batch.map((e) => e.id) }), 2)
  await first.query('COMMIT')
  t.match(await eventsLag(ctx.api), { unpublished: 3 })
  t.equal(await markEventsPublished(ctx.api, { ids: [batch[0]?.id ?? '0', '999999'] }), 0, 'published or unknown ids: nothing to mark')

  await settle(ctx.admin)
  await second.query('BEGIN')
  const next = await claimEvents(second, { limit: 10 })
  t.same(
    next.map((e) => e.id),
    all.slice(2).map((e) => e.id),
    'the next claim starts after the marked batch',
  )
  await second.query('ROLLBACK')
  t.match(await eventsLag(ctx.api), { unpublished: 3 }, 'a rolled-back batch stays unpublished (published again)')
  await t.rejects(claimEvents(ctx.api, { limit: 0 }), dbError('invalid_argument'))
})

t.test('events_after: pages by (tx_id, id) and no event ever commits behind a cursor', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  for (let i = 0; i < 6; i++) await newSession(ctx.api, user.id)
  await settle(ctx.admin)
  const all = (await rows<{ id: string }>(ctx.admin, 'SELECT id FROM activity.events ORDER BY id')).map((r) => r.id)
  t.equal(all.length, 7)

  let cursor: EventCursor = { txId: '0', id: '0' }
  /** Reads from the cursor to the end, page by page, moving the cursor. */
  const readOn = async (limit: number): Promise<PagedEvent[]> => {
    const read: PagedEvent[] = []
    for (;;) {
      const page = await eventsAfter(ctx.api, { after: cursor, limit })
      if (page.length === 0) return read
      t.ok(page.length <= limit)
      read.push(...page)
      const last = page.at(-1)
      if (last !== undefined) cursor = { txId: last.txId, id: last.id }
    }
  }
  t.same(
    (await readOn(3)).map((e) => e.id),
    all,
    'every event once (one transaction each here, so id order)',
  )
  t.same(await eventsAfter(ctx.api, { after: cursor, limit: 3 }), [], 'nothing after the last')
  await t.rejects(eventsAfter(ctx.api, { after: { txId: '-1', id: '0' }, limit: 3 }), dbError('invalid_argument'))
  await t.rejects(eventsAfter(ctx.api, { after: { txId: '0', id: '-1' }, limit: 3 }), dbError('invalid_argument'))
  await t.rejects(eventsAfter(ctx.api, { after: { txId: '0', id: '0' }, limit: 0 }), dbError('invalid_argument'))

  // A transaction takes the next id and stays open; a later one commits a higher id.
  const slow = await connect(t, ctx.db.url)
  await slow.query('BEGIN')
  const pending = await newSession(slow, user.id)
  const later = await newSession(ctx.api, user.id)
  t.same(await eventsAfter(ctx.api, { after: cursor, limit: 10 }), [], 'the committed later one waits behind the open one')
  await slow.query('COMMIT')
  await settle(ctx.admin)
  t.same(
    (await readOn(10)).map((e) => e.sessionId),
    [pending.familyId, later.familyId],
    'then both, in the order their transactions began',
  )

  // The other interleaving: the transaction that began first commits a HIGHER event id
  // while one that began later holds a LOWER id open. Paging by id alone would pass
  // the lower id for good; by (tx_id, id) it comes after the cursor when it commits.
  const first = await connect(t, ctx.db.url)
  const second = await connect(t, ctx.db.url)
  await first.query('BEGIN')
  await first.query('SELECT pg_current_xact_id()')
  await second.query('BEGIN')
  const low = await newSession(second, user.id)
  const high = await newSession(first, user.id)
  await first.query('COMMIT')
  await settle(ctx.admin)
  const before = await readOn(10)
  t.same(
    before.map((e) => e.sessionId),
    [high.familyId],
    'the committed one is read; the cursor passes its id',
  )
  await second.query('COMMIT')
  await settle(ctx.admin)
  const after = await readOn(10)
  t.same(
    after.map((e) => e.sessionId),
    [low.familyId],
    'the lower id still comes: it is after the cursor in (tx_id, id) order',
  )
  t.ok(BigInt(after[0]?.id ?? 0) < BigInt(before[0]?.id ?? 0), 'the interleaving happened: the later read has the lower id')
})

t.test('session_is_live: live session of an active user, one index lookup', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const a = await newSession(ctx.api, user.id)
  const b = await newSession(ctx.api, user.id)
  t.ok(await sessionIsLive(ctx.api, { sessionId: a.familyId }))
  t.notOk(await sessionIsLive(ctx.api, { sessionId: randomUUID() }), 'unknown session')
  await revokeRefreshToken(ctx.api, { tokenHash: a.tokenHash })
  t.notOk(await sessionIsLive(ctx.api, { sessionId: a.familyId }), 'revoked')
  t.ok(await sessionIsLive(ctx.api, { sessionId: b.familyId }))
  await ctx.admin.query('UPDATE activity.users SET is_active = false WHERE id = $1', [user.id])
  t.notOk(await sessionIsLive(ctx.api, { sessionId: b.familyId }), 'its user is deactivated')
  const owner = await newUser(ctx.api)
  const expired = await newSession(ctx.api, owner.id)
  await ctx.admin.query(
    `UPDATE activity.refresh_tokens SET created_at = now() - interval '1 hour', expires_at = now() - interval '1 s' WHERE family_id = $1`,
    [expired.familyId],
  )
  t.notOk(await sessionIsLive(ctx.api, { sessionId: expired.familyId }), 'expired')

  // Enough sessions that a sequential scan would cost more than the index.
  await ctx.admin.query(
    `
    INSERT INTO activity.refresh_tokens (user_id, token, jti, expires_at, family_id, family_expires_at)
    SELECT $1, md5(i::text) || md5(i::text), 'bulk-' || i, now() + interval '1 hour', gen_random_uuid(), now() + interval '1 day'
      FROM generate_series(1, 5000) i`,
    [owner.id],
  )
  await ctx.admin.query('ANALYZE activity.refresh_tokens')
  const [fn] = await rows<{ src: string }>(ctx.admin, `SELECT prosrc AS src FROM pg_proc WHERE proname = 'sp_session_is_live'`)
  const body = (fn?.src ?? '').replaceAll('p_session_id', `'${b.familyId}'::uuid`)
  const plan = (await rows<{ 'QUERY PLAN': string }>(ctx.admin, `EXPLAIN ${body}`)).map((r) => r['QUERY PLAN']).join('\n')
  t.match(plan, /Index (Only )?Scan using refresh_tokens_family_id_live_idx/, 'refresh_tokens through the live family index')
  t.notMatch(plan, /Seq Scan on refresh_tokens/, 'no sequential scan of the sessions')
})

t.test('write_api_user may read events and check sessions, nothing more', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const session = await newSession(ctx.api, user.id)
  await settle(ctx.admin)
  const write = await connect(t, asRole(ctx.db.adminUrl, 'write_api_user', TEST_PASSWORDS.writeApi))
  const { rows: executable } = await write.query<{ fn: string }>(`
    SELECT p.proname AS fn FROM pg_proc p
     WHERE p.pronamespace = 'activity'::regnamespace AND has_function_privilege(p.oid, 'EXECUTE') ORDER BY 1`)
  t.same(
    executable.map((r) => r.fn),
    ['sp_events_after', 'sp_session_is_live'],
  )
  t.same(
    (await eventsAfter(write, { after: { txId: '0', id: '0' }, limit: 10 })).map((e) => e.type),
    ['user.created', 'session.created'],
  )
  t.ok(await sessionIsLive(write, { sessionId: session.familyId }))
  const denied = async (sql: string): Promise<unknown> =>
    write.query(sql).then(
      () => 'ok',
      (err: unknown) => (err as { code?: unknown }).code,
    )
  t.equal(await denied('SELECT * FROM activity.sp_claim_events(10)'), '42501', 'cannot claim')
  t.equal(await denied(`SELECT activity.sp_mark_events_published('{1}')`), '42501', 'cannot mark')
  t.equal(await denied('SELECT * FROM activity.events'), '42501', 'cannot read the table')
})

t.test('cleanup deletes published events past the retention, unpublished ones only where no publisher runs', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  await newSession(ctx.api, user.id)
  await newSession(ctx.api, user.id)
  const ids = (await rows<{ id: string }>(ctx.admin, 'SELECT id FROM activity.events ORDER BY id')).map((r) => r.id)
  t.equal(await markEventsPublished(ctx.api, { ids: ids.slice(0, 2) }), 2)
  await ctx.admin.query(`UPDATE activity.events SET published_at = now() - interval '49 hours' WHERE id = $1`, [ids[0]])
  await ctx.admin.query(`UPDATE activity.events SET created_at = now() - interval '49 hours' WHERE id = $1`, [ids[2]])
  t.equal(await cleanupEvents(ctx.api, { retentionHours: 48, unpublishedToo: false }), 1)
  const left = async () => (await rows<{ id: string }>(ctx.admin, 'SELECT id FROM activity.events ORDER BY id')).map((r) => r.id)
  t.same(await left(), ids.slice(1), 'the old published one went; the recent published and the old unpublished stay')
  // Where no publisher runs, nothing is ever marked: retention applies to unpublished events too.
  t.equal(await cleanupEvents(ctx.api, { retentionHours: 48, unpublishedToo: true }), 1)
  t.same(await left(), [ids[1], ...ids.slice(3)], 'without a publisher the old unpublished one goes too')
  await t.rejects(cleanupEvents(ctx.api, { retentionHours: 0, unpublishedToo: false }), dbError('invalid_argument'))
})
