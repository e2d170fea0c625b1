// The service's own cleanup timer, on a real database as auth_api_user.
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import { loadConfig } from '../../src/config.ts'
import { withClient } from '../../src/db/admin-connection.ts'
import cleanupPlugin from '../../src/plugins/cleanup.ts'
import dbPlugin from '../../src/plugins/db.ts'
import { createTestDatabase } from '../helpers/db.ts'

async function appWithCleanup(t: Test, url: string, intervalMs: number, lines: string[]) {
  const app = Fastify({
    logger: { level: 'debug', stream: { write: (line: string) => void lines.push(line) } },
  })
  await app.register(dbPlugin, { pool: loadConfig({ NODE_ENV: 'test' }).database.pool, connectionString: url })
  await app.register(cleanupPlugin, { intervalMs, retentionHours: 1, auditRetentionDays: 30 })
  await app.ready()
  t.teardown(() => app.close())
  return app
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  // A bound so a broken timer fails the test instead of hanging it; not a timing assertion.
  const deadline = Date.now() + 20_000
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

t.test('instances sharing a database clean up on their interval, one at a time, and log the counts', async (t) => {
  const db = await createTestDatabase(t)
  const seedExpired = () =>
    withClient(db.adminUrl, async (c) => {
      await c.query(`INSERT INTO activity.users (email, hashed_password, created_at)
                     VALUES ('stale' || gen_random_uuid() || '@example.com', '$argon2id$x', now() - interval '2 hours')`)
    })
  await seedExpired()
  const logs: string[][] = [[], []]
  await appWithCleanup(t, db.url, 20, logs[0] ?? [])
  await appWithCleanup(t, db.url, 20, logs[1] ?? [])
  const stale = async () =>
    withClient(
      db.adminUrl,
      async (c) =>
        (await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM activity.users WHERE email LIKE 'stale%'`)).rows[0]?.n ?? -1,
    )
  await until('the first cleanup', async () => (await stale()) === 0)
  await seedExpired()
  await until('the next tick', async () => (await stale()) === 0)
  const all = [...(logs[0] ?? []), ...(logs[1] ?? [])].map((l) => JSON.parse(l) as { msg: string; level: number })
  const done = all.filter((l) =>
    /^cleanup: refresh_tokens \d+, email_tokens \d+, login_attempts \d+, audit_logs \d+, trusted_devices \d+, mail_budget \d+, oauth_states \d+, oauth_codes \d+, unverified_users \d+$/.test(
      l.msg,
    ),
  )
  t.ok(done.length >= 2, 'each run logs its counts')
  t.notOk(
    all.some((l) => l.msg === 'cleanup failed'),
    'no run failed, even when both instances ticked at once',
  )
  const audit = await withClient(db.adminUrl, (c) =>
    c.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM activity.audit_logs WHERE action = 'cleanup' AND details->>'item' = 'unverified_users'`,
    ),
  )
  t.ok((audit.rows[0]?.n ?? 0) >= 2, 'the procedures audited the runs')
})

t.test('a failing run is logged and the timer keeps going; 0 turns it off', async (t) => {
  const db = await createTestDatabase(t)
  const lines: string[] = []
  // A retention the procedure refuses (AU007): every run fails.
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => void lines.push(line) } } })
  await app.register(dbPlugin, { pool: loadConfig({ NODE_ENV: 'test' }).database.pool, connectionString: db.url })
  await app.register(cleanupPlugin, { intervalMs: 20, retentionHours: 0, auditRetentionDays: 30 })
  await app.ready()
  await until('two failed runs', async () => lines.filter((l) => l.includes('"cleanup failed"')).length >= 2)
  await app.close()

  const quiet: string[] = []
  await appWithCleanup(t, db.url, 0, quiet)
  await new Promise((r) => setTimeout(r, 100))
  t.same(
    quiet.filter((l) => l.includes('cleanup')),
    [],
    'interval 0: no run at all',
  )
})
