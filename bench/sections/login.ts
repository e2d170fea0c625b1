// login: POST /api/auth/login against argon2id verifies alone (same parameters,
// same thread pool), with the health route probed meanwhile.
import type { Context } from '../lib/context.ts'
import { interleaved, median, type Sample } from '../lib/load.ts'
import { log, options } from '../lib/options.ts'
import { count, failuresNote, fmt, reportRow, rows } from '../lib/report.ts'
import { ceiling, getLoad, loginLoad } from '../lib/runners.ts'
import { startCeilingWorker } from '../lib/servers.ts'

export async function loginSection(ctx: Context): Promise<void> {
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
    // The headline row: first in the table.
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
