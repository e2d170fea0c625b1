// Every setting is an environment variable, validated once at start against this
// TypeBox schema. Values arrive as strings; Value.Convert turns them into the
// declared types before the check, so a typo fails loudly instead of defaulting.
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { isIP } from 'node:net'
import os from 'node:os'
import path from 'node:path'

const Bool = (defaultValue: boolean) => Type.Boolean({ default: defaultValue })
const Int = (defaultValue: number, minimum = 0, maximum = Number.MAX_SAFE_INTEGER) =>
  Type.Integer({ default: defaultValue, minimum, maximum })

export const EnvSchema = Type.Object({
  NODE_ENV: Type.Union([Type.Literal('development'), Type.Literal('production'), Type.Literal('test')], {
    default: 'development',
  }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
  HOST: Type.String({ default: '0.0.0.0' }),
  PORT: Int(8000, 0, 65535),

  // Database. DATABASE_URL unset (and no POSTGRES_HOST) means: run the embedded server.
  DATABASE_URL: Type.Optional(Type.String({ minLength: 1 })),
  DATABASE_ADMIN_URL: Type.Optional(Type.String({ minLength: 1 })),
  POSTGRES_HOST: Type.Optional(Type.String({ minLength: 1 })),
  POSTGRES_PORT: Int(5432, 1, 65535),
  POSTGRES_DB: Type.String({ default: 'activitydb', pattern: '^[A-Za-z_][A-Za-z0-9_]{0,62}$' }),
  POSTGRES_USER: Type.String({ default: 'auth_api_user' }),
  POSTGRES_PASSWORD: Type.Optional(Type.String()),
  RUN_MIGRATIONS: Type.Optional(Type.Boolean()),
  DATABASE_SSL: Bool(false),
  DATABASE_POOL_MAX: Int(20, 1, 1000),
  DATABASE_POOL_MIN: Int(5, 0, 1000),
  DATABASE_IDLE_TIMEOUT_MS: Int(30_000),
  DATABASE_CONNECT_TIMEOUT_MS: Int(10_000),
  // on: named statements, prepared once per connection (~15-20 % more calls/s, bench/statements.ts).
  // off: unnamed statements, for a transaction pooler without prepared-statement support
  // (PgBouncer < 1.21 in transaction mode; >= 1.21 with max_prepared_statements can stay on).
  DATABASE_STATEMENT_CACHE: Type.Union([Type.Literal('on'), Type.Literal('off')], { default: 'on' }),
  // Unset: 5442 if free, else a free port, remembered in DATA_DIR/postgres/port (src/db/embedded-port.ts).
  // Set: exactly this port; the start fails if another program has it.
  EMBEDDED_PG_PORT: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
  DATA_DIR: Type.String({ default: '.data' }),

  // Role passwords set by the bootstrap (db-init/). Development values; production refuses them.
  AUTH_API_DB_PASSWORD: Type.String({ default: 'auth_api_dev_password', minLength: 1 }),
  WRITE_API_DB_PASSWORD: Type.String({ default: 'write_api_dev_password', minLength: 1 }),
  READONLY_DB_PASSWORD: Type.String({ default: 'readonly_dev_password', minLength: 1 }),

  // Access tokens (JWT). Unset key: generated and kept under DATA_DIR in development.
  JWT_PRIVATE_KEY: Type.Optional(Type.String({ minLength: 1 })),
  JWT_PREVIOUS_PUBLIC_KEYS: Type.Optional(Type.String()),
  JWT_ISSUER: Type.String({ default: 'activity-auth', minLength: 1 }),
  JWT_AUDIENCE: Type.String({ default: 'activity-app', minLength: 1 }),
  ACCESS_TOKEN_TTL_SECONDS: Int(900, 30, 86_400),

  // Refresh tokens: idle and absolute session lifetime, reuse grace (0 = none).
  REFRESH_TOKEN_TTL_SECONDS: Int(604_800, 60),
  REFRESH_FAMILY_TTL_SECONDS: Int(2_592_000, 60),
  REFRESH_REUSE_GRACE_SECONDS: Int(10, 0, 300),
  // false: a rotation is audited only when the address or the user agent changed (docs/security.md).
  REFRESH_AUDIT_EVERY_ROTATION: Bool(false),
  // Secret a rotated refresh token's successor is derived with (HMAC-SHA-256), so a retry
  // inside the grace window gets the same successor. Required in production; unset in
  // development: generated and kept under DATA_DIR/secrets.
  REFRESH_TOKEN_PEPPER: Type.Optional(Type.String({ minLength: 32 })),
  // Key (32 bytes, base64 or hex) the TOTP secrets of two-factor sign-in are encrypted
  // with (AES-256-GCM): the database alone must not let anyone mint codes. Required in
  // production; unset in development: generated and kept under DATA_DIR/secrets.
  MFA_ENCRYPTION_KEY: Type.Optional(Type.String({ minLength: 32, maxLength: 256 })),

  // Email verification and reset.
  REQUIRE_EMAIL_VERIFICATION: Bool(true),
  EMAIL_TOKEN_TTL_SECONDS: Int(86_400, 60),
  SMTP_URL: Type.Optional(Type.String({ minLength: 1 })),
  MAIL_FROM: Type.String({ default: 'Activity <no-reply@activity.local>' }),
  APP_URL: Type.String({ default: 'http://localhost:8000', pattern: '^https?://' }),
  // Production refuses a plain-http or localhost APP_URL (mail links would be useless
  // or interceptable) unless this says it is meant (e.g. a staging host without TLS).
  ALLOW_INSECURE_APP_URL: Bool(false),
  // The link pages (src/routes/pages/): the product name they show, and where their
  // "back to the app" link goes (unset: APP_URL).
  APP_NAME: Type.String({ default: 'Activity', minLength: 1, maxLength: 100 }),
  LOGIN_URL: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$', maxLength: 2048 })),

  // Sign in with Google and GitHub (docs/security.md, "Sign in with a provider"). A provider is
  // on when its client id is set; production refuses one without its secret. The endpoint URLs
  // default to the real providers; tests point them at local authorization servers.
  OAUTH_GOOGLE_CLIENT_ID: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  OAUTH_GOOGLE_CLIENT_SECRET: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  OAUTH_GOOGLE_ISSUER: Type.String({ default: 'https://accounts.google.com', pattern: '^https?://' }),
  OAUTH_GITHUB_CLIENT_ID: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  OAUTH_GITHUB_CLIENT_SECRET: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  OAUTH_GITHUB_AUTHORIZATION_URL: Type.String({ default: 'https://github.com/login/oauth/authorize', pattern: '^https?://' }),
  OAUTH_GITHUB_TOKEN_URL: Type.String({ default: 'https://github.com/login/oauth/access_token', pattern: '^https?://' }),
  OAUTH_GITHUB_API_URL: Type.String({ default: 'https://api.github.com', pattern: '^https?://' }),
  // Where the callback may send the browser back to: comma-separated URL prefixes
  // (origin, or origin + path ending in /). Unset: the origins of APP_URL and LOGIN_URL.
  OAUTH_REDIRECT_URLS: Type.String({ default: '' }),
  // How long a sign-in may take at the provider, and how long its one-time code lives.
  OAUTH_STATE_TTL_SECONDS: Int(600, 60, 3600),
  OAUTH_CODE_TTL_SECONDS: Int(60, 10, 600),
  OAUTH_HTTP_TIMEOUT_MS: Int(10_000, 100, 60_000),

  // Live sessions and account rows kept in memory between authenticated calls, dropped
  // within milliseconds of a change anywhere (LISTEN activity_events); at most this long.
  // 0: every call asks the database.
  SESSION_CACHE_TTL_MS: Int(5000, 0, 60_000),
  SESSION_CACHE_MAX_USERS: Int(10_000, 1, 1_000_000),

  // Throttling: per IP and route (rate limit), per account (database lockout).
  REDIS_URL: Type.Optional(Type.String({ minLength: 1 })),
  RATE_LIMIT_ENABLED: Bool(true),
  RATE_LIMIT_MAX: Int(100, 1),
  RATE_LIMIT_WINDOW_SECONDS: Int(60, 1),
  RATE_LIMIT_CREDENTIALS_MAX: Int(10, 1),
  RATE_LIMIT_REDIS_PREFIX: Type.String({ default: 'activity-auth-rl:', minLength: 1 }),
  LOCKOUT_THRESHOLD: Int(5, 1, 1000),
  LOCKOUT_BASE_SECONDS: Int(60, 1),
  LOCKOUT_MAX_SECONDS: Int(900, 1),
  LOCKOUT_IP_THRESHOLD: Int(50, 1),
  LOCKOUT_WINDOW_SECONDS: Int(3600, 60),
  // A device that logged in successfully keeps its own lockout counter this long
  // (an attacker without the password cannot lock the owner out of it).
  DEVICE_TOKEN_TTL_DAYS: Int(90, 1, 3650),
  // Per recipient address and kind of mail (verification, reset, "account exists"),
  // shared by every instance through the database; above it mail is silently not sent.
  MAIL_BUDGET_MAX: Int(5, 1, 1000),
  MAIL_BUDGET_WINDOW_SECONDS: Int(3600, 60),

  // Security events (docs/events.md): the outbox publisher, delivering to Redis.
  // Unset: on when REDIS_URL is set. Without Redis events stay in the outbox (sp_events_after).
  EVENTS_ENABLED: Type.Optional(Type.Boolean()),
  EVENTS_STREAM: Type.String({ default: 'activity:events', minLength: 1 }),
  EVENTS_CHANNEL: Type.String({ default: 'activity:events', minLength: 1 }),
  EVENTS_STREAM_MAXLEN: Int(100_000, 1),
  // The safety-net poll, and the only wake-up where LISTEN is impossible (a transaction pooler).
  EVENTS_POLL_MS: Int(1000, 10, 3_600_000),
  EVENTS_BATCH_SIZE: Int(100, 1, 10_000),
  EVENTS_RETENTION_HOURS: Int(168, 1),

  // Password hashing (argon2id; OWASP defaults).
  ARGON2_MEMORY_KIB: Int(19_456, 1024, 4_194_304),
  ARGON2_TIME_COST: Int(2, 1, 100),
  ARGON2_PARALLELISM: Int(1, 1, 64),
  // Hashes and verifies in flight at once (the rest wait their turn). Unset: the cores the
  // process may use; more only multiplies memory (ARGON2_MEMORY_KIB each) for no throughput.
  ARGON2_MAX_CONCURRENT: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),

  // Password policy (src/auth/password-policy.ts). The maximum stays 128 code points.
  PASSWORD_MIN_LENGTH: Int(8, 1, 128),
  // Have I Been Pwned range API (k-anonymity: only 5 hex chars of the SHA-1 leave the service).
  PASSWORD_BREACH_CHECK: Bool(false),
  PASSWORD_BREACH_API_URL: Type.String({ default: 'https://api.pwnedpasswords.com', pattern: '^https?://' }),
  PASSWORD_BREACH_TIMEOUT_MS: Int(1500, 50, 60_000),
  PASSWORD_BREACH_FAIL_OPEN: Bool(true),

  BODY_LIMIT: Int(16_384, 1024, 10_485_760),
  // Which hops may set X-Forwarded-For (client address for rate limits, IP lock, sessions,
  // audit): false, a hop count, or a comma-separated list of proxy addresses/CIDRs.
  // Parsed by parseTrustProxy; `true` (trust everyone) is refused in production.
  TRUST_PROXY: Type.String({ default: 'false', minLength: 1 }),
  // Unset: on outside production, off in production (the API's map is not for strangers).
  SWAGGER_ENABLED: Type.Optional(Type.Boolean()),
  // Bearer token for GET /metrics. Set: required everywhere. Unset in production: /metrics is not served.
  METRICS_TOKEN: Type.Optional(Type.String({ minLength: 16 })),
  CORS_ORIGINS: Type.String({ default: '' }),
  CLEANUP_INTERVAL_MINUTES: Int(0, 0),
  AUDIT_RETENTION_DAYS: Int(90, 1),
  // Unverified accounts older than this are deleted by cleanup (CLI default too).
  UNVERIFIED_RETENTION_HOURS: Int(168, 1),
  BACKUP_DIR: Type.String({ default: 'backups' }),
  PG_BIN_DIR: Type.Optional(Type.String({ minLength: 1 })),
})

