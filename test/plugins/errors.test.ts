// Every error a client can provoke answers application/problem+json with a
// stable code and the request id; a 500 says nothing about what went wrong;
// logs keep secrets out and hold one line per request.
import { readdirSync, readFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import { Type } from '@sinclair/typebox'
import errors, { errorServerOptions } from '../../src/plugins/errors.ts'
import { loggingServerOptions, maskSecrets } from '../../src/logging.ts'
import { HttpProblem, ProblemSchema, tooManyRequests } from '../../src/http/problem.ts'
import { DB_ERRORS, fromPgError } from '../../src/db/errors.ts'

interface LogLine {
  level: number
  msg?: string
  reqId?: string
  [key: string]: unknown
}

interface Built {
  app: FastifyInstance
  logs: LogLine[]
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

async function build(t: Test): Promise<Built> {
  const logs: LogLine[] = []
  const stream = { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) }
  const app = Fastify({ ...loggingServerOptions('info', stream), ...errorServerOptions(), bodyLimit: 16384 })
  await app.register(errors)
  await app.register(rateLimit, { global: false })

  const Item = Type.Object(
    { name: Type.String({ minLength: 1 }), email: Type.String({ format: 'email' }), count: Type.Integer() },
    { additionalProperties: false },
  )
  app.post(
    '/items',
    { schema: { body: Item, response: { 201: Type.Object({ ok: Type.Boolean() }), 400: ProblemSchema } } },
    async (_request, reply) => reply.code(201).send({ ok: true }),
  )
  app.get('/items/:id', async (request) => ({ id: (request.params as { id: string }).id }))
  app.get('/boom', async () => {
    throw new Error('secret SQL: SELECT hashed_password FROM activity.users')
  })
  app.get('/taken', { schema: { response: { 409: ProblemSchema } } }, async () => {
    throw new HttpProblem(409, 'email_taken', 'that address is already registered')
  })
  app.get('/throttled', async () => {
    throw tooManyRequests('login_throttled', 'too many attempts', 42.2)
  })
  // A procedure's custom error as procedures.ts rethrows it (node-postgres sets code to the SQLSTATE).
  app.get('/sp-error/:sqlstate', async (request) => {
    const { sqlstate } = request.params as { sqlstate: string }
    throw fromPgError(Object.assign(new Error(`secret sp message for ${sqlstate}`), { code: sqlstate }))
  })
  app.get('/db-down', async () => {
    throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })
  })
  app.get('/db-gone', async () => {
    throw Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' })
  })
  // Connection-level failures as node-postgres, pg-pool and the socket raise them.
  const lost: Record<string, Error> = {
    reset: Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
    'timed-out': Object.assign(new Error('connect ETIMEDOUT 10.0.0.1:5432'), { code: 'ETIMEDOUT' }),
    pipe: Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }),
    'too-many': Object.assign(new Error('sorry, too many clients already'), { code: '53300' }),
    terminated: new Error('Connection terminated unexpectedly'),
    ended: new Error('Connection terminated'),
    'connect-timeout': new Error('timeout exceeded when trying to connect'),
    'timeout-cause': new Error('Connection terminated due to connection timeout', {
      cause: new Error('Connection terminated unexpectedly'),
    }),
    'wrapped-reset': new Error('rotation failed', { cause: Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }) }),
  }
  app.get('/db-lost/:how', async (request) => {
    throw lost[(request.params as { how: string }).how] ?? new Error('unknown')
  })
  app.get('/not-lost', async () => {
    // A message alike, but a code of its own: not a lost connection.
    throw Object.assign(new Error('Connection terminated'), { code: 'ERR_SOMETHING_ELSE' })
  })
  app.get('/token', async () => {
    throw Object.assign(new Error('token expired'), { statusCode: 401, code: 'invalid_token' })
  })
  app.get('/limited', { config: { rateLimit: { max: 1, timeWindow: 60_000 } } }, async () => ({ ok: true }))
  app.post('/echo-log', async (request) => {
    request.log.info({ body: request.body }, 'received')
    return { ok: true }
  })
  t.teardown(() => app.close())
  return { app, logs }
}

type Body = Record<string, unknown>

