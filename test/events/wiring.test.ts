// How the publisher is switched on, woken and stopped: the EVENTS_* settings, no
// publisher without Redis, LISTEN restored after its connection is cut, polling behind
// a transaction pooler (where LISTEN cannot work), stop() waiting for the batch in
// flight, and the cleanup timer removing published events past their retention.
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import { loadConfig } from '../../src/config.ts'
import { withClient } from '../../src/db/admin-connection.ts'
import { createPool } from '../../src/db/pool.ts'
import { createPublisher } from '../../src/events/publisher.ts'
import type { EventSink } from '../../src/events/redis-sink.ts'
import cleanupPlugin from '../../src/plugins/cleanup.ts'
import dbPlugin from '../../src/plugins/db.ts'
import { createTestDatabase } from '../helpers/db.ts'
import { startPgBouncer } from '../helpers/pgbouncer.ts'
import { REDIS_URL } from '../helpers/redis.ts'
import { eventNames, instance, outbox, streamEvents, until, userActivity } from './fixtures.ts'

t.test('EVENTS_* settings: on with REDIS_URL by default, refused on without it', async (t) => {
  const off = loadConfig({ NODE_ENV: 'test' }).events
  t.same(
    off,
    {
      enabled: false,
      redisUrl: undefined,
      stream: 'activity:events',
      channel: 'activity:events',
      streamMaxLen: 100_000,
      pollMs: 1000,
      batchSize: 100,
      retentionHours: 168,
    },
    'defaults; off without REDIS_URL',
  )
  t.equal(loadConfig({ NODE_ENV: 'test', REDIS_URL }).events.enabled, true, 'on when REDIS_URL is set')
  t.equal(loadConfig({ NODE_ENV: 'test', REDIS_URL, EVENTS_ENABLED: 'false' }).events.enabled, false, 'unless switched off')
  t.throws(() => loadConfig({ NODE_ENV: 'test', EVENTS_ENABLED: 'true' }), /EVENTS_ENABLED=true needs REDIS_URL/)
  t.throws(() => loadConfig({ NODE_ENV: 'test', EVENTS_BATCH_SIZE: '0' }), /EVENTS_BATCH_SIZE/)
})

t.test('without Redis no publisher runs: events stay in the outbox', async (t) => {
  const db = await createTestDatabase(t)
  const a = await instance(t, db, {})
  t.equal(a.app.eventsPublisher, undefined)
  await userActivity(a.app, 'ada@example.com')
  const rows = await outbox(db)
  t.ok(rows.length > 0 && rows.every((e) => !e.published), 'written, not published')
})

t.test('a cut LISTEN connection is restored, with one line each way, and NOTIFY wakes the publisher again', async (t) => {
  const db = await createTestDatabase(t)
  const names = eventNames(t)
  const a = await instance(t, db, { REDIS_URL, EVENTS_STREAM: names.stream, EVENTS_CHANNEL: names.channel, EVENTS_POLL_MS: '60000' })
  const cut = await withClient(db.adminUrl, async (c) => {
    const { rowCount } = await c.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'activity-auth-events'`,
    )
    return rowCount
  })
  t.equal(cut, 1, 'one LISTEN connection, cut')
  await until('LISTEN restored', () => a.lines('events_listen_restored').length === 1)
  t.equal(a.lines('events_listen_lost').length, 1, 'one line for the loss')
  await userActivity(a.app, 'ada@example.com')
  const written = await outbox(db)
  const redis = new Redis(REDIS_URL)
  t.teardown(() => redis.quit())
  // The poll is a minute away: only a notification on the new connection can deliver these.
  await until('delivered', async () => (await redis.xlen(names.stream)) === written.length)
  t.pass('delivered through the restored LISTEN')
})

t.test('stop() waits for the batch in flight, which then commits', async (t) => {
  const db = await createTestDatabase(t)
  const writer = await instance(t, db, {})
  await userActivity(writer.app, 'ada@example.com')
  const pool = createPool(loadConfig({ NODE_ENV: 'test' }).database.pool, db.url)
  t.teardown(() => pool.end())
  let release = () => {}
  let entered = () => {}
  const inPublish = new Promise<void>((resolve) => (entered = resolve))
  const slow: EventSink = {
    publish: () =>
      new Promise<void>((resolve) => {
        release = resolve
        entered()
      }),
    close: async () => undefined,
  }
  const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined }
  const publisher = createPublisher({ pool, sink: slow, pollMs: 60_000, batchSize: 1000, log: quiet })
  await publisher.start()
  await inPublish
  let stopped = false
  const stopping = publisher.stop().then(() => (stopped = true))
  await new Promise((r) => setTimeout(r, 100))
  t.notOk(stopped, 'still waiting while the sink publishes')
  release()
  await stopping
  t.ok(
    (await outbox(db)).every((e) => e.published),
    'the batch in flight was marked and committed',
  )
})

t.test('behind PgBouncer in transaction mode: no LISTEN, the poll delivers', async (t) => {
  const db = await createTestDatabase(t)
  const bouncer = await startPgBouncer(t)
  const names = eventNames(t)
  const a = await instance(
    t,
    { ...db, url: bouncer.through(db.url) },
    {
      REDIS_URL,
      EVENTS_STREAM: names.stream,
      EVENTS_CHANNEL: names.channel,
      EVENTS_POLL_MS: '100',
      DATABASE_STATEMENT_CACHE: 'off',
    },
  )
  t.equal(a.app.eventsPublisher?.wakeUp, 'poll')
  t.equal(a.lines('events_listen_unavailable').length, 1, 'says why, once')
  await userActivity(a.app, 'ada@example.com')
  const written = await outbox(db)
  const redis = new Redis(REDIS_URL)
  t.teardown(() => redis.quit())
  await until('delivered by the poll', async () => (await redis.xlen(names.stream)) === written.length)
  t.same(
    (await streamEvents(redis, names.stream)).map((e) => e.id),
    written.map((e) => e.id),
    'in order, once each',
  )
  t.same(a.lines('events_publish_failed'), [], 'no batch failed on the pooler (unnamed statements, as the pool has them)')
})

t.test('the cleanup timer removes published events past EVENTS_RETENTION_HOURS, not unpublished ones', async (t) => {
  const db = await createTestDatabase(t)
  const writer = await instance(t, db, {})
  await userActivity(writer.app, 'ada@example.com')
  const rows = await outbox(db)
  const [old, recent, unpublished] = rows.map((e) => e.id)
  await withClient(db.adminUrl, async (c) => {
    await c.query(`UPDATE activity.events SET published_at = now() - interval '3 hours' WHERE id = $1`, [old])
    await c.query(`UPDATE activity.events SET published_at = now() WHERE id = $1`, [recent])
  })
  const lines: string[] = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => void lines.push(line) } } })
  t.teardown(() => app.close())
  await app.register(dbPlugin, { pool: loadConfig({ NODE_ENV: 'test' }).database.pool, connectionString: db.url })
  await app.register(cleanupPlugin, {
    intervalMs: 20,
    retentionHours: 1,
    auditRetentionDays: 30,
    eventsRetention: { hours: 2, unpublishedToo: false },
  })
  await app.ready()
  await until('the old published event removed', async () => !(await outbox(db)).some((e) => e.id === old))
  const left = (await outbox(db)).map((e) => e.id)
  t.ok(left.includes(recent ?? ''), 'a recently published event stays')
  t.ok(left.includes(unpublished ?? ''), 'an unpublished event stays')
  await until('the run logged', () => lines.some((l) => /"msg":"cleanup: .*, events 1"/.test(l)))
  t.pass('the count is in the cleanup line')
})
