// Load generation (autocannon, in this process) and the bookkeeping around it:
// warm-up, repeats interleaved between a figure and its ceiling so slow drift on
// a noisy machine hits both alike, and medians of the repeats.
import autocannon from 'autocannon'

export const JSON_HEADERS = { 'content-type': 'application/json' }

export interface Sample {
  /** Successful operations per second. */
  rps: number
  p50: number
  p99: number
  /** Non-2xx answers and socket errors/timeouts. */
  failures: number
  total: number
  /** CPU seconds each group of processes spent in the run (bench/lib/cpu.ts metered), when measured. */
  cpu?: Record<string, number>
}

export interface Summary {
  rps: number
  p50: number
  p99: number
  failures: number
  samples: Sample[]
}

export interface Plan {
  warmupSeconds: number
  seconds: number
  repeats: number
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  if (sorted.length === 0) return NaN
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

/** Percentile of raw latencies (ms), nearest rank. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number
}

export interface HttpLoad {
  url: string
  connections: number
  requests: autocannon.Request[]
  overallRate?: number
  /**
   * Awaited after the run. autocannon abandons the requests in flight when its time
   * is up, but the server still works through them: for slow requests (a login is
   * an argon2 verify) that backlog would spill into the next measurement.
   */
  settle?: () => Promise<void>
}

/** One autocannon run of `seconds`. */
export async function http(load: HttpLoad, seconds: number): Promise<Sample> {
  const result = await autocannon({
    url: load.url,
    connections: load.connections,
    duration: seconds,
    requests: load.requests,
    // Every connection waits for its answer before the next request: a client, not a pipeline.
    pipelining: 1,
    timeout: 30,
    ...(load.overallRate === undefined ? {} : { overallRate: load.overallRate }),
  })
  await load.settle?.()
  const ok = result['2xx']
  return {
    rps: ok / (result.duration || seconds),
    p50: result.latency.p50,
    p99: result.latency.p99,
    failures: result.non2xx + result.errors + result.timeouts,
    total: result.requests.total,
  }
}

export type Runner = (seconds: number) => Promise<Sample>

/**
 * Warm every runner up once, then run the repeats round-robin (a, b, a, b, ...),
 * and summarise each by the medians of its repeats.
 */
export async function interleaved<K extends string>(runners: Record<K, Runner>, plan: Plan): Promise<Record<K, Summary>> {
  const names = Object.keys(runners) as K[]
  const samples = Object.fromEntries(names.map((n) => [n, [] as Sample[]])) as Record<K, Sample[]>
  if (plan.warmupSeconds > 0) {
    for (const name of names) await runners[name](plan.warmupSeconds)
  }
  for (let r = 0; r < plan.repeats; r++) {
    for (const name of names) samples[name].push(await runners[name](plan.seconds))
  }
  return Object.fromEntries(
    names.map((name) => {
      const list = samples[name]
      return [
        name,
        {
          rps: median(list.map((s) => s.rps)),
          p50: median(list.map((s) => s.p50)),
          p99: median(list.map((s) => s.p99)),
          failures: list.reduce((sum, s) => sum + s.failures, 0),
          samples: list,
        },
      ]
    }),
  ) as Record<K, Summary>
}