function assertProblem(t: Test, res: LightMyRequestResponse, status: number, code: string): Body {
  t.equal(res.statusCode, status, `status ${String(status)}`)
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  const body = res.json<Body>()
  t.equal(body.code, code)
  t.equal(body.status, status)
  t.equal(body.type, `https://activity-auth.dev/problems/${code}`)
  t.type(body.title, 'string')
  t.type(body.detail, 'string')
  t.equal(body.requestId, res.headers['x-request-id'], 'body requestId is the x-request-id header')
  return body
}

const json = { 'content-type': 'application/json' }
const validItem = { name: 'a', email: 'a@example.com', count: 1 }

t.test('a valid request passes and still carries x-request-id', async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'POST', url: '/items', payload: validItem })
  t.equal(res.statusCode, 201)
  t.match(res.headers['x-request-id'], UUID)
})

t.test('malformed or empty JSON is 400 malformed_json', async (t) => {
  const { app } = await build(t)
  const broken = await app.inject({ method: 'POST', url: '/items', headers: json, payload: '{"name": "a",' })
  assertProblem(t, broken, 400, 'malformed_json')
  const empty = await app.inject({ method: 'POST', url: '/items', headers: json, payload: '' })
  assertProblem(t, empty, 400, 'malformed_json')
  const poisoned = await app.inject({ method: 'POST', url: '/items', headers: json, payload: '{"__proto__": {"x": 1}}' })
  assertProblem(t, poisoned, 400, 'malformed_json')
})

t.test('schema violations are 400 validation_failed naming the failing path', async (t) => {
  const { app } = await build(t)
  const badEmail = await app.inject({ method: 'POST', url: '/items', payload: { ...validItem, email: 'nope' } })
  const body = assertProblem(t, badEmail, 400, 'validation_failed')
  t.equal(body.detail, 'body/email must match format "email"')
  t.strictSame(Object.keys(body).sort(), ['code', 'detail', 'requestId', 'status', 'title', 'type'])

  const wrongType = await app.inject({ method: 'POST', url: '/items', payload: { ...validItem, count: 'many' } })
  t.match(assertProblem(t, wrongType, 400, 'validation_failed').detail, /body\/count must be integer/)

  const extra = await app.inject({ method: 'POST', url: '/items', payload: { ...validItem, isAdmin: true } })
  t.match(assertProblem(t, extra, 400, 'validation_failed').detail, /additional properties 'isAdmin'/)

  const missing = await app.inject({ method: 'POST', url: '/items', payload: { name: 'a', count: 1 } })
  t.match(assertProblem(t, missing, 400, 'validation_failed').detail, /required property 'email'/)
})

t.test('a body that is not JSON is 415, an oversized one 413', async (t) => {
  const { app } = await build(t)
  const text = await app.inject({
    method: 'POST',
    url: '/items',
    headers: { 'content-type': 'text/plain' },
    payload: 'name=a',
  })
  assertProblem(t, text, 415, 'unsupported_media_type')
  const form = await app.inject({
    method: 'POST',
    url: '/items',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: 'name=a',
  })
  assertProblem(t, form, 415, 'unsupported_media_type')
  const big = await app.inject({
    method: 'POST',
    url: '/items',
    headers: json,
    payload: JSON.stringify({ ...validItem, name: 'x'.repeat(1024 * 1024) }),
  })
  assertProblem(t, big, 413, 'payload_too_large')
})

t.test('unknown route is 404; a known path with the wrong method is 405 with Allow', async (t) => {
  const { app } = await build(t)
  const unknown = await app.inject({ method: 'GET', url: '/nowhere?x=1' })
  assertProblem(t, unknown, 404, 'not_found')
  t.notOk(unknown.headers.allow)

  const wrongMethod = await app.inject({ method: 'DELETE', url: '/items' })
  assertProblem(t, wrongMethod, 405, 'method_not_allowed')
  t.equal(wrongMethod.headers.allow, 'POST')

  // Parametric paths are matched as the router would match them.
  const parametric = await app.inject({ method: 'PUT', url: '/items/42?force=1' })
  assertProblem(t, parametric, 405, 'method_not_allowed')
  t.equal(parametric.headers.allow, 'GET, HEAD')
})

