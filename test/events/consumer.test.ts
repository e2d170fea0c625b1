// examples/consumer.ts, the consumer docs/integrating.md points to: it reads what the
// service published through a consumer group, acknowledges every entry, skips a
// re-published event by id, and its command line prints one line per event.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import t from 'tap'
import { runConsumer, type SecurityEvent } from '../../examples/consumer.ts'
import { projectPath } from '../../src/paths.ts'
import { createTestDatabase } from '../helpers/db.ts'
import { REDIS_URL } from '../helpers/redis.ts'
import { eventNames, instance, outbox, until, userActivity } from './fixtures.ts'

const run = promisify(execFile)

t.test('the example consumer reads and acknowledges what the service published, once per event', async (t) => {
  const redis = new Redis(REDIS_URL)
  t.teardown(() => redis.quit())
  const names = eventNames(t)
  const db = await createTestDatabase(t)
  const a = await instance(t, db, { REDIS_URL, EVENTS_STREAM: names.stream, EVENTS_CHANNEL: names.channel })
  await userActivity(a.app, 'ada@example.com')
  const written = await outbox(db)
  await until('published', async () => (await redis.xlen(names.stream)) === written.length)

  // A re-publish after a crash: the same event in a second entry.
  const [firstEntry] = await redis.xrange(names.stream, '-', '+', 'COUNT', 1)
  await redis.xadd(names.stream, '*', ...(firstEntry?.[1] ?? []))

  const handled: SecurityEvent[] = []
  const options = { redisUrl: REDIS_URL, stream: names.stream, group: 'audit-service', blockMs: 200, untilIdle: true }
  const result = await runConsumer({ ...options, consumer: 'one', handle: (e) => void handled.push(e) })
  t.same(
    handled.map((e) => e.id),
    written.map((e) => e.id),
    'every event handled once, in order',
  )
  t.same(result, { handled: written.length, duplicates: 1 }, 'the re-published entry was recognised by its id')
  const pending = (await redis.xpending(names.stream, 'audit-service')) as [number, ...unknown[]]
  t.equal(pending[0], 0, 'every entry acknowledged')
  t.same(
    await runConsumer({ ...options, consumer: 'two', handle: () => void t.fail('handled twice') }),
    { handled: 0, duplicates: 0 },
    'the group has nothing left',
  )

  // The command line, as a reader of docs/integrating.md runs it: a group of its own sees everything.
  const { stdout } = await run(
    process.execPath,
    ['--import', 'tsx', projectPath('examples/consumer.ts'), 'cli-group', 'cli', '--until-idle'],
    {
      env: { ...process.env, REDIS_URL, EVENTS_STREAM: names.stream },
      timeout: 30_000,
    },
  )
  const lines = stdout.trim().split('\n')
  t.equal(lines.length, written.length, 'one line per event (the duplicate is not printed)')
  t.match(lines[0], new RegExp(`user\\.created id=${written[0]?.id ?? ''} `), 'the line names the type and the id')
})