export type Env = Static<typeof EnvSchema>

/**
 * The validated settings, grouped by the part of the service that uses them, in the
 * shapes those parts take (`config.lockout` is what the service's lockout wants), so
 * wiring passes groups instead of re-spelling fields. The variable names live only in
 * EnvSchema and in fromEnv below.
 */
export interface Config {
  nodeEnv: Env['NODE_ENV']
  production: boolean
  logLevel: Env['LOG_LEVEL']
  /** Absolute directory for embedded data, generated keys and secrets. */
  dataDir: string
  http: {
    host: string
    port: number
    bodyLimit: number
    /** TRUST_PROXY parsed into what Fastify's `trustProxy` takes. */
    trustProxy: TrustProxy
    corsOrigins: string[]
    /** SWAGGER_ENABLED, defaulted by NODE_ENV. */
    swagger: boolean
    metricsToken: string | undefined
  }
  database: {
    /** Connection string the service uses (auth_api_user); undefined until the embedded server is up. */
    url: string | undefined
    /** Superuser/owner connection for bootstrap and migrations, when known. */
    adminUrl: string | undefined
    /** True when no external database is configured: start the embedded PostgreSQL 16. */
    embedded: boolean
    embeddedPort: number | undefined
    /** The database's name (POSTGRES_DB): what the embedded server and the bootstrap create. */
    name: string
    runMigrations: boolean
    pool: PoolSettings
    /** Role passwords the bootstrap (db-init/) sets. */
    rolePasswords: { authApi: string; writeApi: string; readonly: string }
    backupDir: string
    pgBinDir: string | undefined
  }
  jwt: {
    privateKeyPem: string | undefined
    previousPublicKeysPem: string | undefined
    issuer: string
    audience: string
    accessTokenTtlSeconds: number
  }
  refresh: {
    ttlSeconds: number
    familyTtlSeconds: number
    reuseGraceSeconds: number
    auditEveryRotation: boolean
    pepper: string | undefined
  }
  mfa: { encryptionKey: string | undefined }
  email: { requireVerification: boolean; tokenTtlSeconds: number }
  mail: { smtpUrl: string | undefined; from: string; appUrl: string; allowInsecureAppUrl: boolean }
  mailBudget: { max: number; windowSeconds: number }
  pages: { appName: string; appUrl: string; loginUrl: string | undefined }
  rateLimit: {
    enabled: boolean
    max: number
    windowSeconds: number
    credentialsMax: number
    redisUrl: string | undefined
    redisPrefix: string
  }
  lockout: { threshold: number; baseSeconds: number; maxSeconds: number; ipThreshold: number; windowSeconds: number }
  deviceTtlSeconds: number
  events: {
    /** The publisher runs: EVENTS_ENABLED, defaulted by whether REDIS_URL is set. */
    enabled: boolean
    redisUrl: string | undefined
    stream: string
    channel: string
    streamMaxLen: number
    pollMs: number
    batchSize: number
    /** Published events older than this are removed by cleanup. */
    retentionHours: number
  }
  argon2: { memoryKiB: number; timeCost: number; parallelism: number; maxConcurrent: number }
  oauth: OAuthSettings
  sessionCache: { ttlMs: number; maxUsers: number }
  password: { minLength: number; breachCheck: { url: string; timeoutMs: number; failOpen: boolean } | undefined }
  cleanup: { intervalMs: number; unverifiedRetentionHours: number; auditRetentionDays: number }
}

