// Access tokens as another service sees them: verified by an independent library
// (jose) against /.well-known/jwks.json; forged and expired tokens refused.
import { createHmac, generateKeyPairSync } from 'node:crypto'
import t from 'tap'
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, SignJWT, type JSONWebKeySet } from 'jose'
import { bearer, build, json } from '../helpers/app.ts'

const PASSWORD = 'correct horse battery staple'

async function loggedIn(h: Awaited<ReturnType<typeof build>>) {
  await h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email: 'tok@example.test', password: PASSWORD } })
  const res = await h.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: 'tok@example.test', password: PASSWORD } })
  return json<{ accessToken: string; refreshToken: string }>(res)
}

const b64 = (v: object | string) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url')

t.test('jose verifies our tokens against the JWKS; forgeries are refused', async (t) => {
  const h = await build(t, { REQUIRE_EMAIL_VERIFICATION: 'false', JWT_ISSUER: 'https://auth.test', JWT_AUDIENCE: 'activity' })
  const { accessToken } = await loggedIn(h)

  const jwksRes = await h.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })
  t.equal(jwksRes.statusCode, 200)
  t.match(jwksRes.headers['cache-control'], /max-age/)
  const jwks = json<JSONWebKeySet>(jwksRes)
  const header = decodeProtectedHeader(accessToken)
  t.equal(header.alg, 'EdDSA')
  t.equal(header.kid, jwks.keys[0]?.kid, 'kid names the published key')

  const { payload } = await jwtVerify(accessToken, createLocalJWKSet(jwks), {
    issuer: 'https://auth.test',
    audience: 'activity',
    algorithms: ['EdDSA'],
  })
  t.type(payload.sub, 'string')
  t.type(payload.sid, 'string')
  t.type(payload.jti, 'string')
  t.equal((payload.exp ?? 0) - (payload.iat ?? 0), 900, 'expires after ACCESS_TOKEN_TTL_SECONDS')

  const me = (token: string) => h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(token) })
  t.equal((await me(accessToken)).statusCode, 200)

  const [head, body, sig] = accessToken.split('.') as [string, string, string]
  const claims = JSON.parse(Buffer.from(body, 'base64url').toString()) as Record<string, unknown>
  const forgeries: [string, string][] = [
    ['tampered payload', `${head}.${b64({ ...claims, sub: '00000000-0000-0000-0000-000000000000' })}.${sig}`],
    ['alg none', `${b64({ alg: 'none', typ: 'JWT', kid: header.kid })}.${body}.`],
    [
      'HS256 keyed with the published JWK',
      (() => {
        const h2 = b64({ alg: 'HS256', typ: 'JWT', kid: header.kid })
        const mac = createHmac('sha256', JSON.stringify(jwks.keys[0])).update(`${h2}.${body}`).digest('base64url')
        return `${h2}.${body}.${mac}`
      })(),
    ],
    ['garbage', 'not.a.token'],
  ]
  for (const [what, token] of forgeries) {
    const res = await me(token)
    t.equal(res.statusCode, 401, what)
    t.equal(json(res).code, 'invalid_token', `${what}: invalid_token`)
  }
  t.equal((await h.app.inject({ method: 'GET', url: '/api/auth/me' })).statusCode, 401, 'no header')
  t.equal((await h.app.inject({ method: 'GET', url: '/api/auth/me', headers: { authorization: 'Basic eDp5' } })).statusCode, 401, 'Basic')
})

t.test('HS256 keyed with the PEM of the public key (the classic confusion) is refused', async (t) => {
  const h = await build(t, { REQUIRE_EMAIL_VERIFICATION: 'false' })
  const { accessToken } = await loggedIn(h)
  const [, body] = accessToken.split('.') as [string, string]
  const kid = decodeProtectedHeader(accessToken).kid
  const { readFile } = await import('node:fs/promises')
  const { createPrivateKey, createPublicKey } = await import('node:crypto')
  const privatePem = await readFile(`${h.dataDir}/jwt/signing-key.pem`, 'utf8')
  const publicPem = createPublicKey(createPrivateKey(privatePem)).export({ format: 'pem', type: 'spki' }).toString()
  const head = b64({ alg: 'HS256', typ: 'JWT', kid })
  const mac = createHmac('sha256', publicPem).update(`${head}.${body}`).digest('base64url')
  const res = await h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(`${head}.${body}.${mac}`) })
  t.equal(res.statusCode, 401)
})

