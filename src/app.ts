// buildApp(config): the whole HTTP application, in three layers — external
// plugins, app plugins, routes. server.ts and the tests build it the same way.
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { DestinationStream } from 'pino'
import { loadSigningKeys } from './auth/keys.ts'
import { createMailer } from './auth/mailer.ts'
import { createPasswordPolicy } from './auth/password-policy.ts'
import { createPasswordHasher } from './auth/passwords.ts'
import { deriveRefreshSuccessor, loadRefreshTokenPepper } from './auth/refresh-tokens.ts'
import { AuthService } from './auth/service.ts'
import { corsOrigins, type Config, type TrustProxy } from './config.ts'
import { checkSession } from './db/procedures.ts'
import { loggingServerOptions } from './logging.ts'
import cleanupPlugin from './plugins/cleanup.ts'
import dbPlugin from './plugins/db.ts'
import errorsPlugin, { errorServerOptions } from './plugins/errors.ts'
import externalPlugin from './plugins/external.ts'
import jwtPlugin from './plugins/jwt.ts'
import metricsPlugin from './plugins/metrics.ts'
import rateLimitPlugin from './plugins/rate-limit.ts'
import authRoutes from './routes/auth/index.ts'
import healthRoutes from './routes/health/index.ts'
import pageRoutes from './routes/pages/index.ts'
import wellKnownRoutes from './routes/well-known/index.ts'

declare module 'fastify' {
  interface FastifyInstance {
    auth: AuthService
  }
}

export interface AppOptions {
  /** auth_api_user connection string. */
  databaseUrl: string
  /** Where logs go (tests capture them); stdout by default. */
  logStream?: DestinationStream
}

/**
 * TRUST_PROXY as Fastify's trustProxy. Fastify 5.12 ignores a number (it cannot check
 * the peer's address, so it trusts nobody); a hop count is kept here as the function
 * it always meant — the nearest N hops, whatever their address — which is safe only
 * when nothing but the proxy can reach this port (README: Behind a proxy).
 */
function trustProxyOption(trust: TrustProxy): FastifyServerOptions['trustProxy'] {
  if (typeof trust !== 'number') return trust
  return (_address: string, hop: number) => hop < trust
}

/** Constructor options shared by the server and the tests. */
export function serverOptions(config: Config, logStream?: DestinationStream): FastifyServerOptions {
  return {
    ...loggingServerOptions(config.LOG_LEVEL, logStream),
    ...errorServerOptions(),
    bodyLimit: config.BODY_LIMIT,
    trustProxy: trustProxyOption(config.trustProxy),
  }
}

