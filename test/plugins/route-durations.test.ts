// RouteDurations must print exactly what prom-client's Histogram printed for the same
// observations: dashboards and alerts read these lines.
import t from 'tap'
import { Histogram, Registry, type Metric } from 'prom-client'
import { RouteDurations } from '../../src/plugins/route-durations.ts'

const name = 'http_request_duration_seconds'
const help = 'HTTP request duration by method, route pattern and status code'
const buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

t.test('the same text as prom-client for the same observations, bucket edges included', async (t) => {
  const theirs = new Registry()
  const ours = new Registry()
  const histogram = new Histogram({ name, help, labelNames: ['method', 'route', 'status_code'] as const, buckets, registers: [theirs] })
  const durations = new RouteDurations({ name, help, buckets })
  ours.registerMetric(durations as unknown as Metric)

  const seen: [string, string, number, number][] = [
    ['GET', '/api/auth/me', 200, 0],
    ['GET', '/api/auth/me', 200, 0.005],
    ['GET', '/api/auth/me', 200, 0.0051],
    ['GET', '/api/auth/me', 401, 0.2],
    ['POST', '/api/auth/login', 200, 1.5],
    ['POST', '/api/auth/login', 200, 10],
    ['POST', '/api/auth/login', 200, 42],
    ['OTHER', 'unmatched', 404, 0.001],
  ]
  for (let i = 0; i < 50; i++) seen.push(['GET', '/api/health/live', 200, (i % 7) / 1000 + i / 100])
  for (const [method, route, status, seconds] of seen) {
    histogram.labels({ method, route, status_code: String(status) }).observe(seconds)
    durations.observe(method, route, status, seconds)
  }
  t.equal(await ours.metrics(), await theirs.metrics())
  // The JSON view too, but for prom-client's `exemplar: null` on its bucket lines.
  const withoutExemplars: unknown = JSON.parse(
    JSON.stringify(await theirs.getMetricsAsJSON(), (k, v: unknown) => (k === 'exemplar' ? undefined : v)),
  )
  t.same(await ours.getMetricsAsJSON(), withoutExemplars, 'and the same JSON')

  ours.resetMetrics()
  histogram.reset()
  t.equal(await ours.metrics(), await theirs.metrics(), 'reset empties both')
})
