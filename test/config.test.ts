import t from 'tap'
import { ConfigError, loadConfig } from '../src/config.ts'

/** 48 random bytes, base64url: what `openssl rand -base64 48` gives, URL-safe. */
const GOOD_PEPPER = 'q3Vt7wYkP0sJ2nXcR9aLmE4hB6uZfD1gT8oKiW5yNvQxS-_rMjHbCe3pAlUzGdFo'
const GOOD_MFA_KEY = 'mV0n1z3Qh8kq2b6Jc5xR7dL4tY9wE0aS1fG3hK5jP7o='

t.test('defaults: development, embedded database, seed-000 pool settings', async (t) => {
  const c = loadConfig({})
  t.equal(c.nodeEnv, 'development')
  t.equal(c.http.port, 8000)
  t.ok(c.database.embedded)
  t.equal(c.database.url, undefined)
  t.equal(c.database.runMigrations, true)
  t.same(
    [c.database.pool.max, c.database.pool.min, c.database.pool.idleTimeoutMs, c.database.pool.connectTimeoutMs],
    [20, 5, 30_000, 10_000],
  )
})

t.test('strings are converted and validated; empty means unset', async (t) => {
  const c = loadConfig({ PORT: '9001', DATABASE_SSL: 'true', RUN_MIGRATIONS: 'false', DATABASE_URL: '' })
  t.equal(c.http.port, 9001)
  t.equal(c.database.pool.ssl, true)
  t.equal(c.database.runMigrations, false)
  t.ok(c.database.embedded)
  t.throws(() => loadConfig({ PORT: 'eighty' }), ConfigError)
  t.throws(() => loadConfig({ PORT: '70000' }), /PORT/)
  t.throws(() => loadConfig({ LOG_LEVEL: 'loud' }), /LOG_LEVEL/)
  t.throws(() => loadConfig({ POSTGRES_DB: 'bad;name' }), /POSTGRES_DB/)
})

t.test('seed-003 POSTGRES_* variables build the connection when DATABASE_URL is unset', async (t) => {
  const c = loadConfig({ POSTGRES_HOST: 'postgres-db', POSTGRES_PASSWORD: 'p@ss word' })
  t.notOk(c.database.embedded)
  t.equal(c.database.url, 'postgresql://auth_api_user:p%40ss%20word@postgres-db:5432/activitydb')
  const explicit = loadConfig({ POSTGRES_HOST: 'ignored', DATABASE_URL: 'postgresql://a@b/c' })
  t.equal(explicit.database.url, 'postgresql://a@b/c', 'DATABASE_URL wins')
})

t.test('production refuses development defaults', async (t) => {
  t.throws(() => loadConfig({ NODE_ENV: 'production' }), /DATABASE_URL is required/)
  t.throws(() => loadConfig({ NODE_ENV: 'production' }), /JWT_PRIVATE_KEY is required/)
  t.throws(() => loadConfig({ NODE_ENV: 'production' }), /SMTP_URL is required/)
  t.throws(
    () =>
      loadConfig({
        NODE_ENV: 'production',
        DATABASE_URL: 'postgresql://auth_api_user:s3cret-a@db/activitydb',
        AUTH_API_DB_PASSWORD: 's3cret-a',
        WRITE_API_DB_PASSWORD: 's3cret-b',
        READONLY_DB_PASSWORD: 's3cret-c',
        JWT_PRIVATE_KEY: 'pem',
        REFRESH_TOKEN_PEPPER: GOOD_PEPPER,
        MFA_ENCRYPTION_KEY: GOOD_MFA_KEY,
        APP_URL: 'https://auth.example.com',
        REQUIRE_EMAIL_VERIFICATION: 'false',
      }),
    /SMTP_URL is required/,
    'SMTP is required even with verification off: reset links would otherwise go to the log',
  )
  t.throws(
    () => loadConfig({ NODE_ENV: 'production', DATABASE_URL: 'postgresql://auth_api_user:auth_api_dev_password@db/activitydb' }),
    /development password/,
  )
  // The operations CLI: an admin URL instead of the embedded server, no key or SMTP,
  // but never the compose superuser's development password.
  const admin = 'postgresql://postgres:s3cret-s@db/activitydb'
  t.doesNotThrow(() => loadConfig({ NODE_ENV: 'production', DATABASE_ADMIN_URL: admin }, 'operations'))
  t.throws(() => loadConfig({ NODE_ENV: 'production' }, 'operations'), /DATABASE_ADMIN_URL is required/)
  t.throws(
    () =>
      loadConfig({ NODE_ENV: 'production', DATABASE_ADMIN_URL: 'postgresql://postgres:postgres_dev_password@db/activitydb' }, 'operations'),
    /development password/,
  )
  const ok = loadConfig({
    NODE_ENV: 'production',
    DATABASE_URL: 'postgresql://auth_api_user:s3cret-a@db/activitydb',
    AUTH_API_DB_PASSWORD: 's3cret-a',
    WRITE_API_DB_PASSWORD: 's3cret-b',
    READONLY_DB_PASSWORD: 's3cret-c',
    JWT_PRIVATE_KEY: '-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----',
    REFRESH_TOKEN_PEPPER: GOOD_PEPPER,
    MFA_ENCRYPTION_KEY: GOOD_MFA_KEY,
    SMTP_URL: 'smtp://mail.internal:587',
    APP_URL: 'https://auth.example.com',
  })
  t.equal(ok.database.runMigrations, false, 'production does not migrate at start unless asked')
  t.equal(ok.http.swagger, false, 'no /docs in production unless asked')
  t.equal(ok.http.trustProxy, false)
})

