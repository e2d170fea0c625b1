// `npm run bench`: every figure as a ratio against a ceiling measured in the same
// run, one table on stdout, the same rows in bench/results/latest.json.
// docs/performance.md explains each ceiling and the latest numbers.
//
//   npm run bench                         the full run (about 15 minutes on 2 cores)
//   npm run bench -- --quick              short runs, 100k users / 500k tokens for growth
//   npm run bench -- --only=http,login    a subset: http, login, growth, rss, startup, peer, enum
//   npm run bench -- --smoke              what `npm test` runs (test/bench/smoke.test.ts)
//   npm run bench -- --json=/tmp/out.json write the results elsewhere
// Env: BENCH_DATABASE_URL (a superuser URL: use that server instead of an embedded
// cluster), BENCH_ONLY, BENCH_SECONDS, BENCH_REPEATS, BENCH_WARMUP, BENCH_CONNECTIONS,
// BENCH_USERS, BENCH_LARGE_USERS, BENCH_LARGE_TOKENS, BENCH_RSS_SECONDS,
// BENCH_LOG_LEVEL (service log level, default info), BENCH_NO_PIN, BENCH_ENUM_PAIRS.
import { generateKeyPairSync, randomBytes, randomInt, scrypt } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import type autocannon from 'autocannon'
import pg from 'pg'
import { createPasswordHasher } from '../src/auth/passwords.ts'
import { newRefreshToken } from '../src/auth/refresh-tokens.ts'
import { loadConfig } from '../src/config.ts'
import { stopEmbedded } from '../src/db/embedded.ts'
import { createUser, saveRefreshToken } from '../src/db/procedures.ts'
import { projectPath } from '../src/paths.ts'
import { freePort } from '../test/helpers/net.ts'
import { preparedDatabase, startBenchServer, type BenchDatabase, type BenchServer } from './lib/database.ts'
import { http, interleaved, median, type Plan, type Runner, type Sample, type Summary } from './lib/load.ts'
import { ask, canPin, memoryOf, nodeArgs, pinSelf, startChild, waitForHttp, type Child } from './lib/proc.ts'
import { BENCH_PASSWORD, benchEmail, benchUserId, seed } from './lib/seed.ts'
import { startSmtpSink } from './lib/smtp-sink.ts'

// ---------------------------------------------------------------------------
// Options

const SECTIONS = ['http', 'login', 'growth', 'rss', 'startup', 'peer', 'enum'] as const
type Section = (typeof SECTIONS)[number]

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    only: { type: 'string' },
    json: { type: 'string' },
  },
})

const envNumber = (name: string, fallback: number): number => {
  const raw = process.env[name]
  const n = raw === undefined || raw === '' ? NaN : Number(raw)
  return Number.isFinite(n) && n >= 0 ? n : fallback
}

const profile = flags.smoke ? 'smoke' : flags.quick ? 'quick' : 'full'
const defaults = {
  full: { seconds: 10, repeats: 3, warmup: 3, users: 10_000, largeUsers: 1_000_000, largeTokens: 5_000_000, rss: 60, laterStarts: 3, enumPairs: 200, enumWarmup: 20 },
  quick: { seconds: 3, repeats: 1, warmup: 1, users: 10_000, largeUsers: 100_000, largeTokens: 500_000, rss: 10, laterStarts: 1, enumPairs: 100, enumWarmup: 10 },
  smoke: { seconds: 1, repeats: 1, warmup: 0, users: 300, largeUsers: 0, largeTokens: 0, rss: 1, laterStarts: 0, enumPairs: 5, enumWarmup: 1 },
}[profile]

const options = {
  profile,
  plan: {
    seconds: Math.max(1, Math.round(envNumber('BENCH_SECONDS', defaults.seconds))),
    repeats: Math.max(1, Math.round(envNumber('BENCH_REPEATS', defaults.repeats))),
    warmupSeconds: Math.round(envNumber('BENCH_WARMUP', defaults.warmup)),
  } satisfies Plan,
  connections: Math.max(1, Math.round(envNumber('BENCH_CONNECTIONS', 50))),
  users: Math.max(100, Math.round(envNumber('BENCH_USERS', defaults.users))),
  largeUsers: Math.round(envNumber('BENCH_LARGE_USERS', defaults.largeUsers)),
  largeTokens: Math.round(envNumber('BENCH_LARGE_TOKENS', defaults.largeTokens)),
  rssSeconds: Math.max(1, Math.round(envNumber('BENCH_RSS_SECONDS', defaults.rss))),
  laterStarts: defaults.laterStarts,
  enumPairs: Math.max(1, Math.round(envNumber('BENCH_ENUM_PAIRS', defaults.enumPairs))),
  enumWarmup: defaults.enumWarmup,
  sections: selectedSections(),
  jsonPath: flags.json ?? projectPath('bench', 'results', 'latest.json'),
}

