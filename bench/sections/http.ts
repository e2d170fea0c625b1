// http: refresh, GET /me and GET /health/live against their ceilings (the
// rotate procedure through pg, the bare Fastify route), interleaved.
import type { Chains } from '../lib/chains.ts'
import type { Context } from '../lib/context.ts'
import { cpuNote, metered, postgresPids } from '../lib/cpu.ts'
import { interleaved, type Runner, type Summary } from '../lib/load.ts'
import { log, options, type Section } from '../lib/options.ts'
import { memoryOf, type Child } from '../lib/proc.ts'
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
      await refreshRunners(ctx, worker, [ctx.service.child], refreshLoad(ctx.service.url, ctx.chains, connections)),
      plan,
    )
    ctx.ours.me = me.ours
    ctx.ours.refresh = refresh.ours
    httpRows('http', '', { live, me, refresh }, ctx.chains)
  } finally {
    await bare.child.stop()
    await worker.stop()
  }
}

/**
 * The refresh pair, each side metered (bench/lib/cpu.ts): the rotate ceiling on the
 * worker, and ours on the given services. Counted: the server's CPU (or the worker's),
 * the database server's, and this process's (autocannon, or waiting on the worker).
 */
export async function refreshRunners(
  ctx: Context,
  worker: Child,
  services: Child[],
  ours: Runner,
): Promise<{ ceiling: Runner; ours: Runner }> {
  const postgres = await postgresPids(ctx.small.adminUrl)
  const shared = { ...(postgres === undefined ? {} : { PostgreSQL: postgres }), load: () => [process.pid] }
  return {
    ceiling: metered(ceiling(worker, 'rotate', options.connections), { worker: () => [worker.pid], ...shared }),
    ours: metered(ours, { service: () => services.map((s) => s.pid), ...shared }),
  }
}

/** The measured pairs of the http table: each ours beside its ceiling. */
export interface HttpFigures {
  live: { ours: Summary; bare: Summary }
  me: { ours: Summary; bare: Summary }
  refresh: { ours: Summary; ceiling: Summary }
}

/** The rows of the http table (the pair section prints them again for two instances, prefixed). */
export function httpRows(section: Section, prefix: string, { live, me, refresh }: HttpFigures, chains: Chains, worse = ''): void {
  const { connections } = options
  ratioRow(
    section,
    `${prefix}refresh/s`,
    refresh.ours.rps,
    refresh.ceiling.rps,
    'req/s',
    { atLeast: 0.7 },
    [failuresNote(refresh.ours, refresh.ceiling), chains.statuses(), cpuNote(refresh.ours, refresh.ceiling)]
      .filter((x) => x !== '')
      .join(' '),
    count(refresh.ours, refresh.ceiling),
  )
  for (const [figure, pair, target] of [
    ['GET /api/auth/me req/s', me, 0.5],
    ['GET /api/health/live req/s', live, 0.9],
  ] as const) {
    ratioRow(
      section,
      `${prefix}${figure}`,
      pair.ours.rps,
      pair.bare.rps,
      'req/s',
      { atLeast: target },
      failuresNote(pair.ours, pair.bare),
      count(pair.ours, pair.bare),
    )
  }
  reportRow(
    section,
    `${prefix}p99 refresh @${connections} conn`,
    refresh.ours.p99,
    'ms',
    `${worse}p50 ${fmt(refresh.ours.p50)} ms; ceiling p99 ${fmt(refresh.ceiling.p99)} ms`,
  )
  reportRow(
    section,
    `${prefix}p99 me @${connections} conn`,
    me.ours.p99,
    'ms',
    `${worse}p50 ${fmt(me.ours.p50)} ms; bare p99 ${fmt(me.bare.p99)} ms`,
  )
}
