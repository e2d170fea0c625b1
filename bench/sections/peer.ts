// peer: better-auth (bench/peer, its own install) on the same database server,
// its sign-in and sessions beside ours, and one password verify each.
import { randomBytes, scrypt } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import path from 'node:path'
import type autocannon from 'autocannon'
import type { PasswordHasher } from '../../src/auth/passwords.ts'
import { projectPath } from '../../src/paths.ts'
import type { Context } from '../lib/context.ts'
import { http, interleaved, JSON_HEADERS, median, type Runner } from '../lib/load.ts'
import { freePort } from '../lib/net.ts'
import { log, options } from '../lib/options.ts'
import { startChild, waitForHttp } from '../lib/proc.ts'
import { count, failuresNote, fmt, ratioRow } from '../lib/report.ts'
import { loginLoad, type Ctx } from '../lib/runners.ts'
import { BENCH_PASSWORD, benchEmail } from '../lib/seed.ts'
import { baseEnv } from '../lib/servers.ts'

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
async function verifyCosts(hasher: PasswordHasher, hash: string): Promise<{ argon2Ms: number; scryptMs: number }> {
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

export async function peerSection(ctx: Context): Promise<void> {
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
    if (ours.login)
      ratioRow(
        'peer',
        'peer: sign-in/s, ours ÷ better-auth',
        ours.login.rps,
        signIn.rps,
        'req/s',
        { atLeast: 1 },
        failuresNote(signIn),
        count(signIn),
      )
    if (ours.me)
      ratioRow(
        'peer',
        'peer: get-session/s (ours: GET /me), ours ÷ better-auth',
        ours.me.rps,
        getSession.rps,
        'req/s',
        { atLeast: 1 },
        `their p99 ${fmt(getSession.p99)} ms ${failuresNote(getSession)}`.trim(),
        count(getSession),
      )
    if (ours.refresh)
      ratioRow(
        'peer',
        'peer: session refresh/s (theirs: get-session, updateAge 0), ours ÷ better-auth',
        ours.refresh.rps,
        refresh.rps,
        'req/s',
        { atLeast: 1 },
        `their p99 ${fmt(refresh.p99)} ms ${failuresNote(refresh)}`.trim(),
        count(refresh),
      )
    const { argon2Ms, scryptMs } = await verifyCosts(ctx.hasher, ctx.passwordHash)
    ratioRow(
      'peer',
      'peer: one password verify, ours ÷ theirs (cost)',
      argon2Ms,
      scryptMs,
      'ms',
      {},
      'ours argon2id m=19456 KiB t=2 p=1; theirs scrypt N=16384 r=16 p=1 (node:crypto); median of 9, one at a time',
    )
  } finally {
    await child.stop()
  }
}