function selectedSections(): Set<Section> {
  const only = flags.only ?? process.env.BENCH_ONLY
  if (flags.smoke && (only === undefined || only === '')) return new Set<Section>(['http', 'login', 'rss', 'enum'])
  if (only === undefined || only === '') return new Set(SECTIONS)
  const picked = only.split(',').map((s) => s.trim())
  const unknown = picked.filter((s) => !(SECTIONS as readonly string[]).includes(s))
  if (unknown.length > 0) {
    console.error(`bench: unknown section(s) ${unknown.join(', ')}; choose from ${SECTIONS.join(', ')}`)
    process.exit(1)
  }
  return new Set(picked as Section[])
}

const log = (line: string) => console.error(`# ${line}`)

// ---------------------------------------------------------------------------
// Results

export interface Row {
  section: Section
  figure: string
  /** Our figure (req/s, ms, MB, s, or a ratio's numerator). */
  ours: number
  /** The ceiling, the peer, or the baseline; null when the row is only reported. */
  reference: number | null
  /** ours ÷ reference (growth: large ÷ small), null when only reported. */
  ratio: number | null
  unit: string
  target: string
  /** null: reported, no target. */
  met: boolean | null
  note: string
  /** Failed requests (non-2xx, errors, timeouts) in the runs behind this row. */
  failures: number
}

const rows: Row[] = []

function ratioRow(
  section: Section,
  figure: string,
  ours: number,
  reference: number,
  unit: string,
  /** within: |ratio − 1| at most this (a figure that should read 1.00). */
  target: { atLeast?: number; atMost?: number; within?: number },
  note = '',
  failures = 0,
): void {
  const computed = ours / reference
  // A figure with no successful request (a broken run) must not read as a ratio.
  const ratio = Number.isFinite(computed) && reference > 0 ? computed : null
  const met =
    ratio === null
      ? false
      : target.atLeast !== undefined
        ? ratio >= target.atLeast
        : target.atMost !== undefined
          ? ratio <= target.atMost
          : target.within !== undefined
            ? Math.abs(ratio - 1) <= target.within
            : null
  if (ratio === null) note = `no valid measurement ${note}`.trim()
  const text =
    target.atLeast !== undefined
      ? `≥ ${target.atLeast.toFixed(2)}`
      : target.atMost !== undefined
        ? `≤ ${target.atMost.toFixed(2)}`
        : target.within !== undefined
          ? `1.00 ± ${target.within.toFixed(2)}`
          : '—'
  rows.push({ section, figure, ours, reference, ratio, unit, target: text, met, note, failures })
}

function reportRow(section: Section, figure: string, ours: number, unit: string, note = '', limit?: number, failures = 0): void {
  rows.push({
    section,
    figure,
    ours,
    reference: limit ?? null,
    ratio: null,
    unit,
    target: limit === undefined ? 'reported' : `≤ ${limit} ${unit}`,
    met: limit === undefined ? null : ours <= limit,
    note,
    failures,
  })
}

const fmt = (n: number | null, digits = 1): string => {
  if (n === null) return '—'
  if (!Number.isFinite(n)) return String(n)
  return Math.abs(n) >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(digits)
}

function table(): string {
  const header = ['figure', 'ours', 'ceiling / peer / base', 'ratio', 'target', 'met', 'note']
  const lines = rows.map((r) => [
    r.figure,
    `${fmt(r.ours)} ${r.unit}`,
    r.reference === null ? '—' : `${fmt(r.reference)} ${r.unit}`,
    r.ratio === null ? '—' : r.ratio.toFixed(2),
    r.target,
    r.met === null ? '' : r.met ? 'yes' : 'NO',
    r.note,
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)))
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(line)].join('\n')
}

// ---------------------------------------------------------------------------
// Servers

const keyPem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
const refreshPepper = randomBytes(48).toString('base64url')
const secret = () => randomBytes(12).toString('base64url')
const rolePasswords = { AUTH_API_DB_PASSWORD: secret(), WRITE_API_DB_PASSWORD: secret(), READONLY_DB_PASSWORD: secret() }

/** Settings an operator may tune that the bench passes through to every server process alike. */
const PASSED_THROUGH = /^(ARGON2_|DATABASE_POOL_|DATABASE_IDLE_|REFRESH_|ACCESS_TOKEN_|UV_THREADPOOL_SIZE$|PATH$|HOME$|LANG$|TMPDIR$)/

function baseEnv(): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => PASSED_THROUGH.test(k)))
}

/**
 * The service's environment in the bench: production mode (so nothing runs on
 * development defaults), a real Ed25519 key, rate limiting off (a load generator
 * from one IP would only measure 429s), migrations already applied, and the
 * default log level (one JSON line per request, written to /dev/null).
 */
function serviceEnv(db: BenchDatabase, port: number, dataDir: string): Record<string, string | undefined> {
  return {
    ...baseEnv(),
    NODE_ENV: 'production',
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
    HOST: '127.0.0.1',
    PORT: String(port),
    DATABASE_URL: db.serviceUrl,
    RUN_MIGRATIONS: 'false',
    RATE_LIMIT_ENABLED: 'false',
    JWT_PRIVATE_KEY: keyPem,
    REFRESH_TOKEN_PEPPER: refreshPepper,
    // Never contacted: no route the bench drives sends mail.
    SMTP_URL: 'smtp://127.0.0.1:9',
    // Production refuses a plain-http or localhost APP_URL; no link is ever mailed here.
    APP_URL: 'https://activity-auth.bench.invalid',
    DATA_DIR: dataDir,
    ...rolePasswords,
  }
}