t.test('an unexpected error is a bare 500; the log keeps the cause', async (t) => {
  const { app, logs } = await build(t)
  const res = await app.inject({ method: 'GET', url: '/boom' })
  const body = assertProblem(t, res, 500, 'internal_error')
  t.equal(body.detail, 'internal error')
  t.notMatch(res.body, /secret/i)
  t.notMatch(res.body, /SQL/)
  t.notMatch(res.body, /hashed_password|at .*\.ts|stack/)
  const logged = logs.find((l) => l.level === 50 && l.reqId === body.requestId && l.err !== undefined)
  t.ok(logged, 'logged at level error with the request id')
  t.match((logged?.err as { message: string } | undefined)?.message, /secret SQL/)
})

t.test('a database that cannot be reached is 503 service_unavailable', async (t) => {
  const { app } = await build(t)
  const refused = await app.inject({ method: 'GET', url: '/db-down' })
  t.equal(assertProblem(t, refused, 503, 'service_unavailable').detail, 'service temporarily unavailable')
  t.notMatch(refused.body, /5432|ECONNREFUSED/)
  const shutdown = await app.inject({ method: 'GET', url: '/db-gone' })
  assertProblem(t, shutdown, 503, 'service_unavailable')
  t.equal(shutdown.headers['retry-after'], '2', 'Retry-After')
})

t.test('a lost, reset or timed-out database connection is 503 with Retry-After, never 500', async (t) => {
  const { app } = await build(t)
  for (const how of [
    'reset',
    'timed-out',
    'pipe',
    'too-many',
    'terminated',
    'ended',
    'connect-timeout',
    'timeout-cause',
    'wrapped-reset',
  ]) {
    const res = await app.inject({ method: 'GET', url: `/db-lost/${how}` })
    t.equal(assertProblem(t, res, 503, 'service_unavailable').detail, 'service temporarily unavailable', how)
    const retryAfter = Number(res.headers['retry-after'])
    t.ok(retryAfter >= 1 && retryAfter <= 5, `${how}: Retry-After ${String(retryAfter)}`)
    t.notMatch(res.body, /ECONNRESET|ETIMEDOUT|EPIPE|terminated|timeout|5432/, `${how}: nothing internal`)
  }
  assertProblem(t, await app.inject({ method: 'GET', url: '/not-lost' }), 500, 'internal_error')
})

t.test('an HttpProblem answers its own status, code, detail and headers', async (t) => {
  const { app } = await build(t)
  const taken = await app.inject({ method: 'GET', url: '/taken' })
  t.equal(assertProblem(t, taken, 409, 'email_taken').detail, 'that address is already registered')
  t.equal(taken.json<Body>().title, 'Conflict')

  const throttled = await app.inject({ method: 'GET', url: '/throttled' })
  assertProblem(t, throttled, 429, 'login_throttled')
  t.equal(throttled.headers['retry-after'], '43')

  // Errors from other plugins keep their own snake_case code (the auth preHandler's).
  const token = await app.inject({ method: 'GET', url: '/token' })
  assertProblem(t, token, 401, 'invalid_token')
})

/** The rows of the custom SQLSTATE table in sql/CONVENTIONS.md: [sqlstate, code, status, problem code]. */
function documentedDbErrors(): string[][] {
  const doc = readFileSync(new URL('../../sql/CONVENTIONS.md', import.meta.url), 'utf8')
  return [...doc.matchAll(/^\| (AU\d{3}) \| `(\w+)` \| (\d{3}) \| `(\w+)` \|/gm)].map((m) => m.slice(1, 5))
}

t.test('the custom SQLSTATE table in sql/CONVENTIONS.md and DB_ERRORS agree row by row', async (t) => {
  const inCode = Object.entries(DB_ERRORS).map(([sqlstate, e]) => [sqlstate, e.code, String(e.status), e.problem])
  t.strictSame(documentedDbErrors(), inCode)
  const dir = new URL('../../sql/migrations/', import.meta.url)
  const raised = new Set(
    readdirSync(dir).flatMap((f) => [...readFileSync(new URL(f, dir), 'utf8').matchAll(/ERRCODE = '(AU\d{3})'/g)].map((m) => m[1])),
  )
  t.ok(raised.size > 0)
  for (const sqlstate of raised) t.ok(Object.hasOwn(DB_ERRORS, sqlstate as string), `${String(sqlstate)}, raised by a procedure, has a row`)
})