/** The providers that are configured, and the flow's limits (src/auth/oauth/). */
export interface OAuthSettings {
  google: { clientId: string; clientSecret: string | undefined; issuer: string } | undefined
  github: { clientId: string; clientSecret: string | undefined; authorizationUrl: string; tokenUrl: string; apiUrl: string } | undefined
  /** Where the callback may send the browser: absolute URL prefixes. */
  redirectUrls: string[]
  /** Where it goes when the start names no `redirect`. */
  defaultRedirect: string
  /** This service's public base (APP_URL): the callback URL registered at the providers is under it. */
  publicUrl: string
  stateTtlSeconds: number
  codeTtlSeconds: number
  httpTimeoutMs: number
}

export interface PoolSettings {
  max: number
  min: number
  idleTimeoutMs: number
  connectTimeoutMs: number
  ssl: boolean
  /** Named statements, prepared once per connection (DATABASE_STATEMENT_CACHE=on). */
  statementCache: boolean
}

function fromEnv(env: Env): Config {
  const url = env.DATABASE_URL ?? buildPostgresUrl(env)
  return {
    nodeEnv: env.NODE_ENV,
    production: env.NODE_ENV === 'production',
    logLevel: env.LOG_LEVEL,
    dataDir: path.resolve(env.DATA_DIR),
    http: {
      host: env.HOST,
      port: env.PORT,
      bodyLimit: env.BODY_LIMIT,
      trustProxy: parseTrustProxy(env.TRUST_PROXY),
      corsOrigins: env.CORS_ORIGINS.split(',')
        .map((o) => o.trim())
        .filter((o) => o !== ''),
      swagger: env.SWAGGER_ENABLED ?? env.NODE_ENV !== 'production',
      metricsToken: env.METRICS_TOKEN,
    },
    database: {
      url,
      adminUrl: env.DATABASE_ADMIN_URL,
      embedded: url === undefined,
      embeddedPort: env.EMBEDDED_PG_PORT,
      name: env.POSTGRES_DB,
      runMigrations: env.RUN_MIGRATIONS ?? env.NODE_ENV !== 'production',
      pool: {
        max: env.DATABASE_POOL_MAX,
        min: env.DATABASE_POOL_MIN,
        idleTimeoutMs: env.DATABASE_IDLE_TIMEOUT_MS,
        connectTimeoutMs: env.DATABASE_CONNECT_TIMEOUT_MS,
        ssl: env.DATABASE_SSL,
        statementCache: env.DATABASE_STATEMENT_CACHE === 'on',
      },
      rolePasswords: {
        authApi: env.AUTH_API_DB_PASSWORD,
        writeApi: env.WRITE_API_DB_PASSWORD,
        readonly: env.READONLY_DB_PASSWORD,
      },
      backupDir: env.BACKUP_DIR,
      pgBinDir: env.PG_BIN_DIR,
    },
    jwt: {
      privateKeyPem: env.JWT_PRIVATE_KEY,
      previousPublicKeysPem: env.JWT_PREVIOUS_PUBLIC_KEYS,
      issuer: env.JWT_ISSUER,
      audience: env.JWT_AUDIENCE,
      accessTokenTtlSeconds: env.ACCESS_TOKEN_TTL_SECONDS,
    },
    refresh: {
      ttlSeconds: env.REFRESH_TOKEN_TTL_SECONDS,
      familyTtlSeconds: env.REFRESH_FAMILY_TTL_SECONDS,
      reuseGraceSeconds: env.REFRESH_REUSE_GRACE_SECONDS,
      auditEveryRotation: env.REFRESH_AUDIT_EVERY_ROTATION,
      pepper: env.REFRESH_TOKEN_PEPPER,
    },
    mfa: { encryptionKey: env.MFA_ENCRYPTION_KEY },
    email: { requireVerification: env.REQUIRE_EMAIL_VERIFICATION, tokenTtlSeconds: env.EMAIL_TOKEN_TTL_SECONDS },
    mail: { smtpUrl: env.SMTP_URL, from: env.MAIL_FROM, appUrl: env.APP_URL, allowInsecureAppUrl: env.ALLOW_INSECURE_APP_URL },
    mailBudget: { max: env.MAIL_BUDGET_MAX, windowSeconds: env.MAIL_BUDGET_WINDOW_SECONDS },
    pages: { appName: env.APP_NAME, appUrl: env.APP_URL, loginUrl: env.LOGIN_URL },
    rateLimit: {
      enabled: env.RATE_LIMIT_ENABLED,
      max: env.RATE_LIMIT_MAX,
      windowSeconds: env.RATE_LIMIT_WINDOW_SECONDS,
      credentialsMax: env.RATE_LIMIT_CREDENTIALS_MAX,
      redisUrl: env.REDIS_URL,
      redisPrefix: env.RATE_LIMIT_REDIS_PREFIX,
    },
    lockout: {
      threshold: env.LOCKOUT_THRESHOLD,
      baseSeconds: env.LOCKOUT_BASE_SECONDS,
      maxSeconds: env.LOCKOUT_MAX_SECONDS,
      ipThreshold: env.LOCKOUT_IP_THRESHOLD,
      windowSeconds: env.LOCKOUT_WINDOW_SECONDS,
    },
    deviceTtlSeconds: env.DEVICE_TOKEN_TTL_DAYS * 86_400,
    events: {
      enabled: env.EVENTS_ENABLED ?? env.REDIS_URL !== undefined,
      redisUrl: env.REDIS_URL,
      stream: env.EVENTS_STREAM,
      channel: env.EVENTS_CHANNEL,
      streamMaxLen: env.EVENTS_STREAM_MAXLEN,
      pollMs: env.EVENTS_POLL_MS,
      batchSize: env.EVENTS_BATCH_SIZE,
      retentionHours: env.EVENTS_RETENTION_HOURS,
    },
    argon2: {
      memoryKiB: env.ARGON2_MEMORY_KIB,
      timeCost: env.ARGON2_TIME_COST,
      parallelism: env.ARGON2_PARALLELISM,
      maxConcurrent: env.ARGON2_MAX_CONCURRENT ?? os.availableParallelism(),
    },
    oauth: oauthSettings(env),
    sessionCache: { ttlMs: env.SESSION_CACHE_TTL_MS, maxUsers: env.SESSION_CACHE_MAX_USERS },
    password: {
      minLength: env.PASSWORD_MIN_LENGTH,
      breachCheck: env.PASSWORD_BREACH_CHECK
        ? { url: env.PASSWORD_BREACH_API_URL, timeoutMs: env.PASSWORD_BREACH_TIMEOUT_MS, failOpen: env.PASSWORD_BREACH_FAIL_OPEN }
        : undefined,
    },
    cleanup: {
      intervalMs: env.CLEANUP_INTERVAL_MINUTES * 60_000,
      unverifiedRetentionHours: env.UNVERIFIED_RETENTION_HOURS,
      auditRetentionDays: env.AUDIT_RETENTION_DAYS,
    },
  }
}

