// Enumeration timing (issue 11, part 5): does an address with an account take as
// long as one without — the request itself, and a readiness probe (one database
// round trip) sent right after its answer? A connection discarded on an expected
// database error showed as a reconnect in the probe (~30 ms instead of ~3 ms).
// Interleaved pairs (the order alternating within a pair) so drift hits both
// kinds alike; medians; printed, never asserted.
import { randomBytes } from 'node:crypto'
import { withClient } from '../../src/db/admin-connection.ts'
import { createUser } from '../../src/db/procedures.ts'
import type { Context } from '../lib/context.ts'
import { JSON_HEADERS, median } from '../lib/load.ts'
import { log, options } from '../lib/options.ts'
import { ratioRow } from '../lib/report.ts'
import { benchEmail } from '../lib/seed.ts'
import { startService } from '../lib/servers.ts'
import { startSmtpSink } from '../lib/smtp-sink.ts'

type EnumKind = 'known' | 'unknown'

interface EnumFlow {
  name: string
  path: string
  /** Labels of the two kinds, e.g. taken / new. */
  labels: Record<EnumKind, string>
  /** What both kinds answer. */
  status: number
  body: (kind: EnumKind, i: number) => Record<string, string>
  /** Only the probe row: the two requests differ by design, the probe after them must not. */
  probeOnly?: boolean
  /** An argon2id hash or verify per request: half the pairs, to keep the section near a minute. */
  hashes?: boolean
}

interface EnumTimes {
  request: number[]
  probe: number[]
}

async function requestThenProbe(
  url: string,
  flow: EnumFlow,
  kind: EnumKind,
  i: number,
  failures: Map<string, number>,
): Promise<[number, number]> {
  const fail = (what: string) => failures.set(what, (failures.get(what) ?? 0) + 1)
  let started = performance.now()
  const res = await fetch(`${url}${flow.path}`, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(flow.body(kind, i)) })
  await res.arrayBuffer()
  const requestMs = performance.now() - started
  if (res.status !== flow.status) fail(`${flow.labels[kind]} ${res.status}`)
  started = performance.now()
  const probe = await fetch(`${url}/api/health/ready`)
  await probe.arrayBuffer()
  const probeMs = performance.now() - started
  if (probe.status !== 200) fail(`probe ${probe.status}`)
  return [requestMs, probeMs]
}

