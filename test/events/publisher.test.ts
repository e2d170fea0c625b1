// The outbox publisher against the machine's Redis: events reach the stream and the
// channel once each and in per-user order, woken by NOTIFY (the poll is set to a
// minute, so it cannot be what delivered them); two instances on one database do not
// duplicate; a publisher that dies between publish and mark sends that batch again
// and nothing else.
import { Redis } from 'ioredis'
import t from 'tap'
import { loadConfig } from '../../src/config.ts'
import { withClient } from '../../src/db/admin-connection.ts'
import { createPool } from '../../src/db/pool.ts'
import { createPublisher } from '../../src/events/publisher.ts'
import { createRedisSink, type EventSink } from '../../src/events/redis-sink.ts'
import { createTestDatabase } from '../helpers/db.ts'
import { REDIS_URL } from '../helpers/redis.ts'
import { ascending, eventNames, instance, metric, outbox, perUser, streamEvents, subscribe, until, userActivity } from './fixtures.ts'

const redis = new Redis(REDIS_URL)
t.teardown(() => redis.quit())

const EVERY_MINUTE = '60000'

t.test('events reach the stream and the channel once each, in per-user order, woken by NOTIFY', async (t) => {
  const db = await createTestDatabase(t)
  const names = eventNames(t)
  const channel = await subscribe(t, names.channel)
  const a = await instance(t, db, {
    REDIS_URL,
    EVENTS_STREAM: names.stream,
    EVENTS_CHANNEL: names.channel,
    EVENTS_POLL_MS: EVERY_MINUTE,
  })
  t.equal(a.app.eventsPublisher?.wakeUp, 'listen', 'woken by LISTEN on a direct connection')
  t.same(await outbox(db), [], 'nothing to publish at start')

  await Promise.all(['ada', 'bob', 'cy'].map((name) => userActivity(a.app, `${name}@example.com`)))
  const written = await outbox(db)
  t.ok(written.length >= 9, `the activity wrote events (${written.length})`)

  await until('every event in the stream and on the channel', async () => {
    const inStream = await redis.xlen(names.stream)
    return inStream >= written.length && channel.length >= written.length
  })
  const stream = await streamEvents(redis, names.stream)
  const ids = written.map((e) => e.id)
  t.same(stream.map((e) => e.id).sort(), [...ids].sort(), 'the stream holds every event of the outbox, each once')
  t.same(channel.map((e) => e.id).sort(), [...ids].sort(), 'the channel carried every event, each once')
  for (const [user, order] of perUser(stream)) t.ok(ascending(order), `stream: ${user}'s events in the order they happened`)
  for (const [user, order] of perUser(channel)) t.ok(ascending(order), `channel: ${user}'s events in the order they happened`)
  t.same(perUser(stream), perUser(written), 'per user, the same sequence as the outbox')

  const first = stream[0]
  t.match(first, { id: String, type: String, version: Number, occurredAt: String, payload: Object }, 'the envelope')
  t.ok(!Number.isNaN(Date.parse(first?.occurredAt ?? '')), 'occurredAt is a timestamp')
  const entry = (await redis.xrange(names.stream, '-', '+', 'COUNT', 1))[0]?.[1] ?? []
  t.same([entry[0], entry[2], entry[4]], ['id', 'type', 'event'], 'stream fields: id, type, event')
  t.equal(entry[1], first?.id)

  await until('all marked published', async () => (await outbox(db)).every((e) => e.published))
  t.equal(await metric(a.app, 'auth_events_published_total'), written.length, 'auth_events_published_total')
  t.equal(await metric(a.app, 'auth_events_outbox_lag'), 0, 'auth_events_outbox_lag')
  t.equal(await metric(a.app, 'auth_events_outbox_oldest_seconds'), 0, 'auth_events_outbox_oldest_seconds')

  // Close stops the publisher before the pool ends: no batch fails on a closed pool.
  await userActivity(a.app, 'dee@example.com')
  await a.app.close()
  t.same(a.lines('events_publish_failed'), [], 'no failure, through close')
})

