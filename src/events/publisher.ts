// The outbox publisher: moves events from activity.events to a sink (Redis), at least
// once and in order. One batch is one transaction: claim (FOR UPDATE SKIP LOCKED, under
// the procedure's advisory lock, so one instance publishes at a time and order holds
// across instances), hand to the sink, mark published, COMMIT. A crash or a sink
// failure before COMMIT leaves the batch unpublished, so it goes out again — at most
// that batch is sent twice, and nothing later goes out before it.
//
// It is woken by NOTIFY activity_events (the procedures notify when they write an
// event; delivery is at commit), on a dedicated session connection: behind a
// transaction pooler LISTEN cannot work, so there the poll timer is the wake-up. The
// poll also runs beside LISTEN as a safety net for a notification lost with a connection.
//
// The transaction statements are the only SQL text here: they are session control,
// not data access (that is claimEvents/markEventsPublished). LISTEN is src/db/listener.ts.
import type { FastifyBaseLogger } from 'fastify'
import pg from 'pg'
import { Backoff, Listener } from '../db/listener.ts'
import { claimEvents, markEventsPublished } from '../db/procedures.ts'
import type { EventSink } from './redis-sink.ts'

export const EVENTS_CHANNEL = 'activity_events'

export type PublisherLog = Pick<FastifyBaseLogger, 'debug' | 'info' | 'warn'>

export interface PublisherOptions {
  pool: pg.Pool
  sink: EventSink
  /** Session connection for LISTEN (the service's URL); unset: poll only. */
  listenUrl?: string | undefined
  listenSsl?: boolean
  pollMs: number
  batchSize: number
  log: PublisherLog
  /** Called with the size of each committed batch. */
  onPublished?: (count: number) => void
  /** Backoff after a failed batch or a lost LISTEN connection: doubling from minMs up to maxMs. */
  retry?: { minMs: number; maxMs: number }
}

export interface Publisher {
  /** Sets up LISTEN (when possible) and the poll, and publishes what is waiting. */
  start(): Promise<void>
  /** Publish now (also what a notification does). */
  wake(): void
  /** Stops waking up and waits for the batch in flight (which then commits or rolls back). */
  stop(): Promise<void>
  /** 'listen' when woken by NOTIFY, 'poll' when only the timer wakes it. */
  readonly wakeUp: 'listen' | 'poll'
}

export function createPublisher(opts: PublisherOptions): Publisher {
  const { pool, sink, log, batchSize } = opts
  const retry = opts.retry ?? { minMs: 100, maxMs: 5000 }
  const publishBackoff = new Backoff(retry)
  let stopped = false
  let running: Promise<void> | undefined
  let again = false
  let retryTimer: NodeJS.Timeout | undefined
  let pollTimer: NodeJS.Timeout | undefined
  /** Set while a failure has been logged and not yet followed by a success: one line per outage. */
  let failing = false
  let wakeUp: 'listen' | 'poll' = 'poll'
  const listener =
    opts.listenUrl === undefined
      ? undefined
      : new Listener(
          {
            url: opts.listenUrl,
            ssl: opts.listenSsl ?? false,
            channel: EVENTS_CHANNEL,
            name: 'events',
            gap: 'the poll covers the gap',
            unavailable: 'polling every EVENTS_POLL_MS',
            log,
            retry,
          },
          // Notifications sent while nobody listened are gone: look after a restore too.
          { onNotify: () => wake(), onRestored: () => wake() },
        )

  /** One batch in one transaction; the number of events published. */
  async function publishBatch(): Promise<number> {
    const client = await pool.connect()
    let broken: Error | undefined
    // A connection lost while checked out (a server restart during the publish) emits
    // 'error' on the client; unheard, it would crash the process. The query fails too.
    const lost = (err: Error) => (broken = err)
    client.on('error', lost)
    try {
      await client.query('BEGIN')
      try {
        const events = await claimEvents(client, { limit: batchSize })
        if (events.length > 0) {
          await sink.publish(events)
          await markEventsPublished(client, { ids: events.map((e) => e.id) })
        }
        await client.query('COMMIT')
        if (events.length > 0) opts.onPublished?.(events.length)
        return events.length
      } catch (err) {
        // The claimed rows return to the outbox; a connection that cannot roll back is discarded.
        await client.query('ROLLBACK').catch((rollbackErr: unknown) => (broken = rollbackErr as Error))
        throw err
      }
    } finally {
      client.off('error', lost)
      client.release(broken)
    }
  }

  async function drain(): Promise<void> {
    try {
      // A full batch means more may be waiting; a short one means the outbox is empty
      // (or another instance holds the lock, and drains it itself).
      while (!stopped && (await publishBatch()) === batchSize) {
        /* next batch */
      }
      publishBackoff.reset()
      if (failing) {
        failing = false
        log.warn({ event: 'events_publish_resumed' }, 'events: publishing again; the backlog is delivered in order')
      }
    } catch (err) {
      if (!failing) {
        failing = true
        log.warn(
          { event: 'events_publish_failed', err },
          'events: publishing failed; events wait in the outbox and are retried with backoff',
        )
      }
      if (!stopped) {
        retryTimer = setTimeout(() => {
          retryTimer = undefined
          wake()
        }, publishBackoff.next())
        retryTimer.unref()
      }
    }
  }

  function wake(): void {
    if (stopped) return
    if (running !== undefined) {
      // Something was committed after this drain began; look again when it ends.
      again = true
      return
    }
    // During a backoff the retry is already scheduled: hammering a dead Redis helps nobody.
    if (retryTimer !== undefined) return
    again = false
    running = drain().finally(() => {
      running = undefined
      if (again) wake()
    })
  }

  return {
    async start() {
      if (listener !== undefined && (await listener.start())) wakeUp = 'listen'
      pollTimer = setInterval(wake, opts.pollMs)
      pollTimer.unref()
      log.info({ event: 'events_publisher_started', wakeUp, pollMs: opts.pollMs }, `events: publisher started (${wakeUp})`)
      // What was committed before LISTEN began.
      wake()
    },
    wake,
    async stop() {
      stopped = true
      clearInterval(pollTimer)
      clearTimeout(retryTimer)
      retryTimer = undefined
      await listener?.close()
      await running
    },
    get wakeUp() {
      return wakeUp
    },
  }
}
