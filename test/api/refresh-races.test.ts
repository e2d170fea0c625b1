// Issue 11, part 1: refresh grace must not fork sessions. Parallel presentations of one
// refresh token, a client retrying after a lost answer, a stolen token replayed inside the
// grace window: all get the same successor, and a session never holds more than one live
// refresh token. A token whose session was ended on purpose is refused without being
// counted as a reuse. Checked over HTTP, with the superuser connection reading the tables.
import t, { type Test } from 'tap'
import pg from 'pg'
import { bearer, build, json } from '../helpers/app.ts'

const PASSWORD = 'correct horse battery staple'
const ROUNDS = 20
const ENV = { REQUIRE_EMAIL_VERIFICATION: 'false' }

type App = Awaited<ReturnType<typeof build>>

interface Pair {
  accessToken: string
  refreshToken: string
}

async function signup(h: App, email: string): Promise<void> {
  const res = await h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email, password: PASSWORD } })
  if (res.statusCode !== 202) throw new Error(`signup ${String(res.statusCode)} ${res.body}`)
}

async function login(h: App, email: string): Promise<Pair> {
  const res = await h.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email, password: PASSWORD } })
  if (res.statusCode !== 200) throw new Error(`login ${String(res.statusCode)} ${res.body}`)
  return json<Pair>(res)
}

const refresh = (h: App, refreshToken: string) => h.app.inject({ method: 'POST', url: '/api/auth/refresh', payload: { refreshToken } })

/** The session (refresh token family) an access token belongs to: its `sid` claim. */
function sessionOf(accessToken: string): string {
  const payload = JSON.parse(Buffer.from(accessToken.split('.')[1] ?? '', 'base64url').toString()) as { sid: string }
  return payload.sid
}

async function superuser(t: Test, h: App): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: h.db.adminUrl })
  await client.connect()
  t.teardown(() => client.end())
  return client
}

async function count(db: pg.Client, sql: string, params: unknown[] = []): Promise<number> {
  const { rows } = await db.query<{ n: number }>(sql, params)
  return rows[0]?.n ?? -1
}

/** Rows of the family that are NOT revoked. */
const liveTokens = (db: pg.Client, familyId: string) =>
  count(db, 'SELECT count(*)::int AS n FROM activity.refresh_tokens WHERE family_id = $1 AND NOT revoked', [familyId])

const reuseAudits = (db: pg.Client) => count(db, `SELECT count(*)::int AS n FROM activity.audit_logs WHERE action = 'refresh_token_reuse'`)

/** auth_refresh_reuse_total as /metrics reports it. */
async function reuseMetric(h: App): Promise<number> {
  const res = await h.app.inject({ method: 'GET', url: '/metrics' })
  const found = /^auth_refresh_reuse_total (\d+)$/m.exec(res.body)
  if (res.statusCode !== 200 || found === null) throw new Error(`/metrics: ${String(res.statusCode)}`)
  return Number(found[1])
}

for (const contenders of [2, 8, 32]) {
  t.test(
    `${String(contenders)} parallel refreshes of one token, ${String(ROUNDS)} rounds: the same refresh token for all, one live token`,
    async (t) => {
      const h = await build(t, ENV)
      const db = await superuser(t, h)
      const email = `race-${String(contenders)}@example.test`
      await signup(h, email)
      let pair = await login(h, email)
      const session = sessionOf(pair.accessToken)

      for (let round = 0; round < ROUNDS; round++) {
        const presented = pair.refreshToken
        const answers = await Promise.all(Array.from({ length: contenders }, () => refresh(h, presented)))
        const codes = answers.map((a) => a.statusCode)
        const pairs = answers.filter((a) => a.statusCode === 200).map((a) => json<Pair>(a))
        const tokens = new Set(pairs.map((p) => p.refreshToken))
        const live = await liveTokens(db, session)
        if (codes.some((c) => c !== 200) || tokens.size !== 1 || live !== 1 || pairs.some((p) => sessionOf(p.accessToken) !== session)) {
          t.fail(`round ${String(round)}`, { codes, distinctRefreshTokens: tokens.size, live })
          return
        }
        pair = pairs[0] as Pair
        t.not(pair.refreshToken, presented)
      }
      t.pass(`${String(ROUNDS)} rounds: all ${String(contenders)} answers 200 with one refresh token, exactly one live token after each`)
      t.equal(
        await count(db, 'SELECT count(*)::int AS n FROM activity.refresh_tokens WHERE family_id = $1', [session]),
        ROUNDS + 1,
        'one token row per rotation, none for the grace answers',
      )
      t.equal((await refresh(h, pair.refreshToken)).statusCode, 200, 'the session goes on')
      t.equal(await reuseAudits(db), 0, 'no reuse audited')
      t.equal(await reuseMetric(h), 0, 'no reuse counted')
    },
  )
}

