// docs/integrating.md cannot drift: its TypeScript blocks are saved as a service
// that copied the client would have them, typechecked, and run in a tsx child
// against the real service on a real port.
import { execFile } from 'node:child_process'
import { generateKeyPairSync, randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { decodeJwt, SignJWT } from 'jose'
import t, { type Test } from 'tap'
import { projectPath } from '../../src/paths.ts'
import { bearer, build, json, type TestApp } from '../helpers/app.ts'
import { freePort } from '../helpers/net.ts'

const run = promisify(execFile)
const DOC = readFileSync(projectPath('docs', 'integrating.md'), 'utf8')
const PASSWORD = 'correct horse battery staple'

interface Snippet {
  name: string
  code: string
}

/** The ```ts blocks marked `<!-- run: NAME -->`. */
function runnableBlocks(md: string): Snippet[] {
  return [...md.matchAll(/^<!-- run: ([a-z][a-z-]*) -->\n```ts\n([\s\S]*?)^```$/gm)].map((m) => ({
    name: m[1] ?? '',
    code: m[2] ?? '',
  }))
}

const snippets = runnableBlocks(DOC)

/**
 * A directory laid out like a service that copied the client: the blocks as NAME.ts,
 * auth-client/ (this repository's client/), and this project's node_modules for jose,
 * fastify and openapi-fetch. Symlinks, so the client is the committed one.
 */
async function workspace(t: Test, drivers: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'activity-auth-docs-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await symlink(projectPath('node_modules'), path.join(dir, 'node_modules'), 'dir')
  await symlink(projectPath('client'), path.join(dir, 'auth-client'), 'dir')
  await writeFile(path.join(dir, 'package.json'), JSON.stringify({ type: 'module', private: true }))
  const files = { ...Object.fromEntries(snippets.map((s) => [`${s.name}.ts`, s.code])), ...drivers }
  for (const [file, code] of Object.entries(files)) await writeFile(path.join(dir, file), code)
  await writeFile(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        lib: ['ES2023'],
        types: ['node'],
        strict: true,
        noUncheckedIndexedAccess: true,
        skipLibCheck: true,
        allowImportingTsExtensions: true,
        noEmit: true,
      },
      files: Object.keys(files),
    }),
  )
  return dir
}

/**
 * Runs a driver under tsx, as a service would run the blocks. tap's coverage hook
 * (NODE_OPTIONS) stays out: under tsx's transform the client's lines would merge
 * into the report shifted (test/helpers/child.ts); client.test.ts covers them.
 */
async function runDriver(dir: string, file: string, authUrl: string, input: unknown): Promise<Record<string, unknown>> {
  const env: NodeJS.ProcessEnv = { ...process.env, AUTH_URL: authUrl }
  delete env.NODE_OPTIONS
  const { stdout } = await run(process.execPath, [projectPath('node_modules', 'tsx', 'dist', 'cli.mjs'), file, JSON.stringify(input)], {
    cwd: dir,
    env,
    timeout: 60_000,
  })
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as Record<string, unknown>
}

async function listen(h: TestApp): Promise<string> {
  await h.app.listen({ port: 0, host: '127.0.0.1' })
  return `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`
}

async function signup(h: TestApp, email: string, verify: boolean): Promise<void> {
  const res = await h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email, password: PASSWORD } })
  if (res.statusCode !== 202) throw new Error(`signup ${String(res.statusCode)} ${res.body}`)
  if (!verify) return
  const token = await h.tokenFor(email, /Confirm your email/)
  const verified = await h.app.inject({ method: 'POST', url: '/api/auth/verify-email', payload: { token } })
  if (verified.statusCode !== 200) throw new Error(`verify ${String(verified.statusCode)} ${verified.body}`)
}

