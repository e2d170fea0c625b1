// bench/lib/cpu.ts: CPU seconds read from /proc, the database server's processes
// found from its postmaster.pid, and the per-operation figures the refresh rows print.
import pg from 'pg'
import t from 'tap'
import { cpuNote, cpuPerOperation, cpuSeconds, metered, postgresPids } from '../../bench/lib/cpu.ts'
import type { Sample, Summary } from '../../bench/lib/load.ts'
import { createTestDatabase } from '../helpers/db.ts'

/** Burns this process's CPU (not wall time) until `ms` of it are spent. */
function spin(ms: number): void {
  const start = process.cpuUsage()
  for (;;) {
    const used = process.cpuUsage(start)
    if ((used.user + used.system) / 1000 >= ms) return
  }
}

t.test('cpuSeconds counts user and system time of the processes; a gone process counts nothing', (t) => {
  const before = cpuSeconds([process.pid])
  spin(120)
  const spent = cpuSeconds([process.pid]) - before
  // /proc counts in clock ticks (10 ms): 120 ms of CPU reads as at least 0.1 s.
  t.ok(spent >= 0.1, `spent ${String(spent)} s`)
  t.equal(cpuSeconds([2 ** 22 + 1]), 0, 'a pid above pid_max is no process')
  t.end()
})

t.test('postgresPids: the postmaster and its backends, this connection among them', async (t) => {
  const db = await createTestDatabase(t)
  const pids = await postgresPids(db.adminUrl)
  if (pids === undefined) throw new Error('the test server runs on this machine: its postmaster.pid is readable')
  const client = new pg.Client({ connectionString: db.adminUrl })
  await client.connect()
  t.teardown(() => client.end())
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
  t.ok(pids().includes(rows[0]?.pid as number), 'the backend of a new connection is counted')
  t.equal(await postgresPids('postgresql://nobody@127.0.0.1:1/none'), undefined, 'no server: no figure')
})

const sample = (total: number, failures: number, cpu?: Record<string, number>): Sample => ({
  rps: total,
  p50: 1,
  p99: 2,
  failures,
  total,
  ...(cpu === undefined ? {} : { cpu }),
})
const summary = (samples: Sample[]): Summary => ({ rps: 0, p50: 0, p99: 0, failures: 0, samples })

t.test('metered adds each group its CPU seconds of the run', async (t) => {
  const run = metered(
    async () => {
      spin(60)
      return sample(10, 0)
    },
    { self: () => [process.pid], nobody: () => [] },
  )
  const got = await run(1)
  t.equal(got.total, 10, 'the sample itself is kept')
  t.ok((got.cpu?.self ?? 0) >= 0.05, `self ${String(got.cpu?.self)}`)
  t.equal(got.cpu?.nobody, 0)
})

t.test('per operation: successful operations of the measured repeats; the note and its bound', (t) => {
  // 1,000 + 1,000 successful operations; 2 s and 1.2 s of service CPU: 1,600 µs each over both.
  const ours = summary([sample(1010, 10, { service: 2, PostgreSQL: 1 }), sample(1000, 0, { service: 1.2, PostgreSQL: 0.6 })])
  const ceiling = summary([sample(2000, 0, { worker: 0.4, PostgreSQL: 1.6 })])
  t.same(cpuPerOperation(ours), { service: 1600, PostgreSQL: 800 })
  t.same(cpuPerOperation(ceiling), { worker: 200, PostgreSQL: 800 })
  t.equal(
    cpuNote(ours, ceiling),
    'CPU µs/op: ours service 1600 + PostgreSQL 800 = 2400; ceiling worker 200 + PostgreSQL 800 = 1000; equal-CPU bound 0.42',
  )
  t.equal(cpuPerOperation(summary([sample(10, 0)])), undefined, 'not metered: no figure')
  t.equal(cpuPerOperation(summary([sample(5, 5, { service: 1 })])), undefined, 'no successful operation: no figure')
  t.equal(cpuNote(summary([sample(10, 0)]), ceiling), '', 'no note without both figures')
  t.end()
})
