// Client addresses behind a proxy. A client writes whatever it likes into the left
// part of X-Forwarded-For; only what the trusted hop appended is real. With
// TRUST_PROXY naming that hop, the per-IP rate limit, the IP lock, the session list
// and the audit rows all use the real client address, never a forged one.
import { randomInt } from 'node:crypto'
import pg from 'pg'
import t, { type Test } from 'tap'
import { bearer, build, json, type TestApp } from '../helpers/app.ts'

/** The reverse proxy's address: the TCP peer of every request below. */
const PROXY = '127.0.0.1'
const PASSWORD = 'a real password of hers'

const randomAddress = () => `${randomInt(1, 224)}.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

interface Via {
  /** The TCP peer (the proxy, or a client reaching the port directly). */
  peer?: string
  /** X-Forwarded-For as it arrives: the client's own text, then what each proxy appended. */
  xff?: string
  headers?: Record<string, string>
}

function post(h: TestApp, url: string, payload: object, via: Via) {
  return h.app.inject({
    method: 'POST',
    url,
    payload,
    remoteAddress: via.peer ?? PROXY,
    headers: { ...(via.xff === undefined ? {} : { 'x-forwarded-for': via.xff }), ...via.headers },
  })
}

const login = (h: TestApp, email: string, password: string, via: Via) => post(h, '/api/auth/login', { email, password }, via)

async function signup(h: TestApp, email: string): Promise<void> {
  const res = await post(h, '/api/auth/signup', { email, password: PASSWORD }, { xff: '192.0.2.200' })
  if (res.statusCode !== 202) throw new Error(`signup answered ${String(res.statusCode)}`)
}

/** The ip of the caller's session as GET /api/auth/sessions lists it. */
async function sessionIp(h: TestApp, accessToken: string): Promise<unknown> {
  const res = await h.app.inject({ method: 'GET', url: '/api/auth/sessions', headers: bearer(accessToken), remoteAddress: PROXY })
  if (res.statusCode !== 200) throw new Error(`sessions answered ${String(res.statusCode)}`)
  return json<{ ip: unknown; current: boolean }[]>(res).find((s) => s.current)?.ip
}

async function auditRows(t: Test, h: TestApp): Promise<{ action: string; ip: string | null; requestId: string | null }[]> {
  const client = new pg.Client({ connectionString: h.db.adminUrl })
  await client.connect()
  t.teardown(() => client.end())
  const { rows } = await client.query<{ action: string; ip: string | null; requestId: string | null }>(
    'SELECT action, host(ip) AS ip, request_id AS "requestId" FROM activity.audit_logs ORDER BY id',
  )
  return rows
}

t.test('one trusted hop: forged left-most values do not get around the per-IP rate limit', async (t) => {
  const h = await build(t, {
    TRUST_PROXY: PROXY,
    RATE_LIMIT_ENABLED: 'true',
    RATE_LIMIT_CREDENTIALS_MAX: '3',
    REQUIRE_EMAIL_VERIFICATION: 'false',
  })
  const attacker = '203.0.113.10'
  const codes: number[] = []
  for (let i = 0; i < 6; i++) {
    // A new forged address every time, as a bypass would need.
    const res = await login(h, `nobody${String(i)}@example.test`, 'wrong password!', { xff: `${randomAddress()}, ${attacker}` })
    codes.push(res.statusCode)
    if (res.statusCode === 429) t.equal(json(res).code, 'rate_limited')
  }
  t.same(codes, [401, 401, 401, 429, 429, 429], 'counted by the real address: the fourth request is refused')

  const other = await login(h, 'nobody@example.test', 'wrong password!', { xff: `${attacker}, 198.51.100.20` })
  t.equal(other.statusCode, 401, 'another client through the same proxy has its own budget, even naming the attacker')
})

t.test('TRUST_PROXY=false: X-Forwarded-For is ignored entirely', async (t) => {
  const h = await build(t, {
    TRUST_PROXY: 'false',
    RATE_LIMIT_ENABLED: 'true',
    RATE_LIMIT_CREDENTIALS_MAX: '3',
    REQUIRE_EMAIL_VERIFICATION: 'false',
  })
  await signup(h, 'direct@example.test')
  const res = await login(h, 'direct@example.test', PASSWORD, { peer: '198.51.100.30', xff: '203.0.113.99, 192.0.2.1' })
  t.equal(res.statusCode, 200)
  t.equal(await sessionIp(h, json<{ accessToken: string }>(res).accessToken), '198.51.100.30', 'the TCP peer is the client')

  // Everyone behind that one peer shares its budget, whatever the header says.
  const codes: number[] = []
  for (let i = 0; i < 3; i++) {
    codes.push((await login(h, 'x@example.test', 'wrong password!', { peer: '198.51.100.30', xff: randomAddress() })).statusCode)
  }
  t.same(codes, [401, 401, 429], 'one budget for the peer: the login above and two failures spend its three')
  const audit = await auditRows(t, h)
  t.ok(audit.length > 0)
  t.same([...new Set(audit.filter((r) => r.action.startsWith('login')).map((r) => r.ip))], ['198.51.100.30'], 'audit: the peer only')
})

t.test('a hop count of 1 takes the right-most X-Forwarded-For entry', async (t) => {
  const h = await build(t, { TRUST_PROXY: '1', REQUIRE_EMAIL_VERIFICATION: 'false' })
  await signup(h, 'hops@example.test')
  const res = await login(h, 'hops@example.test', PASSWORD, { peer: '10.1.2.3', xff: '203.0.113.5, 198.51.100.40' })
  t.equal(res.statusCode, 200)
  t.equal(await sessionIp(h, json<{ accessToken: string }>(res).accessToken), '198.51.100.40')
  const audit = await auditRows(t, h)
  t.equal(audit.find((r) => r.action === 'login_success')?.ip, '198.51.100.40', 'audit row')
  t.notOk(
    audit.some((r) => r.ip === '203.0.113.5' || r.ip === '10.1.2.3'),
    'neither the forged entry nor the proxy',
  )
})

t.test('the IP lock locks the real client, not an address it frames; sessions and audit rows hold real addresses', async (t) => {
  const h = await build(t, {
    TRUST_PROXY: PROXY,
    LOCKOUT_IP_THRESHOLD: '3',
    LOCKOUT_THRESHOLD: '50',
    REQUIRE_EMAIL_VERIFICATION: 'false',
  })
  const victim = '198.51.100.7'
  const attacker = '203.0.113.66'
  await signup(h, 'victim@example.test')

  // The attacker fails logins to many unknown addresses, each time writing the victim's
  // address where a trusting service would take it from.
  let locked = false
  for (let i = 0; i < 10 && !locked; i++) {
    const res = await login(h, `ghost${String(i)}@example.test`, 'wrong password!', { xff: `${victim}, ${attacker}` })
    if (res.statusCode === 429) {
      locked = true
      t.equal(json(res).code, 'too_many_attempts', 'the IP lock answers too_many_attempts')
    } else t.equal(res.statusCode, 401, `failure ${String(i + 1)}`)
  }
  t.ok(locked, "the attacker's real address is locked")
  const stillLocked = await login(h, 'fresh@example.test', 'any password at all', { xff: `${randomAddress()}, ${attacker}` })
  t.equal(stillLocked.statusCode, 429, 'a new forged value does not unlock the attacker')

  // The victim, from the framed address, is not locked and logs in at the first try
  // (an honest client sends no X-Forwarded-For: the proxy's entry is all there is).
  const honest = await login(h, 'victim@example.test', PASSWORD, { xff: victim })
  t.equal(honest.statusCode, 200, 'the framed address logs in')
  t.equal(await sessionIp(h, json<{ accessToken: string }>(honest).accessToken), victim, 'its session shows its address')

  // A client that writes its own left-most value still gets its real address recorded.
  const own = await login(h, 'victim@example.test', PASSWORD, {
    xff: `203.0.113.250, ${victim}`,
    headers: { 'x-request-id': 'caller-chosen-id-1' },
  })
  t.equal(own.statusCode, 200)
  t.equal(await sessionIp(h, json<{ accessToken: string }>(own).accessToken), victim, 'the session list shows the real client address')

  const audit = await auditRows(t, h)
  const failures = audit.filter((r) => r.action === 'login_failed')
  t.ok(failures.length >= 3, 'the failures are audited')
  t.ok(
    failures.every((r) => r.ip === attacker),
    'every failure is recorded against the attacker',
    { ips: failures.map((r) => r.ip) },
  )
  const success = audit.filter((r) => r.action === 'login_success')
  t.same(
    success.map((r) => r.ip),
    [victim, victim],
    "the victim's logins are recorded from the victim's address",
  )
  const forged = new Set(['203.0.113.250', PROXY])
  t.notOk(
    audit.some((r) => r.ip !== null && forged.has(r.ip)),
    'no audit row holds a forged or proxy address',
  )
  t.ok(
    audit.every((r) => r.ip !== victim || r.action !== 'login_failed'),
    'nothing framed the victim',
  )

  // x-request-id: echoed to the caller, but the audit row holds the service's own id.
  t.equal(own.headers['x-request-id'], 'caller-chosen-id-1', 'echoed')
  t.match(success[1]?.requestId, UUID, "the audit row has the service's request id")
  t.notOk(
    audit.some((r) => r.requestId === 'caller-chosen-id-1'),
    "never the caller's",
  )
})