/** false: ignore X-Forwarded-For; a number: trust that many hops; a list: trust those proxies. */
export type TrustProxy = boolean | number | string[]

/** proxy-addr's names for address ranges, accepted in a TRUST_PROXY list. */
const PROXY_RANGE_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal'])

function isProxyEntry(entry: string): boolean {
  if (PROXY_RANGE_NAMES.has(entry) || isIP(entry) !== 0) return true
  const slash = entry.indexOf('/')
  if (slash < 0) return false
  const family = isIP(entry.slice(0, slash))
  const bits = entry.slice(slash + 1)
  return family !== 0 && /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128)
}

/**
 * TRUST_PROXY → Fastify's trustProxy. Each entry is checked here, so a typo fails at
 * start instead of silently trusting nobody (or, worse, the wrong network).
 */
export function parseTrustProxy(value: string): TrustProxy {
  const v = value.trim().toLowerCase()
  if (v === 'false') return false
  if (v === 'true') return true
  if (/^\d+$/.test(v)) {
    const hops = Number(v)
    if (hops > 100) throw new ConfigError(`invalid configuration: TRUST_PROXY: ${hops} hops is not a plausible proxy chain`)
    // 0 hops trusts nobody: the same as false.
    return hops === 0 ? false : hops
  }
  const entries = v.split(',').map((e) => e.trim())
  const bad = entries.filter((e) => !isProxyEntry(e))
  if (bad.length > 0) {
    throw new ConfigError(
      `invalid configuration: TRUST_PROXY: ${bad.map((e) => JSON.stringify(e)).join(', ')} is not an address or CIDR ` +
        '(use false, a hop count, or a comma-separated list such as 127.0.0.1,10.0.0.0/8)',
    )
  }
  return entries
}