interface Running {
  child: Child
  url: string
}

async function startService(db: BenchDatabase, dataDir: string, env: Record<string, string> = {}): Promise<Running> {
  const port = await freePort()
  const child = startChild(nodeArgs('src/server.ts'), { env: { ...serviceEnv(db, port, dataDir), ...env } })
  const url = `http://127.0.0.1:${port}`
  await waitForHttp(child, `${url}/api/health/ready`)
  return { child, url }
}

async function startBare(db: BenchDatabase, dataDir: string, meBody: string): Promise<Running> {
  const port = await freePort()
  const child = startChild(nodeArgs('bench/servers/bare.ts'), { env: { ...serviceEnv(db, port, dataDir), BENCH_ME_BODY: meBody } })
  const url = `http://127.0.0.1:${port}`
  await waitForHttp(child, `${url}/api/health/live`)
  return { child, url }
}

async function startCeilingWorker(db: BenchDatabase, dataDir: string, users: string): Promise<Child> {
  const child = startChild(nodeArgs('bench/servers/ceiling-worker.ts'), {
    env: { ...serviceEnv(db, 0, dataDir), BENCH_CEILING_USERS: users },
    ipc: true,
  })
  await new Promise<void>((resolve, reject) => {
    child.proc.once('message', () => resolve())
    child.proc.once('exit', () => reject(new Error(`ceiling worker exited:\n${child.tail()}`)))
  })
  return child
}

// ---------------------------------------------------------------------------
// Sessions and loads

const JSON_HEADERS = { 'content-type': 'application/json' }

/**
 * Refresh-token chains: each answer's new token is the chain's next request's.
 * autocannon resets its per-request context after every request, so a chain is
 * checked out for exactly one request at a time and checked in by its answer;
 * a request still in flight when a run ends never tells us its new token, so
 * its chain is replaced by a fresh session before the next run (as is one that
 * got an error).
 */
class Chains {
  readonly tokens: string[] = []
  readonly access: string[] = []
  private free: number[] = []
  private readonly inFlight = new Set<number>()
  private readonly broken = new Set<number>()
  /** Non-2xx answers by status and code, for the row's note. */
  readonly failures = new Map<string, number>()

  constructor(
    private readonly pool: pg.Pool,
    private readonly users: number[],
  ) {}

  private async start(i: number): Promise<string> {
    const t = newRefreshToken()
    const config = loadConfig({ NODE_ENV: 'development' })
    await saveRefreshToken(this.pool, {
      userId: benchUserId(this.users[i % this.users.length] as number),
      tokenHash: t.hash,
      jti: t.jti,
      idleTtlSeconds: config.REFRESH_TOKEN_TTL_SECONDS,
      familyTtlSeconds: config.REFRESH_FAMILY_TTL_SECONDS,
    })
    return t.token
  }

  async fill(count: number): Promise<void> {
    for (let i = this.tokens.length; i < count; i++) this.tokens.push(await this.start(i))
    this.free = this.tokens.map((_, i) => i)
  }

  checkout(): number {
    const i = this.free.pop()
    if (i === undefined) throw new Error('more refresh requests in flight than chains')
    this.inFlight.add(i)
    return i
  }

  /** The answer to chain i's request: its next token, or a broken chain. */
  checkin(i: number, status: number, body: string): void {
    this.inFlight.delete(i)
    if (status === 200) {
      const pair = JSON.parse(body) as { refreshToken: string; accessToken: string }
      this.tokens[i] = pair.refreshToken
      this.access[i] = pair.accessToken
      this.free.push(i)
      return
    }
    this.broken.add(i)
    const code = (/"code":"([a-z_]+)"/.exec(body) ?? [])[1] ?? ''
    const key = `${status} ${code}`.trim()
    this.failures.set(key, (this.failures.get(key) ?? 0) + 1)
  }

  /** Between runs: fresh sessions for broken and abandoned chains, all chains free again. */
  async endRun(): Promise<void> {
    for (const i of this.inFlight) this.broken.add(i)
    this.inFlight.clear()
    for (const i of this.broken) this.tokens[i] = await this.start(i)
    this.broken.clear()
    this.free = this.tokens.map((_, i) => i)
  }

  /** One refresh per chain over plain HTTP, to get an access token for each. */
  async accessTokens(url: string): Promise<string[]> {
    for (let i = 0; i < this.tokens.length; i++) {
      const res = await fetch(`${url}/api/auth/refresh`, {
        method: 'POST',
        headers: JSON_HEADERS,
        body: JSON.stringify({ refreshToken: this.tokens[i] }),
      })
      const body = (await res.json()) as { accessToken: string; refreshToken: string }
      if (res.status !== 200) throw new Error(`refresh for an access token: ${res.status} ${JSON.stringify(body)}`)
      this.tokens[i] = body.refreshToken
      this.access[i] = body.accessToken
    }
    return this.access
  }
}

