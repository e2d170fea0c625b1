import t from 'tap'
import { ConfigError, loadConfig } from '../src/config.ts'

t.test('defaults: development, embedded database, seed-000 pool settings', async (t) => {
  const c = loadConfig({})
  t.equal(c.NODE_ENV, 'development')
  t.equal(c.PORT, 8000)
  t.ok(c.embedded)
  t.equal(c.databaseUrl, undefined)
  t.equal(c.runMigrations, true)
  t.same([c.DATABASE_POOL_MAX, c.DATABASE_POOL_MIN, c.DATABASE_IDLE_TIMEOUT_MS, c.DATABASE_CONNECT_TIMEOUT_MS], [20, 5, 30_000, 10_000])
})

t.test('strings are converted and validated; empty means unset', async (t) => {
  const c = loadConfig({ PORT: '9001', DATABASE_SSL: 'true', RUN_MIGRATIONS: 'false', DATABASE_URL: '' })
  t.equal(c.PORT, 9001)
  t.equal(c.DATABASE_SSL, true)
  t.equal(c.runMigrations, false)
  t.ok(c.embedded)
  t.throws(() => loadConfig({ PORT: 'eighty' }), ConfigError)
  t.throws(() => loadConfig({ PORT: '70000' }), /PORT/)
  t.throws(() => loadConfig({ LOG_LEVEL: 'loud' }), /LOG_LEVEL/)
  t.throws(() => loadConfig({ POSTGRES_DB: 'bad;name' }), /POSTGRES_DB/)
})

t.test('seed-003 POSTGRES_* variables build the connection when DATABASE_URL is unset', async (t) => {
  const c = loadConfig({ POSTGRES_HOST: 'postgres-db', POSTGRES_PASSWORD: 'p@ss word' })
  t.notOk(c.embedded)
  t.equal(c.databaseUrl, 'postgresql://auth_api_user:p%40ss%20word@postgres-db:5432/activitydb')
  const explicit = loadConfig({ POSTGRES_HOST: 'ignored', DATABASE_URL: 'postgresql://a@b/c' })
  t.equal(explicit.databaseUrl, 'postgresql://a@b/c', 'DATABASE_URL wins')
})

t.test('production refuses development defaults', async (t) => {
  t.throws(() => loadConfig({ NODE_ENV: 'production' }), /DATABASE_URL is required/)
  t.throws(() => loadConfig({ NODE_ENV: 'production' }), /JWT_PRIVATE_KEY is required/)
  t.throws(() => loadConfig({ NODE_ENV: 'production' }), /SMTP_URL is required/)
  t.doesNotThrow(
    () =>
      loadConfig({
        NODE_ENV: 'production',
        DATABASE_URL: 'postgresql://auth_api_user:s3cret-a@db/activitydb',
        AUTH_API_DB_PASSWORD: 's3cret-a',
        WRITE_API_DB_PASSWORD: 's3cret-b',
        READONLY_DB_PASSWORD: 's3cret-c',
        JWT_PRIVATE_KEY: 'pem',
        REQUIRE_EMAIL_VERIFICATION: 'false',
      }),
    'no SMTP needed when verification is off',
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
    () => loadConfig({ NODE_ENV: 'production', DATABASE_ADMIN_URL: 'postgresql://postgres:postgres_dev_password@db/activitydb' }, 'operations'),
    /development password/,
  )
  const ok = loadConfig({
    NODE_ENV: 'production',
    DATABASE_URL: 'postgresql://auth_api_user:s3cret-a@db/activitydb',
    AUTH_API_DB_PASSWORD: 's3cret-a',
    WRITE_API_DB_PASSWORD: 's3cret-b',
    READONLY_DB_PASSWORD: 's3cret-c',
    JWT_PRIVATE_KEY: '-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----',
    SMTP_URL: 'smtp://mail.internal:587',
  })
  t.equal(ok.runMigrations, false, 'production does not migrate at start unless asked')
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
  t.equal(c.NODE_ENV, 'development')
  t.ok(c.embedded)
})