t.test('two instances on one database publish every event once', async (t) => {
  const db = await createTestDatabase(t)
  const names = eventNames(t)
  const env = {
    REDIS_URL,
    EVENTS_STREAM: names.stream,
    EVENTS_CHANNEL: names.channel,
    EVENTS_POLL_MS: EVERY_MINUTE,
    EVENTS_BATCH_SIZE: '2',
  }
  const a = await instance(t, db, env)
  const b = await instance(t, db, env)
  // Both are woken by every commit; small batches make them contend for the outbox.
  await Promise.all(Array.from({ length: 8 }, (_, i) => userActivity((i % 2 === 0 ? a : b).app, `user${i}@example.com`)))
  const written = await outbox(db)
  await until('every event in the stream', async () => (await redis.xlen(names.stream)) >= written.length)
  await until('all marked published', async () => (await outbox(db)).every((e) => e.published))
  const stream = await streamEvents(redis, names.stream)
  t.equal(stream.length, written.length, 'no duplicate')
  t.same(stream.map((e) => e.id).sort(), written.map((e) => e.id).sort(), 'no event missing')
  t.same(perUser(stream), perUser(written), 'per-user order kept across instances')
  const published = (await metric(a.app, 'auth_events_published_total')) ?? 0
  const publishedB = (await metric(b.app, 'auth_events_published_total')) ?? 0
  t.equal(published + publishedB, written.length, 'the two counters add up to the events, once each')
})

t.test('a publisher that dies between publish and mark sends that batch again, and only that one', async (t) => {
  const db = await createTestDatabase(t)
  const names = eventNames(t)
  // Write events with no publisher running.
  const writer = await instance(t, db, { EVENTS_ENABLED: 'false' })
  await userActivity(writer.app, 'ada@example.com')
  await userActivity(writer.app, 'bob@example.com')
  const written = await outbox(db)
  t.ok(written.length > 4, 'a backlog of several batches')

  const pool = createPool(loadConfig({ NODE_ENV: 'test' }).database.pool, db.url)
  t.teardown(() => pool.end())
  const redisSink = await createRedisSink({ url: REDIS_URL, ...names, streamMaxLen: 1000 })
  t.teardown(() => redisSink.close())
  const batchSize = 2
  let calls = 0
  let firstBatch: string[] = []
  // Published, then the process "dies": its connection is cut before the mark.
  const crashing: EventSink = {
    async publish(events) {
      await redisSink.publish(events)
      if (++calls > 1) return
      firstBatch = events.map((e) => e.id)
      await withClient(db.adminUrl, (c) =>
        c.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = current_database() AND application_name = 'activity-auth' AND state = 'idle in transaction'`),
      )
    },
    close: async () => undefined,
  }
  const warnings: unknown[] = []
  const publisher = createPublisher({
    pool,
    sink: crashing,
    pollMs: 60_000,
    batchSize,
    log: { debug: () => undefined, info: () => undefined, warn: (o: unknown) => void warnings.push(o) },
    retry: { minMs: 10, maxMs: 100 },
  })
  t.teardown(() => publisher.stop())
  await publisher.start()
  await until('all marked published', async () => (await outbox(db)).every((e) => e.published))

  const stream = (await streamEvents(redis, names.stream)).map((e) => e.id)
  t.equal(firstBatch.length, batchSize, 'the lost batch')
  t.same(stream.slice(0, batchSize), firstBatch, 'it went out first…')
  t.same(
    stream.slice(batchSize),
    written.map((e) => e.id),
    '…and again after the crash, then everything else once, in order',
  )
  t.equal(warnings.length, 2, 'one line for the failure, one for the recovery')
})

t.test('a sink that fails after publishing: the batch is retried, nothing after it goes out first', async (t) => {
  const db = await createTestDatabase(t)
  const writer = await instance(t, db, { EVENTS_ENABLED: 'false' })
  await userActivity(writer.app, 'ada@example.com')
  const written = (await outbox(db)).map((e) => e.id)

  const pool = createPool(loadConfig({ NODE_ENV: 'test' }).database.pool, db.url)
  t.teardown(() => pool.end())
  const seen: string[][] = []
  let failures = 2
  const flaky: EventSink = {
    async publish(events) {
      seen.push(events.map((e) => e.id))
      if (failures-- > 0) throw new Error('redis: connection refused')
    },
    close: async () => undefined,
  }
  const publisher = createPublisher({
    pool,
    sink: flaky,
    pollMs: 60_000,
    batchSize: 1,
    log: { debug: () => undefined, info: () => undefined, warn: () => undefined },
    retry: { minMs: 10, maxMs: 50 },
  })
  t.teardown(() => publisher.stop())
  await publisher.start()
  await until('all marked published', async () => (await outbox(db)).every((e) => e.published))
  t.same(seen.flat(), [written[0], written[0], ...written], 'the first event three times, then the rest in order')
})
