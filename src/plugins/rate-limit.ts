// Per-IP, per-route request limits (@fastify/rate-limit). In memory by default;
// with REDIS_URL the counters live in Redis so every instance shares one limit.
// Per-account lockout is a separate, database-backed mechanism (AuthService.login).
//
// A dead or hung Redis must neither stall requests nor switch the limits off:
// no offline queue and a short command timeout bound the added latency, and while
// Redis is down (or after a command failed) every limit runs on a per-instance
// in-memory store until Redis answers again. Each change of state is one warn line.
import { createRequire } from 'node:module'
import rateLimit, { type FastifyRateLimitStore } from '@fastify/rate-limit'
import type { FastifyBaseLogger } from 'fastify'
import fp from 'fastify-plugin'
import type { Redis } from 'ioredis'
import { tooManyRequests } from '../http/problem.ts'
import { connectRedis } from '../redis.ts'

export interface RateLimitOptions {
  enabled: boolean
  max: number
  windowSeconds: number
  redisUrl?: string | undefined
  /** Key prefix, so several deployments may share one Redis. */
  namespace?: string
  /** Longest wait for one Redis command before the request falls back to memory (ms). */
  redisCommandTimeoutMs?: number
  /** How often a Redis that stopped answering on a live connection is probed (ms). */
  redisProbeIntervalMs?: number
}

/**
 * Where the limits are counted: `redis` (shared), `memory-fallback` (REDIS_URL is set
 * but Redis is down: per instance until it is back), `memory` (no REDIS_URL), `off`.
 */
export type RateLimitStoreState = 'redis' | 'memory-fallback' | 'memory' | 'off'

declare module 'fastify' {
  interface FastifyInstance {
    rateLimitStore: () => RateLimitStoreState
  }
}

// The plugin's own stores (CommonJS, untyped): Redis for the shared counters, the
// local LRU for the fallback, so both count exactly alike.
type StoreRouteOptions = Parameters<FastifyRateLimitStore['child']>[0]
type StoreCallback = Parameters<FastifyRateLimitStore['incr']>[1]
interface PluginStore extends FastifyRateLimitStore {
  read?: FastifyRateLimitStore['incr']
}
/** What the plugin passes to a store: its global parameters, or a route's merged ones. */
interface StoreParams {
  continueExceeding?: boolean
  exponentialBackoff?: boolean
  cache?: number
}
const require = createRequire(import.meta.url)
const LocalStore = require('@fastify/rate-limit/store/LocalStore.js') as new (
  continueExceeding: boolean,
  exponentialBackoff: boolean,
  cache?: number,
) => PluginStore
const RedisStore = require('@fastify/rate-limit/store/RedisStore.js') as new (
  continueExceeding: boolean,
  exponentialBackoff: boolean,
  redis: Redis,
  key?: string,
) => PluginStore

/** Whether Redis answers; logs one warn line per change and probes a silent connection. */
class RedisLink {
  state: 'connecting' | 'up' | 'down' = 'connecting'
  private closing = false
  private probing = false
  private readonly timer: NodeJS.Timeout
  readonly redis: Redis
  private readonly log: FastifyBaseLogger

  constructor(redis: Redis, log: FastifyBaseLogger, probeIntervalMs: number) {
    this.redis = redis
    this.log = log
    redis.on('ready', () => this.up())
    // A listener, so ioredis never prints "Unhandled error event"; one line per change only.
    redis.on('error', (err: Error) => this.down(err))
    redis.on('close', () => this.down(new Error('connection closed')))
    // A connection can stay open while Redis answers nothing (SIGSTOP, a full box): then
    // no 'ready' will come, so a ping tells when it answers again.
    this.timer = setInterval(() => this.probe(), probeIntervalMs)
    this.timer.unref()
  }

  get isUp(): boolean {
    return this.state === 'up'
  }

  up(): void {
    if (this.closing || this.state === 'up') return
    const was = this.state
    this.state = 'up'
    if (was === 'down')
      this.log.warn({ event: 'rate_limit_store_up', rateLimitStore: 'redis' }, 'rate-limit store: redis is back; limits are shared again')
    else this.log.info({ event: 'rate_limit_store_up', rateLimitStore: 'redis' }, 'rate-limit store: redis connected')
  }

