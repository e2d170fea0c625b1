// pair: the http table again with two instances of the compiled service on one
// database (what a deployment behind a balancer runs), against the same ceilings
// doubled where they are processes (two bare routes) and the same rotate worker
// (one database). The load is split evenly, each instance gets half the
// connections: what a round-robin balancer does. Every server process is pinned to
// the one server core (bench/lib/proc.ts), so on this two-core machine the pair
// shares a core: the rows show what sharing one database and one core costs
// (the cross-instance NOTIFY traffic, two pools, two caches), not scaling.
import type { Context } from '../lib/context.ts'
import { interleaved } from '../lib/load.ts'
import { log, options } from '../lib/options.ts'
import { bearerLoad, getLoad, refreshLoad, splitConnections, together } from '../lib/runners.ts'
import { startBare, startCeilingWorker, startService } from '../lib/servers.ts'
import { httpRows, refreshRunners } from './http.ts'

export async function pairSection(ctx: Context): Promise<void> {
  const { plan, connections } = options
  const b = await startService(ctx.small, ctx.dataDir)
  const urls = [ctx.service.url, b.url]
  // Tokens from A: a session is the database's, either instance accepts it.
  const access = await ctx.chains.accessTokens(ctx.service.url)
  const meRes = await fetch(`${b.url}/api/auth/me`, { headers: { authorization: `Bearer ${access[0] as string}` } })
  const meBody = await meRes.text()
  if (meRes.status !== 200) throw new Error(`GET /api/auth/me on B: ${meRes.status} ${meBody}`)
  const bares = [await startBare(ctx.small, ctx.dataDir, meBody), await startBare(ctx.small, ctx.dataDir, meBody)]
  const worker = await startCeilingWorker(ctx.small, ctx.dataDir, `${Math.floor(options.users / 2)}:${connections}`)
  const across = (targets: string[], load: (url: string, conns: number) => ReturnType<typeof getLoad>) =>
    together(splitConnections(targets, connections).map(([url, conns]) => load(url, conns)))
  const bareUrls = bares.map((x) => x.url)
  try {
    log('2 instances: GET /api/health/live vs two bare routes')
    const live = await interleaved(
      {
        bare: across(bareUrls, (url, conns) => getLoad(url, '/api/health/live', conns)),
        ours: across(urls, (url, conns) => getLoad(url, '/api/health/live', conns)),
      },
      plan,
    )
    log('2 instances: GET /api/auth/me vs two bare routes')
    const me = await interleaved(
      {
        bare: across(bareUrls, (url, conns) => bearerLoad(url, '/api/auth/me', access, conns)),
        ours: across(urls, (url, conns) => bearerLoad(url, '/api/auth/me', access, conns)),
      },
      plan,
    )
    log('2 instances: POST /api/auth/refresh vs sp_rotate_refresh_token through pg')
    const refresh = await interleaved(
      await refreshRunners(ctx, worker, [ctx.service.child, b.child], refreshLoad(urls, ctx.chains, connections)),
      plan,
    )
    httpRows('pair', '2 instances: ', { live, me, refresh }, ctx.chains, 'worse instance; ')
  } finally {
    await Promise.all([b.child.stop(), ...bares.map((x) => x.child.stop()), worker.stop()])
  }
}
