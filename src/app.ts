// buildApp(config): the whole HTTP application, in three layers — external
// plugins, app plugins, routes. server.ts and the tests build it the same way.
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { DestinationStream } from 'pino'
import { loadSigningKeys } from './auth/keys.ts'
import { createMailer } from './auth/mailer.ts'
import { loadMfaKey, secretBox } from './auth/mfa/secret-box.ts'
import { MfaService } from './auth/mfa/service.ts'
import { createPasswordPolicy } from './auth/password-policy.ts'
import { createPasswordHasher } from './auth/passwords.ts'
import { deriveRefreshSuccessor, loadRefreshTokenPepper } from './auth/refresh-tokens.ts'
import { providerClients } from './auth/oauth/providers.ts'
import { OAuthService } from './auth/oauth/service.ts'
import { ProfileService } from './auth/profile.ts'
import { AuthService, type LoginResult } from './auth/service.ts'
import type { Config, TrustProxy } from './config.ts'
import { checkSession, eventsLag } from './db/procedures.ts'
import { loggingServerOptions, type RequestLogController } from './logging.ts'
import cleanupPlugin from './plugins/cleanup.ts'
import dbPlugin from './plugins/db.ts'
import errorsPlugin, { errorServerOptions } from './plugins/errors.ts'
import eventsPlugin from './plugins/events.ts'
import externalPlugin, { API_SECURITY_HEADERS } from './plugins/external.ts'
import jwtPlugin from './plugins/jwt.ts'
import metricsPlugin from './plugins/metrics.ts'
import rateLimitPlugin from './plugins/rate-limit.ts'
import sessionCachePlugin from './plugins/session-cache.ts'
import authRoutes from './routes/auth/index.ts'
import mfaRoutes from './routes/auth/mfa.ts'
import oauthRoutes from './routes/auth/oauth.ts'
import profileRoutes from './routes/auth/profile.ts'
import healthRoutes from './routes/health/index.ts'
import pageRoutes from './routes/pages/index.ts'
import wellKnownRoutes from './routes/well-known/index.ts'

declare module 'fastify' {
  interface FastifyInstance {
    auth: AuthService
    profile: ProfileService
    mfa: MfaService
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
    ...loggingServerOptions(config.logLevel, logStream),
    ...errorServerOptions(),
    bodyLimit: config.http.bodyLimit,
    trustProxy: trustProxyOption(config.http.trustProxy),
  }
}

