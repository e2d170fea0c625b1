// The bench must not rot: `npm run bench -- --smoke` runs its real code paths
// (our service from src/server.ts, the bare-route ceiling, the argon2 and rotate
// ceilings, the mixed-load RSS run, a few interleaved pairs of the enumeration
// timing) for about a second each, against this test file's own database, and
// every row comes back as a number. Only the shape is asserted, never a speed.
// The peer (better-auth, bench/peer) stays out of `npm test`: it is a separate
// install.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { projectPath } from '../../src/paths.ts'
import { nodeArgs } from '../helpers/child.ts'
import { createTestDatabase } from '../helpers/db.ts'

interface Row {
  section: string
  figure: string
  ours: number
  reference: number | null
  ratio: number | null
  unit: string
  met: boolean | null
  note: string
  failures: number
}

t.test('npm run bench -- --smoke: every row of our side and its ceilings is filled', async (t) => {
  const db = await createTestDatabase(t)
  const dir = await mkdtemp(path.join(os.tmpdir(), 'activity-auth-bench-smoke-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const json = path.join(dir, 'result.json')

  // A clean environment: no setting of the test process leaks into the bench. It
  // runs under the test's own loader (nodeArgs), and so do the servers it starts
  // (bench/lib/proc.ts reuses process.execArgv): tap follows them for coverage,
  // and under another transform (tsx) their line numbers would not match.
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    BENCH_ADMIN_URL: db.adminUrl,
    BENCH_SERVICE_URL: db.url,
  }
  const child = spawn(process.execPath, nodeArgs('bench/run.ts', '--smoke', `--json=${json}`), {
    cwd: projectPath(),
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const [code] = (await once(child, 'exit')) as [number | null]
  t.equal(code, 0, `the smoke run exits 0\n${output}`)

  const result = JSON.parse(await readFile(json, 'utf8')) as { rows: Row[]; options: { profile: string } }
  t.equal(result.options.profile, 'smoke')
  const figures = result.rows.map((r) => r.figure)
  for (const expected of [
    /^login\/s/,
    /^refresh\/s/,
    /^GET \/api\/auth\/me req\/s/,
    /^GET \/api\/health\/live req\/s/,
    /^2 instances: refresh\/s/,
    /^2 instances: GET \/api\/auth\/me req\/s/,
    /^2 instances: GET \/api\/health\/live req\/s/,
    /^p99 refresh/,
    /^p99 me/,
    /^p99 health\/live under login load/,
    /^RSS after/,
    /^enumeration: signup p50, taken ÷ new/,
    /^enumeration: forgot-password p50, known ÷ unknown/,
    /^enumeration: resend-verification p50, known unverified ÷ unknown/,
    /^enumeration: login p50, wrong password ÷ unknown email/,
    /^enumeration: health probe after signup/,
    /^enumeration: health probe after verify-email, unknown token ÷ malformed token/,
    /^revocation seen by another instance, p50/,
    /^revocation seen by another instance, p99/,
  ]) {
    t.ok(
      figures.some((f) => expected.test(f)),
      `a row ${String(expected)}`,
    )
  }
  for (const row of result.rows) {
    t.ok(Number.isFinite(row.ours) && row.ours > 0, `${row.figure}: a positive number (${row.ours})`)
    t.equal(row.failures, 0, `${row.figure}: no failed request`)
    if (row.reference !== null) t.ok(Number.isFinite(row.reference) && row.reference > 0, `${row.figure}: a positive reference`)
    if (row.unit === 'req/s') {
      t.ok(
        row.ratio !== null && Number.isFinite(row.ratio) && row.ratio > 0,
        `${row.figure}: a finite positive ratio (${String(row.ratio)})`,
      )
    }
  }
  // The refresh rows say what each side spent per operation (bench/lib/cpu.ts).
  const refreshRows = result.rows.filter((r) => /refresh\/s$/.test(r.figure))
  t.equal(refreshRows.length, 2, 'one instance and two')
  for (const row of refreshRows) {
    t.match(
      row.note,
      /CPU µs\/op: ours service \d+ \+ PostgreSQL \d+ \+ load \d+ = \d+; ceiling worker \d+ .*equal-CPU bound \d+\.\d\d/,
      `${row.figure}: the CPU note`,
    )
  }
  t.match(output, /\| figure +\| ours/, 'the table is printed')
})
