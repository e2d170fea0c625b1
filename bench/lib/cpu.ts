// CPU time per operation, from /proc: what each process of a measurement spent
// (user + system) while it ran. On a machine where the database, the load
// generator and the server share the cores, a ratio against a ceiling is bounded by
// the CPU each side needs per operation, whatever the server does with its share:
// the refresh rows print that bound beside the ratio (docs/performance.md).
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { withClient } from '../../src/db/admin-connection.ts'
import type { Runner, Sample, Summary } from './load.ts'

/** The processes of one part of a measurement, read again at each snapshot (backends come and go). */
export type Pids = () => number[]

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100

/** Fields after the command (the command may hold spaces and parentheses). */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  } catch {
    return undefined // exited: its time is lost, which only undercounts
  }
}

/** User + system CPU seconds of the processes, so far. */
export function cpuSeconds(pids: number[]): number {
  let ticks = 0
  for (const pid of pids) {
    const f = statFields(pid)
    // utime and stime: fields 14 and 15 of stat, 12 and 13 after the command.
    if (f !== undefined) ticks += Number(f[11]) + Number(f[12])
  }
  return ticks / CLOCK_TICKS
}

/** A process and its children (a postmaster and its backends). */
function withChildren(parent: number): number[] {
  const pids = [parent]
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    if (statFields(Number(name))?.[1] === String(parent)) pids.push(Number(name))
  }
  return pids
}

/**
 * The database server's processes, when it runs on this machine and its data
 * directory is readable (postmaster.pid); none otherwise, and its figure is left out.
 */
export async function postgresPids(adminUrl: string): Promise<Pids | undefined> {
  try {
    const dir = await withClient(
      adminUrl,
      async (c) => (await c.query<{ d: string }>('SELECT current_setting($1) AS d', ['data_directory'])).rows[0]?.d,
    )
    if (dir === undefined) return undefined
    const postmaster = Number(readFileSync(path.join(dir, 'postmaster.pid'), 'utf8').split('\n')[0])
    if (!Number.isInteger(postmaster) || statFields(postmaster) === undefined) return undefined
    return () => withChildren(postmaster)
  } catch {
    return undefined
  }
}

/** The runner, with the CPU seconds each group of processes spent in each run added to its sample. */
export function metered(run: Runner, groups: Record<string, Pids>): Runner {
  return async (seconds) => {
    const snapshot = () => Object.fromEntries(Object.entries(groups).map(([name, pids]) => [name, cpuSeconds(pids())]))
    const before = snapshot()
    const sample = await run(seconds)
    const after = snapshot()
    return { ...sample, cpu: Object.fromEntries(Object.entries(after).map(([name, s]) => [name, s - (before[name] ?? 0)])) }
  }
}

/** Microseconds of CPU per successful operation, per group, over the measured repeats (warm-up left out). */
export function cpuPerOperation(summary: Summary): Record<string, number> | undefined {
  const measured = summary.samples.filter((s): s is Sample & { cpu: Record<string, number> } => s.cpu !== undefined)
  const operations = measured.reduce((sum, s) => sum + s.total - s.failures, 0)
  if (measured.length === 0 || operations === 0) return undefined
  const perGroup: Record<string, number> = {}
  for (const s of measured) for (const [name, seconds] of Object.entries(s.cpu)) perGroup[name] = (perGroup[name] ?? 0) + seconds
  return Object.fromEntries(Object.entries(perGroup).map(([name, seconds]) => [name, (seconds * 1e6) / operations]))
}

/**
 * "CPU µs per op: ours service 390 + PostgreSQL 640 + load 85 = 1115; ceiling ... = 756;
 * equal-CPU bound 0.68": the ratio the two sides would reach with the same CPU to spend.
 */
export function cpuNote(ours: Summary, reference: Summary): string {
  const a = cpuPerOperation(ours)
  const b = cpuPerOperation(reference)
  if (a === undefined || b === undefined) return ''
  const sum = (g: Record<string, number>) => Object.values(g).reduce((x, y) => x + y, 0)
  const parts = (g: Record<string, number>) =>
    `${Object.entries(g)
      .map(([name, us]) => `${name} ${us.toFixed(0)}`)
      .join(' + ')} = ${sum(g).toFixed(0)}`
  return `CPU µs/op: ours ${parts(a)}; ceiling ${parts(b)}; equal-CPU bound ${(sum(b) / sum(a)).toFixed(2)}`
}