type Ctx = Record<string, unknown>

function refreshLoad(url: string, chains: Chains, connections: number): Runner {
  const request: autocannon.Request = {
    method: 'POST',
    path: '/api/auth/refresh',
    headers: JSON_HEADERS,
    setupRequest: (req, context) => {
      const chain = chains.checkout()
      ;(context as Ctx).chain = chain
      return { ...req, body: JSON.stringify({ refreshToken: chains.tokens[chain] }) }
    },
    onResponse: (status, body, context) => chains.checkin((context as Ctx).chain as number, status, body),
  }
  return async (seconds) => {
    const sample = await http({ url, connections, requests: [request] }, seconds)
    await chains.endRun()
    return sample
  }
}

function bearerLoad(url: string, path: string, tokens: string[], connections: number): Runner {
  let next = 0
  const request: autocannon.Request = {
    method: 'GET',
    path,
    setupRequest: (req, context) => {
      const ctx = context as Ctx
      ctx.token ??= tokens[next++ % tokens.length]
      return { ...req, headers: { authorization: `Bearer ${ctx.token as string}` } }
    },
  }
  return (seconds) => http({ url, connections, requests: [request] }, seconds)
}

function getLoad(url: string, path: string, connections: number, overallRate?: number): Runner {
  return (seconds) =>
    http({ url, connections, requests: [{ method: 'GET', path }], ...(overallRate === undefined ? {} : { overallRate }) }, seconds)
}

function loginLoad(url: string, path: string, users: number, connections: number, headers: Record<string, string> = {}): Runner {
  const body = () => JSON.stringify({ email: benchEmail(randomInt(users)), password: BENCH_PASSWORD })
  const request: autocannon.Request = {
    method: 'POST',
    path,
    headers: { ...JSON_HEADERS, ...headers },
    setupRequest: (req) => ({ ...req, body: body() }),
  }
  // One more login, answered only once the abandoned ones ahead of it in the thread pool are done.
  const settle = async () => {
    const res = await fetch(`${url}${path}`, { method: 'POST', headers: { ...JSON_HEADERS, ...headers }, body: body() })
    await res.arrayBuffer()
  }
  return (seconds) => http({ url, connections, requests: [request], settle }, seconds)
}

function ceiling(worker: Child, cmd: 'argon2' | 'rotate', concurrency: number): Runner {
  return (seconds) => ask<Sample>(worker, { cmd, seconds, concurrency })
}

function statuses(chains: Chains): string {
  return chains.failures.size === 0 ? '' : `(${[...chains.failures].map(([k, n]) => `${k}: ${n}`).join(', ')})`
}

function count(...summaries: Summary[]): number {
  return summaries.reduce((sum, s) => sum + s.failures, 0)
}

function failuresNote(...summaries: Summary[]): string {
  const failures = count(...summaries)
  return failures > 0 ? `${failures} failed requests` : ''
}

// ---------------------------------------------------------------------------
// Sections

interface Context {
  small: BenchDatabase
  server: BenchServer | undefined
  dataDir: string
  passwordHash: string
  pool: pg.Pool
  chains: Chains
  service: Running
  /** RSS of the bare Fastify process at ready: what the runtime alone costs. */
  bareRssMb?: number
  /** Our medians, reused beside the peer. */
  ours: Partial<Record<'login' | 'refresh' | 'me', Summary>>
}

async function httpSection(ctx: Context): Promise<void> {
  const { plan, connections } = options
  const access = await ctx.chains.accessTokens(ctx.service.url)
  const meRes = await fetch(`${ctx.service.url}/api/auth/me`, { headers: { authorization: `Bearer ${access[0] as string}` } })
  const meBody = await meRes.text()
  if (meRes.status !== 200) throw new Error(`GET /api/auth/me: ${meRes.status} ${meBody}`)
  const bare = await startBare(ctx.small, ctx.dataDir, meBody)
  const worker = await startCeilingWorker(ctx.small, ctx.dataDir, `${Math.floor(options.users / 2)}:${connections}`)
  ctx.bareRssMb = memoryOf(bare.child.pid).rssMb
  try {
    log('GET /api/health/live vs the bare route')
    const live = await interleaved(
      { bare: getLoad(bare.url, '/api/health/live', connections), ours: getLoad(ctx.service.url, '/api/health/live', connections) },
      plan,
    )
    log('GET /api/auth/me vs the bare route')
    const me = await interleaved(
      {
        bare: bearerLoad(bare.url, '/api/auth/me', access, connections),
        ours: bearerLoad(ctx.service.url, '/api/auth/me', access, connections),
      },
      plan,
    )
    log('POST /api/auth/refresh vs sp_rotate_refresh_token through pg')
    const refresh = await interleaved(
      { ceiling: ceiling(worker, 'rotate', connections), ours: refreshLoad(ctx.service.url, ctx.chains, connections) },
      plan,
    )
    const { ours: liveOurs, bare: liveBare } = live
    const { ours: meOurs, bare: meBare } = me
    const { ours: refOurs, ceiling: refCeil } = refresh
    ctx.ours.me = meOurs
    ctx.ours.refresh = refOurs
    ratioRow('http', 'refresh/s', refOurs.rps, refCeil.rps, 'req/s', { atLeast: 0.7 }, `${failuresNote(refOurs, refCeil)} ${statuses(ctx.chains)}`.trim(), count(refOurs, refCeil))
    ratioRow('http', 'GET /api/auth/me req/s', meOurs.rps, meBare.rps, 'req/s', { atLeast: 0.5 }, failuresNote(meOurs, meBare), count(meOurs, meBare))
    ratioRow('http', 'GET /api/health/live req/s', liveOurs.rps, liveBare.rps, 'req/s', { atLeast: 0.9 }, failuresNote(liveOurs, liveBare), count(liveOurs, liveBare))
    reportRow('http', `p99 refresh @${connections} conn`, refOurs.p99, 'ms', `p50 ${fmt(refOurs.p50)} ms; ceiling p99 ${fmt(refCeil.p99)} ms`)
    reportRow('http', `p99 me @${connections} conn`, meOurs.p99, 'ms', `p50 ${fmt(meOurs.p50)} ms; bare p99 ${fmt(meBare.p99)} ms`)
  } finally {
    await bare.child.stop()
    await worker.stop()
  }
}

