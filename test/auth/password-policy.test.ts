// The configurable password policy, and the breached-password check against a real
// local HTTP server that speaks Have I Been Pwned's range protocol (k-anonymity:
// GET /range/<first 5 hex of SHA-1> → `SUFFIX:COUNT` lines, padded with count 0).
import { createHash, randomBytes } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { createPasswordPolicy, type BreachCheckOptions } from '../../src/auth/password-policy.ts'
import { freePort } from '../helpers/net.ts'

const BREACHED = 'purple monkey dishwasher 1987'
const CLEAN = 'an unlisted passphrase of mine'
const PADDED = 'listed only as padding here'

const sha1 = (s: string) => createHash('sha1').update(s, 'utf8').digest('hex').toUpperCase()

interface RangeServer {
  url: string
  /** Every request the server received: what left the service. */
  received: { url: string; headers: http.IncomingHttpHeaders }[]
  /** How the next answers behave: the range protocol, an error status, or no answer at all. */
  mode: 'range' | 'status-503' | 'hang'
}

/** A range API: BREACHED has a count, PADDED appears only as a count-0 padding line. */
async function rangeServer(t: Test): Promise<RangeServer> {
  const known = new Map<string, number>([
    [sha1(BREACHED), 3_861_493],
    [sha1(PADDED), 0],
  ])
  const state: RangeServer = { url: '', received: [], mode: 'range' }
  const server = http.createServer((req, res) => {
    state.received.push({ url: req.url ?? '', headers: req.headers })
    if (state.mode === 'hang') return // never answers: the client's timeout must end it
    if (state.mode === 'status-503') {
      res.writeHead(503).end('overloaded')
      return
    }
    const prefix = /^\/range\/([0-9A-F]{5})$/.exec(req.url ?? '')?.[1]
    if (prefix === undefined) {
      res.writeHead(400).end('The hash prefix was not in a valid format')
      return
    }
    const lines: string[] = []
    for (const [hash, count] of known) if (hash.startsWith(prefix)) lines.push(`${hash.slice(5)}:${String(count)}`)
    if (req.headers['add-padding'] === 'true') {
      // Random suffixes with count 0, as the real API pads its answers.
      for (let i = 0; i < 20; i++) lines.push(`${randomBytes(18).toString('hex').slice(0, 35).toUpperCase()}:0`)
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(lines.join('\r\n'))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  )
  state.url = `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`
  return state
}

function recordingLog() {
  const warnings: { obj: Record<string, unknown>; msg: string }[] = []
  return { warnings, warn: (obj: object, msg: string) => warnings.push({ obj: obj as Record<string, unknown>, msg }) }
}

const check = (url: string, over: Partial<BreachCheckOptions> = {}): BreachCheckOptions => ({
  url,
  timeoutMs: 2000,
  failOpen: true,
  ...over,
})

t.test('the server below speaks the protocol (so the tests can fail)', async (t) => {
  const api = await rangeServer(t)
  const hash = sha1(BREACHED)
  const res = await fetch(`${api.url}/range/${hash.slice(0, 5)}`)
  t.match(await res.text(), `${hash.slice(5)}:3861493`)
})

t.test('a breached password is rejected, a clean one accepted, padding lines ignored', async (t) => {
  const api = await rangeServer(t)
  const policy = createPasswordPolicy({ minLength: 8, breachCheck: check(api.url) })
  t.match(await policy.check(BREACHED), { code: 'password_breached', detail: /breach/ }, 'breached')
  t.equal(await policy.check(CLEAN), undefined, 'clean')
  t.equal(await policy.check(PADDED), undefined, 'its suffix is in the answer, but with count 0: padding')
  t.equal(api.received.length, 3, 'one request per check')
  t.ok(
    api.received.every((r) => r.headers['add-padding'] === 'true'),
    'padding asked for every time',
  )

  const base = createPasswordPolicy({ minLength: 8, breachCheck: check(`${api.url}/`) })
  t.match(await base.check(BREACHED), { code: 'password_breached' }, 'a trailing slash on the base URL is fine')
})

t.test('only the 5-character prefix of the SHA-1 ever leaves the service', async (t) => {
  const api = await rangeServer(t)
  const policy = createPasswordPolicy({ minLength: 8, breachCheck: check(api.url) })
  const passwords = [BREACHED, CLEAN, PADDED, 'ünïcödé pässwörd 🔑']
  for (const p of passwords) await policy.check(p)
  t.same(
    api.received.map((r) => r.url),
    passwords.map((p) => `/range/${sha1(p).slice(0, 5)}`),
    'GET /range/<first 5 uppercase hex of the SHA-1 of the UTF-8 password>',
  )
  const everything = JSON.stringify(api.received)
  for (const p of passwords) {
    t.notOk(everything.includes(sha1(p).slice(5, 15)), 'no part of the suffix')
    t.notOk(everything.toLowerCase().includes(sha1(p).slice(5, 15).toLowerCase()), 'in no case')
    t.notOk(everything.includes(p), 'nor the password')
  }
})

t.test('unreachable, 5xx or too slow: fail open lets the password through with a warning, fail closed rejects', async (t) => {
  const api = await rangeServer(t)
  const refused = `http://127.0.0.1:${String(await freePort())}`
  const cases: { what: string; url: string; mode: RangeServer['mode'] }[] = [
    { what: 'timeout', url: api.url, mode: 'hang' },
    { what: '503', url: api.url, mode: 'status-503' },
    { what: 'connection refused', url: refused, mode: 'range' },
  ]
  for (const c of cases) {
    api.mode = c.mode
    const log = recordingLog()
    const open = createPasswordPolicy({ minLength: 8, breachCheck: check(c.url, { timeoutMs: 200, failOpen: true }), log })
    t.equal(await open.check(BREACHED), undefined, `${c.what}, fail open: accepted`)
    t.equal(log.warnings.length, 1, `${c.what}, fail open: one warning`)
    t.match(log.warnings[0]?.obj, { event: 'breach_check_unavailable' })
    t.notOk(JSON.stringify(log.warnings).includes(BREACHED), 'the warning does not carry the password')

    const closed = createPasswordPolicy({ minLength: 8, breachCheck: check(c.url, { timeoutMs: 200, failOpen: false }) })
    t.match(await closed.check(CLEAN), { code: 'breach_check_unavailable', detail: String }, `${c.what}, fail closed: rejected`)
  }
  t.ok(api.received.length >= 4, 'the hanging and failing server was asked')

  api.mode = 'range'
  const closed = createPasswordPolicy({ minLength: 8, breachCheck: check(api.url, { failOpen: false }) })
  t.equal(await closed.check(CLEAN), undefined, 'fail closed still accepts a clean password once the API answers')
})

t.test('the minimum length is configurable, counted in code points; the bundled checks need no network', async (t) => {
  const api = await rangeServer(t)
  const strict = createPasswordPolicy({ minLength: 15, breachCheck: check(api.url) })
  t.match(await strict.check('fourteen chars'), { code: 'password_too_short', detail: /15/ }, '14 characters')
  t.equal(await strict.check('fifteen chars!!'), undefined, '15 characters')
  t.equal(await strict.check(`${'🔑'.repeat(14)}x`), undefined, '15 code points, 29 UTF-16 units')
  t.match(await strict.check('🔑'.repeat(14)), { code: 'password_too_short' }, '14 code points')

  const lax = createPasswordPolicy({ minLength: 8 })
  t.equal(await lax.check('8 chars!'), undefined, 'the default minimum of 8')
  t.match(await lax.check('7 chars'), { code: 'password_too_short' })
  t.match(await lax.check('x'.repeat(129)), { code: 'password_too_long' }, 'the maximum stays 128')
  t.match(await createPasswordPolicy({ minLength: 8, maxLength: 20 }).check('x'.repeat(21)), { code: 'password_too_long' })
  t.match(await strict.check('mailcreated5240'), { code: 'password_too_common' }, 'the common list still applies')

  const before = api.received.length
  await strict.check('short')
  await strict.check('mailcreated5240')
  t.equal(api.received.length - before, 0, 'rejected locally: the breach API is not asked')

  t.throws(() => createPasswordPolicy({ minLength: 0 }), RangeError)
  t.throws(() => createPasswordPolicy({ minLength: 200 }), RangeError)
})
