// Security headers on every answer, CORS only for listed origins, and an
// OpenAPI document (with its UI) built from the routes registered after the plugin.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import external, { API_SECURITY_HEADERS, type ExternalPluginOptions } from '../../src/plugins/external.ts'
import errors, { errorServerOptions } from '../../src/plugins/errors.ts'
import { ProblemSchema } from '../../src/http/problem.ts'

async function build(t: Test, opts: ExternalPluginOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, ...errorServerOptions() })
  // As app.ts wires them: the errors plugin's request-id hook sets the security headers too.
  await app.register(errors, { headers: API_SECURITY_HEADERS })
  await app.register(external, opts)
  app.post(
    '/api/widgets',
    {
      schema: {
        summary: 'Create a widget',
        body: Type.Object({ name: Type.String() }, { additionalProperties: false }),
        response: { 201: Type.Object({ id: Type.String() }), 400: ProblemSchema },
      },
    },
    async (_request, reply) => reply.code(201).send({ id: 'w1' }),
  )
  app.delete('/api/widgets/:id', async (_request, reply) => reply.code(204).send())
  t.teardown(() => app.close())
  await app.ready()
  return app
}

const allowed = 'https://app.example.com'

t.test('the API security headers are on JSON answers and on errors; the browser-only ones are not', async (t) => {
  const app = await build(t, { corsOrigins: [], swagger: false })
  for (const res of [
    await app.inject({ method: 'POST', url: '/api/widgets', payload: { name: 'a' } }),
    await app.inject({ method: 'GET', url: '/nowhere' }),
  ]) {
    t.equal(res.headers['x-content-type-options'], 'nosniff')
    t.match(res.headers['strict-transport-security'], /max-age=31536000/)
    for (const browserOnly of [
      'content-security-policy',
      'x-frame-options',
      'cross-origin-opener-policy',
      'cross-origin-resource-policy',
      'origin-agent-cluster',
      'x-dns-prefetch-control',
    ]) {
      t.notOk(res.headers[browserOnly], `${browserOnly}: for HTML pages, not for JSON`)
    }
  }
})

t.test('CORS: a listed origin is echoed, an unlisted one gets no CORS headers', async (t) => {
  const app = await build(t, { corsOrigins: [allowed, 'http://localhost:3000'], swagger: false })
  const ok = await app.inject({ method: 'POST', url: '/api/widgets', headers: { origin: allowed }, payload: { name: 'a' } })
  t.equal(ok.headers['access-control-allow-origin'], allowed)
  t.match(ok.headers['access-control-expose-headers'], /x-request-id/)

  const other = await app.inject({
    method: 'POST',
    url: '/api/widgets',
    headers: { origin: 'https://evil.example' },
    payload: { name: 'a' },
  })
  t.equal(other.headers['access-control-allow-origin'], undefined)

  // A browser's preflight for DELETE from the app succeeds.
  const preflight = await app.inject({
    method: 'OPTIONS',
    url: '/api/widgets/w1',
    headers: { origin: allowed, 'access-control-request-method': 'DELETE' },
  })
  t.equal(preflight.statusCode, 204)
  t.equal(preflight.headers['access-control-allow-origin'], allowed)
  t.match(preflight.headers['access-control-allow-methods'], /DELETE/)

  // The preflight catch-all route does not turn unknown paths into 405s.
  const unknown = await app.inject({ method: 'GET', url: '/nowhere' })
  t.equal(unknown.statusCode, 404)
})

t.test('CORS: an empty allow-list sends no CORS headers at all', async (t) => {
  const app = await build(t, { corsOrigins: [], swagger: false })
  const res = await app.inject({ method: 'POST', url: '/api/widgets', headers: { origin: allowed }, payload: { name: 'a' } })
  t.equal(res.statusCode, 201)
  t.equal(res.headers['access-control-allow-origin'], undefined)
})

t.test('the OpenAPI 3.1 document lists the routes and /docs serves the UI', async (t) => {
  const app = await build(t, { corsOrigins: [], swagger: true })
  const doc = await app.inject({ method: 'GET', url: '/docs/json' })
  t.equal(doc.statusCode, 200)
  const spec = doc.json<{
    openapi: string
    info: { title: string }
    paths: Record<string, Record<string, { summary?: string; responses: Record<string, unknown> }>>
  }>()
  t.match(spec.openapi, /^3\.1/)
  t.equal(spec.info.title, 'activity-auth')
  t.equal(spec.paths['/api/widgets']?.post?.summary, 'Create a widget')
  t.ok(spec.paths['/api/widgets']?.post?.responses['400'], 'problem response documented')
  t.ok(spec.paths['/api/widgets/{id}']?.delete, 'parametric route in OpenAPI form')
  t.notOk(
    Object.keys(spec.paths).some((p) => p.startsWith('/docs')),
    'the docs routes are not documented',
  )

  const ui = await app.inject({ method: 'GET', url: '/docs/' })
  t.equal(ui.statusCode, 200)
  t.match(ui.headers['content-type'], /text\/html/)
  t.match(ui.body, /swagger-ui/)
  // Swagger UI's CSP replaces helmet's there, so the page's scripts and styles load.
  const csp = String(ui.headers['content-security-policy'])
  t.match(csp, /script-src 'self'/)
  t.notMatch(csp, /upgrade-insecure-requests/)
  const script = await app.inject({ method: 'GET', url: '/docs/static/swagger-initializer.js' })
  t.equal(script.statusCode, 200)
})

t.test('swagger: false serves no documentation', async (t) => {
  const app = await build(t, { corsOrigins: [], swagger: false })
  t.equal((await app.inject({ method: 'GET', url: '/docs/json' })).statusCode, 404)
  t.equal((await app.inject({ method: 'GET', url: '/docs' })).statusCode, 404)
})
