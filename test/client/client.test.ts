// The typed client (client/) against the real service on a real port: its types
// are what the service's document generates today, and a whole session through
// it works with the answers typed, errors included.
import { readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { bearer, createAuthClient, isMfaChallenge, type LoginResult, type Problem, type TokenPair } from '../../client/index.ts'
import { DOCUMENT_SETTINGS, openapiDocument } from '../../scripts/openapi.ts'
import { CLIENT_SCHEMA_FILE, renderClientSchema } from '../../scripts/generate-client.ts'
import { build, json } from '../helpers/app.ts'

const PASSWORD = 'correct horse battery staple'
const STALE = 'client/schema.d.ts differs from the OpenAPI document: run `npm run client:generate` and commit it'

t.test('the committed client types are what the document generates', async (t) => {
  const committed = await readFile(CLIENT_SCHEMA_FILE, 'utf8')
  // What `npm run client:generate` writes: the document of the app built without a database.
  const generated = await renderClientSchema(await openapiDocument())
  t.equal(generated, committed, STALE)

  // The document a running app serves (the test settings otherwise, not the defaults)
  // gives the same types: nothing else about a deployment changes the client.
  const h = await build(t, DOCUMENT_SETTINGS)
  const served = await h.app.inject({ method: 'GET', url: '/docs/json' })
  t.equal(served.statusCode, 200)
  t.equal(
    await renderClientSchema(json(served)),
    generated,
    'the served document gives other types than the generator: the document depends on configuration',
  )
})

t.test('signup → verify → login → me → refresh → logout through the typed client', async (t) => {
  const h = await build(t)
  await h.app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = h.app.server.address() as AddressInfo
  const client = createAuthClient(`http://127.0.0.1:${port}`)
  const email = 'client@example.test'

  const signup = await client.POST('/api/auth/signup', { body: { email, password: PASSWORD } })
  t.equal(signup.response.status, 202)
  t.type(signup.data?.message, 'string')

  const token = await h.tokenFor(email, /Confirm your email/)
  const verified = await client.POST('/api/auth/verify-email', { body: { token } })
  t.same(verified.data, { verified: true })

  // The error path: no data, a typed Problem, served as problem+json.
  const wrong = await client.POST('/api/auth/login', { body: { email, password: 'not the password at all' } })
  t.equal(wrong.data, undefined)
  const problem: Problem | undefined = wrong.error
  t.equal(problem?.code, 'invalid_credentials')
  t.equal(problem?.status, 401)
  t.match(wrong.response.headers.get('content-type'), /^application\/problem\+json/)

  const login = await client.POST('/api/auth/login', { body: { email, password: PASSWORD } })
  t.equal(login.response.status, 200)
  const answer = login.data
  if (answer === undefined || isMfaChallenge(answer)) throw new Error(`login failed: ${JSON.stringify(login.error)}`)
  const pair: LoginResult = answer
  t.equal(pair.tokenType, 'Bearer')

  const me = await client.GET('/api/auth/me', { headers: bearer(pair.accessToken) })
  t.equal(me.data?.email, email)
  t.equal(me.data?.isVerified, true)
  // @ts-expect-error: the profile has no password hash, in the types or on the wire
  t.equal(me.data?.hashedPassword, undefined)

  const refreshed = await client.POST('/api/auth/refresh', { body: { refreshToken: pair.refreshToken } })
  const next: TokenPair | undefined = refreshed.data
  if (next === undefined) throw new Error(`refresh failed: ${JSON.stringify(refreshed.error)}`)
  t.not(next.refreshToken, pair.refreshToken, 'the refresh token rotated')

  const logout = await client.POST('/api/auth/logout', { body: { refreshToken: next.refreshToken } })
  t.equal(logout.response.status, 204)
  t.equal(logout.error, undefined)

  const ended = await client.GET('/api/auth/me', { headers: bearer(next.accessToken) })
  t.equal(ended.response.status, 401, 'the session is over for the service itself')
  t.equal(ended.error?.code, 'invalid_token')
})

t.test('the compiler refuses what the service refuses', async (t) => {
  // Each call below is a compile error (tsc fails on an unused @ts-expect-error, so
  // `npm run typecheck` proves the types are not loose) and, sent anyway, an error answer.
  const h = await build(t)
  await h.app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = h.app.server.address() as AddressInfo
  const client = createAuthClient(`http://127.0.0.1:${port}`)

  // @ts-expect-error: login needs a password
  const missing = await client.POST('/api/auth/login', { body: { email: 'someone@example.test' } })
  t.equal(missing.response.status, 400)
  t.equal(missing.error?.code, 'validation_failed')

  // @ts-expect-error: the service has no such path
  const unknown = await client.GET('/api/auth/profile')
  t.equal(unknown.response.status, 404)
  // A path outside the types has no typed answer; the service's is still a Problem.
  t.equal(unknown.error?.code, 'not_found')
})