t.test('expired, wrong issuer, wrong audience and unknown keys are refused', async (t) => {
  const h = await build(t, { REQUIRE_EMAIL_VERIFICATION: 'false' })
  const { accessToken } = await loggedIn(h)
  const { readFile } = await import('node:fs/promises')
  const { createPrivateKey } = await import('node:crypto')
  const key = createPrivateKey(await readFile(`${h.dataDir}/jwt/signing-key.pem`, 'utf8'))
  const { kid } = decodeProtectedHeader(accessToken)
  const claims = JSON.parse(Buffer.from(accessToken.split('.')[1] ?? '', 'base64url').toString()) as Record<string, string | number>
  const now = Math.floor(Date.now() / 1000)
  const sign = (over: Record<string, unknown>, signWith = key, headerKid: string | null = kid ?? null) =>
    new SignJWT({ ...claims, ...over })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', ...(headerKid === null ? {} : { kid: headerKid }) })
      .sign(signWith)

  const me = (token: string) => h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(token) })
  t.equal((await me(await sign({}))).statusCode, 200, 'a token we sign the same way is accepted (the test can fail)')
  t.equal((await me(await sign({ iat: now - 2000, exp: now - 1000 }))).statusCode, 401, 'expired')
  t.equal((await me(await sign({ iss: 'someone-else' }))).statusCode, 401, 'wrong issuer')
  t.equal((await me(await sign({ aud: 'another-app' }))).statusCode, 401, 'wrong audience')
  const stranger = generateKeyPairSync('ed25519').privateKey
  t.equal((await me(await sign({}, stranger))).statusCode, 401, 'signed by a key we do not have, under our kid')
  t.equal((await me(await sign({}, key, 'unknown-kid'))).statusCode, 401, 'unknown kid')
  t.equal((await me(await sign({}, key, null))).statusCode, 401, 'no kid')
})

t.test('the header says at+jwt (RFC 9068) and only that type passes; future iat and non-UUID ids are 401, not 500', async (t) => {
  const h = await build(t, { REQUIRE_EMAIL_VERIFICATION: 'false' })
  const { accessToken } = await loggedIn(h)
  t.equal(decodeProtectedHeader(accessToken).typ, 'at+jwt', 'our tokens are typed')

  const { readFile } = await import('node:fs/promises')
  const { createPrivateKey } = await import('node:crypto')
  // The very key the app signs with: every token below is correctly signed.
  const key = createPrivateKey(await readFile(`${h.dataDir}/jwt/signing-key.pem`, 'utf8'))
  const { kid } = decodeProtectedHeader(accessToken)
  const claims = JSON.parse(Buffer.from(accessToken.split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>
  const now = Math.floor(Date.now() / 1000)
  const sign = (over: Record<string, unknown>, typ: string | null = 'at+jwt') =>
    new SignJWT({ ...claims, ...over }).setProtectedHeader({ alg: 'EdDSA', kid, ...(typ === null ? {} : { typ }) }).sign(key)
  const me = (token: string) => h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(token) })

  t.equal((await me(await sign({}))).statusCode, 200, 'baseline: the same claims, typed at+jwt, are accepted')
  t.equal((await me(await sign({}, 'application/at+jwt'))).statusCode, 200, 'the media-type form of the same type (RFC 9068 §4)')
  t.equal((await me(await sign({ iat: now + 30 }))).statusCode, 200, 'iat within the clock skew')

  const refused: [string, Promise<string>][] = [
    ['no typ', sign({}, null)],
    ['typ JWT', sign({}, 'JWT')],
    ['typ of another token kind', sign({}, 'id_token+jwt')],
    ['iat an hour in the future', sign({ iat: now + 3600, exp: now + 7200 })],
    ['iat not a number', sign({ iat: 'yesterday' })],
    ['sub not a UUID', sign({ sub: 'admin' })],
    ['sub a UUID with extra text', sign({ sub: `${String(claims.sub)}'--` })],
    ['sid not a UUID', sign({ sid: 'not-a-session' })],
    ['sid a number', sign({ sid: 42 })],
    ['sub empty', sign({ sub: '' })],
  ]
  for (const [what, token] of refused) {
    const res = await me(await token)
    t.equal(res.statusCode, 401, what)
    t.equal(json(res).code, 'invalid_token', `${what}: invalid_token`)
    t.match(res.headers['www-authenticate'], /invalid_token/, `${what}: WWW-Authenticate`)
  }
})

t.test('after a key rotation, tokens of the previous key still work and both keys are published', async (t) => {
  const { buildApp } = await import('../../src/app.ts')
  const { createPublicKey } = await import('node:crypto')
  const h = await build(t, { REQUIRE_EMAIL_VERIFICATION: 'false' })
  const { accessToken } = await loggedIn(h)
  const { readFile } = await import('node:fs/promises')
  const oldPem = await readFile(`${h.dataDir}/jwt/signing-key.pem`, 'utf8')
  const oldPublic = createPublicKey(oldPem).export({ format: 'pem', type: 'spki' }).toString()
  const next = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()

  const config = { ...h.config, jwt: { ...h.config.jwt, privateKeyPem: next, previousPublicKeysPem: oldPublic } }
  const rotated = await buildApp(config, { databaseUrl: h.db.url })
  t.teardown(() => rotated.close())
  const jwks = json<JSONWebKeySet>(await rotated.inject({ method: 'GET', url: '/.well-known/jwks.json' }))
  t.equal(jwks.keys.length, 2, 'current and previous key')
  const me = await rotated.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(accessToken) })
  t.equal(me.statusCode, 200, 'a token signed before the rotation is still accepted')
  const fresh = await rotated.inject({ method: 'POST', url: '/api/auth/login', payload: { email: 'tok@example.test', password: PASSWORD } })
  const newToken = json<{ accessToken: string }>(fresh).accessToken
  t.not(decodeProtectedHeader(newToken).kid, decodeProtectedHeader(accessToken).kid, 'new tokens use the new key')
})
