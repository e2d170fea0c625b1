// A LISTEN connection that outlives outages: a dedicated session connection (LISTEN
// needs one), reconnected with backoff after a loss, telling its owner when it lost
// and when it regained the channel (notifications sent in between are gone). Behind
// a transaction pooler LISTEN cannot work (a notification could reach a server
// connection nobody listens on): start() answers false and the owner falls back.
// The events publisher (wake-ups) and the session cache (invalidations) each own one.
import pg from 'pg'
import { assertDirectConnection, PooledConnectionError } from './direct-connection.ts'

export interface ListenerLog {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}

/** Doubling delays for one outage; reset() when it is over. */
export class Backoff {
  private attempt = 0
  constructor(private readonly range: { minMs: number; maxMs: number }) {}
  next(): number {
    return Math.min(this.range.minMs * 2 ** this.attempt++, this.range.maxMs)
  }
  reset(): void {
    this.attempt = 0
  }
}

export interface ListenerOptions {
  url: string
  ssl: boolean
  /** A fixed identifier (LISTEN takes no parameter). */
  channel: string
  /** Prefix of the log events and messages (`<name>_listen_lost`), and the application_name suffix. */
  name: string
  /** What covers a lost connection, for the log line ("the poll covers the gap"). */
  gap: string
  /** What happens instead behind a pooler, for the log line. */
  unavailable: string
  log: ListenerLog
  retry: { minMs: number; maxMs: number }
}

export interface ListenerHooks {
  onNotify(payload: string): void
  /** The connection is gone; notifications are missed until onRestored. */
  onLost?(): void
  /** Listening again after a loss. */
  onRestored?(): void
}

const CHANNEL = /^[a-z_][a-z0-9_]*$/

export class Listener {
  private client: pg.Client | undefined
  private closed = false
  private lost = false
  private reconnectTimer: NodeJS.Timeout | undefined
  private readonly backoff: Backoff

  constructor(
    private readonly opts: ListenerOptions,
    private readonly hooks: ListenerHooks,
  ) {
    if (!CHANNEL.test(opts.channel)) throw new Error(`not a channel name: ${opts.channel}`)
    this.backoff = new Backoff(opts.retry)
  }

  /** True while a LISTEN connection is up. */
  get listening(): boolean {
    return this.client !== undefined
  }

  /**
   * Listens, or answers false behind a transaction pooler. A database that does not
   * answer yet is not a reason to give up: the connection is retried with backoff.
   */
  async start(): Promise<boolean> {
    const { name, log } = this.opts
    try {
      await assertDirectConnection(this.opts.url, 'DATABASE_URL')
    } catch (err) {
      if (err instanceof PooledConnectionError) {
        log.info(
          { event: `${name}_listen_unavailable` },
          `${name}: DATABASE_URL goes through a transaction pooler, so LISTEN cannot work; ${this.opts.unavailable}`,
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
      connectionString: this.opts.url,
      ssl: this.opts.ssl ? { rejectUnauthorized: true } : undefined,
      application_name: `activity-auth-${this.opts.name}`,
      // A peer that vanished without a reset is found dead and the connection replaced.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    })
    client.on('notification', (message) => this.hooks.onNotify(message.payload ?? ''))
    client.on('error', () => undefined)
    client.on('end', () => {
      if (this.client !== client) return
      this.client = undefined
      this.lostConnection(new Error('connection ended'))
    })
    try {
      await client.connect()
      await client.query(`LISTEN ${this.opts.channel}`)
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
      this.opts.log.warn(
        { event: `${this.opts.name}_listen_lost`, err },
        `${this.opts.name}: no LISTEN connection; reconnecting (${this.opts.gap})`,
      )
      this.hooks.onLost?.()
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
          this.opts.log.info({ event: `${this.opts.name}_listen_restored` }, `${this.opts.name}: LISTEN connection restored`)
          this.hooks.onRestored?.()
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