export async function enumSection(ctx: Context): Promise<void> {
  const per = options.enumWarmup + options.enumPairs
  if (3 * per > options.users) throw new Error(`enum: ${per} trials per flow need ${3 * per} seeded users (BENCH_USERS ${options.users})`)
  // Each known address is used once, so no lockout, mail budget or newest-token rule
  // makes a later trial take another path than the first.
  const seeded = (block: number, i: number) => benchEmail(options.users - 1 - block * per - i)
  const run = randomBytes(3).toString('hex')
  const fresh = (flow: string, i: number) => `enum-${run}-${flow}-${i}@bench.example`
  const password = 'enumeration bench passphrase 7'
  const flows: EnumFlow[] = [
    {
      name: 'signup',
      path: '/api/auth/signup',
      labels: { known: 'taken', unknown: 'new' },
      status: 202,
      body: (kind, i) => ({ email: kind === 'known' ? seeded(0, i) : fresh('signup', i), password }),
      hashes: true,
    },
    {
      name: 'forgot-password',
      path: '/api/auth/forgot-password',
      labels: { known: 'known', unknown: 'unknown' },
      status: 202,
      body: (kind, i) => ({ email: kind === 'known' ? seeded(1, i) : fresh('forgot', i) }),
    },
    {
      name: 'resend-verification',
      path: '/api/auth/resend-verification',
      labels: { known: 'known unverified', unknown: 'unknown' },
      status: 202,
      body: (kind, i) => ({ email: kind === 'known' ? fresh('unverified', i) : fresh('resend', i) }),
    },
    {
      name: 'login',
      path: '/api/auth/login',
      labels: { known: 'wrong password', unknown: 'unknown email' },
      status: 401,
      body: (kind, i) => ({ email: kind === 'known' ? seeded(2, i) : fresh('login', i), password }),
      hashes: true,
    },
    {
      // The probe's own check: a well-formed token nobody issued makes the procedure raise
      // AU004 (an expected database error); a malformed one is refused before the database.
      // A connection discarded on that error shows here as a reconnect in the probe.
      name: 'verify-email',
      path: '/api/auth/verify-email',
      labels: { known: 'unknown token', unknown: 'malformed token' },
      status: 400,
      body: (kind) => ({ token: kind === 'known' ? randomBytes(32).toString('base64url') : 'not-a-token' }),
      probeOnly: true,
    },
  ]
  const sectionStarted = performance.now()
  // Accounts that exist and are not verified yet, for resend-verification.
  for (let i = 0; i < per; i++) await createUser(ctx.pool, { email: fresh('unverified', i), hashedPassword: ctx.passwordHash })
  const sink = await startSmtpSink()
  // Rate limiting is off in the bench; the per-IP lock would otherwise end a full run's
  // 220 failed logins from one address with 429s.
  const service = await startService(ctx.small, ctx.dataDir, { SMTP_URL: sink.url, LOCKOUT_IP_THRESHOLD: '1000000' })
  try {
    for (const flow of flows) {
      const pairs = flow.hashes === true ? Math.ceil(options.enumPairs / 2) : options.enumPairs
      const warmup = flow.hashes === true ? Math.ceil(options.enumWarmup / 2) : options.enumWarmup
      log(
        `enum: ${flow.name}, ${flow.labels.known} vs ${flow.labels.unknown}: ${warmup} + ${pairs} interleaved pairs, a readiness probe after each request`,
      )
      const times: Record<EnumKind, EnumTimes> = { known: { request: [], probe: [] }, unknown: { request: [], probe: [] } }
      const failures = new Map<string, number>()
      for (let i = 0; i < warmup + pairs; i++) {
        const order: EnumKind[] = i % 2 === 0 ? ['known', 'unknown'] : ['unknown', 'known']
        for (const kind of order) {
          const [requestMs, probeMs] = await requestThenProbe(service.url, flow, kind, i, failures)
          if (i < warmup) continue
          times[kind].request.push(requestMs)
          times[kind].probe.push(probeMs)
        }
      }
      const failed = [...failures.values()].reduce((a, b) => a + b, 0)
      const failedNote = failed > 0 ? `; unexpected answers: ${[...failures].map(([k, n]) => `${k}: ${n}`).join(', ')}` : ''
      const { known, unknown } = times
      const describe = (key: keyof EnumTimes) => {
        const slower = known[key].filter((ms, j) => ms > (unknown[key][j] as number)).length
        const delta = median(known[key]) - median(unknown[key])
        return `Δ p50 ${delta >= 0 ? '+' : ''}${delta.toFixed(2)} ms; ${flow.labels.known} slower in ${Math.round((100 * slower) / pairs)} % of ${pairs} pairs`
      }
      const label = `${flow.labels.known} ÷ ${flow.labels.unknown}`
      if (flow.probeOnly !== true) {
        ratioRow(
          'enum',
          `enumeration: ${flow.name} p50, ${label}`,
          median(known.request),
          median(unknown.request),
          'ms',
          { within: 0.1 },
          `${describe('request')}${failedNote}`,
          failed,
        )
      }
      ratioRow(
        'enum',
        `enumeration: health probe after ${flow.name}, ${label}`,
        median(known.probe),
        median(unknown.probe),
        'ms',
        { within: 0.1 },
        `${describe('probe')}${flow.probeOnly === true ? failedNote : ''}`,
        failed,
      )
    }
    log(`enum: ${sink.delivered()} mails accepted by the bench's SMTP sink; ${((performance.now() - sectionStarted) / 1000).toFixed(0)} s`)
  } finally {
    await service.child.stop()
    await sink.close()
    // The failed logins counted against the load generator's address stay in the
    // database: a later section's service (the default threshold) would answer its
    // logins 429. Put the address back as the section found it.
    await withClient(ctx.small.adminUrl, (c) => c.query(`DELETE FROM activity.login_attempts WHERE scope = 'ip'`))
  }
}