t.test('every custom SQLSTATE a procedure raises answers its documented problem, never a 500 or its message', async (t) => {
  const { app } = await build(t)
  for (const [sqlstate, , status, code] of documentedDbErrors()) {
    const res = await app.inject({ method: 'GET', url: `/sp-error/${String(sqlstate)}` })
    const body = assertProblem(t, res, Number(status), String(code))
    t.equal(body.detail, DB_ERRORS[sqlstate as keyof typeof DB_ERRORS].detail, `${String(sqlstate)}: the table's detail`)
    t.notMatch(res.body, /secret/, `${String(sqlstate)}: not the procedure's message`)
  }
  // A SQLSTATE of no custom row is no DbError: a server error as before.
  assertProblem(t, await app.inject({ method: 'GET', url: '/sp-error/AU999' }), 500, 'internal_error')
})

t.test('@fastify/rate-limit answers 429 rate_limited and keeps Retry-After', async (t) => {
  const { app } = await build(t)
  t.equal((await app.inject({ method: 'GET', url: '/limited' })).statusCode, 200)
  const res = await app.inject({ method: 'GET', url: '/limited' })
  assertProblem(t, res, 429, 'rate_limited')
  t.match(res.headers['retry-after'], /^\d+$/)
})

t.test('a URL the router cannot decode is a 400 problem, not Fastify JSON', async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'GET', url: '/items/%E0%A4%A' })
  assertProblem(t, res, 400, 'bad_request')
})

t.test('x-request-id: a short, well-formed one is echoed, anything else replaced; request.id is always ours', async (t) => {
  const { app, logs } = await build(t)
  const echoed = await app.inject({ method: 'GET', url: '/items/1', headers: { 'x-request-id': 'edge-01.abc_DEF' } })
  t.equal(echoed.headers['x-request-id'], 'edge-01.abc_DEF')

  const echoedOnError = await app.inject({ method: 'GET', url: '/nowhere', headers: { 'x-request-id': 'trace-7' } })
  t.equal(echoedOnError.headers['x-request-id'], 'trace-7', 'echoed on an error too')
  const ownId = echoedOnError.json<Body>().requestId
  t.match(ownId, UUID, "the problem body carries the service's own id, not the caller's")
  const line = logs.find((l) => l.msg === 'request completed' && l.reqId === ownId)
  t.match(line, { requestId: ownId, callerRequestId: 'trace-7' }, 'the log line ties the two together')

  // Another request cannot borrow that id: request ids stay unique whatever callers send.
  const again = await app.inject({ method: 'GET', url: '/nowhere', headers: { 'x-request-id': 'trace-7' } })
  t.not(again.json<Body>().requestId, ownId)

  t.equal(
    (await app.inject({ method: 'GET', url: '/items/1', headers: { 'x-request-id': 'a'.repeat(64) } })).headers['x-request-id'],
    'a'.repeat(64),
    '64 characters: echoed',
  )
  for (const bad of ['a'.repeat(65), 'x'.repeat(300), 'has spaces', 'line\\nbreak', 'ünicode', '']) {
    const res = await app.inject({ method: 'GET', url: '/nowhere', headers: { 'x-request-id': bad } })
    t.match(res.headers['x-request-id'], UUID, `replaced: ${JSON.stringify(bad.slice(0, 20))}`)
    t.equal(res.headers['x-request-id'], res.json<Body>().requestId, 'by our own id')
    t.notOk(
      logs.some((l) => l.callerRequestId === bad),
      'and not logged',
    )
  }
})

t.test('maskSecrets: masks without touching the logged object, copies only when it must, keeps an Error an Error', async (t) => {
  const line = { method: 'POST', route: '/api/auth/refresh', statusCode: 200, nested: { a: 1, list: [1, 2] } }
  t.equal(maskSecrets(line), line, 'nothing to mask: the very object, no copy')

  const logged = { user: { password: 'pw' }, list: [{ token: 'tk' }, { other: 1 }], deep: { a: { b: { token: 'too-deep' } } } }
  const masked = maskSecrets(logged)
  t.same(masked, {
    user: { password: '[redacted]' },
    list: [{ token: '[redacted]' }, { other: 1 }],
    deep: { a: { b: { token: 'too-deep' } } },
  })
  t.ok(Array.isArray(masked.list), 'an array stays an array')
  t.equal(masked.list[1], logged.list[1], 'an unchanged branch is shared')
  t.equal(logged.user.password, 'pw', 'the caller’s object is not changed')

  const err = Object.assign(new Error('failed'), { token: 'tk', code: 'X1' })
  const out = maskSecrets({ err }).err
  t.ok(out instanceof Error, 'still an Error')
  t.same([out.message, out.token, out.code, out.stack], ['failed', '[redacted]', 'X1', err.stack])
  t.equal(err.token, 'tk')
  const bytes = Buffer.alloc(4096)
  t.equal(maskSecrets({ bytes }).bytes, bytes, 'a buffer is not walked')
})

