// A Redis this test starts on a free port and kills (SIGKILL) mid-run: requests go on,
// the events written meanwhile wait in the outbox (the lag shows in /metrics, one warn
// line for the outage), and once Redis is back the backlog is delivered in order,
// each event once, with one line saying so.
import t from 'tap'
import { createTestDatabase } from '../helpers/db.ts'
import { freePort } from '../helpers/net.ts'
import {
  ascending,
  eventNames,
  instance,
  metric,
  outbox,
  perUser,
  quietRedis,
  startRedis,
  streamEvents,
  until,
  userActivity,
} from './fixtures.ts'

t.test('Redis killed mid-run: nothing lost, the backlog goes out in order after the restart', async (t) => {
  const port = await freePort()
  let server = await startRedis(t, port)
  const names = eventNames(t, server.url)
  const db = await createTestDatabase(t)
  const a = await instance(t, db, { REDIS_URL: server.url, EVENTS_STREAM: names.stream, EVENTS_CHANNEL: names.channel })

  // (a) Redis up: delivered.
  await userActivity(a.app, 'before@example.com')
  const before = await outbox(db)
  const redis = quietRedis(server.url)
  await redis.connect()
  await until('the first events in the stream', async () => (await redis.xlen(names.stream)) === before.length)
  redis.disconnect()

  // (b) Redis killed: the service still answers, events stay in the outbox.
  await server.kill('SIGKILL')
  await userActivity(a.app, 'during1@example.com')
  await userActivity(a.app, 'during2@example.com')
  const backlog = (await outbox(db)).filter((e) => !e.published)
  t.ok(backlog.length >= 6, `events wait in the outbox (${backlog.length})`)
  await until('the outage noticed', () => a.lines('events_publish_failed').length > 0)
  t.equal(await metric(a.app, 'auth_events_outbox_lag'), backlog.length, 'the lag shows in /metrics')
  t.ok(((await metric(a.app, 'auth_events_outbox_oldest_seconds')) ?? -1) >= 0, 'and the age of the oldest')
  await new Promise((r) => setTimeout(r, 1500)) // several retries, still one line
  t.equal(a.lines('events_publish_failed').length, 1, 'one warn line for the outage, however many retries fail')
  t.equal((await outbox(db)).filter((e) => !e.published).length, backlog.length, 'nothing marked published while Redis is down')

  // (c) Redis restarted on the same port (empty: it persists nothing): the backlog goes out.
  server = await startRedis(t, port)
  const after = quietRedis(server.url)
  await after.connect()
  t.teardown(() => after.disconnect())
  await until('the backlog in the new stream', async () => (await after.xlen(names.stream)) >= backlog.length)
  await until('all marked published', async () => (await outbox(db)).every((e) => e.published))
  const stream = await streamEvents(after, names.stream)
  t.same(
    stream.map((e) => e.id),
    backlog.map((e) => e.id),
    'exactly the backlog, each once, in the order it was written',
  )
  for (const [user, order] of perUser(stream)) t.ok(ascending(order), `${user}'s events in order`)
  t.equal(a.lines('events_publish_resumed').length, 1, "one line when it's back")
  t.equal(await metric(a.app, 'auth_events_outbox_lag'), 0, 'no lag left')
  t.equal(await metric(a.app, 'auth_events_published_total'), before.length + backlog.length)
})
