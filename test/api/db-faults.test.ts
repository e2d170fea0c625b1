// Issue 12, parts 4 and 5: the database connection failing under load. A TCP proxy
// written here sits between the app and PostgreSQL and cuts every connection mid-load,
// refuses new ones, or swallows them: every answer is a success or a 503
// problem+json with Retry-After — never a 500 — and the same app serves again as
// soon as the database is reachable (the pool recovers by itself). Then an instance
// is killed mid-rotation while a second one on the same database goes on: every
// refresh chain continues, no token gets two successors, no orphan stays live.
import { createHash } from 'node:crypto'
import t, { type Test } from 'tap'
import pg from 'pg'
import type { LightMyRequestResponse } from 'fastify'
import { bearer, build, json } from '../helpers/app.ts'
import { createTestDatabase } from '../helpers/db.ts'
import { tcpTarget, TcpProxy } from '../helpers/tcp-proxy.ts'

type App = Awaited<ReturnType<typeof build>>

interface Pair {
  accessToken: string
  refreshToken: string
}

const PASSWORD = 'correct horse battery staple'
const PEPPER = 'db-faults-test-pepper-0123456789abcdefghijklmnopqrstuvwxyz'
const ENV = {
  REQUIRE_EMAIL_VERIFICATION: 'false',
  REFRESH_TOKEN_PEPPER: PEPPER,
  // A swallowed connect gives up quickly; the pool is small so a cut hits most of it.
  DATABASE_CONNECT_TIMEOUT_MS: '500',
  DATABASE_POOL_MAX: '6',
  DATABASE_POOL_MIN: '2',
}

async function signupAndLogin(h: App, email: string): Promise<Pair> {
  const signup = await h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email, password: PASSWORD } })
  if (signup.statusCode !== 202) throw new Error(`signup ${String(signup.statusCode)} ${signup.body}`)
  const res = await h.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email, password: PASSWORD } })
  if (res.statusCode !== 200) throw new Error(`login ${String(res.statusCode)} ${res.body}`)
  return json<Pair>(res)
}

const me = (h: App, pair: Pair) => h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(pair.accessToken) })
const refresh = (h: App, refreshToken: string) => h.app.inject({ method: 'POST', url: '/api/auth/refresh', payload: { refreshToken } })

/** A problem answer for a lost database: 503 service_unavailable, problem+json, Retry-After in 1..5 s, nothing internal. */
function isUnavailable(res: LightMyRequestResponse): boolean {
  if (res.statusCode !== 503) return false
  const retryAfter = Number(res.headers['retry-after'])
  const body = json(res)
  return (
    /^application\/problem\+json/.test(String(res.headers['content-type'])) &&
    body.code === 'service_unavailable' &&
    body.detail === 'service temporarily unavailable' &&
    Number.isInteger(retryAfter) &&
    retryAfter >= 1 &&
    retryAfter <= 5
  )
}

/** Tally of answers: 200, 401, 503 (well-formed) and anything else by status plus its code. */
class Tally {
  readonly counts = new Map<string, number>()
  add(res: LightMyRequestResponse): void {
    let key = String(res.statusCode)
    if (res.statusCode === 503 && !isUnavailable(res)) key = `503 malformed (retry-after ${String(res.headers['retry-after'])})`
    else if (![200, 401, 503].includes(res.statusCode)) key = `${key} ${String(json(res).code)}`
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1)
  }
  get(key: string): number {
    return this.counts.get(key) ?? 0
  }
  unexpected(allowed: readonly string[]): string[] {
    return [...this.counts.keys()].filter((k) => !allowed.includes(k))
  }
}

/** Every session answers /me and a refresh with 200 again; returns the pairs it now holds. */
async function allServe(t: Test, h: App, pairs: Pair[], what: string): Promise<Pair[]> {
  const next: Pair[] = []
  for (const [i, pair] of pairs.entries()) {
    const who = await me(h, pair)
    t.equal(who.statusCode, 200, `${what}: session ${String(i)} /me`)
    const res = await refresh(h, pair.refreshToken)
    t.equal(res.statusCode, 200, `${what}: session ${String(i)} refresh`)
    next.push(res.statusCode === 200 ? json<Pair>(res) : pair)
  }
  return next
}

