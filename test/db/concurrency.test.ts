// Races a real service hits: the same refresh token presented twice at once, a
// rotation against a logout-everywhere, a burst of failed logins, a double signup.
// Every contender runs on its own connection, so the database really interleaves them.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import type pg from 'pg'
import { deriveRefreshSuccessor, newRefreshToken } from '../../src/auth/refresh-tokens.ts'
import { hashToken } from '../../src/auth/tokens.ts'
import {
  checkSession,
  createUser,
  recordFailedLogin,
  revokeUserSessions,
  rotateRefreshToken,
  saveRefreshToken,
  type RotationStatus,
} from '../../src/db/procedures.ts'
import { createTestDatabase, testPool } from '../helpers/db.ts'
import { fakeHash, hex64, isCode, newSession, newUser, rows, uniqueEmail } from '../helpers/fixtures.ts'

const ROUNDS = 20
const PEPPER = 'concurrency-test-pepper-0123456789-abcdefghijklmnop'

type Teardown = Parameters<typeof createTestDatabase>[0]

interface Ctx {
  api: pg.Pool
  admin: pg.Pool
  /** n checked-out connections as auth_api_user, released at teardown. */
  clients(n: number): Promise<pg.PoolClient[]>
}

async function setup(t: Teardown, connections: number): Promise<Ctx> {
  const db = await createTestDatabase(t)
  const api = testPool(t, db.url, connections + 1)
  const admin = testPool(t, db.adminUrl, 1)
  return {
    api,
    admin,
    async clients(n) {
      const list = await Promise.all(Array.from({ length: n }, () => api.connect()))
      t.teardown(() => list.forEach((c) => c.release()))
      return list
    },
  }
}

function rotate(db: pg.PoolClient, tokenHash: string, graceSeconds: number) {
  return rotateRefreshToken(db, { tokenHash, newTokenHash: hex64(), newJti: randomUUID(), idleTtlSeconds: 600, graceSeconds })
}

async function liveTokens(admin: pg.Pool, column: 'family_id' | 'user_id', id: string): Promise<number> {
  const [row] = await rows<{ n: number }>(
    admin,
    `
    SELECT count(*)::int AS n FROM activity.refresh_tokens
     WHERE ${column} = $1 AND NOT revoked AND expires_at > now() AND family_expires_at > now()`,
    [id],
  )
  return row?.n ?? -1
}

t.test('the same token rotated twice at once without grace: one wins, the family ends, nothing survives', async (t) => {
  const ctx = await setup(t, 2)
  const [c1, c2] = await ctx.clients(2)
  if (c1 === undefined || c2 === undefined) throw new Error('no connections')
  const user = await newUser(ctx.api)
  const outcomes: string[] = []
  const survivors: number[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const s = await newSession(ctx.api, user.id)
    const results = await Promise.all([rotate(c1, s.tokenHash, 0), rotate(c2, s.tokenHash, 0)])
    outcomes.push(
      results
        .map((r) => r.status)
        .sort()
        .join('+'),
    )
    survivors.push(await liveTokens(ctx.admin, 'family_id', s.familyId))
  }
  t.same(new Set(outcomes), new Set(['reuse_detected+rotated']), 'every round: exactly one rotated, the other reuse_detected')
  t.same(survivors, Array<number>(ROUNDS).fill(0), "no live token left: the winner's new token was revoked too")
  const [reuse] = await rows<{ n: number }>(
    ctx.admin,
    `SELECT count(*)::int AS n FROM activity.audit_logs WHERE action = 'refresh_token_reuse'`,
  )
  t.equal(reuse?.n, ROUNDS, 'each reuse audited once')
})

// What the service does (issue 11): the successor is derived from the presented token, so
// every contender passes the same successor hash. Exactly one rotates, the others get that
// same successor back (grace), and the session never holds more than one live token.
for (const contenders of [2, 8, 32]) {
  t.test(
    `${String(contenders)} presentations of one token at once within grace, ${String(ROUNDS)} rounds: one successor, one live token`,
    async (t) => {
      const ctx = await setup(t, contenders)
      const clients = await ctx.clients(contenders)
      const user = await newUser(ctx.api)
      const first = newRefreshToken()
      const s = await saveRefreshToken(ctx.api, {
        userId: user.id,
        tokenHash: first.hash,
        jti: first.jti,
        idleTtlSeconds: 600,
        familyTtlSeconds: 3600,
      })
      let current = first.token
      for (let round = 0; round < ROUNDS; round++) {
        const presented = current
        const results = await Promise.all(
          clients.map((c) => {
            const next = deriveRefreshSuccessor(PEPPER, presented)
            return rotateRefreshToken(c, {
              tokenHash: hashToken(presented),
              newTokenHash: next.hash,
              newJti: next.jti,
              idleTtlSeconds: 600,
              graceSeconds: 10,
            })
          }),
        )
        const statuses = results.map((r) => r.status).sort()
        const successors = new Set(results.map((r) => r.tokenId))
        const family = await rows<{ id: number; token: string; revoked: boolean }>(
          ctx.admin,
          'SELECT id, token, revoked FROM activity.refresh_tokens WHERE family_id = $1 ORDER BY id',
          [s.familyId],
        )
        const live = family.filter((r) => !r.revoked)
        const expected = deriveRefreshSuccessor(PEPPER, presented)
        const ok =
          statuses.join('+') ===
            ['grace', 'rotated']
              .concat(Array<string>(contenders - 2).fill('grace'))
              .sort()
              .join('+') &&
          successors.size === 1 &&
          live.length === 1 &&
          live[0]?.id === results[0]?.tokenId &&
          live[0]?.token === expected.hash &&
          family.length === round + 2 &&
          results.every((r) => r.familyId === s.familyId)
        if (!ok) {
          t.fail(`round ${String(round)}`, { statuses, successors: [...successors], live, rows: family.length })
          return
        }
        current = expected.token
      }
      t.pass(
        `${String(ROUNDS)} rounds: one rotated and ${String(contenders - 1)} grace each, all given the same successor, one live token, one row per round`,
      )
      t.ok(await checkSession(ctx.api, { userId: user.id, familyId: s.familyId }), 'the session lives')
      const [reuse] = await rows<{ n: number }>(
        ctx.admin,
        `SELECT count(*)::int AS n FROM activity.audit_logs WHERE action = 'refresh_token_reuse'`,
      )
      t.equal(reuse?.n, 0, 'no reuse audited')
    },
  )
}