async function loginSection(ctx: Context): Promise<void> {
  const { plan, connections } = options
  const worker = await startCeilingWorker(ctx.small, ctx.dataDir, `0:${connections}`)
  const health: Sample[] = []
  try {
    log('POST /api/auth/login vs argon2id verifies (same parameters, same thread pool), health probed meanwhile')
    const oursLogin = loginLoad(ctx.service.url, '/api/auth/login', options.users, connections)
    // 20 probes a second on one connection: what a load balancer's health check does.
    const probe = getLoad(ctx.service.url, '/api/health/live', 1, 20)
    const result = await interleaved(
      {
        ceiling: ceiling(worker, 'argon2', connections),
        ours: async (seconds) => {
          const [login, live] = await Promise.all([oursLogin(seconds), probe(seconds)])
          health.push(live)
          return login
        },
      },
      plan,
    )
    const { ours, ceiling: ceil } = result
    ctx.ours.login = ours
    rows.unshift({
      section: 'login',
      figure: 'login/s (correct password)',
      ours: ours.rps,
      reference: ceil.rps,
      ratio: ours.rps / ceil.rps,
      unit: 'req/s',
      target: '≥ 0.85',
      met: ours.rps / ceil.rps >= 0.85,
      note: [`p50 ${fmt(ours.p50)} ms`, failuresNote(ours, ceil)].filter(Boolean).join('; '),
      failures: count(ours, ceil),
    })
    const measured = health.slice(-plan.repeats)
    reportRow(
      'login',
      'p99 health/live under login load',
      median(measured.map((s) => s.p99)),
      'ms',
      `p50 ${fmt(median(measured.map((s) => s.p50)))} ms, 20 probes/s`,
      undefined,
      measured.reduce((sum, s) => sum + s.failures, 0),
    )
  } finally {
    await worker.stop()
  }
}

async function growthSection(ctx: Context): Promise<void> {
  const { plan, connections } = options
  if (ctx.server === undefined) {
    log('growth: skipped (prepared database: no server to create the large one on)')
    return
  }
  log(`growth: seeding ${options.largeUsers.toLocaleString('en-US')} users and ${options.largeTokens.toLocaleString('en-US')} refresh tokens (COPY)`)
  const large = await ctx.server.createDatabase('large')
  const seeded = await seed(large.adminUrl, { users: options.largeUsers, tokens: options.largeTokens, passwordHash: ctx.passwordHash, log })
  const largePool = new pg.Pool({ connectionString: large.serviceUrl, max: 4 })
  largePool.on('error', () => undefined)
  const largeService = await startService(large, ctx.dataDir)
  try {
    const largeChains = new Chains(largePool, spread(options.largeUsers, connections))
    await largeChains.fill(connections)
    log('growth: login and refresh, small and large database interleaved')
    const login = await interleaved(
      {
        small: loginLoad(ctx.service.url, '/api/auth/login', options.users, connections),
        large: loginLoad(largeService.url, '/api/auth/login', options.largeUsers, connections),
      },
      plan,
    )
    const refresh = await interleaved(
      {
        small: refreshLoad(ctx.service.url, ctx.chains, connections),
        large: refreshLoad(largeService.url, largeChains, connections),
      },
      plan,
    )
    const size = `${compact(options.largeUsers)} users / ${compact(options.largeTokens)} tokens vs ${compact(options.users)} users`
    const { small: ls, large: ll } = login
    const { small: rs, large: rl } = refresh
    ratioRow('growth', `growth: login p50, ${size}`, ll.p50, ls.p50, 'ms', { atMost: 1.2 }, `req/s ${fmt(ll.rps)} vs ${fmt(ls.rps)}`, count(ll, ls))
    ratioRow('growth', `growth: refresh p50, ${size}`, rl.p50, rs.p50, 'ms', { atMost: 1.2 }, `req/s ${fmt(rl.rps)} vs ${fmt(rs.rps)}`, count(rl, rs))
    reportRow('growth', 'seed-large (COPY) time', seeded.seconds, 's', `${compact(seeded.users)} users, ${compact(seeded.tokens)} tokens`)
  } finally {
    await largeService.child.stop()
    await largePool.end()
  }
}