t.test('connections cut mid-load: 200 or 503 with Retry-After, never 500; the pool recovers by itself', async (t) => {
  const db = await createTestDatabase(t)
  const proxy = await TcpProxy.start(t, tcpTarget(db.url))
  const h = await build(t, ENV, proxy.route(db))

  const WORKERS = 10
  const OPS = 20
  const CUT_AFTER = [25, 70, 120, 160]
  let pairs = await Promise.all(Array.from({ length: WORKERS }, (_, i) => signupAndLogin(h, `cut-${String(i)}@example.test`)))

  const tally = new Tally()
  let done = 0
  let cuts = 0
  // Each worker owns one session and keeps one request of it in flight: a refresh
  // answered 503 leaves the client on its token, which it presents again later.
  await Promise.all(
    pairs.map(async (_, w) => {
      for (let op = 0; op < OPS; op++) {
        const pair = pairs[w] as Pair
        const res = op % 2 === 0 ? await me(h, pair) : await refresh(h, pair.refreshToken)
        tally.add(res)
        if (op % 2 === 1 && res.statusCode === 200) pairs[w] = json<Pair>(res)
        done++
        if (CUT_AFTER.includes(done)) {
          // The other workers' requests are in flight, most of them inside a query.
          if (proxy.cutAll() > 0) cuts++
        }
      }
    }),
  )
  t.equal(done, WORKERS * OPS, `${String(done)} requests`)
  t.same(tally.unexpected(['200', '503']), [], `only 200 and well-formed 503 (got ${JSON.stringify([...tally.counts])})`)
  t.ok(cuts >= 3, `connections were cut ${String(cuts)} times mid-load`)
  t.ok(tally.get('503') > 0, `${String(tally.get('503'))} requests answered 503 during the cuts`)
  t.ok(proxy.accepted > Number(ENV.DATABASE_POOL_MAX), `the pool reconnected (${String(proxy.accepted)} connections)`)

  pairs = await allServe(t, h, pairs, 'after the cuts, same app')
  t.ok(h.app.db.totalCount <= Number(ENV.DATABASE_POOL_MAX), 'the pool stays within its size')
})

t.test('database refusing, then swallowing connections: 503 during, service again after', async (t) => {
  const db = await createTestDatabase(t)
  const proxy = await TcpProxy.start(t, tcpTarget(db.url))
  const h = await build(t, ENV, proxy.route(db))
  let pairs = await Promise.all(Array.from({ length: 4 }, (_, i) => signupAndLogin(h, `refuse-${String(i)}@example.test`)))

  for (const mode of ['refuse', 'hang'] as const) {
    // Cut while requests are in flight, then keep the database unreachable.
    const inFlight = pairs.flatMap((pair) => [me(h, pair), refresh(h, pair.refreshToken)])
    await proxy.setMode(mode)
    proxy.cutAll()
    const during = new Tally()
    for (const res of await Promise.all(inFlight)) during.add(res)
    t.same(during.unexpected(['200', '503']), [], `${mode}, cut in flight: 200 or 503 (${JSON.stringify([...during.counts])})`)

    const down = new Tally()
    for (let round = 0; round < 3; round++) {
      const answers = await Promise.all(pairs.flatMap((pair) => [me(h, pair), refresh(h, pair.refreshToken)]))
      for (const res of answers) down.add(res)
    }
    t.same([...down.counts], [['503', 3 * 2 * pairs.length]], `${mode}: every request is 503 with Retry-After`)

    await proxy.setMode('forward')
    proxy.cutAll() // the swallowed connects, if any are left
    // Tokens whose refresh committed before the cut are presented again: the grace gives the same successor.
    pairs = await allServe(t, h, pairs, `after ${mode}, same app`)
  }
})

// ---------------------------------------------------------------------------
// Part 5: an instance killed mid-rotation.

const hashOf = (token: string) => createHash('sha256').update(token).digest('hex')

function sessionOf(accessToken: string): string {
  const payload = JSON.parse(Buffer.from(accessToken.split('.')[1] ?? '', 'base64url').toString()) as { sid: string }
  return payload.sid
}

interface Chain {
  family: string
  pair: Pair
  /** Every refresh token this client has held, in order. */
  held: string[]
  /** presented token -> the successors answered for it (a set of one, or the test fails). */
  successors: Map<string, Set<string>>
}