export async function buildApp(config: Config, options: AppOptions): Promise<FastifyInstance> {
  const constructorOptions = serverOptions(config, options.logStream)
  const app = Fastify(constructorOptions)
  const { rateLimit, production, dataDir } = config
  // The credential routes' stricter per-IP budget, in the window of the global one.
  const limit = (max: number) => (rateLimit.enabled ? { max, timeWindow: rateLimit.windowSeconds * 1000 } : false)

  // external layer
  // The API's security headers ride on the errors plugin's request-id hook: one hook per request.
  await app.register(errorsPlugin, { headers: API_SECURITY_HEADERS })
  await app.register(externalPlugin, { corsOrigins: config.http.corsOrigins, swagger: config.http.swagger })
  await app.register(rateLimitPlugin, {
    enabled: rateLimit.enabled,
    max: rateLimit.max,
    windowSeconds: rateLimit.windowSeconds,
    redisUrl: rateLimit.redisUrl,
    namespace: rateLimit.redisPrefix,
  })

  // app layer
  await app.register(dbPlugin, { pool: config.database.pool, connectionString: options.databaseUrl })
  await app.register(sessionCachePlugin, {
    ...config.sessionCache,
    listenUrl: options.databaseUrl,
    listenSsl: config.database.pool.ssl,
  })
  const metricsToken = config.http.metricsToken
  await app.register(metricsPlugin, {
    pool: app.db,
    // Production without a token: not served at all (it tells strangers too much).
    serve: metricsToken !== undefined || !production,
    ...(metricsToken === undefined ? {} : { token: metricsToken }),
    rateLimitStoreUp: () => app.rateLimitStore() !== 'memory-fallback',
    outboxLag: () => eventsLag(app.db),
    // Fed by the request log controller, which runs for every request anyway.
    requests: constructorOptions.logController as RequestLogController,
  })
  await app.register(cleanupPlugin, {
    intervalMs: config.cleanup.intervalMs,
    retentionHours: config.cleanup.unverifiedRetentionHours,
    auditRetentionDays: config.cleanup.auditRetentionDays,
    // Without a publisher nothing marks events published: retention applies to all of them.
    eventsRetention: { hours: config.events.retentionHours, unpublishedToo: !config.events.enabled },
  })
  await app.register(eventsPlugin, {
    events: config.events,
    listenUrl: options.databaseUrl,
    listenSsl: config.database.pool.ssl,
  })
  const keys = await loadSigningKeys({ ...config.jwt, dataDir, production })
  await app.register(jwtPlugin, {
    keys,
    issuer: config.jwt.issuer,
    audience: config.jwt.audience,
    accessTokenTtlSeconds: config.jwt.accessTokenTtlSeconds,
    checkSession: (userId, sessionId) =>
      app.sessionCache.isLive(userId, sessionId, () => checkSession(app.db, { userId, familyId: sessionId })),
  })
  const refreshPepper = await loadRefreshTokenPepper({ pepper: config.refresh.pepper, dataDir, production })
  const mailer = createMailer({ ...config.mail, production, logger: app.log })
  const mfaKey = await loadMfaKey({ key: config.mfa.encryptionKey, dataDir, production })
  // The two services need each other (a verified second factor ends in the login's
  // session start; a login asks for the second factor): the accounts side is reached late.
  const mfa: MfaService = new MfaService({
    db: app.db,
    box: secretBox(mfaKey),
    issuer: config.pages.appName,
    lockout: config.lockout,
    mailer,
    log: app.log,
    accounts: {
      confirmPassword: async (userId, password, ctx): Promise<void> => service.confirmPassword(userId, password, ctx),
      finishLogin: async (userId, device, amr, ctx): Promise<LoginResult> => service.finishLogin(userId, device, amr, ctx),
      changed: (userId) => service.changed(userId),
    },
    onFailure: () => app.metrics.loginOutcome('failure'),
  })
  const service: AuthService = new AuthService({
    db: app.db,
    hasher: createPasswordHasher(config.argon2),
    passwordPolicy: createPasswordPolicy({ ...config.password, log: app.log }),
    mailer,
    log: app.log,
    signAccessToken: (claims) => app.signAccessToken(claims),
    deriveRefreshSuccessor: (presented) => deriveRefreshSuccessor(refreshPepper, presented),
    onLoginOutcome: (outcome) => app.metrics.loginOutcome(outcome),
    onRefreshReuse: () => app.metrics.refreshReuse(),
    onMailSuppressed: (kind) => app.metrics.mailSuppressed(kind),
    cache: app.sessionCache,
    secondFactor: mfa,
    policy: {
      requireEmailVerification: config.email.requireVerification,
      refreshTokenTtlSeconds: config.refresh.ttlSeconds,
      refreshFamilyTtlSeconds: config.refresh.familyTtlSeconds,
      refreshReuseGraceSeconds: config.refresh.reuseGraceSeconds,
      refreshAuditEveryRotation: config.refresh.auditEveryRotation,
      emailTokenTtlSeconds: config.email.tokenTtlSeconds,
      lockout: config.lockout,
      deviceTtlSeconds: config.deviceTtlSeconds,
      mailBudget: config.mailBudget,
    },
  })
  app.decorate('auth', service)
  const profile = new ProfileService({
    db: app.db,
    mailer,
    log: app.log,
    policy: { emailTokenTtlSeconds: config.email.tokenTtlSeconds, mailBudget: config.mailBudget },
    confirmPassword: (userId, password, ctx) => service.confirmPassword(userId, password, ctx),
    onMailSuppressed: (kind) => app.metrics.mailSuppressed(kind),
    changed: (userId) => service.changed(userId),
  })
  app.decorate('profile', profile)
  app.decorate('mfa', mfa)
  // Background mail finishes before the pool and the transport close.
  app.addHook('onClose', async () => {
    await service.drain()
    await profile.drain()
    await mfa.drain()
    await mailer.close()
  })

  // routes
  await app.register(healthRoutes)
  // Outside the global budget, with a generous one of its own.
  await app.register(wellKnownRoutes, { keys, rateLimit: limit(rateLimit.max * 10) })
  await app.register(pageRoutes, {
    ...config.pages,
    password: { minLength: config.password.minLength, breachCheck: config.password.breachCheck !== undefined },
    // The form posts spend tokens and take passwords: the API's credential limit.
    credentialRateLimit: limit(rateLimit.credentialsMax),
  })
  await app.register(authRoutes, { prefix: '/api/auth', service, credentialRateLimit: limit(rateLimit.credentialsMax) })
  await app.register(profileRoutes, { prefix: '/api/auth', profile, service, credentialRateLimit: limit(rateLimit.credentialsMax) })
  await app.register(mfaRoutes, { prefix: '/api/auth/mfa', mfa, credentialRateLimit: limit(rateLimit.credentialsMax) })
  const oauth = new OAuthService({
    db: app.db,
    // Plain-http provider URLs only outside production (local authorization servers); config refuses them there.
    clients: providerClients(config.oauth, { allowInsecure: !production, timeoutMs: config.oauth.httpTimeoutMs }),
    settings: config.oauth,
    accounts: service,
    log: app.log,
    secondFactor: mfa,
  })
  await app.register(oauthRoutes, {
    prefix: '/api/auth/oauth',
    oauth,
    credentialRateLimit: limit(rateLimit.credentialsMax),
    secureCookie: config.oauth.publicUrl.startsWith('https://'),
    stateTtlSeconds: config.oauth.stateTtlSeconds,
  })
  return app
}