export async function buildApp(config: Config, options: AppOptions): Promise<FastifyInstance> {
  const app = Fastify(serverOptions(config, options.logStream))

  // external layer
  await app.register(errorsPlugin)
  await app.register(externalPlugin, { corsOrigins: corsOrigins(config), swagger: config.swaggerEnabled })
  await app.register(rateLimitPlugin, {
    enabled: config.RATE_LIMIT_ENABLED,
    max: config.RATE_LIMIT_MAX,
    windowSeconds: config.RATE_LIMIT_WINDOW_SECONDS,
    redisUrl: config.REDIS_URL,
    namespace: config.RATE_LIMIT_REDIS_PREFIX,
  })

  // app layer
  await app.register(dbPlugin, { config, connectionString: options.databaseUrl })
  await app.register(metricsPlugin, {
    pool: app.db,
    // Production without a token: not served at all (it tells strangers too much).
    serve: config.METRICS_TOKEN !== undefined || config.NODE_ENV !== 'production',
    ...(config.METRICS_TOKEN === undefined ? {} : { token: config.METRICS_TOKEN }),
    rateLimitStoreUp: () => app.rateLimitStore() !== 'memory-fallback',
  })
  await app.register(cleanupPlugin, {
    intervalMs: config.CLEANUP_INTERVAL_MINUTES * 60_000,
    retentionHours: config.UNVERIFIED_RETENTION_HOURS,
    auditRetentionDays: config.AUDIT_RETENTION_DAYS,
  })
  const keys = await loadSigningKeys({
    privateKeyPem: config.JWT_PRIVATE_KEY,
    previousPublicKeysPem: config.JWT_PREVIOUS_PUBLIC_KEYS,
    dataDir: config.dataDir,
    production: config.NODE_ENV === 'production',
  })
  await app.register(jwtPlugin, {
    keys,
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    accessTokenTtlSeconds: config.ACCESS_TOKEN_TTL_SECONDS,
    checkSession: (userId, sessionId) => checkSession(app.db, { userId, familyId: sessionId }),
  })
  const refreshPepper = await loadRefreshTokenPepper({
    pepper: config.REFRESH_TOKEN_PEPPER,
    dataDir: config.dataDir,
    production: config.NODE_ENV === 'production',
  })
  const mailer = createMailer({
    ...(config.SMTP_URL === undefined ? {} : { smtpUrl: config.SMTP_URL }),
    from: config.MAIL_FROM,
    appUrl: config.APP_URL,
    production: config.NODE_ENV === 'production',
    logger: app.log,
  })
  const service = new AuthService({
    db: app.db,
    hasher: createPasswordHasher({
      memoryKiB: config.ARGON2_MEMORY_KIB,
      timeCost: config.ARGON2_TIME_COST,
      parallelism: config.ARGON2_PARALLELISM,
    }),
    passwordPolicy: createPasswordPolicy({
      minLength: config.PASSWORD_MIN_LENGTH,
      ...(config.PASSWORD_BREACH_CHECK
        ? {
            breachCheck: {
              url: config.PASSWORD_BREACH_API_URL,
              timeoutMs: config.PASSWORD_BREACH_TIMEOUT_MS,
              failOpen: config.PASSWORD_BREACH_FAIL_OPEN,
            },
          }
        : {}),
      log: app.log,
    }),
    mailer,
    log: app.log,
    signAccessToken: (claims) => app.signAccessToken(claims),
    deriveRefreshSuccessor: (presented) => deriveRefreshSuccessor(refreshPepper, presented),
    onLoginOutcome: (outcome) => app.metrics.loginOutcome(outcome),
    onRefreshReuse: () => app.metrics.refreshReuse(),
    onMailSuppressed: (kind) => app.metrics.mailSuppressed(kind),
    policy: {
      requireEmailVerification: config.REQUIRE_EMAIL_VERIFICATION,
      refreshTokenTtlSeconds: config.REFRESH_TOKEN_TTL_SECONDS,
      refreshFamilyTtlSeconds: config.REFRESH_FAMILY_TTL_SECONDS,
      refreshReuseGraceSeconds: config.REFRESH_REUSE_GRACE_SECONDS,
      emailTokenTtlSeconds: config.EMAIL_TOKEN_TTL_SECONDS,
      lockout: {
        threshold: config.LOCKOUT_THRESHOLD,
        baseSeconds: config.LOCKOUT_BASE_SECONDS,
        maxSeconds: config.LOCKOUT_MAX_SECONDS,
        ipThreshold: config.LOCKOUT_IP_THRESHOLD,
        windowSeconds: config.LOCKOUT_WINDOW_SECONDS,
      },
      deviceTtlSeconds: config.DEVICE_TOKEN_TTL_DAYS * 86_400,
      mailBudget: { max: config.MAIL_BUDGET_MAX, windowSeconds: config.MAIL_BUDGET_WINDOW_SECONDS },
    },
  })
  app.decorate('auth', service)
  // Background mail finishes before the pool and the transport close.
  app.addHook('onClose', async () => {
    await service.drain()
    await mailer.close()
  })

  // routes
  await app.register(healthRoutes)
  await app.register(wellKnownRoutes, {
    keys,
    // Outside the global budget, with a generous one of its own.
    rateLimit: config.RATE_LIMIT_ENABLED
      ? { max: config.RATE_LIMIT_MAX * 10, timeWindow: config.RATE_LIMIT_WINDOW_SECONDS * 1000 }
      : false,
  })
  await app.register(pageRoutes, {
    appName: config.APP_NAME,
    appUrl: config.APP_URL,
    loginUrl: config.LOGIN_URL,
    password: { minLength: config.PASSWORD_MIN_LENGTH, breachCheck: config.PASSWORD_BREACH_CHECK },
    // The form posts spend tokens and take passwords: the API's credential limit.
    credentialRateLimit: config.RATE_LIMIT_ENABLED
      ? { max: config.RATE_LIMIT_CREDENTIALS_MAX, timeWindow: config.RATE_LIMIT_WINDOW_SECONDS * 1000 }
      : false,
  })
  await app.register(authRoutes, {
    prefix: '/api/auth',
    service,
    credentialRateLimit: config.RATE_LIMIT_ENABLED
      ? { max: config.RATE_LIMIT_CREDENTIALS_MAX, timeWindow: config.RATE_LIMIT_WINDOW_SECONDS * 1000 }
      : false,
  })
  return app
}
