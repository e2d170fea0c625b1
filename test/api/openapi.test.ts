// The OpenAPI document clients generate code from: valid OpenAPI 3.1, complete
// (every route, every operation named, tagged and secured), one Problem schema
// for every error, clean under redocly's recommended rules; and the response
// validator build() runs on every test's answers does catch a broken promise.
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { Validator } from '@seriousme/openapi-schema-validator'
import { projectPath } from '../../src/paths.ts'
import { openapiDocument } from '../../scripts/openapi.ts'
import Fastify, { type InjectOptions } from 'fastify'
import errors, { errorServerOptions } from '../../src/plugins/errors.ts'
import external from '../../src/plugins/external.ts'
import { htmlResponses } from '../../src/schemas/responses.ts'
import { build, json } from '../helpers/app.ts'
import { checkInjectedResponses, Contract, type OpenApiDocument } from '../helpers/contract.ts'

interface Response {
  description?: string
  content?: Record<string, { schema?: Record<string, unknown> }>
}
interface Operation {
  operationId?: string
  summary?: string
  tags?: string[]
  security?: Record<string, string[]>[]
  parameters?: unknown[]
  requestBody?: unknown
  responses: Record<string, Response>
}
interface Document {
  openapi: string
  info: { license?: { name?: string; identifier?: string; url?: string } }
  servers?: { url: string }[]
  tags?: { name: string; description?: string }[]
  paths: Record<string, Record<string, Operation>>
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> }
}

const PROBLEM_REF = '#/components/schemas/Problem'

/** Every operation of the document as [path, method, operation]. */
const operationsOf = (doc: Document): [string, string, Operation][] =>
  Object.entries(doc.paths).flatMap(([p, item]) => Object.entries(item).map(([method, op]): [string, string, Operation] => [p, method, op]))

/**
 * The routes Fastify knows, from printRoutes({ commonPrefix: false }): a tree whose
 * children continue their parent's path, four characters of drawing per level.
 */
function knownRoutes(tree: string): { method: string; path: string }[] {
  const stack: string[] = []
  const routes: { method: string; path: string }[] = []
  for (const line of tree.split('\n')) {
    const match = /^([│├└─\s]*)(\S.*?)(?: \(([A-Z, ]+)\))?$/u.exec(line)
    if (match === null) continue
    const depth = (match[1] ?? '').length / 4 - 1
    stack.length = depth
    stack.push(match[2] ?? '')
    for (const method of (match[3] ?? '').split(', ').filter((m) => m !== '')) routes.push({ method, path: stack.join('') })
  }
  return routes
}

/** The OpenAPI path of a Fastify route (`/sessions/:id` → `/sessions/{id}`). */
const openapiPath = (route: string): string => route.replace(/:([A-Za-z0-9_]+)/g, '{$1}')

t.test('the served document is valid OpenAPI 3.1 and describes every route', async (t) => {
  const h = await build(t)
  const res = await h.app.inject({ method: 'GET', url: '/docs/json' })
  t.equal(res.statusCode, 200)
  const doc = json<Document>(res)

  const validation = await new Validator().validate(doc as unknown as Record<string, unknown>)
  t.equal(validation.valid, true, `valid against the OpenAPI 3.1 schema: ${JSON.stringify(validation.errors ?? [])}`)
  t.match(doc.openapi, /^3\.1\./)
  t.ok(doc.servers !== undefined && doc.servers.length > 0, 'servers are declared')
  t.ok(
    doc.info.license?.name !== undefined && (doc.info.license.identifier ?? doc.info.license.url) !== undefined,
    'license with a name and an identifier or url',
  )

  // Every route but the docs themselves, static assets, HEAD (Fastify's automatic
  // twin of each GET) and the CORS preflight catch-all.
  const routes = knownRoutes(h.app.printRoutes({ commonPrefix: false })).filter(
    (r) => !r.path.startsWith('/docs') && !r.path.startsWith('/assets/') && r.method !== 'HEAD' && r.method !== 'OPTIONS',
  )
  t.ok(routes.length >= 20, `the route list was read (${routes.length} routes)`)
  for (const route of routes) {
    t.ok(doc.paths[openapiPath(route.path)]?.[route.method.toLowerCase()], `${route.method} ${route.path} is documented`)
  }
  t.ok(doc.paths['/metrics']?.get, 'GET /metrics is documented')
})