/** Everything production needs, so each test below changes one thing. */
const PRODUCTION = {
  NODE_ENV: 'production',
  DATABASE_URL: 'postgresql://auth_api_user:s3cret-a@db/activitydb',
  AUTH_API_DB_PASSWORD: 's3cret-a',
  WRITE_API_DB_PASSWORD: 's3cret-b',
  READONLY_DB_PASSWORD: 's3cret-c',
  JWT_PRIVATE_KEY: 'pem',
  REFRESH_TOKEN_PEPPER: GOOD_PEPPER,
  MFA_ENCRYPTION_KEY: GOOD_MFA_KEY,
  SMTP_URL: 'smtp://mail.internal:587',
  APP_URL: 'https://auth.example.com',
}

t.test('production refuses a plain-http or localhost APP_URL unless ALLOW_INSECURE_APP_URL says so', async (t) => {
  t.doesNotThrow(() => loadConfig(PRODUCTION), 'the baseline starts')
  for (const [appUrl, why] of [
    ['http://localhost:8000', /APP_URL must be https.*APP_URL must not be a localhost/],
    ['http://auth.example.com', /APP_URL must be https/],
    ['https://localhost', /localhost/],
    ['https://127.0.0.1:8443', /localhost/],
    ['https://[::1]', /localhost/],
    ['https://app.localhost', /localhost/],
    ['https://0.0.0.0', /localhost/],
  ] as const) {
    t.throws(() => loadConfig({ ...PRODUCTION, APP_URL: appUrl }), why, appUrl)
    t.doesNotThrow(() => loadConfig({ ...PRODUCTION, APP_URL: appUrl, ALLOW_INSECURE_APP_URL: 'true' }), `${appUrl}: with the override`)
  }
  t.doesNotThrow(() => loadConfig({ APP_URL: 'http://localhost:8000' }), 'development takes it')
  t.doesNotThrow(
    () => loadConfig({ NODE_ENV: 'production', DATABASE_ADMIN_URL: 'postgresql://postgres:s3cret-s@db/activitydb' }, 'operations'),
    'the CLI sends no mail: no APP_URL or SMTP check',
  )
})

t.test('TRUST_PROXY: false, a hop count or proxy addresses; true only outside production', async (t) => {
  t.equal(loadConfig({}).http.trustProxy, false, 'default')
  t.equal(loadConfig({ TRUST_PROXY: 'false' }).http.trustProxy, false)
  t.equal(loadConfig({ TRUST_PROXY: '0' }).http.trustProxy, false, 'zero hops: nobody')
  t.equal(loadConfig({ TRUST_PROXY: '1' }).http.trustProxy, 1)
  t.equal(loadConfig({ TRUST_PROXY: '2' }).http.trustProxy, 2)
  t.same(loadConfig({ TRUST_PROXY: '127.0.0.1' }).http.trustProxy, ['127.0.0.1'])
  t.same(loadConfig({ TRUST_PROXY: ' 127.0.0.1, 10.0.0.0/8 ,fd00::/8,::1,loopback' }).http.trustProxy, [
    '127.0.0.1',
    '10.0.0.0/8',
    'fd00::/8',
    '::1',
    'loopback',
  ])
  t.equal(loadConfig({ TRUST_PROXY: 'true' }).http.trustProxy, true, 'development may trust everyone')
  for (const bad of ['yes', '10.0.0.0/33', '10.0.0/8', 'proxy.internal', '127.0.0.1,', '::1/129', '1000', '-1']) {
    t.throws(() => loadConfig({ TRUST_PROXY: bad }), /TRUST_PROXY/, `refused: ${bad}`)
  }
  t.throws(() => loadConfig({ ...PRODUCTION, TRUST_PROXY: 'true' }), /TRUST_PROXY=true/, 'production refuses true')
  t.same(loadConfig({ ...PRODUCTION, TRUST_PROXY: '10.0.0.0/8' }).http.trustProxy, ['10.0.0.0/8'], 'and takes a CIDR')
  t.equal(loadConfig({ ...PRODUCTION, TRUST_PROXY: '1' }).http.trustProxy, 1, 'and a hop count')
})