function oauthSettings(env: Env): OAuthSettings {
  const google = env.OAUTH_GOOGLE_CLIENT_ID
  const github = env.OAUTH_GITHUB_CLIENT_ID
  const origins = [env.APP_URL, env.LOGIN_URL].flatMap((url) => (url === undefined ? [] : [`${new URL(url).origin}/`]))
  const listed = env.OAUTH_REDIRECT_URLS.split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
  for (const entry of listed) {
    if (!URL.canParse(entry) || !/^https?:$/.test(new URL(entry).protocol)) {
      throw new ConfigError(`invalid configuration: OAUTH_REDIRECT_URLS: ${entry} is not an http(s) URL`)
    }
  }
  return {
    google:
      google === undefined
        ? undefined
        : { clientId: google, clientSecret: env.OAUTH_GOOGLE_CLIENT_SECRET, issuer: env.OAUTH_GOOGLE_ISSUER },
    github:
      github === undefined
        ? undefined
        : {
            clientId: github,
            clientSecret: env.OAUTH_GITHUB_CLIENT_SECRET,
            authorizationUrl: env.OAUTH_GITHUB_AUTHORIZATION_URL,
            tokenUrl: env.OAUTH_GITHUB_TOKEN_URL,
            apiUrl: env.OAUTH_GITHUB_API_URL,
          },
    redirectUrls: listed.length > 0 ? listed : [...new Set(origins)],
    defaultRedirect: env.LOGIN_URL ?? env.APP_URL,
    publicUrl: env.APP_URL.replace(/\/+$/, ''),
    stateTtlSeconds: env.OAUTH_STATE_TTL_SECONDS,
    codeTtlSeconds: env.OAUTH_CODE_TTL_SECONDS,
    httpTimeoutMs: env.OAUTH_HTTP_TIMEOUT_MS,
  }
}