t.test('instance A killed mid-rotation, B goes on: chains continue, no token accepted twice, no orphan', async (t) => {
  const SESSIONS = 30
  const STEPS = 10
  const KILL_AFTER = Math.floor((SESSIONS * STEPS) / 2)
  const env = { ...ENV, DATABASE_POOL_MAX: '10' }
  const db = await createTestDatabase(t)
  const proxy = await TcpProxy.start(t, tcpTarget(db.url))
  const a = await build(t, env, proxy.route(db))
  const b = await build(t, env, db)
  const admin = new pg.Client({ connectionString: db.adminUrl })
  await admin.connect()
  t.teardown(() => admin.end())

  const chains: Chain[] = []
  for (let i = 0; i < SESSIONS; i++) {
    const pair = await signupAndLogin(i % 2 === 0 ? a : b, `kill-${String(i)}@example.test`)
    chains.push({ family: sessionOf(pair.accessToken), pair, held: [pair.refreshToken], successors: new Map() })
  }

  let answered = 0
  let killed = false
  let lostOnA = 0
  let committedButLost = 0
  let retriedOnB = 0
  const record = (chain: Chain, presented: string, res: LightMyRequestResponse): void => {
    if (res.statusCode !== 200) return
    const next = json<Pair>(res)
    const seen = chain.successors.get(presented) ?? new Set<string>()
    seen.add(next.refreshToken)
    chain.successors.set(presented, seen)
  }
  const kill = async (): Promise<void> => {
    killed = true
    // kill -9 as the database sees it: every connection of A drops at once, in the
    // middle of whatever A was running, and A never reaches the database again.
    await proxy.setMode('refuse')
    proxy.cutAll()
  }

  // Each client: a chain of refreshes alternating between A and B; an answer from A
  // that fails, or arrives after the kill (a killed process answers nothing), is
  // lost and the client presents the same token to B.
  await Promise.all(
    chains.map(async (chain, i) => {
      for (let step = 0; step < STEPS; step++) {
        const presented = chain.pair.refreshToken
        const onA = !killed && (i + step) % 2 === 0
        let res = await refresh(onA ? a : b, presented)
        record(chain, presented, res)
        if (onA && (killed || res.statusCode !== 200)) {
          if (res.statusCode !== 200) t.ok(isUnavailable(res), `A answers 503, not ${String(res.statusCode)}`)
          else committedButLost++ // rotated on A, answer lost: B must give the very same successor
          lostOnA++
          res = await refresh(b, presented)
          record(chain, presented, res)
          retriedOnB++
        }
        // The body only when it failed: a success carries tokens, which have no place in the log.
        if (res.statusCode !== 200) {
          t.fail(`chain ${String(i)} step ${String(step)}: ${String(res.statusCode)} ${res.body.slice(0, 200)}`)
          return
        }
        chain.pair = json<Pair>(res)
        if (chain.held.at(-1) !== chain.pair.refreshToken) chain.held.push(chain.pair.refreshToken)
        answered++
        if (answered === KILL_AFTER) await kill()
      }
    }),
  )
  t.ok(killed, 'A was killed mid-load')
  t.ok(
    retriedOnB > 0,
    `${String(retriedOnB)} requests retried on B (${String(lostOnA)} lost on A, ${String(committedButLost)} of them after A had rotated)`,
  )

  const doubled = chains.flatMap((c) => [...c.successors].filter(([, next]) => next.size > 1))
  t.equal(doubled.length, 0, 'no token was answered with two different successors')

  for (const [i, chain] of chains.entries()) {
    const { rows } = await admin.query<{ token: string; revoked: boolean }>(
      'SELECT token, revoked FROM activity.refresh_tokens WHERE family_id = $1',
      [chain.family],
    )
    const stored = new Set(rows.map((r) => r.token))
    t.same(
      [...stored].sort(),
      chain.held.map(hashOf).sort(),
      `chain ${String(i)}: the family holds exactly the tokens the client was given (no successor nobody got)`,
    )
    t.equal(rows.length, stored.size, `chain ${String(i)}: no token stored twice`)
    const live = rows.filter((r) => !r.revoked).map((r) => r.token)
    t.same(live, [hashOf(chain.pair.refreshToken)], `chain ${String(i)}: one live token, the one the client holds`)
  }

  // Every chain continues from its last answered token, on the surviving instance.
  for (const [i, chain] of chains.entries()) {
    const res = await refresh(b, chain.pair.refreshToken)
    t.equal(res.statusCode, 200, `chain ${String(i)} continues on B`)
  }
  const { rows: revoked } = await admin.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM activity.refresh_tokens WHERE family_id = ANY($1::uuid[]) AND revoked_reason IS DISTINCT FROM 'rotated' AND revoked`,
    [chains.map((c) => c.family)],
  )
  t.equal(revoked[0]?.n, 0, 'no family was revoked as a reuse')
})