t.test('SWAGGER_ENABLED defaults by NODE_ENV; METRICS_TOKEN and password settings are validated', async (t) => {
  t.equal(loadConfig({}).http.swagger, true, 'on in development')
  t.equal(loadConfig(PRODUCTION).http.swagger, false, 'off in production')
  t.equal(loadConfig({ ...PRODUCTION, SWAGGER_ENABLED: 'true' }).http.swagger, true, 'unless asked for')
  t.equal(loadConfig({ SWAGGER_ENABLED: 'false' }).http.swagger, false)
  t.throws(() => loadConfig({ METRICS_TOKEN: 'short' }), /METRICS_TOKEN/, 'a guessable metrics token is refused')
  t.equal(loadConfig({ METRICS_TOKEN: 'a'.repeat(32) }).http.metricsToken, 'a'.repeat(32))
  t.same(loadConfig({}).password, { minLength: 8, breachCheck: undefined }, 'the breach check is off by default')
  t.same(loadConfig({ PASSWORD_BREACH_CHECK: 'true' }).password.breachCheck, {
    url: 'https://api.pwnedpasswords.com',
    timeoutMs: 1500,
    failOpen: true,
  })
  t.equal(loadConfig({ PASSWORD_MIN_LENGTH: '15' }).password.minLength, 15)
  t.throws(() => loadConfig({ PASSWORD_MIN_LENGTH: '0' }), /PASSWORD_MIN_LENGTH/)
  t.throws(() => loadConfig({ PASSWORD_MIN_LENGTH: '129' }), /PASSWORD_MIN_LENGTH/)
  t.throws(() => loadConfig({ PASSWORD_BREACH_API_URL: 'ftp://x' }), /PASSWORD_BREACH_API_URL/)
})

t.test('REFRESH_TOKEN_PEPPER: required in production, at least 32 characters everywhere, never a placeholder', async (t) => {
  const production = {
    NODE_ENV: 'production',
    DATABASE_URL: 'postgresql://auth_api_user:s3cret-a@db/activitydb',
    AUTH_API_DB_PASSWORD: 's3cret-a',
    WRITE_API_DB_PASSWORD: 's3cret-b',
    READONLY_DB_PASSWORD: 's3cret-c',
    JWT_PRIVATE_KEY: 'pem',
    SMTP_URL: 'smtp://mail.internal:587',
    APP_URL: 'https://app.example.com',
    MFA_ENCRYPTION_KEY: GOOD_MFA_KEY,
  }
  /** The ConfigError's message, '' when the configuration loads. */
  const refusal = (env: Record<string, string>): string => {
    try {
      loadConfig(env)
      return ''
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      return err.message
    }
  }
  t.match(refusal(production), /REFRESH_TOKEN_PEPPER is required/, 'production without a pepper is refused')
  t.match(refusal({ ...production, REFRESH_TOKEN_PEPPER: '' }), /REFRESH_TOKEN_PEPPER is required/, 'empty means unset')
  t.match(refusal({ ...production, REFRESH_TOKEN_PEPPER: 'x'.repeat(64) }), /REFRESH_TOKEN_PEPPER is not random enough/)
  t.match(refusal({ ...production, REFRESH_TOKEN_PEPPER: 'changeme'.repeat(4) }), /REFRESH_TOKEN_PEPPER is not random enough/)
  t.match(refusal({ ...production, REFRESH_TOKEN_PEPPER: GOOD_PEPPER.slice(0, 31) }), /REFRESH_TOKEN_PEPPER/, '31 characters')
  t.notMatch(refusal({ ...production, REFRESH_TOKEN_PEPPER: GOOD_PEPPER }), /REFRESH_TOKEN_PEPPER/, 'a random one is accepted')
  t.equal(
    loadConfig({ ...production, REFRESH_TOKEN_PEPPER: GOOD_PEPPER }, 'operations').nodeEnv,
    'production',
    'the operations CLI needs none',
  )

  t.equal(loadConfig({}).refresh.pepper, undefined, 'development: unset is allowed (one is generated under DATA_DIR)')
  t.throws(() => loadConfig({ REFRESH_TOKEN_PEPPER: 'too-short' }), /REFRESH_TOKEN_PEPPER/, 'a short one is refused in development too')
  const withoutMfaKey: Record<string, string> = { ...production, REFRESH_TOKEN_PEPPER: GOOD_PEPPER }
  delete withoutMfaKey.MFA_ENCRYPTION_KEY
  t.match(refusal(withoutMfaKey), /MFA_ENCRYPTION_KEY is required/, 'production without an MFA key is refused')
  t.equal(loadConfig({}).mfa.encryptionKey, undefined, 'development: no MFA key is allowed (one is generated under DATA_DIR)')
})