t.test('every operation is named, summarised, tagged and secured; ids are unique', async (t) => {
  const h = await build(t)
  const doc = json<Document>(await h.app.inject({ method: 'GET', url: '/docs/json' }))
  const declaredTags = new Map((doc.tags ?? []).map((tag) => [tag.name, tag.description]))
  const ids = new Set<string>()
  for (const [p, method, op] of operationsOf(doc)) {
    const where = `${method.toUpperCase()} ${p}`
    t.match(op.operationId, /^[a-z][A-Za-z0-9]*$/, `${where}: a camelCase operationId`)
    t.notOk(ids.has(op.operationId ?? ''), `${where}: operationId ${String(op.operationId)} is unique`)
    ids.add(op.operationId ?? '')
    t.ok(typeof op.summary === 'string' && op.summary.length > 0, `${where}: a summary`)
    t.ok(op.tags !== undefined && op.tags.length > 0, `${where}: tags`)
    for (const tag of op.tags ?? []) t.ok(declaredTags.get(tag), `${where}: tag ${tag} is declared with a description`)
    t.ok(Array.isArray(op.security), `${where}: security is stated (empty for public operations)`)
    for (const requirement of op.security ?? []) {
      for (const scheme of Object.keys(requirement)) t.ok(doc.components.securitySchemes[scheme], `${where}: ${scheme} is declared`)
    }
  }
  // The operations of the contract in DESIGN.md keep these names: generated clients call them.
  for (const id of [
    'signup',
    'verifyEmail',
    'resendVerification',
    'login',
    'refresh',
    'logout',
    'logoutAll',
    'getMe',
    'deleteMe',
    'changePassword',
    'forgotPassword',
    'resetPassword',
    'listSessions',
    'endSession',
    'getJwks',
    'getLiveness',
    'getReadiness',
    'getHealth',
    'getDatabaseHealth',
    'getMetrics',
    'oauthStart',
    'oauthCallback',
    'oauthExchange',
    'oauthLinkStart',
    'oauthUnlink',
    'updateMe',
    'changeEmail',
    'confirmEmailChange',
  ]) {
    t.ok(ids.has(id), `operationId ${id}`)
  }
  const bearerOnly = operationsOf(doc).filter(([, , op]) => op.security?.some((s) => 'bearerAuth' in s))
  t.same(
    bearerOnly.map(([, , op]) => op.operationId).sort(),
    [
      'changeEmail',
      'changePassword',
      'deleteMe',
      'endSession',
      'getMe',
      'listSessions',
      'logoutAll',
      'mfaConfirm',
      'mfaDisable',
      'mfaEnrol',
      'mfaReplaceRecoveryCodes',
      'oauthLinkStart',
      'oauthUnlink',
      'updateMe',
    ],
    'the Bearer operations',
  )
})

t.test('every error is application/problem+json with the one Problem schema, and every status is documented', async (t) => {
  const h = await build(t)
  const doc = json<Document>(await h.app.inject({ method: 'GET', url: '/docs/json' }))
  t.ok(doc.components.schemas.Problem, 'components.schemas.Problem')
  // No second copy of it anywhere (an inlined ProblemSchema would be a second type in clients).
  const titled = JSON.stringify(doc.paths).match(/"title":"Problem"/g) ?? []
  t.equal(titled.length, 0, 'the paths only refer to Problem, never inline it')

  for (const [p, method, op] of operationsOf(doc)) {
    const where = `${method.toUpperCase()} ${p}`
    const tags = op.tags ?? []
    for (const [status, response] of Object.entries(op.responses)) {
      if (Number(status) < 400) continue
      const content = response.content ?? {}
      // The two designed exceptions: a probe's 503 is its JSON report, a page's error is a page.
      const designed = (mediaType: string) =>
        (tags.includes('health') && status === '503' && mediaType === 'application/json') ||
        (tags.includes('pages') && mediaType === 'text/html')
      const others = Object.keys(content).filter((m) => m !== 'application/problem+json')
      for (const mediaType of others) t.ok(designed(mediaType), `${where} ${status}: ${mediaType} is a designed exception to problem+json`)
      if (content['application/problem+json'] !== undefined || others.length === 0) {
        t.equal(
          content['application/problem+json']?.schema?.$ref,
          PROBLEM_REF,
          `${where} ${status}: application/problem+json with the Problem component`,
        )
      }
    }
    const statuses = new Set(Object.keys(op.responses))
    const expect = (status: number, why: string) => t.ok(statuses.has(String(status)), `${where}: ${status} documented (${why})`)
    expect(500, 'any operation')
    if (op.requestBody !== undefined) for (const status of [400, 413, 415]) expect(status, 'it takes a body')
    if (op.parameters !== undefined && p.includes('{')) expect(400, 'it has path parameters')
    if (op.security?.some((s) => 'bearerAuth' in s)) expect(401, 'Bearer')
    if (tags.includes('auth')) {
      expect(429, 'under the per-IP limit')
      expect(503, 'it reaches the database')
    }
  }
  t.ok(doc.paths['/api/auth/login']?.post?.responses['403'], 'login: 403 email_not_verified')
  t.ok(doc.paths['/api/auth/sessions/{id}']?.delete?.responses['404'], 'endSession: 404 session_not_found')
  t.ok(doc.paths['/.well-known/jwks.json']?.get?.responses['429'], 'jwks: 429 (its own limit)')
})

