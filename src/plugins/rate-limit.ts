// Per-IP, per-route request limits (@fastify/rate-limit). In memory by default;
// with REDIS_URL the counters live in Redis so every instance shares one limit.
// Per-account lockout is a separate, database-backed mechanism (AuthService.login).
import rateLimit from '@fastify/rate-limit'
import fp from 'fastify-plugin'
import { Redis } from 'ioredis'
import { tooManyRequests } from '../http/problem.ts'

export interface RateLimitOptions {
  enabled: boolean
  max: number
  windowSeconds: number
  redisUrl?: string | undefined
  /** Key prefix, so several deployments may share one Redis. */
  namespace?: string
}

export default fp<RateLimitOptions>(
  async (app, opts) => {
    if (!opts.enabled) return
    let redis: Redis | undefined
    if (opts.redisUrl !== undefined) {
      redis = new Redis(opts.redisUrl, {
        // Fail fast instead of queueing requests behind a dead Redis.
        maxRetriesPerRequest: 1,
        connectTimeout: 2000,
        lazyConnect: false,
      })
      app.addHook('onClose', async () => {
        await redis?.quit()
      })
    }
    await app.register(rateLimit, {
      global: true,
      max: opts.max,
      timeWindow: opts.windowSeconds * 1000,
      ...(redis ? { redis, nameSpace: opts.namespace ?? 'activity-auth-rl:' } : {}),
      // A broken Redis must not take logins down with it: let the request through.
      skipOnError: true,
      errorResponseBuilder: (_request, context) =>
        tooManyRequests('rate_limited', 'too many requests; slow down', Math.max(1, Math.ceil(context.ttl / 1000))),
    })
  },
  { name: 'rate-limit' },
)