  down(err: Error): void {
    if (this.closing || this.state === 'down') return
    this.state = 'down'
    this.log.warn(
      { event: 'rate_limit_store_down', rateLimitStore: 'memory-fallback', reason: err.message },
      'rate-limit store: redis unavailable; limits continue per instance in memory',
    )
  }

  private probe(): void {
    if (this.state !== 'down' || this.probing || this.redis.status !== 'ready') return
    this.probing = true
    this.redis
      .ping()
      .then(() => this.up())
      .catch(() => {})
      .finally(() => {
        this.probing = false
      })
  }

  async close(): Promise<void> {
    this.closing = true
    clearInterval(this.timer)
    // quit() would wait for a hung Redis; the counters need no goodbye.
    this.redis.disconnect()
  }
}

/**
 * A store for @fastify/rate-limit: Redis while it answers, the local store while it
 * does not. A failed or timed-out command marks Redis down and is answered locally.
 */
function fallbackStore(link: RedisLink, namespace: string) {
  return class FallbackStore implements FastifyRateLimitStore {
    private readonly shared: PluginStore
    private readonly local: PluginStore

    constructor(options: StoreParams, shared?: PluginStore) {
      const continueExceeding = options.continueExceeding ?? false
      const exponentialBackoff = options.exponentialBackoff ?? false
      this.shared = shared ?? new RedisStore(continueExceeding, exponentialBackoff, link.redis, namespace)
      this.local = new LocalStore(continueExceeding, exponentialBackoff, options.cache)
    }

    incr(key: string, cb: StoreCallback, timeWindow: number, max: number): void {
      this.route('incr', key, cb, timeWindow, max)
    }

    read(key: string, cb: StoreCallback, timeWindow: number, max: number): void {
      this.route('read', key, cb, timeWindow, max)
    }

    private route(method: 'incr' | 'read', key: string, cb: StoreCallback, timeWindow: number, max: number): void {
      const local = () => this.local[method]?.(key, cb, timeWindow, max)
      if (!link.isUp) return local()
      this.shared[method]?.(
        key,
        (err, result) => {
          if (err === null) return cb(null, result)
          link.down(err)
          local()
        },
        timeWindow,
        max,
      )
    }

    child(routeOptions: StoreRouteOptions): FastifyRateLimitStore {
      const options = routeOptions as unknown as StoreParams
      return new FallbackStore(options, this.shared.child(routeOptions))
    }
  }
}

export default fp<RateLimitOptions>(
  async (app, opts) => {
    let state: () => RateLimitStoreState = () => (opts.enabled ? 'memory' : 'off')
    app.decorate('rateLimitStore', () => state())
    if (!opts.enabled) return
    let store: ReturnType<typeof fallbackStore> | undefined
    if (opts.redisUrl !== undefined) {
      // No offline queue and a short command timeout: never wait for Redis longer than
      // this; the request is then counted in memory instead.
      const redis = await connectRedis(opts.redisUrl, { commandTimeoutMs: opts.redisCommandTimeoutMs ?? 100 })
      const link = new RedisLink(redis, app.log, opts.redisProbeIntervalMs ?? 1000)
      app.addHook('onClose', () => link.close())
      // Start on Redis when it answers at once; otherwise start on the fallback.
      await new Promise<void>((resolve) => {
        const settle = () => {
          clearTimeout(timer)
          redis.off('ready', settle)
          redis.off('error', settle)
          resolve()
        }
        const timer = setTimeout(() => {
          link.down(new Error('no answer within 1 s at start'))
          settle()
        }, 1000)
        redis.on('ready', settle)
        redis.on('error', settle)
      })
      state = () => (link.isUp ? 'redis' : 'memory-fallback')
      store = fallbackStore(link, opts.namespace ?? 'activity-auth-rl:')
    }
    await app.register(rateLimit, {
      global: true,
      max: opts.max,
      timeWindow: opts.windowSeconds * 1000,
      ...(store ? { store } : {}),
      // The store never fails (it falls back to memory); should it, refuse rather than
      // let the request through unlimited.
      skipOnError: false,
      errorResponseBuilder: (_request, context) =>
        tooManyRequests('rate_limited', 'too many requests; slow down', Math.max(1, Math.ceil(context.ttl / 1000))),
    })
  },
  { name: 'rate-limit' },
)
