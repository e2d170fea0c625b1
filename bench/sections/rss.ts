// rss: a fresh service's resident memory after a stretch of mixed load.
import { randomInt } from 'node:crypto'
import type autocannon from 'autocannon'
import { Chains, spread } from '../lib/chains.ts'
import type { Context } from '../lib/context.ts'
import { http, JSON_HEADERS } from '../lib/load.ts'
import { log, options } from '../lib/options.ts'
import { memoryOf } from '../lib/proc.ts'
import { fmt, reportRow } from '../lib/report.ts'
import type { Ctx } from '../lib/runners.ts'
import { BENCH_PASSWORD, benchEmail } from '../lib/seed.ts'
import { startService } from '../lib/servers.ts'

export async function rssSection(ctx: Context): Promise<void> {
  const { connections } = options
  log(`RSS: a fresh service, ${options.rssSeconds} s of mixed load`)
  const metricsToken = 'bench-rss-metrics-token-0123456789abcdef'
  const service = await startService(ctx.small, ctx.dataDir, { METRICS_TOKEN: metricsToken })
  try {
    const atReady = memoryOf(service.child.pid)
    const chains = new Chains(ctx.pool, spread(options.users, connections), ctx.tokenTtl)
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
            return {
              ...req,
              method: 'POST',
              path: '/api/auth/login',
              headers: JSON_HEADERS,
              body: JSON.stringify({ email: benchEmail(randomInt(options.users)), password: BENCH_PASSWORD }),
            }
          case 'refresh': {
            const chain = chains.checkout()
            c.chain = chain
            return {
              ...req,
              method: 'POST',
              path: '/api/auth/refresh',
              headers: JSON_HEADERS,
              body: JSON.stringify({ refreshToken: chains.tokens[chain] }),
            }
          }
          case 'me':
            return {
              ...req,
              method: 'GET',
              path: '/api/auth/me',
              headers: { authorization: `Bearer ${access[randomInt(access.length)] as string}` },
              body: undefined,
            }
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
    const heap = await heapOf(service.url, metricsToken)
    reportRow(
      'rss',
      `RSS after ${options.rssSeconds} s mixed load`,
      after.rssMb,
      'MB',
      `peak ${fmt(after.peakMb)} MB, at ready ${fmt(atReady.rssMb)} MB; ${heap}${ctx.bareRssMb === undefined ? '' : ` (bare Fastify under tsx: ${fmt(ctx.bareRssMb)} MB)`}, ${fmt(sample.rps)} req/s mixed${sample.failures > 0 ? `, ${sample.failures} failed (${[...failed].map(([k, n]) => `${k}: ${n}`).join(', ')})` : ''}`,
      150,
      sample.failures,
    )
  } finally {
    await service.child.stop()
  }
}

/** Where the memory is, as the service's own /metrics tells it (prom-client's default metrics). */
async function heapOf(url: string, token: string): Promise<string> {
  const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } })
  const text = await res.text()
  const mb = (pattern: RegExp) => {
    const value = pattern.exec(text)?.[1]
    return value === undefined ? '?' : fmt(Number(value) / 1e6)
  }
  return (
    `V8 heap ${mb(/^nodejs_heap_size_used_bytes (\S+)/m)} MB used of ${mb(/^nodejs_heap_size_total_bytes (\S+)/m)} MB ` +
    `(new space ${mb(/^nodejs_heap_space_size_total_bytes\{space="new"\} (\S+)/m)} MB), external ${mb(/^nodejs_external_memory_bytes (\S+)/m)} MB`
  )
}