/** Development defaults that must never reach production. */
export const DEV_PASSWORDS: ReadonlySet<string> = new Set([
  'auth_api_dev_password',
  'write_api_dev_password',
  'readonly_dev_password',
  // The compose superuser's (POSTGRES_SUPERUSER_PASSWORD in .env.example).
  'postgres_dev_password',
])

export class ConfigError extends Error {
  override name = 'ConfigError'
}

function buildPostgresUrl(env: Env): string | undefined {
  if (env.POSTGRES_HOST === undefined) return undefined
  const url = new URL('postgresql://placeholder')
  url.hostname = env.POSTGRES_HOST
  url.port = String(env.POSTGRES_PORT)
  url.pathname = `/${env.POSTGRES_DB}`
  url.username = env.POSTGRES_USER
  if (env.POSTGRES_PASSWORD !== undefined) url.password = env.POSTGRES_PASSWORD
  return url.toString()
}

/**
 * Who reads the configuration: the service, or the operations CLI (which needs
 * neither a signing key nor SMTP, and reaches the database as DATABASE_ADMIN_URL).
 */
export type ConfigUse = 'service' | 'operations'

/** Parse and validate the environment. Throws ConfigError naming every bad variable. */
export function loadConfig(source: NodeJS.ProcessEnv = process.env, use: ConfigUse = 'service'): Config {
  // Empty strings mean "unset" (compose passes `VAR=` for optional values).
  const raw: Record<string, unknown> = {}
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = source[key]
    if (value !== undefined && value !== '') raw[key] = value
  }
  const withDefaults = Value.Default(EnvSchema, raw)
  const converted = Value.Convert(EnvSchema, withDefaults)
  const errors = [...Value.Errors(EnvSchema, converted)]
  if (errors.length > 0) {
    const detail = errors.map((e) => `${e.path.slice(1) || '(root)'}: ${e.message}`).join('; ')
    throw new ConfigError(`invalid configuration: ${detail}`)
  }
  const config = fromEnv(converted as Env)
  // Events are delivered to Redis only; asking for them without it would silently deliver nothing.
  if (config.events.enabled && config.events.redisUrl === undefined) {
    throw new ConfigError('invalid configuration: EVENTS_ENABLED=true needs REDIS_URL (without Redis, services read sp_events_after)')
  }
  assertProductionSafe(config, use)
  return config
}

