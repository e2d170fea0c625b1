// The outbox publisher (src/events/publisher.ts) delivering security events to Redis,
// when EVENTS_ENABLED (by default: when REDIS_URL is set). Without it events stay in
// the outbox for services reading sp_events_after (docs/events.md, "Reading without Redis").
// It starts with the app and stops on close, before the pool ends.
import fp from 'fastify-plugin'
import type { Config } from '../config.ts'
import { createPublisher, type Publisher } from '../events/publisher.ts'
import { createRedisSink, type EventSink } from '../events/redis-sink.ts'

export interface EventsPluginOptions {
  events: Config['events']
  /** The service's connection string: LISTEN runs on a connection of its own. */
  listenUrl: string
  listenSsl: boolean
  /** A sink other than Redis (tests); the default is createRedisSink. */
  sink?: EventSink
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The running publisher; undefined when events are not delivered by this instance. */
    eventsPublisher: Publisher | undefined
  }
}

export default fp<EventsPluginOptions>(
  async (app, opts) => {
    const { events } = opts
    if (!events.enabled || events.redisUrl === undefined) {
      app.decorate('eventsPublisher', undefined)
      return
    }
    const sink =
      opts.sink ??
      (await createRedisSink({ url: events.redisUrl, stream: events.stream, channel: events.channel, streamMaxLen: events.streamMaxLen }))
    const publisher = createPublisher({
      pool: app.db,
      sink,
      listenUrl: opts.listenUrl,
      listenSsl: opts.listenSsl,
      pollMs: events.pollMs,
      batchSize: events.batchSize,
      log: app.log,
      onPublished: (count) => app.metrics.eventsPublished(count),
    })
    app.decorate('eventsPublisher', publisher)
    app.addHook('onReady', () => publisher.start())
    app.addHook('onClose', async () => {
      await publisher.stop()
      await sink.close()
    })
  },
  { name: 'events', dependencies: ['db', 'metrics'] },
)
