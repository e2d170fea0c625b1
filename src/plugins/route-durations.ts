// The request-duration histogram, counted without prom-client's per-observation work.
//
// prom-client's Histogram validates the labels, hashes them and searches its buckets on
// every observe(), even through a child from labels(): about 5 % of the CPU of GET
// /api/health/live (issue 18, profile). Here each series (method, status, route) is
// found once by a string key and then costs a bucket search over a short array and two
// additions. At scrape time it answers in the shape prom-client's registry prints, so
// GET /metrics shows exactly what the prom-client histogram showed.
import type { MetricValueWithName } from 'prom-client'

type Labels = { method: string; route: string; status_code: string }

interface Series {
  labels: Labels
  /** counts[i]: observations ≤ upperBounds[i] and > upperBounds[i - 1]; the last slot is +Inf. */
  counts: Float64Array
  sum: number
  count: number
}

export class RouteDurations {
  readonly name: string
  readonly help: string
  readonly type = 'histogram' as const
  readonly aggregator = 'sum' as const
  private readonly upperBounds: readonly number[]
  private readonly series = new Map<string, Series>()

  constructor(opts: { name: string; help: string; buckets: readonly number[] }) {
    this.name = opts.name
    this.help = opts.help
    this.upperBounds = [...opts.buckets].sort((a, b) => a - b)
  }

  /** One request of `seconds`; method and route must come from bounded sets (the caller's job). */
  observe(method: string, route: string, statusCode: number, seconds: number): void {
    const key = `${method} ${statusCode} ${route}`
    let series = this.series.get(key)
    if (series === undefined) {
      series = {
        labels: { method, route, status_code: String(statusCode) },
        counts: new Float64Array(this.upperBounds.length + 1),
        sum: 0,
        count: 0,
      }
      this.series.set(key, series)
    }
    let i = 0
    while (i < this.upperBounds.length && seconds > (this.upperBounds[i] as number)) i++
    series.counts[i] = (series.counts[i] as number) + 1
    series.sum += seconds
    series.count += 1
  }

  /** What prom-client's registry asks every metric for when it is scraped. */
  async get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: MetricValueWithName<string>[] }> {
    const values: MetricValueWithName<string>[] = []
    const bucket = `${this.name}_bucket`
    for (const { labels, counts, sum, count } of this.series.values()) {
      let cumulative = 0
      this.upperBounds.forEach((le, i) => {
        cumulative += counts[i] as number
        values.push({ metricName: bucket, labels: { le, ...labels }, value: cumulative })
      })
      values.push({ metricName: bucket, labels: { le: '+Inf', ...labels }, value: count })
      values.push({ metricName: `${this.name}_sum`, labels, value: sum })
      values.push({ metricName: `${this.name}_count`, labels, value: count })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  reset(): void {
    this.series.clear()
  }
}