/** In production, refuse the development defaults instead of running insecurely. */
export function assertProductionSafe(config: Config, use: ConfigUse = 'service'): void {
  if (!config.production) return
  const problems: string[] = []
  if (use === 'operations') {
    if (config.database.embedded && config.database.adminUrl === undefined) {
      problems.push('DATABASE_ADMIN_URL is required (the embedded database is for development)')
    }
  } else {
    if (config.database.embedded) problems.push('DATABASE_URL is required (the embedded database is for development)')
    problems.push(...devRolePasswords(config))
  }
  for (const url of [config.database.url, config.database.adminUrl]) {
    if (url === undefined) continue
    const password = safePassword(url)
    if (password !== undefined && DEV_PASSWORDS.has(password)) {
      problems.push('a database URL uses a development password')
    }
  }
  if (use === 'service') {
    if (config.jwt.privateKeyPem === undefined) problems.push('JWT_PRIVATE_KEY is required (generated keys are for development)')
    problems.push(...weakPepper(config.refresh.pepper))
    if (config.mfa.encryptionKey === undefined) {
      problems.push('MFA_ENCRYPTION_KEY is required (a generated one is for development; e.g. openssl rand -base64 32)')
    }
    // Always, not only with verification on: without SMTP, reset links would have nowhere to go.
    if (config.mail.smtpUrl === undefined) problems.push('SMTP_URL is required (production never logs mail)')
    if (!config.mail.allowInsecureAppUrl) problems.push(...insecureAppUrl(config.mail.appUrl))
    problems.push(...unsafeOAuth(config.oauth))
    if (config.http.trustProxy === true) {
      problems.push('TRUST_PROXY=true trusts any client-written X-Forwarded-For; use a hop count or the proxy addresses')
    }
  }
  if (problems.length > 0) throw new ConfigError(`refusing to start in production: ${problems.join('; ')}`)
}

