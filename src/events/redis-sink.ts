// Delivery of outbox events to Redis: each event is appended to a stream (XADD,
// trimmed with MAXLEN ~) for consumers with consumer groups, and published on a
// channel for fire-and-forget listeners. One MULTI per batch, so a batch is either
// all in the stream or (on error) retried whole by the publisher.
//
// The client must fail fast: with no offline queue and a command timeout, a dead or
// hung Redis makes publish() reject at once, the publisher rolls its transaction
// back and the events wait in the outbox, instead of queueing in this process.
import type { OutboxEvent } from '../db/procedures.ts'
import { connectRedis } from '../redis.ts'

/** What the publisher hands a batch to; a rejection means "not delivered, keep them". */
export interface EventSink {
  publish(events: readonly OutboxEvent[]): Promise<void>
  close(): Promise<void>
}

/** The JSON every consumer sees, in the stream's `event` field and on the channel. */
export interface EventEnvelope {
  id: string
  type: string
  version: number
  userId: string | null
  sessionId: string | null
  occurredAt: string
  payload: Record<string, unknown>
}

export function envelope(event: OutboxEvent): EventEnvelope {
  return {
    id: event.id,
    type: event.type,
    version: event.version,
    userId: event.userId,
    sessionId: event.sessionId,
    occurredAt: event.createdAt.toISOString(),
    payload: event.payload,
  }
}

export interface RedisSinkOptions {
  url: string
  stream: string
  channel: string
  /** Approximate length the stream is trimmed to. */
  streamMaxLen: number
  /** Longest wait for one batch before it counts as failed (ms). */
  commandTimeoutMs?: number
}

export async function createRedisSink(opts: RedisSinkOptions): Promise<EventSink> {
  // A batch that timed out may still have been applied: the publisher sends it again and
  // consumers deduplicate by id (at-least-once), so the client never resends on its own.
  const redis = await connectRedis(opts.url, { commandTimeoutMs: opts.commandTimeoutMs ?? 2000 })
  // The publisher logs the outage (once); without a listener ioredis would print every failed reconnect.
  redis.on('error', () => undefined)

  return {
    async publish(events) {
      if (events.length === 0) return
      const multi = redis.multi()
      for (const event of events) {
        const json = JSON.stringify(envelope(event))
        multi.xadd(opts.stream, 'MAXLEN', '~', opts.streamMaxLen, '*', 'id', event.id, 'type', event.type, 'event', json)
        multi.publish(opts.channel, json)
      }
      const results = await multi.exec()
      if (results === null) throw new Error('redis: the event batch was discarded (MULTI aborted)')
      const failed = results.find(([err]) => err !== null)
      if (failed?.[0]) throw failed[0]
    },
    async close() {
      // quit() would wait for a hung Redis; nothing is pending once the publisher stopped.
      redis.disconnect()
    },
  }
}
