// An example consumer of activity-auth's security events (docs/events.md), as another
// service would write one: it reads the Redis stream through a consumer group, so
// every instance of that service shares the work and an event is acknowledged only
// once handled; it deduplicates by event id (delivery is at least once) and prints
// one line per event.
//
//   REDIS_URL=redis://127.0.0.1:6379 npx tsx examples/consumer.ts [group] [consumer] [--until-idle]
//
// Needs only ioredis. EVENTS_STREAM names the stream (default activity:events).
import { pathToFileURL } from 'node:url'
import { Redis } from 'ioredis'

/** The `event` field of a stream entry (docs/events.md, "Envelope"). */
export interface SecurityEvent {
  id: string
  type: string
  version: number
  userId: string | null
  sessionId: string | null
  occurredAt: string
  payload: Record<string, unknown>
}

export interface ConsumerOptions {
  redisUrl: string
  stream: string
  /** Consumer group: one per consuming service. */
  group: string
  /** This instance's name inside the group. */
  consumer: string
  /** What to do with each event; the default prints it. Throwing leaves it unacknowledged. */
  handle?: (event: SecurityEvent) => void | Promise<void>
  /** How long one read waits for new entries (ms). */
  blockMs?: number
  /** Return once a read finds nothing new (for tests and one-off catch-ups). */
  untilIdle?: boolean
  signal?: AbortSignal
}

export interface ConsumerResult {
  handled: number
  /** Entries carrying an event id already handled (a re-publish after a crash): acknowledged, not handled again. */
  duplicates: number
}

export const describe = (e: SecurityEvent): string =>
  `${e.occurredAt} ${e.type} id=${e.id} user=${e.userId ?? '-'} session=${e.sessionId ?? '-'} ${JSON.stringify(e.payload)}`

/** A pending entry trimmed from the stream meanwhile comes back without fields. */
function eventOf(fields: string[] | null): SecurityEvent | undefined {
  if (fields === null) return undefined
  const at = fields.indexOf('event')
  const json = at >= 0 ? fields[at + 1] : undefined
  return json === undefined ? undefined : (JSON.parse(json) as SecurityEvent)
}

export async function runConsumer(opts: ConsumerOptions): Promise<ConsumerResult> {
  const redis = new Redis(opts.redisUrl)
  const handle =
    opts.handle ??
    ((e: SecurityEvent) => {
      console.log(describe(e))
    })
  // A real service keeps this in its own database, in the transaction that handles the
  // event (or as Redis keys with a TTL), so it survives a restart; a Set shows the idea.
  const seen = new Set<string>()
  const result: ConsumerResult = { handled: 0, duplicates: 0 }
  try {
    // From the start of the stream for a new group ('0'); an existing group keeps its place.
    await redis.xgroup('CREATE', opts.stream, opts.group, '0', 'MKSTREAM').catch((err: unknown) => {
      if (!String(err).includes('BUSYGROUP')) throw err
    })
    // First what this consumer was given and did not acknowledge before a crash, then new entries.
    let cursor = '0'
    while (opts.signal?.aborted !== true) {
      const reply = await redis.xreadgroup(
        'GROUP',
        opts.group,
        opts.consumer,
        'COUNT',
        100,
        'BLOCK',
        opts.blockMs ?? 2000,
        'STREAMS',
        opts.stream,
        cursor,
      )
      const entries = reply?.[0]?.[1] ?? []
      if (entries.length === 0) {
        if (cursor === '0') cursor = '>'
        else if (opts.untilIdle === true) break
        continue
      }
      for (const [entryId, fields] of entries) {
        const event = eventOf(fields)
        if (event !== undefined && seen.has(event.id)) result.duplicates++
        else if (event !== undefined) {
          await handle(event)
          seen.add(event.id)
          result.handled++
        }
        await redis.xack(opts.stream, opts.group, entryId)
      }
    }
    return result
  } finally {
    redis.disconnect()
  }
}

// CLI entry: `tsx examples/consumer.ts [group] [consumer] [--until-idle]`.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2).filter((a) => !a.startsWith('--'))
  const controller = new AbortController()
  process.once('SIGINT', () => controller.abort())
  process.once('SIGTERM', () => controller.abort())
  const result = await runConsumer({
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    stream: process.env.EVENTS_STREAM ?? 'activity:events',
    group: args[0] ?? 'example-consumer',
    consumer: args[1] ?? `consumer-${process.pid}`,
    untilIdle: process.argv.includes('--until-idle'),
    signal: controller.signal,
  })
  console.error(`handled ${result.handled}, duplicates ${result.duplicates}`)
}