t.test('a retry after a lost answer gets the same successor; once the successor is used, the retry is reuse', async (t) => {
  const h = await build(t, ENV)
  const db = await superuser(t, h)
  await signup(h, 'retry@example.test')
  const first = await login(h, 'retry@example.test')
  const session = sessionOf(first.accessToken)

  const lost = await refresh(h, first.refreshToken) // committed; the answer never reaches the client
  t.equal(lost.statusCode, 200)
  const retried = await refresh(h, first.refreshToken)
  t.equal(retried.statusCode, 200, 'the retry inside the grace window succeeds')
  const successor = json<Pair>(retried)
  t.equal(successor.refreshToken, json<Pair>(lost).refreshToken, 'with the successor the lost answer carried')
  t.equal(await liveTokens(db, session), 1, 'no orphan live token')
  t.equal(
    (await h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(successor.accessToken) })).statusCode,
    200,
    'its new access token works',
  )

  const used = await refresh(h, successor.refreshToken)
  t.equal(used.statusCode, 200, 'the successor rotates')
  const newest = json<Pair>(used)
  const late = await refresh(h, first.refreshToken)
  t.equal(late.statusCode, 401, 'the first token again, after its successor was used: reuse')
  t.equal(json(late).code, 'invalid_refresh_token')
  t.equal((await refresh(h, newest.refreshToken)).statusCode, 401, 'the whole family is revoked')
  t.equal(await liveTokens(db, session), 0)
  t.equal((await h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(newest.accessToken) })).statusCode, 401)
  t.equal(await reuseAudits(db), 1, 'one reuse audited')
  t.equal(await reuseMetric(h), 1, 'one reuse counted')
})

t.test(
  "change-password ends every other session; the caller's keeps exactly one live token, even after parallel and replayed refreshes",
  async (t) => {
    const h = await build(t, ENV)
    const db = await superuser(t, h)
    await signup(h, 'victim@example.test')
    let mine = await login(h, 'victim@example.test')
    const other = await login(h, 'victim@example.test')
    const session = sessionOf(mine.accessToken)

    for (let round = 0; round < 5; round++) {
      const presented = mine.refreshToken
      // Two tabs racing, and the same token replayed (a thief) inside the grace window.
      const answers = await Promise.all(Array.from({ length: 8 }, () => refresh(h, presented)))
      t.same(new Set(answers.map((a) => a.statusCode)), new Set([200]))
      mine = json<Pair>(answers[0] as (typeof answers)[0])
      const replay = await refresh(h, presented)
      t.equal(json<Pair>(replay).refreshToken, mine.refreshToken, `round ${String(round)}: the replay gets the same successor, no branch`)
    }
    t.equal(await liveTokens(db, session), 1)

    const change = await h.app.inject({
      method: 'POST',
      url: '/api/auth/change-password',
      headers: bearer(mine.accessToken),
      payload: { currentPassword: PASSWORD, newPassword: 'a brand new passphrase' },
    })
    t.equal(change.statusCode, 204)
    t.equal(await liveTokens(db, session), 1, "the caller's session keeps exactly one live token")
    t.equal(await liveTokens(db, sessionOf(other.accessToken)), 0, 'the other session has none')
    t.equal(
      await count(db, 'SELECT count(DISTINCT family_id)::int AS n FROM activity.refresh_tokens WHERE NOT revoked'),
      1,
      'one live session in all',
    )
    t.equal((await refresh(h, other.refreshToken)).statusCode, 401, 'the other session is over')
    t.equal((await refresh(h, mine.refreshToken)).statusCode, 200, "the caller's live token is the one the caller holds")
    t.equal(await reuseAudits(db), 0, 'nothing in all this was a reuse')
  },
)

