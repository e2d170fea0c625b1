// revoke: how long a session ended on one instance stays usable on another (the
// session cache drops it on NOTIFY), and that the instance that ended it never serves
// it again. Two instances of the compiled service on one database: a session is made
// on A and cached on B (two GET /me), A logs it out, and B is asked back to back until
// it refuses; the delay runs from A's answer to B's first refusal.
import type { Context } from '../lib/context.ts'
import { JSON_HEADERS } from '../lib/load.ts'
import { log, options } from '../lib/options.ts'
import { fmt, reportRow } from '../lib/report.ts'
import { BENCH_PASSWORD, benchEmail } from '../lib/seed.ts'
import { startService } from '../lib/servers.ts'

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN

async function me(url: string, accessToken: string): Promise<number> {
  const res = await fetch(`${url}/api/auth/me`, { headers: { authorization: `Bearer ${accessToken}` } })
  await res.arrayBuffer()
  return res.status
}

export async function revokeSection(ctx: Context): Promise<void> {
  log(`revocation: ${options.revocations} sessions ended on A, watched on B`)
  const a = ctx.service
  const b = await startService(ctx.small, ctx.dataDir)
  const delays: number[] = []
  let acceptedByA = 0
  let neverRefused = 0
  try {
    for (let i = 0; i < options.revocations; i++) {
      const login = await fetch(`${a.url}/api/auth/login`, {
        method: 'POST',
        headers: JSON_HEADERS,
        body: JSON.stringify({ email: benchEmail(i % options.users), password: BENCH_PASSWORD }),
      })
      const pair = (await login.json()) as { accessToken: string; refreshToken: string }
      if (login.status !== 200) throw new Error(`login on A: ${login.status} ${JSON.stringify(pair)}`)
      for (const url of [a.url, b.url, b.url]) {
        const status = await me(url, pair.accessToken)
        if (status !== 200) throw new Error(`GET /me before the logout: ${status}`)
      }
      const out = await fetch(`${a.url}/api/auth/logout`, {
        method: 'POST',
        headers: JSON_HEADERS,
        body: JSON.stringify({ refreshToken: pair.refreshToken }),
      })
      await out.arrayBuffer()
      const answered = performance.now()
      if ((await me(a.url, pair.accessToken)) === 200) acceptedByA++
      let refused: number | undefined
      while (refused === undefined && performance.now() - answered < 5000) {
        if ((await me(b.url, pair.accessToken)) !== 200) refused = performance.now()
      }
      if (refused === undefined) neverRefused++
      else delays.push(refused - answered)
    }
  } finally {
    await b.child.stop()
  }
  delays.sort((x, y) => x - y)
  const p50 = quantile(delays, 0.5)
  const p99 = quantile(delays, 0.99)
  reportRow(
    'revoke',
    'revocation seen by another instance, p50',
    p50,
    'ms',
    `${delays.length} sessions; max ${fmt(delays.at(-1) ?? NaN)} ms`,
  )
  reportRow(
    'revoke',
    'revocation seen by another instance, p99',
    p99,
    'ms',
    `A logs out, B refuses (session cache, NOTIFY); served by A after its answer: ${String(acceptedByA)}; never refused by B: ${String(neverRefused)}`,
    100,
    // Either is a broken guarantee, counted like a failed request.
    acceptedByA + neverRefused,
  )
}