t.test('.env.example lists every variable of the schema, and loads as a valid development config', async (t) => {
  const { readFile } = await import('node:fs/promises')
  const { EnvSchema } = await import('../src/config.ts')
  const { projectPath } = await import('../src/paths.ts')
  const text = await readFile(projectPath('.env.example'), 'utf8')
  const entries = Object.fromEntries(
    text
      .split('\n')
      .filter((l) => /^[A-Z0-9_]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  )
  for (const key of Object.keys(EnvSchema.properties)) t.ok(key in entries, `${key} is in .env.example`)
  const c = loadConfig(entries)
  t.equal(c.nodeEnv, 'development')
  t.ok(c.database.embedded)
})

t.test('OAuth providers: off unless configured; production refuses one without its secret or over http', async (t) => {
  const off = loadConfig({})
  t.equal(off.oauth.google, undefined, 'Google off by default')
  t.equal(off.oauth.github, undefined, 'GitHub off by default')
  t.same(off.oauth.redirectUrls, ['http://localhost:8000/'], 'redirects: the origin of APP_URL')
  t.same(
    loadConfig({ APP_URL: 'https://auth.example.com/', LOGIN_URL: 'https://app.example.com/login' }).oauth.redirectUrls,
    ['https://auth.example.com/', 'https://app.example.com/'],
    'and of LOGIN_URL',
  )
  t.equal(loadConfig({ APP_URL: 'https://auth.example.com/' }).oauth.publicUrl, 'https://auth.example.com', 'no trailing slash')
  t.throws(() => loadConfig({ OAUTH_REDIRECT_URLS: 'app.example.com' }), /OAUTH_REDIRECT_URLS/, 'an entry that is not a URL')
  t.throws(() => loadConfig({ OAUTH_REDIRECT_URLS: 'javascript:alert(1)' }), /OAUTH_REDIRECT_URLS/)
  t.throws(() => loadConfig({ OAUTH_STATE_TTL_SECONDS: '5' }), /OAUTH_STATE_TTL_SECONDS/)

  const google = { OAUTH_GOOGLE_CLIENT_ID: 'id.apps.googleusercontent.com', OAUTH_GOOGLE_CLIENT_SECRET: 'GOCSPX-secret' }
  const github = { OAUTH_GITHUB_CLIENT_ID: 'Iv1.abc', OAUTH_GITHUB_CLIENT_SECRET: 'gh-secret' }
  t.doesNotThrow(() => loadConfig({ ...PRODUCTION, ...google, ...github }), 'both configured with secrets start')
  t.throws(
    () => loadConfig({ ...PRODUCTION, OAUTH_GOOGLE_CLIENT_ID: 'id' }),
    /OAUTH_GOOGLE_CLIENT_SECRET is required/,
    'Google without its secret',
  )
  t.throws(
    () => loadConfig({ ...PRODUCTION, OAUTH_GITHUB_CLIENT_ID: 'id' }),
    /OAUTH_GITHUB_CLIENT_SECRET is required/,
    'GitHub without its secret',
  )
  t.throws(
    () => loadConfig({ ...PRODUCTION, ...google, OAUTH_GOOGLE_ISSUER: 'http://accounts.example' }),
    /OAuth provider URLs must be https/,
    'a plain-http provider in production',
  )
  t.doesNotThrow(() => loadConfig({ OAUTH_GITHUB_CLIENT_ID: 'id' }), 'development may try without a secret')
})