t.test(
  'tokens of sessions ended by logout, session revoke, logout-all, password change or an earlier reuse: 401, never a new reuse',
  async (t) => {
    const h = await build(t, ENV)
    const db = await superuser(t, h)
    /** Signs up, logs in and rotates once: the session's first (rotated) token and its live pair. */
    const rotatedSession = async (email: string) => {
      const first = await login(h, email)
      const second = json<Pair>(await refresh(h, first.refreshToken))
      return { first, second, tokens: [first.refreshToken, second.refreshToken] }
    }
    const ended: [string, string[]][] = []

    await signup(h, 'logout@example.test')
    const loggedOut = await rotatedSession('logout@example.test')
    t.equal(
      (await h.app.inject({ method: 'POST', url: '/api/auth/logout', payload: { refreshToken: loggedOut.second.refreshToken } }))
        .statusCode,
      204,
    )
    ended.push(['logout', loggedOut.tokens])

    await signup(h, 'revoke@example.test')
    const keeper = await login(h, 'revoke@example.test')
    const revoked = await rotatedSession('revoke@example.test')
    const del = await h.app.inject({
      method: 'DELETE',
      url: `/api/auth/sessions/${sessionOf(revoked.second.accessToken)}`,
      headers: bearer(keeper.accessToken),
    })
    t.equal(del.statusCode, 204)
    ended.push(['session revoke', revoked.tokens])

    await signup(h, 'all@example.test')
    const everywhere = await rotatedSession('all@example.test')
    t.equal(
      (await h.app.inject({ method: 'POST', url: '/api/auth/logout-all', headers: bearer(everywhere.second.accessToken) })).statusCode,
      204,
    )
    ended.push(['logout-all', everywhere.tokens])

    await signup(h, 'changed@example.test')
    const changer = await login(h, 'changed@example.test')
    const changedAway = await rotatedSession('changed@example.test')
    const change = await h.app.inject({
      method: 'POST',
      url: '/api/auth/change-password',
      headers: bearer(changer.accessToken),
      payload: { currentPassword: PASSWORD, newPassword: 'a brand new passphrase' },
    })
    t.equal(change.statusCode, 204)
    ended.push(['password change', changedAway.tokens])

    // The one real reuse: the first token presented after its successor was rotated.
    await signup(h, 'stolen@example.test')
    const stolen = await rotatedSession('stolen@example.test')
    const third = json<Pair>(await refresh(h, stolen.second.refreshToken))
    t.equal(await reuseAudits(db), 0)
    t.equal(await reuseMetric(h), 0)
    t.equal((await refresh(h, stolen.first.refreshToken)).statusCode, 401, 'reuse')
    t.equal(await reuseAudits(db), 1, 'one real reuse: one audit row')
    t.equal(await reuseMetric(h), 1, 'one real reuse: one increment')
    ended.push(['reuse detection', [...stolen.tokens, third.refreshToken]])

    for (const [how, tokens] of ended) {
      const codes: number[] = []
      for (let i = 0; i < 3; i++) for (const token of tokens) codes.push((await refresh(h, token)).statusCode)
      t.same(new Set(codes), new Set([401]), `${how}: each of its tokens presented 3 more times is refused`)
    }
    t.equal(await reuseAudits(db), 1, 'still one audit row')
    t.equal(await reuseMetric(h), 1, 'still one increment')
    t.equal(
      await count(db, 'SELECT count(*)::int AS n FROM activity.refresh_tokens WHERE NOT revoked'),
      2,
      'nothing minted: the live tokens are the two sessions that stayed (the session-revoke keeper and the password changer)',
    )
  },
)

t.test('instances sharing REFRESH_TOKEN_PEPPER answer a retry alike; one with another pepper refuses it and changes nothing', async (t) => {
  const pepper = 'shared-pepper-for-this-test-0123456789-abcdefghij'
  const a = await build(t, { ...ENV, REFRESH_TOKEN_PEPPER: pepper })
  const b = await build(t, { ...ENV, REFRESH_TOKEN_PEPPER: pepper }, a.db)
  const stranger = await build(t, { ...ENV, REFRESH_TOKEN_PEPPER: `${pepper}-but-another` }, a.db)
  const db = await superuser(t, a)
  await signup(a, 'instances@example.test')
  const first = await login(a, 'instances@example.test')
  const session = sessionOf(first.accessToken)

  const onA = await refresh(a, first.refreshToken)
  const onB = await refresh(b, first.refreshToken)
  t.equal(onB.statusCode, 200)
  t.equal(json<Pair>(onB).refreshToken, json<Pair>(onA).refreshToken, 'the retry on another instance gets the same successor')

  const onStranger = await refresh(stranger, first.refreshToken)
  t.equal(onStranger.statusCode, 401, 'an instance that derives another successor cannot hand out the live one')
  t.equal(json(onStranger).code, 'invalid_refresh_token')
  t.equal(await liveTokens(db, session), 1, 'no second successor')
  t.equal(await reuseAudits(db), 0, 'and no reuse: the session is untouched')
  t.equal((await refresh(a, json<Pair>(onA).refreshToken)).statusCode, 200, 'the session goes on')
})
