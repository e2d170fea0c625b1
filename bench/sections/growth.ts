// growth: login and refresh p50 on a large database (COPY-seeded) against the
// small one, interleaved: every lookup must stay an index lookup.
import pg from 'pg'
import { Chains, spread } from '../lib/chains.ts'
import type { Context } from '../lib/context.ts'
import { interleaved } from '../lib/load.ts'
import { log, options } from '../lib/options.ts'
import { count, fmt, ratioRow, reportRow } from '../lib/report.ts'
import { loginLoad, refreshLoad } from '../lib/runners.ts'
import { seed } from '../lib/seed.ts'
import { startService } from '../lib/servers.ts'

function compact(n: number): string {
  if (n >= 1_000_000) return `${n / 1_000_000}M`
  if (n >= 1_000) return `${n / 1_000}k`
  return String(n)
}

export async function growthSection(ctx: Context): Promise<void> {
  const { plan, connections } = options
  if (ctx.server === undefined) {
    log('growth: skipped (prepared database: no server to create the large one on)')
    return
  }
  log(
    `growth: seeding ${options.largeUsers.toLocaleString('en-US')} users and ${options.largeTokens.toLocaleString('en-US')} refresh tokens (COPY)`,
  )
  const large = await ctx.server.createDatabase('large')
  const seeded = await seed(large.adminUrl, { users: options.largeUsers, tokens: options.largeTokens, passwordHash: ctx.passwordHash, log })
  const largePool = new pg.Pool({ connectionString: large.serviceUrl, max: 4 })
  largePool.on('error', () => undefined)
  const largeService = await startService(large, ctx.dataDir)
  try {
    const largeChains = new Chains(largePool, spread(options.largeUsers, connections), ctx.tokenTtl)
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
    ratioRow(
      'growth',
      `growth: login p50, ${size}`,
      ll.p50,
      ls.p50,
      'ms',
      { atMost: 1.2 },
      `req/s ${fmt(ll.rps)} vs ${fmt(ls.rps)}`,
      count(ll, ls),
    )
    ratioRow(
      'growth',
      `growth: refresh p50, ${size}`,
      rl.p50,
      rs.p50,
      'ms',
      { atMost: 1.2 },
      `req/s ${fmt(rl.rps)} vs ${fmt(rs.rps)}`,
      count(rl, rs),
    )
    reportRow('growth', 'seed-large (COPY) time', seeded.seconds, 's', `${compact(seeded.users)} users, ${compact(seeded.tokens)} tokens`)
  } finally {
    await largeService.child.stop()
    await largePool.end()
  }
}