async function rssSection(ctx: Context): Promise<void> {
  const { connections } = options
  log(`RSS: a fresh service, ${options.rssSeconds} s of mixed load`)
  const service = await startService(ctx.small, ctx.dataDir)
  try {
    const atReady = memoryOf(service.child.pid)
    const chains = new Chains(ctx.pool, spread(options.users, connections))
    await chains.fill(connections)
    const access = await chains.accessTokens(service.url)
    const failed = new Map<string, number>()
    // Mixed: 5 % login, 25 % refresh, 50 % me, 20 % health/live, chosen per request.
    const request: autocannon.Request = {
      setupRequest: (req, context) => {
        const c = context as Ctx
        const pick = randomInt(100)
        c.kind = pick < 5 ? 'login' : pick < 30 ? 'refresh' : pick < 80 ? 'me' : 'live'
        switch (c.kind) {
          case 'login':
            return { ...req, method: 'POST', path: '/api/auth/login', headers: JSON_HEADERS, body: JSON.stringify({ email: benchEmail(randomInt(options.users)), password: BENCH_PASSWORD }) }
          case 'refresh': {
            const chain = chains.checkout()
            c.chain = chain
            return { ...req, method: 'POST', path: '/api/auth/refresh', headers: JSON_HEADERS, body: JSON.stringify({ refreshToken: chains.tokens[chain] }) }
          }
          case 'me':
            return { ...req, method: 'GET', path: '/api/auth/me', headers: { authorization: `Bearer ${access[randomInt(access.length)] as string}` }, body: undefined }
          default:
            return { ...req, method: 'GET', path: '/api/health/live', headers: {}, body: undefined }
        }
      },
      onResponse: (status, body, context) => {
        const c = context as Ctx
        if (c.kind === 'refresh') chains.checkin(c.chain as number, status, body)
        else if (status >= 300) {
          const key = `${c.kind as string} ${status}`
          failed.set(key, (failed.get(key) ?? 0) + 1)
        }
      },
    }
    const sample = await http({ url: service.url, connections, requests: [request] }, options.rssSeconds)
    for (const [key, n] of chains.failures) failed.set(`refresh ${key}`, n)
    const after = memoryOf(service.child.pid)
    reportRow(
      'rss',
      `RSS after ${options.rssSeconds} s mixed load`,
      after.rssMb,
      'MB',
      `peak ${fmt(after.peakMb)} MB, at ready ${fmt(atReady.rssMb)} MB${ctx.bareRssMb === undefined ? '' : ` (bare Fastify under tsx: ${fmt(ctx.bareRssMb)} MB)`}, ${fmt(sample.rps)} req/s mixed${sample.failures > 0 ? `, ${sample.failures} failed (${[...failed].map(([k, n]) => `${k}: ${n}`).join(', ')})` : ''}`,
      150,
      sample.failures,
    )
  } finally {
    await service.child.stop()
  }
}

// Enumeration timing (issue 11, part 5): does an address with an account take as
// long as one without — the request itself, and a readiness probe (one database
// round trip) sent right after its answer? A connection discarded on an expected
// database error showed as a reconnect in the probe (~30 ms instead of ~3 ms).
// Interleaved pairs (the order alternating within a pair) so drift hits both
// kinds alike; medians; printed, never asserted.

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

async function requestThenProbe(url: string, flow: EnumFlow, kind: EnumKind, i: number, failures: Map<string, number>): Promise<[number, number]> {
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

async function enumSection(ctx: Context): Promise<void> {
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
      log(`enum: ${flow.name}, ${flow.labels.known} vs ${flow.labels.unknown}: ${warmup} + ${pairs} interleaved pairs, a readiness probe after each request`)
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
        ratioRow('enum', `enumeration: ${flow.name} p50, ${label}`, median(known.request), median(unknown.request), 'ms', { within: 0.1 }, `${describe('request')}${failedNote}`, failed)
      }
      ratioRow('enum', `enumeration: health probe after ${flow.name}, ${label}`, median(known.probe), median(unknown.probe), 'ms', { within: 0.1 }, `${describe('probe')}${flow.probeOnly === true ? failedNote : ''}`, failed)
    }
    log(`enum: ${sink.delivered()} mails accepted by the bench's SMTP sink; ${((performance.now() - sectionStarted) / 1000).toFixed(0)} s`)
  } finally {
    await service.child.stop()
    await sink.close()
  }
}

