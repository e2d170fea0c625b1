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
// The transaction and LISTEN statements are the only SQL text here: they are
// session control, not data access (that is claimEvents/markEventsPublished).
import type { FastifyBaseLogger } from 'fastify'
import pg from 'pg'
import { assertDirectConnection, PooledConnectionError } from '../db/direct-connection.ts'
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

/** Doubling delays for one outage; reset() when it is over. */
class Backoff {
  private attempt = 0
  constructor(private readonly range: { minMs: number; maxMs: number }) {}
  next(): number {
    return Math.min(this.range.minMs * 2 ** this.attempt++, this.range.maxMs)
  }
  reset(): void {
    this.attempt = 0
  }
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
    opts.listenUrl === undefined ? undefined : new Listener(opts.listenUrl, opts.listenSsl ?? false, log, retry, () => wake())

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

/** The LISTEN connection: reconnects with backoff after a loss, and wakes the publisher on every notification. */
class Listener {
  private client: pg.Client | undefined
  private closed = false
  private lost = false
  private reconnectTimer: NodeJS.Timeout | undefined
  private readonly backoff: Backoff

  constructor(
    private readonly url: string,
    private readonly ssl: boolean,
    private readonly log: PublisherLog,
    retry: { minMs: number; maxMs: number },
    private readonly onNotify: () => void,
  ) {
    this.backoff = new Backoff(retry)
  }

  /**
   * Listens, or answers false behind a transaction pooler (a notification could go to a
   * server connection nobody listens on). A database that does not answer yet is not
   * a reason to give up: the connection is retried with backoff, the poll covers the gap.
   */
  async start(): Promise<boolean> {
    try {
      await assertDirectConnection(this.url, 'DATABASE_URL')
    } catch (err) {
      if (err instanceof PooledConnectionError) {
        this.log.info(
          { event: 'events_listen_unavailable' },
          'events: DATABASE_URL goes through a transaction pooler, so LISTEN cannot work; polling every EVENTS_POLL_MS',
        )
        return false
      }
      this.lostConnection(err)
      return true
    }
    await this.connect().catch((err: unknown) => this.lostConnection(err))
    return true
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.url,
      ssl: this.ssl ? { rejectUnauthorized: true } : undefined,
      application_name: 'activity-auth-events',
      // A peer that vanished without a reset is found dead and the connection replaced.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    })
    client.on('notification', () => this.onNotify())
    client.on('error', () => undefined)
    client.on('end', () => {
      if (this.client !== client) return
      this.client = undefined
      this.lostConnection(new Error('connection ended'))
    })
    try {
      await client.connect()
      await client.query(`LISTEN ${EVENTS_CHANNEL}`)
    } catch (err) {
      await client.end().catch(() => undefined)
      throw err
    }
    // Closed while connecting: nobody will end it later.
    if (this.closed) await client.end().catch(() => undefined)
    else this.client = client
  }

  private lostConnection(err: unknown): void {
    if (this.closed) return
    if (!this.lost) {
      this.lost = true
      this.log.warn({ event: 'events_listen_lost', err }, 'events: no LISTEN connection; reconnecting (the poll covers the gap)')
    }
    this.scheduleReconnect()
  }

  private scheduleReconnect(): void {
    if (this.closed) return
    this.reconnectTimer = setTimeout(() => {
      this.connect()
        .then(() => {
          this.backoff.reset()
          this.lost = false
          this.log.info({ event: 'events_listen_restored' }, 'events: LISTEN connection restored')
          // Notifications sent while nobody listened are gone.
          this.onNotify()
        })
        .catch(() => this.scheduleReconnect())
    }, this.backoff.next())
    this.reconnectTimer.unref()
  }

  async close(): Promise<void> {
    this.closed = true
    clearTimeout(this.reconnectTimer)
    await this.client?.end().catch(() => undefined)
  }
}
