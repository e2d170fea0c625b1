// sql/schema.sql is what the migrations build (scripts/schema-dump.ts). The dump
// always runs on the machine's PostgreSQL 15 (SCHEMA_DUMP_ADMIN_URL, default
// 127.0.0.1:5432), whatever server this run uses: pg_dump 15 cannot read the
// embedded 16, and one server keeps the file byte-stable. Scratch databases carry
// the run's prefix, so parallel files and runs never share one.
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { runSchemaDump, SCHEMA_FILE, schemaDiff } from '../../scripts/schema-dump.ts'
import { readRun } from '../helpers/cluster.ts'

const run = readRun()

async function schemaDump(t: Test, args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = []
  const err: string[] = []
  const database = `${run.prefix}_schema_${randomBytes(4).toString('hex')}`
  const code = await runSchemaDump([...args, '--database', database], process.env, {
    out: (line) => out.push(line),
    err: (line) => err.push(line),
  })
  return { code, out: out.join('\n'), err: err.join('\n') }
}

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'activity-schema-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

t.test('sql/schema.sql is the dump of the migrations', async (t) => {
  const file = path.join(await tempDir(t), 'schema.sql')
  const dumped = await schemaDump(t, ['--out', file])
  t.equal(dumped.code, 0, `the dump ran ${dumped.err}`)
  const diff = schemaDiff(await readFile(SCHEMA_FILE, 'utf8'), await readFile(file, 'utf8'))
  t.same(diff, [], 'sql/schema.sql differs from what the migrations build: run npm run db:schema and commit it')
})

t.test('--check exits 1 on a stale file and names what changed', async (t) => {
  const file = path.join(await tempDir(t), 'schema.sql')
  const committed = await readFile(SCHEMA_FILE, 'utf8')
  const stale = committed.replace(/^COMMENT ON FUNCTION activity\.sp_signup\(.*$/m, "COMMENT ON FUNCTION activity.sp_signup() IS 'old';")
  t.not(stale, committed, 'the copy is stale')
  await writeFile(file, stale)
  const checked = await schemaDump(t, ['--check', '--out', file])
  t.equal(checked.code, 1)
  t.match(checked.err, /does not match the migrations \(run `npm run db:schema`/)
  t.match(checked.err, /changed: COMMENT FUNCTION sp_signup\(/)
  t.equal(await readFile(file, 'utf8'), stale, '--check writes nothing')
})