/**
 * The role passwords still at their development values. The service refuses to
 * start with them; the CLI refuses only to set them (`init`): a migration does not
 * need them at all.
 */
export function devRolePasswords(config: Config): string[] {
  const { authApi, writeApi, readonly } = config.database.rolePasswords
  return (
    [
      ['AUTH_API_DB_PASSWORD', authApi],
      ['WRITE_API_DB_PASSWORD', writeApi],
      ['READONLY_DB_PASSWORD', readonly],
    ] as const
  )
    .filter(([, password]) => DEV_PASSWORDS.has(password))
    .map(([key]) => `${key} is a development default`)
}

const LOCAL_HOSTS = /^(localhost|.*\.localhost|127(\.\d{1,3}){3}|\[::1\]|0\.0\.0\.0|\[::\])$/i

/** Why the provider settings are unfit for production (none: fit). */
function unsafeOAuth(oauth: OAuthSettings): string[] {
  const problems: string[] = []
  if (oauth.google !== undefined && oauth.google.clientSecret === undefined) {
    problems.push('OAUTH_GOOGLE_CLIENT_SECRET is required when OAUTH_GOOGLE_CLIENT_ID is set')
  }
  if (oauth.github !== undefined && oauth.github.clientSecret === undefined) {
    problems.push('OAUTH_GITHUB_CLIENT_SECRET is required when OAUTH_GITHUB_CLIENT_ID is set')
  }
  const endpoints = [oauth.google?.issuer, oauth.github?.authorizationUrl, oauth.github?.tokenUrl, oauth.github?.apiUrl]
  if (endpoints.some((url) => url !== undefined && !url.startsWith('https://'))) {
    problems.push('OAuth provider URLs must be https (client secrets and codes travel to them)')
  }
  return problems
}

/** Why APP_URL is unfit for mail links in production (none: fit). */
function insecureAppUrl(appUrl: string): string[] {
  let url: URL
  try {
    url = new URL(appUrl)
  } catch {
    return ['APP_URL is not a URL']
  }
  const problems: string[] = []
  if (url.protocol !== 'https:') problems.push('APP_URL must be https (or set ALLOW_INSECURE_APP_URL=true)')
  if (LOCAL_HOSTS.test(url.hostname)) problems.push('APP_URL must not be a localhost address (or set ALLOW_INSECURE_APP_URL=true)')
  return problems
}

/** Why REFRESH_TOKEN_PEPPER is unfit for production (none: fit). Its length (>= 32) the schema checks everywhere. */
function weakPepper(pepper: string | undefined): string[] {
  if (pepper === undefined) return ['REFRESH_TOKEN_PEPPER is required (a generated one is for development; e.g. openssl rand -base64 48)']
  // A placeholder ("changeme" repeated, "xxxx…") is not a secret.
  if (new Set(pepper).size < 10) return ['REFRESH_TOKEN_PEPPER is not random enough (use e.g. openssl rand -base64 48)']
  return []
}

function safePassword(url: string): string | undefined {
  try {
    return decodeURIComponent(new URL(url).password) || undefined
  } catch {
    return undefined
  }
}