t.test('a rotation racing a logout-everywhere never leaves a live token behind', async (t) => {
  const ctx = await setup(t, 2)
  const [c1, c2] = await ctx.clients(2)
  if (c1 === undefined || c2 === undefined) throw new Error('no connections')
  const user = await newUser(ctx.api)
  const statuses = new Set<RotationStatus>()
  for (let round = 0; round < ROUNDS * 2; round++) {
    const s = await newSession(ctx.api, user.id)
    const other = await newSession(ctx.api, user.id)
    // Alternate who starts first so both orders get exercised.
    const [rotation] =
      round % 2 === 0
        ? await Promise.all([rotate(c1, s.tokenHash, 10), revokeUserSessions(c2, { userId: user.id })])
        : ((await Promise.all([revokeUserSessions(c2, { userId: user.id }), rotate(c1, s.tokenHash, 10)])).reverse() as [
            Awaited<ReturnType<typeof rotate>>,
          ])
    statuses.add(rotation.status)
    const live = await liveTokens(ctx.admin, 'user_id', user.id)
    if (live !== 0) {
      t.fail(`round ${round}: ${live} live tokens after the race (rotation: ${rotation.status})`, {
        family: s.familyId,
        other: other.familyId,
      })
      return
    }
  }
  t.pass(`${ROUNDS * 2} rounds, no live token left`)
  // Revoked first: the token's session was ended on purpose, which is no reuse (issue 11).
  t.ok(
    [...statuses].every((s) => s === 'rotated' || s === 'revoked'),
    `rotation outcomes: ${[...statuses].join(', ')}`,
  )
  const [reuse] = await rows<{ n: number }>(
    ctx.admin,
    `SELECT count(*)::int AS n FROM activity.audit_logs WHERE action = 'refresh_token_reuse'`,
  )
  t.equal(reuse?.n, 0, 'a rotation that comes after the logout-everywhere is not audited as reuse')
})

for (const withAccount of [true, false]) {
  t.test(`20 failed logins at once for one ${withAccount ? 'account' : 'address with no account'} are all counted`, async (t) => {
    const ctx = await setup(t, 20)
    const email = withAccount ? (await newUser(ctx.api)).email : uniqueEmail('ghost')
    const clients = await ctx.clients(20)
    const policy = { threshold: 5, baseSeconds: 60, maxSeconds: 3600, ipThreshold: 1000, windowSeconds: 900 }
    const results = await Promise.all(
      clients.map((c, i) => recordFailedLogin(c, { email: i % 2 === 0 ? email : email.toUpperCase(), ip: '198.51.100.20', ...policy })),
    )

    t.same(
      results.map((r) => r.failedCount).sort((a, b) => a - b),
      Array.from({ length: 20 }, (_, i) => i + 1),
      'each call saw its own count: 1..20',
    )
    const attempts = await rows<{ scope: string; failed_count: number; locked: boolean }>(
      ctx.admin,
      `
      SELECT scope, failed_count, COALESCE(locked_until > now(), false) AS locked FROM activity.login_attempts ORDER BY scope`,
    )
    t.same(attempts, [
      { scope: 'email', failed_count: 20, locked: true },
      { scope: 'ip', failed_count: 20, locked: false },
    ])
    if (withAccount) {
      const [user] = await rows<{ failed_login_attempts: number; locked: boolean }>(
        ctx.admin,
        'SELECT failed_login_attempts, locked_until > now() AS locked FROM activity.users WHERE email = $1',
        [email],
      )
      t.same(user, { failed_login_attempts: 20, locked: true }, 'the account mirror holds the last count, not a stale one')
    }
  })
}

t.test('10 signups at once for one address in different letter cases: exactly one account', async (t) => {
  const ctx = await setup(t, 10)
  const clients = await ctx.clients(10)
  const local = `race-${randomUUID().slice(0, 8)}`
  const spellings = clients.map((_, i) => {
    const email = `${local}@example.com`
    return email.replace(/[a-z]/g, (ch, j: number) => ((i >> (j % 4)) & 1 ? ch.toUpperCase() : ch))
  })
  t.equal(new Set(spellings).size, 10, 'ten different spellings')
  const settled = await Promise.allSettled(
    clients.map((c, i) => createUser(c, { email: ` ${spellings[i] ?? ''} `, hashedPassword: fakeHash() })),
  )
  const won = settled.filter((r) => r.status === 'fulfilled')
  const taken = settled.filter((r) => r.status === 'rejected' && isCode(r.reason, 'email_taken'))
  t.equal(won.length, 1, 'one signup succeeds')
  t.equal(taken.length, 9, 'the others get email_taken (not a 5xx)')
  const users = await rows<{ email: string }>(ctx.admin, 'SELECT email FROM activity.users')
  t.same(users, [{ email: `${local}@example.com` }])
})
