// One way to open Redis for both of its users: the shared rate-limit counters
// (src/plugins/rate-limit.ts) and the event outbox's sink (src/events/redis-sink.ts).
//
// Both must fail fast rather than queue: no offline queue, no retries of a command,
// no resend of commands that were in flight when a connection dropped (a batch that
// timed out may still have been applied; the caller decides what to do), and each
// caller's own bound on one command. The connection itself is retried for ever,
// backing off to one attempt every 2 s.
import type { Redis } from 'ioredis'

export interface RedisConnectOptions {
  /** Longest wait for one command before it fails (ms). */
  commandTimeoutMs: number
}

/** Backoff between reconnect attempts: 200 ms, doubling, at most 2 s. */
function reconnectDelay(times: number): number {
  return Math.min(100 * 2 ** Math.min(times, 5), 2000)
}

/** Loads ioredis on first use: an instance without REDIS_URL never pays for it (issue 18). */
export async function connectRedis(url: string, opts: RedisConnectOptions): Promise<Redis> {
  const { Redis: Client } = await import('ioredis')
  return new Client(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: opts.commandTimeoutMs,
    connectTimeout: 2000,
    retryStrategy: reconnectDelay,
  })
}