t.test('logs: secrets redacted at any depth up to two, one line per request', async (t) => {
  const { app, logs } = await build(t)
  app.log.info(
    {
      password: 'top-secret-pw',
      token: 'top-secret-token',
      headers: { authorization: 'Bearer top-secret-jwt', cookie: 'sid=top-secret-cookie' },
      user: { currentPassword: 'nested-secret-1', newPassword: 'nested-secret-2' },
      req: { headers: { authorization: 'Bearer req-secret-jwt' } },
      session: { tokens: { refreshToken: 'deep-secret-rt', accessToken: 'deep-secret-at' } },
    },
    'something happened',
  )
  await app.inject({
    method: 'POST',
    url: '/echo-log?token=query-secret-token&page=2',
    headers: { 'x-request-id': 'log-test-1' },
    payload: { email: 'a@example.com', password: 'body-secret-pw' },
  })

  const all = logs.map((l) => JSON.stringify(l)).join('\n')
  t.notMatch(all, /secret-(pw|token|jwt|cookie|rt|at)|nested-secret/, 'no secret value in any log line')
  const first = logs.find((l) => l.msg === 'something happened')
  t.equal(first?.password, '[redacted]')
  t.equal(first?.token, '[redacted]')
  t.same(first?.headers, { authorization: '[redacted]', cookie: '[redacted]' })
  t.same(first?.user, { currentPassword: '[redacted]', newPassword: '[redacted]' })
  t.same(first?.session, { tokens: { refreshToken: '[redacted]', accessToken: '[redacted]' } })
  t.same(logs.find((l) => l.msg === 'received')?.body, { email: 'a@example.com', password: '[redacted]' })

  const completed = logs.find((l) => l.msg === 'request completed' && l.callerRequestId === 'log-test-1')
  const lines = logs.filter((l) => l.reqId !== undefined && l.reqId === completed?.reqId)
  t.equal(lines.filter((l) => l.msg === 'request completed').length, 1, 'one completion line')
  t.notOk(
    lines.some((l) => l.msg === 'incoming request'),
    'no separate incoming line',
  )
  t.match(
    lines.find((l) => l.msg === 'request completed'),
    {
      method: 'POST',
      route: '/echo-log',
      url: '/echo-log?token=[redacted]&page=2',
      statusCode: 200,
      requestId: completed?.reqId,
      callerRequestId: 'log-test-1',
      durationMs: Number,
    },
  )
})

t.test('logs: a successful probe is a debug line, a failed one an info line', async (t) => {
  for (const level of ['info', 'debug'] as const) {
    const logs: LogLine[] = []
    const stream = { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) }
    const app = Fastify({ ...loggingServerOptions(level, stream), ...errorServerOptions() })
    t.teardown(() => app.close())
    app.get('/probe/:status', { config: { probe: true } }, async (request, reply) =>
      reply.code(Number((request.params as { status: string }).status)).send({ status: 'x' }),
    )
    app.get('/plain', async () => ({ ok: true }))
    for (const url of ['/probe/200', '/probe/503', '/plain']) await app.inject({ url })
    const completed = (url: string) => logs.filter((l) => l.msg === 'request completed' && l.url === url).map((l) => l.level)
    // pino's numbers: 20 debug, 30 info.
    t.same(completed('/probe/200'), level === 'debug' ? [20] : [], `${level}: a probe's 200`)
    t.same(completed('/probe/503'), [30], `${level}: a probe's 503 is logged as any request`)
    t.same(completed('/plain'), [30], `${level}: a route that is not a probe`)
  }
})
