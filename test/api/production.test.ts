// The real app as NODE_ENV=production builds it: no API map at /docs, no /metrics
// for strangers, and — with METRICS_TOKEN — /metrics for the scraper that has it.
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { build, json } from '../helpers/app.ts'

const METRICS_TOKEN = randomBytes(32).toString('hex')

/** Everything production insists on, with values that are not the development ones. */
function productionEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    NODE_ENV: 'production',
    JWT_PRIVATE_KEY: generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    REFRESH_TOKEN_PEPPER: randomBytes(48).toString('base64url'),
    MFA_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    AUTH_API_DB_PASSWORD: randomBytes(16).toString('hex'),
    WRITE_API_DB_PASSWORD: randomBytes(16).toString('hex'),
    READONLY_DB_PASSWORD: randomBytes(16).toString('hex'),
    APP_URL: 'https://auth.example.test',
    ...extra,
  }
}

const get = (h: Awaited<ReturnType<typeof build>>, url: string, headers: Record<string, string> = {}) =>
  h.app.inject({ method: 'GET', url, headers })

async function assertNotFound(t: Test, h: Awaited<ReturnType<typeof build>>, url: string): Promise<void> {
  const res = await get(h, url)
  t.equal(res.statusCode, 404, `${url}: 404`)
  t.equal(json(res).code, 'not_found', `${url}: not_found`)
}

t.test('production defaults: /docs, /docs/json and /metrics are not served', async (t) => {
  const h = await build(t, productionEnv())
  t.equal(h.config.nodeEnv, 'production', 'really production')
  for (const url of ['/docs', '/docs/', '/docs/json', '/metrics']) await assertNotFound(t, h, url)
  t.equal((await get(h, '/api/health/live')).statusCode, 200, 'the service itself is up')
})

t.test('production with SWAGGER_ENABLED=true serves the docs again', async (t) => {
  const h = await build(t, productionEnv({ SWAGGER_ENABLED: 'true' }))
  t.equal((await get(h, '/docs/json')).statusCode, 200)
})

t.test('production with METRICS_TOKEN: /metrics only for that bearer token', async (t) => {
  const h = await build(t, productionEnv({ METRICS_TOKEN }))
  for (const [what, headers] of [
    ['no token', {}],
    ['a wrong token', { authorization: `Bearer ${randomBytes(32).toString('hex')}` }],
    ['the token without the scheme', { authorization: METRICS_TOKEN }],
  ] as const) {
    const res = await get(h, '/metrics', headers)
    t.equal(res.statusCode, 401, what)
    t.match(res.headers['content-type'], /^application\/problem\+json/)
    t.equal(json(res).code, 'invalid_token', `${what}: invalid_token`)
  }
  const ok = await get(h, '/metrics', { authorization: `Bearer ${METRICS_TOKEN}` })
  t.equal(ok.statusCode, 200)
  t.match(ok.body, /http_request_duration_seconds/)
})

t.test('development: /docs and /metrics are open unless METRICS_TOKEN is set', async (t) => {
  const open = await build(t)
  t.equal((await get(open, '/docs/json')).statusCode, 200)
  t.equal((await get(open, '/metrics')).statusCode, 200)

  const guarded = await build(t, { METRICS_TOKEN })
  t.equal((await get(guarded, '/metrics')).statusCode, 401, 'a set token applies outside production too')
  t.equal((await get(guarded, '/metrics', { authorization: `Bearer ${METRICS_TOKEN}` })).statusCode, 200)
})
