// Every setting is an environment variable, validated once at start against this
// TypeBox schema. Values arrive as strings; Value.Convert turns them into the
// declared types before the check, so a typo fails loudly instead of defaulting.
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
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
  EMBEDDED_PG_PORT: Int(5442, 1, 65535),
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

  // Email verification and reset.
  REQUIRE_EMAIL_VERIFICATION: Bool(true),
  EMAIL_TOKEN_TTL_SECONDS: Int(86_400, 60),
  SMTP_URL: Type.Optional(Type.String({ minLength: 1 })),
  MAIL_FROM: Type.String({ default: 'Activity <no-reply@activity.local>' }),
  APP_URL: Type.String({ default: 'http://localhost:8000', pattern: '^https?://' }),

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

  // Password hashing (argon2id; OWASP defaults).
  ARGON2_MEMORY_KIB: Int(19_456, 1024, 4_194_304),
  ARGON2_TIME_COST: Int(2, 1, 100),
  ARGON2_PARALLELISM: Int(1, 1, 64),

  BODY_LIMIT: Int(16_384, 1024, 10_485_760),
  // Behind a reverse proxy: take the client address from X-Forwarded-For (for rate limits, audit).
  TRUST_PROXY: Bool(false),
  SWAGGER_ENABLED: Bool(true),
  CORS_ORIGINS: Type.String({ default: '' }),
  CLEANUP_INTERVAL_MINUTES: Int(0, 0),
  AUDIT_RETENTION_DAYS: Int(90, 1),
  // Unverified accounts older than this are deleted by cleanup (CLI default too).
  UNVERIFIED_RETENTION_HOURS: Int(168, 1),
  BACKUP_DIR: Type.String({ default: 'backups' }),
  PG_BIN_DIR: Type.Optional(Type.String({ minLength: 1 })),
})

export type Env = Static<typeof EnvSchema>

export interface Config extends Env {
  /** Absolute directory for embedded data, generated keys. */
  dataDir: string
  /** Connection string the service uses (auth_api_user); undefined until the embedded server is up. */
  databaseUrl: string | undefined
  /** Superuser/owner connection for bootstrap and migrations, when known. */
  databaseAdminUrl: string | undefined
  /** True when no external database is configured: start the embedded PostgreSQL 16. */
  embedded: boolean
  runMigrations: boolean
}

/** Development defaults that must never reach production. */
export const DEV_PASSWORDS: ReadonlySet<string> = new Set([
  'auth_api_dev_password',
  'write_api_dev_password',
  'readonly_dev_password',
  // The compose superuser's (POSTGRES_SUPERUSER_PASSWORD in .env.example).
  'postgres_dev_password',
])

/** CORS_ORIGINS is a comma-separated list. */
export function corsOrigins(config: Config): string[] {
  return config.CORS_ORIGINS.split(',')
    .map((o) => o.trim())
    .filter((o) => o !== '')
}

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
  const env = converted as Env
  const databaseUrl = env.DATABASE_URL ?? buildPostgresUrl(env)
  const embedded = databaseUrl === undefined
  const config: Config = {
    ...env,
    dataDir: path.resolve(env.DATA_DIR),
    databaseUrl,
    databaseAdminUrl: env.DATABASE_ADMIN_URL,
    embedded,
    runMigrations: env.RUN_MIGRATIONS ?? env.NODE_ENV !== 'production',
  }
  assertProductionSafe(config, use)
  return config
}

/** In production, refuse the development defaults instead of running insecurely. */
export function assertProductionSafe(config: Config, use: ConfigUse = 'service'): void {
  if (config.NODE_ENV !== 'production') return
  const problems: string[] = []
  if (use === 'operations') {
    if (config.embedded && config.databaseAdminUrl === undefined) {
      problems.push('DATABASE_ADMIN_URL is required (the embedded database is for development)')
    }
  } else {
    if (config.embedded) problems.push('DATABASE_URL is required (the embedded database is for development)')
    problems.push(...devRolePasswords(config))
  }
  for (const url of [config.databaseUrl, config.databaseAdminUrl]) {
    if (url === undefined) continue
    const password = safePassword(url)
    if (password !== undefined && DEV_PASSWORDS.has(password)) {
      problems.push('a database URL uses a development password')
    }
  }
  if (use === 'service') {
    if (config.JWT_PRIVATE_KEY === undefined) problems.push('JWT_PRIVATE_KEY is required (generated keys are for development)')
    if (config.SMTP_URL === undefined && config.REQUIRE_EMAIL_VERIFICATION) {
      problems.push('SMTP_URL is required while REQUIRE_EMAIL_VERIFICATION is on')
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
  return (['AUTH_API_DB_PASSWORD', 'WRITE_API_DB_PASSWORD', 'READONLY_DB_PASSWORD'] as const)
    .filter((key) => DEV_PASSWORDS.has(config[key]))
    .map((key) => `${key} is a development default`)
}

function safePassword(url: string): string | undefined {
  try {
    return decodeURIComponent(new URL(url).password) || undefined
  } catch {
    return undefined
  }
}