const CLIENT_DRIVER = `
import { AuthError, currentUser, logIn, refresh } from './client.ts'

const input = JSON.parse(process.argv[2] ?? '') as { email: string; password: string; unverified: string }
const wrong = await logIn(input.email, 'not the password at all')
const pair = await logIn(input.email, input.password)
if (pair === undefined || 'mfaRequired' in pair) throw new Error('login failed')
const me = await currentUser(pair.accessToken)
const next = await refresh(pair.refreshToken)
const bogus = await currentUser('not-a-token')
let unverified: unknown = 'no error'
try {
  await logIn(input.unverified, input.password)
} catch (err) {
  unverified = err instanceof AuthError ? { status: err.status, code: err.code } : String(err)
}
console.log(JSON.stringify({
  wrong: wrong ?? null,
  tokenType: pair.tokenType,
  me: me ?? null,
  rotated: next !== undefined && next.refreshToken !== pair.refreshToken && next.accessToken !== pair.accessToken,
  bogus: bogus ?? null,
  unverified,
}))
`

const VERIFY_DRIVER = `
import Fastify from 'fastify'
import { requireUser } from './require-user.ts'
import { verifyAccessToken } from './verify-token.ts'

const tokens = JSON.parse(process.argv[2] ?? '') as Record<string, string>
const verified: Record<string, unknown> = {}
for (const [name, token] of Object.entries(tokens)) {
  try {
    verified[name] = { ok: true, claims: await verifyAccessToken(token) }
  } catch (err) {
    const e = err as { code?: string; claim?: string }
    verified[name] = { ok: false, code: e.code ?? String(err), claim: e.claim ?? null }
  }
}
const app = Fastify()
app.get('/whoami', { preHandler: requireUser }, async (request) => request.caller)
const guarded: Record<string, unknown> = {}
for (const [name, token] of [...Object.entries(tokens), ['none', '']] as const) {
  const res = await app.inject({ url: '/whoami', headers: token === '' ? {} : { authorization: 'Bearer ' + token } })
  guarded[name] = {
    status: res.statusCode,
    contentType: res.headers['content-type'] ?? null,
    wwwAuthenticate: res.headers['www-authenticate'] ?? null,
    body: res.json() as unknown,
  }
}
await app.close()
console.log(JSON.stringify({ verified, guarded }))
`

const DRIVERS = { 'client-driver.ts': CLIENT_DRIVER, 'verify-driver.ts': VERIFY_DRIVER }

