import { spawnSync } from 'node:child_process'
import t from 'tap'
import { nodeArgs } from '../helpers/child.ts'
import { withClient } from '../../src/db/bootstrap.ts'
import { runCli } from '../../src/cli/db.ts'
import { migrationNames } from '../../src/db/migrate.ts'
import { readRun, TEST_PASSWORDS } from '../helpers/cluster.ts'

function cliEnv(database: string): NodeJS.ProcessEnv {
  const run = readRun()
  return {
    DATABASE_ADMIN_URL: run.adminUrl,
    POSTGRES_DB: database,
    AUTH_API_DB_PASSWORD: TEST_PASSWORDS.authApi,
    WRITE_API_DB_PASSWORD: TEST_PASSWORDS.writeApi,
    READONLY_DB_PASSWORD: TEST_PASSWORDS.readonly,
  }
}

async function cli(args: string[], env: NodeJS.ProcessEnv) {
  const out: string[] = []
  const err: string[] = []
  const code = await runCli(args, env, { out: (l) => out.push(l), err: (l) => err.push(l) })
  return { code, out: out.join('\n'), err: err.join('\n') }
}

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
  t.same(parsed.applied.map((m) => m.name), names)
  t.same(parsed.pending, [])

  const rollback = await cli(['rollback', '1'], env)
  t.match(rollback.out, `rolled back: ${names.at(-1) ?? ''}`)
  const after = await cli(['status'], env)
  t.match(after.out, new RegExp(`pending\\s+${names.at(-1) ?? ''}`))

  const migrate = await cli(['migrate'], env)
  t.match(migrate.out, `applied: ${names.at(-1) ?? ''}`)
  t.match((await cli(['migrate'], env)).out, 'nothing to migrate')
})

t.test('operator mistakes: usage and one-line errors', async (t) => {
  const env = cliEnv('whatever')
  t.equal((await cli([], env)).code, 1, 'no command prints usage and fails')
  await t.rejects(cli(['frobnicate'], env), /unknown command "frobnicate"/)
  await t.rejects(cli(['rollback', 'x'], env), /positive count/)
  await t.rejects(cli(['status'], { ...env, DATABASE_URL: 'postgresql://u@127.0.0.1:1/x', DATABASE_ADMIN_URL: '' }), /DATABASE_ADMIN_URL is required/)
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
