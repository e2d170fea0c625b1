import { spawnSync } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { nodeArgs } from '../helpers/child.ts'
import { withClient, withDatabase as withDb } from '../../src/db/admin-connection.ts'
import { MIGRATIONS_DIR, migrationNames } from '../../src/db/migrate.ts'
import { cli, cliEnv } from '../helpers/cli.ts'
import { readRun } from '../helpers/cluster.ts'

t.test('init → status → rollback → status → migrate', async (t) => {
  const run = readRun()
  const database = `${run.prefix}_cli`
  t.teardown(() => withClient(run.adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)))
  const env = cliEnv(database)
  const names = await migrationNames()

  const init = await cli(['init', '--json'], env)
  t.equal(init.code, 0)
  t.same(JSON.parse(init.out), { database, applied: names })

  const again = await cli(['init'], env)
  t.match(again.out, /0 migration\(s\) applied/, 'init twice is harmless')

  const status = await cli(['status', '--json'], env)
  const parsed = JSON.parse(status.out) as { applied: { name: string }[]; pending: string[] }
  t.same(
    parsed.applied.map((m) => m.name),
    names,
  )
  t.same(parsed.pending, [])

  const rollback = await cli(['rollback', '1'], env)
  t.match(rollback.out, `rolled back: ${names.at(-1) ?? ''}`)
  const after = await cli(['status'], env)
  t.match(after.out, new RegExp(`pending\\s+${names.at(-1) ?? ''}`))

  // --no-backup: this server's major may be newer than the machine's pg_dump (backup.test.ts).
  const migrate = await cli(['migrate', '--no-backup'], env)
  t.match(migrate.out, `applied: ${names.at(-1) ?? ''}`)
  t.match((await cli(['migrate'], env)).out, 'nothing to migrate')
})

t.test('operator mistakes: usage and one-line errors', async (t) => {
  const env = cliEnv('whatever')
  t.equal((await cli([], env)).code, 1, 'no command prints usage and fails')
  await t.rejects(cli(['frobnicate'], env), /unknown command "frobnicate"/)
  await t.rejects(cli(['rollback', 'x'], env), /positive whole number/)
  await t.rejects(
    cli(['status'], { ...env, DATABASE_URL: 'postgresql://u@127.0.0.1:1/x', DATABASE_ADMIN_URL: '' }),
    /DATABASE_ADMIN_URL is required/,
  )
})

t.test('the real command prints one line and exits 1 on an unreachable server', async (t) => {
  const result = spawnSync(process.execPath, nodeArgs('src/cli/db.ts', 'status'), {
    env: { ...process.env, DATABASE_ADMIN_URL: 'postgresql://postgres@127.0.0.1:1/postgres', TEST_DATABASE_URL: '' },
    encoding: 'utf8',
  })
  t.equal(result.status, 1)
  t.match(result.stderr, /^activity-db: cannot reach the database server/)
  t.equal(result.stderr.trim().split('\n').length, 1, 'no stack trace')
})

t.test('status reports server, size and a passing role check; migrate --dry-run changes nothing', async (t) => {
  const run = readRun()
  const database = `${run.prefix}_cli2`
  t.teardown(() => withClient(run.adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)))
  const env = cliEnv(database)
  await cli(['init'], env)
  const status = JSON.parse((await cli(['status', '--json'], env)).out) as {
    serverVersion: string
    databaseSizeBytes: number
    roles: { role: string; ok: boolean; problems: string[] }[]
  }
  t.match(status.serverVersion, /^1[5-9]/)
  t.ok(status.databaseSizeBytes > 0)
  t.same(
    status.roles.map((r) => [r.role, r.ok, r.problems]),
    [
      ['activity_owner', true, []],
      ['auth_api_user', true, []],
      ['write_api_user', true, []],
      ['activity_readonly', true, []],
    ],
  )
  const human = (await cli(['status'], env)).out
  t.match(human, /role\s+auth_api_user: ok/)

  // A role that gained a table privilege is reported.
  await withClient(withDb(run.adminUrl, database), (c) => c.query('GRANT SELECT ON activity.users TO auth_api_user'))
  const broken = JSON.parse((await cli(['status', '--json'], env)).out) as typeof status
  t.same(broken.roles.find((r) => r.role === 'auth_api_user')?.problems, ['has privileges on 1 table(s)'])

  await cli(['rollback'], env)
  const dry = await cli(['migrate', '--dry-run'], env)
  // The rollback undid the newest migration: the dry run shows exactly that file's SQL.
  const newest = (await migrationNames()).at(-1) ?? '?'
  t.match(dry.out, `-- dry run: would apply ${newest}`)
  const newestSql = await readFile(path.join(MIGRATIONS_DIR, `${newest}.sql`), 'utf8')
  const firstStatement = newestSql.split('\n').find((line) => /^[A-Z]/.test(line)) ?? '?'
  t.ok(dry.out.includes(firstStatement), `the dry run shows ${firstStatement}`)
  const after = JSON.parse((await cli(['status', '--json'], env)).out) as { pending: string[] }
  t.equal(after.pending.length, 1, 'still pending after the dry run')
  const applied = await cli(['migrate', '--no-backup'], env)
  t.match(applied.out, /^applied: /)
})

t.test('guards: production refuses seed and reset; reset and restore want --yes; create names a file', async (t) => {
  const env = cliEnv('whatever')
  await t.rejects(cli(['seed'], { ...env, NODE_ENV: 'production' }), /seed is refused when NODE_ENV=production/)
  await t.rejects(cli(['reset', '--yes'], { ...env, NODE_ENV: 'production' }), /reset is refused/)
  await t.rejects(
    cli(['init'], { ...env, NODE_ENV: 'production', AUTH_API_DB_PASSWORD: 'auth_api_dev_password' }),
    /init refuses to set development passwords in production: AUTH_API_DB_PASSWORD is a development default/,
  )
  await t.rejects(
    cli(['status'], { ...env, NODE_ENV: 'production', DATABASE_ADMIN_URL: '' }),
    /DATABASE_ADMIN_URL is required \(the embedded database/,
  )
  await t.rejects(cli(['reset'], env), /add --yes/)
  await t.rejects(cli(['restore', 'x.dump'], env), /add --yes/)
  await t.rejects(cli(['restore'], env), /needs a backup file/)
  await t.rejects(cli(['cleanup-backups'], env), /exactly one of --keep/)
  await t.rejects(cli(['backup', '--bogus'], env), /Unknown option/)
  await t.rejects(cli(['create', 'Bad Name!'], env), /lowercase letters/)
})

t.test('create writes a migration with Up and Down sections after the newest one', async (t) => {
  // In a copy of the migrations: the real directory is read by tests running in parallel.
  const { cp, mkdtemp, readFile, rm } = await import('node:fs/promises')
  const os = await import('node:os')
  const path = await import('node:path')
  const { MIGRATIONS_DIR } = await import('../../src/db/migrate.ts')
  const { createMigration } = await import('../../src/cli/db.ts')
  const dir = await mkdtemp(path.join(os.tmpdir(), 'activity-create-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await cp(MIGRATIONS_DIR, dir, { recursive: true })
  const before = await migrationNames(dir)
  let file = ''
  await createMigration('add-test-thing', (_h, m) => (file = (m as { file: string }).file), dir)
  const text = await readFile(file, 'utf8')
  t.match(text, /^-- Up Migration/m)
  t.match(text, /^-- Down Migration/m)
  const after = await migrationNames(dir)
  t.equal(after.at(-1), path.basename(file, '.sql'), 'sorts last')
  t.equal(after.length, before.length + 1)
})