t.test('every TypeScript block of the page is marked to run, under a name of its own', async (t) => {
  const tsBlocks = DOC.match(/^```ts$/gm) ?? []
  t.equal(snippets.length, tsBlocks.length, 'a ```ts block without <!-- run: NAME --> right above it')
  t.same(snippets.map((s) => s.name).sort(), ['client', 'require-user', 'verify-token'])
})

t.test('the blocks typecheck (strict) against the committed client', async (t) => {
  const dir = await workspace(t, DRIVERS)
  const tsc = projectPath('node_modules', 'typescript', 'bin', 'tsc')
  const result = await run(process.execPath, [tsc, '-p', path.join(dir, 'tsconfig.json')], { cwd: dir }).then(
    () => '',
    (err: unknown) => String((err as { stdout?: string }).stdout ?? err),
  )
  t.equal(result, '', 'tsc reports no error')
})

t.test('the client block: login, profile, refresh and the error model against the service', async (t) => {
  const h = await build(t)
  const authUrl = await listen(h)
  await signup(h, 'reader@example.test', true)
  await signup(h, 'unconfirmed@example.test', false)
  const dir = await workspace(t, DRIVERS)

  const out = await runDriver(dir, 'client-driver.ts', authUrl, {
    email: 'reader@example.test',
    password: PASSWORD,
    unverified: 'unconfirmed@example.test',
  })
  t.equal(out.wrong, null, 'a wrong password is undefined, not an exception')
  t.equal(out.tokenType, 'Bearer')
  t.match(out.me, { email: 'reader@example.test', isVerified: true })
  t.equal(out.rotated, true, 'refresh gave a new pair')
  t.equal(out.bogus, null, 'a bad access token is no user')
  t.same(out.unverified, { status: 403, code: 'email_not_verified' }, 'other answers throw AuthError with the code')
})

t.test('the verify-token and require-user blocks against the service and its keys', async (t) => {
  // The service's own key, known here, so tokens with one wrong detail can be made.
  const { privateKey } = generateKeyPairSync('ed25519')
  const h = await build(t, { JWT_PRIVATE_KEY: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() })
  const authUrl = await listen(h)
  await signup(h, 'verifier@example.test', true)
  const login = await h.app.inject({
    method: 'POST',
    url: '/api/auth/login',
    payload: { email: 'verifier@example.test', password: PASSWORD },
  })
  const { accessToken } = json<{ accessToken: string }>(login)
  const me = json<{ id: string }>(await h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(accessToken) }))
  const sessions = json<{ id: string; current: boolean }[]>(
    await h.app.inject({ method: 'GET', url: '/api/auth/sessions', headers: bearer(accessToken) }),
  )
  const sessionId = sessions.find((s) => s.current)?.id
  const kid = json<{ keys: { kid: string }[] }>(await h.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).keys[0]?.kid
  if (kid === undefined || sessionId === undefined) throw new Error('no key or no session')

  const claims = decodeJwt(accessToken)
  const sign = (typ: string, audience: string) =>
    new SignJWT({ sid: claims.sid, jti: randomUUID() })
      .setProtectedHeader({ alg: 'EdDSA', kid, typ })
      .setSubject(me.id)
      .setIssuer('activity-auth')
      .setAudience(audience)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey)
  const [header, payload, signature] = accessToken.split('.')
  const otherUser = Buffer.from(JSON.stringify({ ...claims, sub: randomUUID() })).toString('base64url')
  const tokens = {
    real: accessToken,
    // Made the same way as the wrong ones below, to show the difference is the one detail.
    control: await sign('at+jwt', 'activity-app'),
    tampered: `${header ?? ''}.${otherUser}.${signature ?? ''}`,
    wrongAudience: await sign('at+jwt', 'another-service'),
    wrongType: await sign('JWT', 'activity-app'),
  }
  t.not(payload, otherUser)
  const dir = await workspace(t, DRIVERS)

  const out = (await runDriver(dir, 'verify-driver.ts', authUrl, tokens)) as {
    verified: Record<string, { ok: boolean; claims?: Record<string, unknown>; code?: string; claim?: string | null }>
    guarded: Record<string, { status: number; contentType: string | null; wwwAuthenticate: string | null; body: Record<string, unknown> }>
  }
  t.match(out.verified.real, { ok: true, claims: { userId: me.id, sessionId, tokenId: claims.jti, expiresAt: claims.exp } })
  t.match(out.verified.control, { ok: true, claims: { userId: me.id } })
  t.match(out.verified.tampered, { ok: false, code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' })
  t.match(out.verified.wrongAudience, { ok: false, code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'aud' })
  t.match(out.verified.wrongType, { ok: false, code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'typ' })

  t.match(out.guarded.real, { status: 200, body: { userId: me.id, sessionId } })
  for (const name of ['tampered', 'wrongAudience', 'wrongType', 'none']) {
    t.match(
      out.guarded[name],
      {
        status: 401,
        contentType: /^application\/problem\+json/,
        wwwAuthenticate: 'Bearer error="invalid_token"',
        body: { code: 'invalid_token' },
      },
      `requireUser refuses the ${name} token`,
    )
  }
})

t.test('require-user answers 503 when the keys cannot be fetched', async (t) => {
  const { privateKey } = generateKeyPairSync('ed25519')
  const token = await new SignJWT({ sid: randomUUID(), jti: randomUUID() })
    .setProtectedHeader({ alg: 'EdDSA', kid: 'some-key', typ: 'at+jwt' })
    .setSubject(randomUUID())
    .setIssuer('activity-auth')
    .setAudience('activity-app')
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(privateKey)
  const dir = await workspace(t, DRIVERS)
  // Nothing listens there: the JWKS fetch is refused.
  const out = (await runDriver(dir, 'verify-driver.ts', `http://127.0.0.1:${String(await freePort())}`, { token })) as {
    guarded: Record<string, { status: number; contentType: string | null; body: Record<string, unknown> }>
  }
  t.match(out.guarded.token, { status: 503, contentType: /^application\/problem\+json/, body: { code: 'service_unavailable' } })
  t.match(out.guarded.none, { status: 401 }, 'no token is still the caller’s fault')
})