t.test('redocly lint (recommended) reports no error on the document npm run lint dumps, nor on the served one', async (t) => {
  const h = await build(t)
  const served = json<Document>(await h.app.inject({ method: 'GET', url: '/docs/json' }))
  const dir = await mkdtemp(path.join(os.tmpdir(), 'activity-auth-redocly-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const files = [path.join(dir, 'dumped.json'), path.join(dir, 'served.json')]
  await writeFile(files[0] ?? '', JSON.stringify(await openapiDocument()))
  await writeFile(files[1] ?? '', JSON.stringify(served))
  // The project's redocly.yaml applies: run from the project root. It exits 1 on
  // errors, so the report is read either way.
  const run = promisify(execFile)
  for (const file of files) {
    const out = await run(projectPath('node_modules', '.bin', 'redocly'), ['lint', '--format=json', file], {
      cwd: projectPath(),
      env: { ...process.env, REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', REDOCLY_TELEMETRY: 'off' },
      maxBuffer: 16 * 1024 * 1024,
    }).catch((err: unknown) => err as { stdout: string })
    const report = JSON.parse(out.stdout) as {
      totals: { errors: number }
      problems: { ruleId: string; severity: string; message: string; location: { pointer: string }[] }[]
    }
    const errors = report.problems
      .filter((p) => p.severity === 'error')
      .map((p) => `${p.ruleId} ${p.location[0]?.pointer ?? ''}: ${p.message}`)
    t.same(errors, [], `${path.basename(file)}: no errors`)
    t.equal(report.totals.errors, 0, `${path.basename(file)}: 0 errors in the totals`)
  }
})

t.test('the response validator catches an undocumented status, content type or body shape', async (t) => {
  const h = await build(t)
  const doc = json<OpenApiDocument & Document>(await h.app.inject({ method: 'GET', url: '/docs/json' }))
  /** The document with one change, and what the same real answers are found to break. */
  const mismatchesWith = async (change: (copy: Document) => void, requests: InjectOptions[]) => {
    const copy = structuredClone(doc)
    change(copy)
    const found: string[] = []
    const counts = checkInjectedResponses(h.app, new Contract(copy), (message) => found.push(message))
    for (const request of requests) await h.app.inject(request)
    return { found, counts }
  }
  const live: InjectOptions = { method: 'GET', url: '/api/health/live' }
  const liveOp = (d: Document) => d.paths['/api/health/live']?.get as Operation

  const status = await mismatchesWith(
    (d) => {
      delete liveOp(d).responses['200']
    },
    [live],
  )
  t.match(status.found, [/getLiveness.*GET \/api\/health\/live → 200 .*status 200 is not documented/], 'an undocumented status')

  const mediaType = await mismatchesWith(
    (d) => {
      const ok = liveOp(d).responses['200']
      if (ok?.content) ok.content = { 'application/xml': { schema: {} } }
    },
    [live],
  )
  t.match(mediaType.found, [/content type application\/json is not documented for 200/], 'an undocumented content type')

  const shape = await mismatchesWith(
    (d) => {
      const schema = liveOp(d).responses['200']?.content?.['application/json']?.schema as {
        properties: { status: Record<string, unknown> }
      }
      schema.properties.status = { type: 'string', enum: ['fine'] }
    },
    [live],
  )
  t.match(
    shape.found,
    [/body does not match the 200 application\/json schema: \/status must be equal to one of the allowed values/],
    'a body of another shape',
  )

  // Through the shared component: a problem body is checked against components.schemas.Problem.
  const problem = await mismatchesWith(
    (d) => {
      const schema = d.components.schemas.Problem as { required: string[]; properties: Record<string, unknown> }
      schema.properties.hint = { type: 'string' }
      schema.required.push('hint')
    },
    [{ method: 'POST', url: '/api/auth/refresh', payload: {} }],
  )
  t.match(
    problem.found,
    [/refresh.*→ 400 application\/problem\+json.*must have required property 'hint'/],
    'a problem body against the Problem component',
  )

  // Unknown paths and methods a path does not have are not operations: counted, never failed.
  const skipped = await mismatchesWith(
    () => undefined,
    [{ method: 'GET', url: '/nowhere' }, { method: 'PUT', url: '/api/auth/login' }, live],
  )
  t.same(skipped.found, [], 'the unchanged document finds nothing')
  t.same(skipped.counts, { validated: 1, skipped: 2 })
})

// The pages (src/routes/pages) document themselves with htmlResponses: this is the
// shape they get, and real answers of both kinds pass the validator.
t.test('htmlResponses: the page, errors answered as pages, and problems, all documented', async (t) => {
  const app = Fastify({ logger: false, ...errorServerOptions() })
  t.teardown(() => app.close())
  await app.register(errors)
  await app.register(external, { corsOrigins: [], swagger: true })
  const page = (status: number, text: string) => (_request: unknown, reply: import('fastify').FastifyReply) =>
    reply.code(status).type('text/html; charset=utf-8').send(`<!doctype html><p>${text}</p>`)
  const common = { tags: ['pages'], security: [] }
  app.get(
    '/page',
    { schema: { ...common, operationId: 'getPage', summary: 'A page', response: htmlResponses('The page', { rateLimited: true }) } },
    page(200, 'hello'),
  )
  app.post(
    '/page',
    {
      schema: {
        ...common,
        operationId: 'postPage',
        summary: 'A form post',
        body: { type: 'object', properties: { token: { type: 'string' } }, required: ['token'], additionalProperties: false },
        response: htmlResponses('The result page', {
          body: true,
          rateLimited: true,
          database: true,
          pages: { 400: 'the link is damaged', 503: 'try again later' },
        }),
      },
    },
    page(400, 'the link is damaged'),
  )
  await app.ready()
  const doc = app.swagger() as unknown as Document
  const get = doc.paths['/page']?.get
  const post = doc.paths['/page']?.post
  t.same(Object.keys(get?.responses ?? {}), ['200', '429', '500'])
  t.same(Object.keys(get?.responses['200']?.content ?? {}), ['text/html'])
  t.equal(get?.responses['429']?.content?.['application/problem+json']?.schema?.$ref, PROBLEM_REF)
  t.same(Object.keys(post?.responses ?? {}), ['200', '400', '413', '415', '429', '500', '503'])
  t.same(
    Object.keys(post?.responses['400']?.content ?? {}).sort(),
    ['application/problem+json', 'text/html'],
    'a status that is a page or a problem has both',
  )
  t.equal(post?.responses['400']?.content?.['application/problem+json']?.schema?.$ref, PROBLEM_REF)
  t.match(post?.responses['503']?.description, /database cannot be reached.*; or a page: try again later/)

  const found: string[] = []
  const counts = checkInjectedResponses(app, new Contract(doc), (message) => found.push(message))
  const pageAnswer = await app.inject({ method: 'POST', url: '/page', payload: { token: 'x' } })
  t.match(pageAnswer.headers['content-type'], /^text\/html/)
  const problemAnswer = await app.inject({ method: 'POST', url: '/page', payload: { token: 42 } })
  t.match(problemAnswer.headers['content-type'], /^application\/problem\+json/)
  t.equal(json(problemAnswer).code, 'validation_failed', 'a problem still serializes through the shared schema')
  await app.inject({ method: 'GET', url: '/page' })
  t.same(found, [], 'a page and a problem on the same status both match')
  t.equal(counts.validated, 3)
})