async function startupSection(): Promise<void> {
  log('start to ready: `src/server.ts` with the embedded database, first start and later starts')
  const dir = await mkdtemp(path.join(os.tmpdir(), 'activity-auth-bench-start-'))
  // As root the embedded server runs as `postgres`, which must traverse into it.
  await chmod(dir, 0o711)
  const times: number[] = []
  try {
    const env = {
      ...baseEnv(),
      NODE_ENV: 'development',
      LOG_LEVEL: 'warn',
      HOST: '127.0.0.1',
      PORT: String(await freePort()),
      EMBEDDED_PG_PORT: String(await freePort()),
      DATA_DIR: dir,
    }
    for (let i = 0; i <= options.laterStarts; i++) {
      const started = performance.now()
      const child = startChild(nodeArgs('src/server.ts'), { env, core: 'all' })
      try {
        await waitForHttp(child, `http://127.0.0.1:${env.PORT}/api/health/ready`, 180_000)
        times.push((performance.now() - started) / 1000)
      } finally {
        await child.stop()
      }
    }
  } finally {
    await stopEmbedded(path.join(dir, 'postgres', 'pgdata')).catch(() => undefined)
    await rm(dir, { recursive: true, force: true })
  }
  reportRow('startup', 'start to ready, first start (embedded db)', times[0] as number, 's', 'initdb + bootstrap + migrations + listen')
  if (times.length > 1) {
    reportRow('startup', 'start to ready, later start', median(times.slice(1)), 's', `median of ${times.length - 1}`)
  }
}

const PEER_DIR = projectPath('bench', 'peer')

function ensurePeerInstalled(): void {
  if (existsSync(path.join(PEER_DIR, 'node_modules', 'better-auth'))) return
  log('peer: installing bench/peer (better-auth) with npm ci')
  const result = spawnSync('npm', ['ci', '--prefix', PEER_DIR, '--legacy-peer-deps', '--no-audit', '--no-fund'], { stdio: 'inherit' })
  if (result.status !== 0) throw new Error('npm ci --prefix bench/peer failed')
}

/** scrypt as better-auth's @better-auth/utils/password.node calls it. */
function scryptOnce(): Promise<void> {
  return new Promise<void>((resolve, reject) =>
    scrypt(BENCH_PASSWORD, 'a1b2c3d4e5f60718293a4b5c6d7e8f90', 64, { N: 16384, r: 16, p: 1, maxmem: 128 * 16384 * 16 * 2 }, (err) =>
      err ? reject(err) : resolve(),
    ),
  )
}

/** One verify each, one at a time, alternating (in this process, on the load core, with nothing else running): ms. */
async function verifyCosts(hash: string): Promise<{ argon2Ms: number; scryptMs: number }> {
  const config = loadConfig({ ...baseEnv(), NODE_ENV: 'development' })
  const hasher = createPasswordHasher({ memoryKiB: config.ARGON2_MEMORY_KIB, timeCost: config.ARGON2_TIME_COST, parallelism: config.ARGON2_PARALLELISM })
  const argon2: number[] = []
  const scryptTimes: number[] = []
  for (let i = 0; i < 9; i++) {
    let t0 = performance.now()
    await hasher.verify(hash, BENCH_PASSWORD)
    argon2.push(performance.now() - t0)
    t0 = performance.now()
    await scryptOnce()
    scryptTimes.push(performance.now() - t0)
  }
  return { argon2Ms: median(argon2), scryptMs: median(scryptTimes) }
}

