// http: refresh, GET /me and GET /health/live against their ceilings (the
// rotate procedure through pg, the bare Fastify route), interleaved.
import type { Context } from '../lib/context.ts'
import { interleaved } from '../lib/load.ts'
import { log, options } from '../lib/options.ts'
import { memoryOf } from '../lib/proc.ts'
import { count, failuresNote, fmt, ratioRow, reportRow } from '../lib/report.ts'
import { bearerLoad, ceiling, getLoad, refreshLoad } from '../lib/runners.ts'
import { startBare, startCeilingWorker } from '../lib/servers.ts'

export async function httpSection(ctx: Context): Promise<void> {
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
    ratioRow(
      'http',
      'refresh/s',
      refOurs.rps,
      refCeil.rps,
      'req/s',
      { atLeast: 0.7 },
      `${failuresNote(refOurs, refCeil)} ${ctx.chains.statuses()}`.trim(),
      count(refOurs, refCeil),
    )
    ratioRow(
      'http',
      'GET /api/auth/me req/s',
      meOurs.rps,
      meBare.rps,
      'req/s',
      { atLeast: 0.5 },
      failuresNote(meOurs, meBare),
      count(meOurs, meBare),
    )
    ratioRow(
      'http',
      'GET /api/health/live req/s',
      liveOurs.rps,
      liveBare.rps,
      'req/s',
      { atLeast: 0.9 },
      failuresNote(liveOurs, liveBare),
      count(liveOurs, liveBare),
    )
    reportRow(
      'http',
      `p99 refresh @${connections} conn`,
      refOurs.p99,
      'ms',
      `p50 ${fmt(refOurs.p50)} ms; ceiling p99 ${fmt(refCeil.p99)} ms`,
    )
    reportRow('http', `p99 me @${connections} conn`, meOurs.p99, 'ms', `p50 ${fmt(meOurs.p50)} ms; bare p99 ${fmt(meBare.p99)} ms`)
  } finally {
    await bare.child.stop()
    await worker.stop()
  }
}