async function peerSection(ctx: Context): Promise<void> {
  const { plan, connections } = options
  if (ctx.server === undefined) {
    log('peer: skipped (prepared database)')
    return
  }
  ensurePeerInstalled()
  const db = await ctx.server.createPlainDatabase('peer')
  const port = await freePort()
  const child = startChild([path.join(PEER_DIR, 'server.js')], {
    cwd: PEER_DIR,
    env: {
      ...baseEnv(),
      NODE_ENV: 'production',
      PORT: String(port),
      DATABASE_URL: db.adminUrl,
      BETTER_AUTH_SECRET: randomBytes(32).toString('base64url'),
      BENCH_PEER_USERS: String(options.users),
      BENCH_PASSWORD,
    },
  })
  const url = `http://127.0.0.1:${port}`
  try {
    await waitForHttp(child, `${url}/live`, 120_000)
    // One session per connection, signed in over HTTP like any client.
    const cookies: string[] = []
    for (let i = 0; i < connections; i++) {
      const res = await fetch(`${url}/api/auth/sign-in/email`, {
        method: 'POST',
        headers: { ...JSON_HEADERS, origin: url },
        body: JSON.stringify({ email: benchEmail(i), password: BENCH_PASSWORD }),
      })
      await res.arrayBuffer()
      const cookie = /better-auth\.session_token=[^;]+/.exec(res.headers.get('set-cookie') ?? '')?.[0]
      if (res.status !== 200 || cookie === undefined) throw new Error(`better-auth sign-in: ${res.status}`)
      cookies.push(cookie)
    }
    const cookieLoad = (p: string): Runner => {
      let next = 0
      const request: autocannon.Request = {
        method: 'GET',
        path: p,
        setupRequest: (req, context) => {
          const c = context as Ctx
          c.cookie ??= cookies[next++ % cookies.length]
          return { ...req, headers: { cookie: c.cookie as string } }
        },
      }
      return (seconds) => http({ url, connections, requests: [request] }, seconds)
    }
    log('peer: better-auth sign-in, get-session, get-session with the session extended')
    const result = await interleaved(
      {
        signIn: loginLoad(url, '/api/auth/sign-in/email', options.users, connections, { origin: url }),
        getSession: cookieLoad('/api/auth/get-session'),
        refresh: cookieLoad('/api/auth-upd/get-session'),
      },
      plan,
    )
    const { signIn, getSession, refresh } = result
    const ours = ctx.ours
    if (ours.login) ratioRow('peer', 'peer: sign-in/s, ours ÷ better-auth', ours.login.rps, signIn.rps, 'req/s', { atLeast: 1 }, failuresNote(signIn), count(signIn))
    if (ours.me) ratioRow('peer', 'peer: get-session/s (ours: GET /me), ours ÷ better-auth', ours.me.rps, getSession.rps, 'req/s', { atLeast: 1 }, `their p99 ${fmt(getSession.p99)} ms ${failuresNote(getSession)}`.trim(), count(getSession))
    if (ours.refresh) ratioRow('peer', 'peer: session refresh/s (theirs: get-session, updateAge 0), ours ÷ better-auth', ours.refresh.rps, refresh.rps, 'req/s', { atLeast: 1 }, `their p99 ${fmt(refresh.p99)} ms ${failuresNote(refresh)}`.trim(), count(refresh))
    const { argon2Ms, scryptMs } = await verifyCosts(ctx.passwordHash)
    ratioRow('peer', 'peer: one password verify, ours ÷ theirs (cost)', argon2Ms, scryptMs, 'ms', {}, 'ours argon2id m=19456 KiB t=2 p=1; theirs scrypt N=16384 r=16 p=1 (node:crypto); median of 9, one at a time')
  } finally {
    await child.stop()
  }
}

// ---------------------------------------------------------------------------
// Main

function spread(users: number, count: number): number[] {
  const step = Math.max(1, Math.floor(users / count))
  return Array.from({ length: count }, (_, i) => (i * step) % users)
}

function compact(n: number): string {
  if (n >= 1_000_000) return `${n / 1_000_000}M`
  if (n >= 1_000) return `${n / 1_000}k`
  return String(n)
}

async function main(): Promise<void> {
  const startedAt = new Date()
  const prepared = preparedDatabase()
  const server = prepared ? undefined : await startBenchServer(log)
  // After the database server has started (it keeps both cores): the load generator takes its own.
  pinSelf()
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'activity-auth-bench-data-'))
  let service: Running | undefined
  let pool: pg.Pool | undefined
  try {
    log(`${server?.description ?? 'prepared database'}; profile ${options.profile}; sections ${[...options.sections].join(', ')}; pinning ${canPin() ? 'on (load core 0, servers core 1)' : 'off'}`)
    const small = prepared ?? (await (server as BenchServer).createDatabase('small'))
    const config = loadConfig({ ...baseEnv(), NODE_ENV: 'development' })
    const hasher = createPasswordHasher({ memoryKiB: config.ARGON2_MEMORY_KIB, timeCost: config.ARGON2_TIME_COST, parallelism: config.ARGON2_PARALLELISM })
    const passwordHash = await hasher.hash(BENCH_PASSWORD)
    await seed(small.adminUrl, { users: options.users, tokens: options.users * 5, passwordHash, log })
    pool = new pg.Pool({ connectionString: small.serviceUrl, max: 4 })
    pool.on('error', () => undefined)
    service = await startService(small, dataDir)
    const chains = new Chains(pool, spread(options.users, options.connections))
    await chains.fill(options.connections)
    const ctx: Context = { small, server, dataDir, passwordHash, pool, chains, service, ours: {} }

    if (options.sections.has('http')) await httpSection(ctx)
    if (options.sections.has('login')) await loginSection(ctx)
    if (options.sections.has('peer')) await peerSection(ctx)
    if (options.sections.has('growth')) await growthSection(ctx)
    if (options.sections.has('enum')) await enumSection(ctx)
    await service.child.stop()
    service = undefined
    if (options.sections.has('rss')) await rssSection(ctx)
    if (options.sections.has('startup')) await startupSection()
  } finally {
    await service?.child.stop()
    await pool?.end()
    await server?.stop()
    await rm(dataDir, { recursive: true, force: true })
  }

  console.log(table())
  const result = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? '?', memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
    database: server?.description ?? 'prepared database',
    options: { ...options, sections: [...options.sections], pinned: canPin() },
    rows,
  }
  await mkdir(path.dirname(options.jsonPath), { recursive: true })
  await writeFile(options.jsonPath, `${JSON.stringify(result, null, 2)}\n`)
  log(`written ${path.relative(process.cwd(), options.jsonPath)}`)
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
    process.exit(1)
  },
)
