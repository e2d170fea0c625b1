// One typed function per stored procedure granted to auth_api_user: the only SQL
// text in src/. Each call is one parameterised `SELECT * FROM activity.sp_x(...)`
// (named, i.e. prepared once per connection, only with DATABASE_STATEMENT_CACHE=on:
// see setStatementCache), with every parameter cast so
// the server resolves exactly the intended function. Custom SQLSTATEs become a
// DbError (errors.ts); anything else is rethrown unchanged.
import type pg from 'pg'
import { fromPgError } from './errors.ts'

// Pool or PoolClient. A pg.Pool is recognised (connect + totalCount) and a client is
// checked out per call, so an expected error does not discard the connection (queryOnPool).
export type Queryable = Pick<pg.Pool, 'query'>

export interface RequestContext {
  ip?: string | null
  userAgent?: string | null
  requestId?: string | null
}

/** The labels of the SQL enum activity.revoke_reason (test/db/vocabularies.test.ts holds them equal). */
export const REVOKE_REASONS = [
  'rotated',
  'logout',
  'logout_all',
  'session_ended',
  'reuse_detected',
  'password_changed',
  'password_reset',
  'user_deactivated',
  'email_changed',
] as const
export type RevokeReason = (typeof REVOKE_REASONS)[number]
/** The labels of the SQL enum activity.email_token_purpose. */
export const EMAIL_TOKEN_PURPOSES = ['verify_email', 'reset_password', 'change_email'] as const
export type EmailTokenPurpose = (typeof EMAIL_TOKEN_PURPOSES)[number]
/** The labels of the SQL enum activity.oauth_provider. */
export const OAUTH_PROVIDERS = ['google', 'github'] as const
export type OAuthProvider = (typeof OAUTH_PROVIDERS)[number]
export type RotationStatus = RotationResult['status']
export type CleanupItem =
  | 'refresh_tokens'
  | 'email_tokens'
  | 'login_attempts'
  | 'audit_logs'
  | 'trusted_devices'
  | 'mail_budget'
  | 'oauth_states'
  | 'oauth_codes'
  | 'unverified_users'

export interface CreatedUser {
  id: string
  email: string
  isVerified: boolean
  isActive: boolean
  createdAt: Date
}

export interface UserRow {
  id: string
  email: string
  /** null: no password (the user signs in only through a linked provider). */
  hashedPassword: string | null
  isVerified: boolean
  isActive: boolean
  createdAt: Date
  verifiedAt: Date | null
  lastLoginAt: Date | null
  passwordChangedAt: Date
  lockedUntil: Date | null
}

export interface VerifiedUser {
  id: string
  email: string
  verifiedAt: Date
}

export interface SavedRefreshToken {
  id: number
  familyId: string
  expiresAt: Date
  familyExpiresAt: Date
  /** How the user authenticated (RFC 8176), kept for every token of the session; null: not stated. */
  amr: string[] | null
}

export interface RefreshTokenRow {
  id: number
  userId: string
  familyId: string
  jti: string
  expiresAt: Date
  familyExpiresAt: Date
  createdAt: Date
}

/** sp_rotate_refresh_token's answer, narrowed by status (the columns each status sets). */
export type RotationResult =
  /** rotated: the successor inserted now; grace: the one the first rotation inserted. */
  (
    | { status: 'rotated' | 'grace'; userId: string; familyId: string; tokenId: number; expiresAt: Date; familyExpiresAt: Date }
    | { status: 'expired'; userId: string; familyId: string; tokenId: null; expiresAt: Date; familyExpiresAt: Date }
    | { status: 'reuse_detected' | 'revoked'; userId: string; familyId: string; tokenId: null; expiresAt: null; familyExpiresAt: Date }
    /** ids set only when a grace successor exists with another hash than newTokenHash (nothing changed). */
    | { status: 'invalid'; userId: string | null; familyId: string | null; tokenId: null; expiresAt: null; familyExpiresAt: null }
  ) & {
    /** The session's amr (RFC 8176), null when it stated none or the token is invalid. */
    amr: string[] | null
  }

export interface FailedLoginResult {
  failedCount: number
  /** The later of the email lock and the ip lock, null when neither is locked. */
  lockedUntil: Date | null
}

export interface SessionRow {
  familyId: string
  createdAt: Date
  lastUsedAt: Date
  expiresAt: Date
  ip: string | null
  userAgent: string | null
}

export interface EmailTokenRow {
  /** bigint: pg returns it as a string. */
  id: string
  email: string
  expiresAt: Date
}

export interface ConsumedEmailToken {
  userId: string
  email: string
}

export interface CleanupResult {
  item: CleanupItem
  deleted: number
}

export interface AppliedMigration {
  name: string
  runOn: Date
}

/** One outbox row (docs/events.md; payload schemas in src/events/catalogue.ts). */
export interface OutboxEvent {
  /** bigint: pg returns it as a string. Consumers deduplicate by it. */
  id: string
  type: string
  version: number
  userId: string | null
  /** The session (refresh token family, the sid claim) the event is about, if any. */
  sessionId: string | null
  payload: Record<string, unknown>
  createdAt: Date
}

/** An event as sp_events_after reads it, with the transaction id half of its cursor. */
export interface PagedEvent extends OutboxEvent {
  /** bigint as a string: the writer's transaction id; (txId, id) is the cursor to pass back. */
  txId: string
}

/** Where a reader of sp_events_after stands: the (txId, id) of the last event it handled; start at ('0', '0'). */
export interface EventCursor {
  txId: string
  id: string
}

export interface EventsLag {
  unpublished: number
  /** null when nothing waits. */
  oldestCreatedAt: Date | null
}

// ---------------------------------------------------------------------------
// Plumbing

interface Statement {
  name: string
  text: string
}

/** `SELECT * FROM activity.<proc>($1::t1, ...) AS result`: a scalar result comes back as column `result`. */
function statement(proc: string, ...argTypes: string[]): Statement {
  const args = argTypes.map((type, i) => `$${String(i + 1)}::${type}`).join(', ')
  return { name: proc, text: `SELECT * FROM activity.${proc}(${args}) AS result` }
}

const camelKey = (key: string): string => key.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase())

function camelize(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(row)) out[camelKey(key)] = value
  return out
}

function isPool(db: Queryable): db is pg.Pool {
  const candidate = db as Partial<pg.Pool>
  return typeof candidate.connect === 'function' && typeof candidate.totalCount === 'number'
}

/**
 * Whether the connection that raised err can run the next statement. Any error
 * PostgreSQL reported in an ErrorResponse (it carries a SQLSTATE and a severity)
 * leaves the session usable — the server rolled the statement back and sent
 * ReadyForQuery — except the ones that end the session: FATAL/PANIC, class 08
 * (connection exception) and 57P0x (shutdown, terminated backend, dropped
 * database, idle timeout). A socket error, a timeout or a client-side error has
 * no SQLSTATE: the connection's state is unknown, so it is discarded.
 */
function connectionUsable(err: unknown): boolean {
  const { code, severity } = err as { code?: unknown; severity?: unknown }
  if (typeof code !== 'string' || typeof severity !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return false
  if (severity === 'FATAL' || severity === 'PANIC') return false
  return !code.startsWith('08') && !code.startsWith('57P0')
}

/**
 * pool.query() would release the client with the error, which destroys the
 * connection: every expected procedure error (email taken, bad email token, …)
 * would cost the next request a reconnect — a timing oracle and a cheap way to
 * churn backends. Check the client out ourselves and hand it back for reuse
 * unless the connection itself failed. Same round trips as pool.query().
 */
async function queryOnPool(pool: pg.Pool, config: pg.QueryConfig): Promise<pg.QueryResult<Record<string, unknown>>> {
  const client = await pool.connect()
  // A checked-out client has no error listener of the pool's: without one a
  // socket error while the query runs would be an unhandled 'error' event.
  let broken: unknown
  const onError = (err: unknown): void => {
    broken ??= err
  }
  client.on('error', onError)
  try {
    const result = await client.query<Record<string, unknown>>(config)
    client.removeListener('error', onError)
    client.release(broken === undefined ? undefined : (broken as Error))
    return result
  } catch (err) {
    client.removeListener('error', onError)
    client.release(broken === undefined && connectionUsable(err) ? undefined : ((broken ?? err) as Error))
    throw err
  }
}

/** Runs one procedure; rows come back with camelCase keys (pg already parses timestamptz to Date). */
/** Deadlock and serialization failure: the whole call was rolled back, so it may simply run again. */
const RETRYABLE = new Set(['40P01', '40001'])
const ATTEMPTS = 3

/**
 * Named (prepared once per connection) or unnamed statements, per pool
 * (DATABASE_STATEMENT_CACHE, set by createPool). A named statement lives in one
 * server session: through a transaction pooler (PgBouncer in transaction mode,
 * before 1.21's max_prepared_statements) the next call may land on another server
 * connection (26000 does not exist) or on one that already has it (42P05). An
 * unnamed statement is parsed, bound and run in the same round trip, wherever it lands.
 */
const statementCache = new WeakMap<object, boolean>()
/** What a Queryable not registered with setStatementCache gets (the setting's default). */
const STATEMENT_CACHE_DEFAULT = true

export function setStatementCache(db: Queryable, enabled: boolean): void {
  statementCache.set(db, enabled)
}

function statementCacheOf(db: Queryable): boolean {
  return statementCache.get(db) ?? STATEMENT_CACHE_DEFAULT
}

async function call<Row>(db: Queryable, stmt: Statement, values: unknown[]): Promise<Row[]> {
  // Each call is one statement in autocommit, i.e. one whole transaction; a
  // rare deadlock between a revoke-all and a session write under heavy load on
  // one user is retried here instead of surfacing as a 5xx.
  const config: pg.QueryConfig = statementCacheOf(db) ? { name: stmt.name, text: stmt.text, values } : { text: stmt.text, values }
  for (let attempt = 1; ; attempt++) {
    try {
      const result = isPool(db) ? await queryOnPool(db, config) : await db.query<Record<string, unknown>>(config)
      return result.rows.map(camelize) as Row[]
    } catch (err) {
      const code = (err as { code?: unknown }).code
      if (attempt < ATTEMPTS && typeof code === 'string' && RETRYABLE.has(code)) continue
      throw fromPgError(err)
    }
  }
}

/** For procedures that always return exactly one row. */
async function callOne<Row>(db: Queryable, stmt: Statement, values: unknown[]): Promise<Row> {
  const [row] = await call<Row>(db, stmt, values)
  if (row === undefined) throw new Error(`activity.${stmt.name} returned no row`)
  return row
}

async function callScalar<T>(db: Queryable, stmt: Statement, values: unknown[]): Promise<T> {
  return (await callOne<{ result: T }>(db, stmt, values)).result
}

function ctxJson(ctx: RequestContext | undefined): string {
  return JSON.stringify({ ip: ctx?.ip ?? null, userAgent: ctx?.userAgent ?? null, requestId: ctx?.requestId ?? null })
}

const SQL = {
  createUser: statement('sp_create_user', 'text', 'text', 'jsonb'),
  getUserByEmail: statement('sp_get_user_by_email', 'text'),
  getUserById: statement('sp_get_user_by_id', 'uuid'),
  verifyUserEmail: statement('sp_verify_user_email', 'uuid', 'jsonb'),
  updateLastLogin: statement('sp_update_last_login', 'uuid', 'text'),
  updatePassword: statement('sp_update_password', 'uuid', 'text', 'boolean', 'uuid', 'jsonb'),
  deactivateUser: statement('sp_deactivate_user', 'uuid', 'jsonb'),
  cleanupUnverifiedUsers: statement('sp_cleanup_unverified_users', 'integer'),
  saveRefreshToken: statement('sp_save_refresh_token', 'uuid', 'text', 'text', 'integer', 'integer', 'text[]', 'jsonb'),
  revokeRefreshToken: statement('sp_revoke_refresh_token', 'text', 'text', 'jsonb'),
  getValidRefreshToken: statement('sp_get_valid_refresh_token', 'text'),
  rotateRefreshToken: statement('sp_rotate_refresh_token', 'text', 'text', 'text', 'integer', 'integer', 'jsonb', 'boolean'),
  checkLoginLock: statement('sp_check_login_lock', 'text', 'text'),
  recordFailedLogin: statement('sp_record_failed_login', 'text', 'text', 'integer', 'integer', 'integer', 'integer', 'integer', 'jsonb'),
  recordSuccessfulLogin: statement('sp_record_successful_login', 'uuid', 'jsonb'),
  revokeUserSessions: statement('sp_revoke_user_sessions', 'uuid', 'uuid', 'text', 'jsonb'),
  revokeUserSession: statement('sp_revoke_user_session', 'uuid', 'uuid', 'jsonb'),
  listUserSessions: statement('sp_list_user_sessions', 'uuid'),
  checkSession: statement('sp_check_session', 'uuid', 'uuid'),
  createEmailToken: statement('sp_create_email_token', 'uuid', 'text', 'text', 'integer', 'jsonb'),
  consumeEmailToken: statement('sp_consume_email_token', 'text', 'text', 'text', 'jsonb'),
  getUsedEmailToken: statement('sp_get_used_email_token', 'text', 'text', 'integer'),
  beginLogin: statement('sp_begin_login', 'text', 'uuid', 'text', 'text', 'integer', 'integer', 'integer', 'integer', 'integer', 'jsonb'),
  endLoginAttempt: statement('sp_end_login_attempt', 'text', 'text', 'text', 'text', 'integer', 'integer', 'jsonb'),
  completeLogin: statement('sp_complete_login', 'uuid', 'text', 'text', 'text', 'integer', 'integer', 'jsonb'),
  signup: statement('sp_signup', 'text', 'text', 'text', 'integer', 'integer', 'integer', 'jsonb'),
  requestEmailLink: statement('sp_request_email_link', 'text', 'text', 'text', 'integer', 'integer', 'integer', 'jsonb'),
  cleanupExpired: statement('sp_cleanup_expired', 'integer', 'integer'),
  runCleanup: statement('sp_run_cleanup', 'integer', 'integer', 'integer'),
  schemaMigrations: statement('sp_schema_migrations'),
  claimEvents: statement('sp_claim_events', 'integer'),
  markEventsPublished: statement('sp_mark_events_published', 'bigint[]'),
  eventsLag: statement('sp_events_lag'),
  eventsAfter: statement('sp_events_after', 'bigint', 'bigint', 'integer'),
  sessionIsLive: statement('sp_session_is_live', 'uuid'),
  cleanupEvents: statement('sp_cleanup_events', 'integer', 'boolean'),
  createOAuthState: statement('sp_create_oauth_state', 'text', 'text', 'text', 'text', 'uuid', 'integer', 'jsonb'),
  consumeOAuthState: statement('sp_consume_oauth_state', 'text', 'text', 'text'),
  oauthSignIn: statement('sp_oauth_sign_in', 'text', 'text', 'text', 'boolean', 'text', 'integer', 'jsonb'),
  consumeOAuthCode: statement('sp_consume_oauth_code', 'text', 'jsonb'),
  linkOAuthProvider: statement('sp_link_oauth_provider', 'uuid', 'text', 'text', 'text', 'boolean', 'jsonb'),
  unlinkOAuthProvider: statement('sp_unlink_oauth_provider', 'uuid', 'text', 'jsonb'),
  listOAuthProviders: statement('sp_list_oauth_providers', 'uuid'),
} as const

// ---------------------------------------------------------------------------
// Users

/** AU008 invalid_email, AU001 email_taken, AU007 invalid_argument (hash not argon2). */
export async function createUser(
  db: Queryable,
  args: { email: string; hashedPassword: string; ctx?: RequestContext },
): Promise<CreatedUser> {
  return callOne(db, SQL.createUser, [args.email, args.hashedPassword, ctxJson(args.ctx)])
}

/** Used by tests only: the login reads the user inside beginLogin. */
export async function getUserByEmail(db: Queryable, args: { email: string }): Promise<UserRow | undefined> {
  const [row] = await call<UserRow>(db, SQL.getUserByEmail, [args.email])
  return row
}

export async function getUserById(db: Queryable, args: { userId: string }): Promise<UserRow | undefined> {
  const [row] = await call<UserRow>(db, SQL.getUserById, [args.userId])
  return row
}

/** Used by tests only: consumeEmailToken verifies. AU002 user_not_found, AU003 user_inactive, AU009 already_verified. */
export async function verifyUserEmail(db: Queryable, args: { userId: string; ctx?: RequestContext }): Promise<VerifiedUser> {
  return callOne(db, SQL.verifyUserEmail, [args.userId, ctxJson(args.ctx)])
}

/** Used by tests only: seed compatibility; the login flow uses completeLogin. AU002. */
export async function updateLastLogin(db: Queryable, args: { userId: string; ip?: string | null }): Promise<void> {
  await call(db, SQL.updateLastLogin, [args.userId, args.ip ?? null])
}

/**
 * New password hash. endSessions (default true) ends every session except keepFamilyId
 * and returns how many ended; false is a rehash (password_changed_at kept). AU002/AU003/AU007.
 */
export async function updatePassword(
  db: Queryable,
  args: {
    userId: string
    hashedPassword: string
    endSessions?: boolean
    keepFamilyId?: string | null
    ctx?: RequestContext
  },
): Promise<number> {
  return callScalar<number>(db, SQL.updatePassword, [
    args.userId,
    args.hashedPassword,
    args.endSessions ?? true,
    args.keepFamilyId ?? null,
    ctxJson(args.ctx),
  ])
}

/** AU002 user_not_found, AU003 user_inactive (already deactivated). */
export async function deactivateUser(db: Queryable, args: { userId: string; ctx?: RequestContext }): Promise<void> {
  await call(db, SQL.deactivateUser, [args.userId, ctxJson(args.ctx)])
}

/** Used by tests only: runCleanup calls it. Unverified users older than olderThanHours (default 168); AU007 when < 1. */
export async function cleanupUnverifiedUsers(db: Queryable, args: { olderThanHours?: number } = {}): Promise<number> {
  return callScalar<number>(db, SQL.cleanupUnverifiedUsers, [args.olderThanHours ?? 168])
}

// ---------------------------------------------------------------------------
// Refresh tokens and sessions

/**
 * Starts a session (new family); amr (RFC 8176: ['pwd'], ['fed'], ['pwd', 'otp'], ['fed', 'otp'])
 * is how the user authenticated, kept for the whole session. AU002/AU003; AU007 for ttl <= 0,
 * a bad amr, a bad hash or a hash/jti already used.
 */
export async function saveRefreshToken(
  db: Queryable,
  args: {
    userId: string
    tokenHash: string
    jti: string
    idleTtlSeconds: number
    familyTtlSeconds: number
    amr?: readonly string[] | null
    ctx?: RequestContext
  },
): Promise<SavedRefreshToken> {
  return callOne(db, SQL.saveRefreshToken, [
    args.userId,
    args.tokenHash,
    args.jti,
    args.idleTtlSeconds,
    args.familyTtlSeconds,
    args.amr ?? null,
    ctxJson(args.ctx),
  ])
}

/** Ends the token's whole session; false when unknown or already ended. */
export async function revokeRefreshToken(
  db: Queryable,
  args: { tokenHash: string; reason?: RevokeReason; ctx?: RequestContext },
): Promise<boolean> {
  return callScalar<boolean>(db, SQL.revokeRefreshToken, [args.tokenHash, args.reason ?? 'logout', ctxJson(args.ctx)])
}

/** Used by tests only: rotateRefreshToken checks the token itself. */
export async function getValidRefreshToken(db: Queryable, args: { tokenHash: string }): Promise<RefreshTokenRow | undefined> {
  const [row] = await call<RefreshTokenRow>(db, SQL.getValidRefreshToken, [args.tokenHash])
  return row
}

/**
 * Rotation with reuse detection in one transaction; never throws for a bad token (see status).
 * newTokenHash is the successor's hash, derived from the presented token: inside the grace
 * window the same successor is returned (grace) and nothing is inserted. auditEveryRotation
 * false (the default): a rotated or grace answer is audited only when the caller's address
 * or user agent differs from the presented token's; reuse always is.
 */
export async function rotateRefreshToken(
  db: Queryable,
  args: {
    tokenHash: string
    newTokenHash: string
    newJti: string
    idleTtlSeconds: number
    graceSeconds: number
    auditEveryRotation?: boolean
    ctx?: RequestContext
  },
): Promise<RotationResult> {
  return callOne(db, SQL.rotateRefreshToken, [
    args.tokenHash,
    args.newTokenHash,
    args.newJti,
    args.idleTtlSeconds,
    args.graceSeconds,
    ctxJson(args.ctx),
    args.auditEveryRotation ?? false,
  ])
}

/** Ends every session of the user except exceptFamilyId; returns how many ended. AU002. */
export async function revokeUserSessions(
  db: Queryable,
  args: { userId: string; exceptFamilyId?: string | null; reason?: RevokeReason; ctx?: RequestContext },
): Promise<number> {
  return callScalar<number>(db, SQL.revokeUserSessions, [
    args.userId,
    args.exceptFamilyId ?? null,
    args.reason ?? 'logout_all',
    ctxJson(args.ctx),
  ])
}

/** Ends one session; false when it is not the user's or already ended. */
export async function revokeUserSession(db: Queryable, args: { userId: string; familyId: string; ctx?: RequestContext }): Promise<boolean> {
  return callScalar<boolean>(db, SQL.revokeUserSession, [args.userId, args.familyId, ctxJson(args.ctx)])
}

/** Live sessions, newest first. */
export async function listUserSessions(db: Queryable, args: { userId: string }): Promise<SessionRow[]> {
  return call<SessionRow>(db, SQL.listUserSessions, [args.userId])
}

/** Per-request check: the user is active and the session still has a live token. */
export async function checkSession(db: Queryable, args: { userId: string; familyId: string }): Promise<boolean> {
  return callScalar<boolean>(db, SQL.checkSession, [args.userId, args.familyId])
}

// ---------------------------------------------------------------------------
// Login throttling

/** Used by tests only: beginLogin checks the lock. The end of the current email or ip lock, null when not locked. */
export async function checkLoginLock(db: Queryable, args: { email: string; ip: string | null }): Promise<Date | null> {
  const row = await callOne<{ lockedUntil: Date | null }>(db, SQL.checkLoginLock, [args.email, args.ip])
  return row.lockedUntil
}

/** Used by tests only: the login records through endLoginAttempt. */
export async function recordFailedLogin(
  db: Queryable,
  args: {
    email: string
    ip: string | null
    threshold: number
    baseSeconds: number
    maxSeconds: number
    ipThreshold: number
    windowSeconds: number
    ctx?: RequestContext
  },
): Promise<FailedLoginResult> {
  return callOne(db, SQL.recordFailedLogin, [
    args.email,
    args.ip,
    args.threshold,
    args.baseSeconds,
    args.maxSeconds,
    args.ipThreshold,
    args.windowSeconds,
    ctxJson(args.ctx),
  ])
}

/** Used by tests only: the login records through completeLogin. AU002/AU003. */
export async function recordSuccessfulLogin(db: Queryable, args: { userId: string; ctx?: RequestContext }): Promise<void> {
  await call(db, SQL.recordSuccessfulLogin, [args.userId, ctxJson(args.ctx)])
}

/** The lockout policy as the login procedures take it. */
export interface LockoutPolicy {
  threshold: number
  baseSeconds: number
  maxSeconds: number
  ipThreshold: number
  windowSeconds: number
}

export interface BegunLogin {
  /** False while the key the attempt counts against is locked (nothing was counted). */
  allowed: boolean
  lockedUntil: Date | null
  /** The presented device token is a trusted device of this account. */
  trusted: boolean
  /** The account, when allowed and it exists (null for an unknown email). */
  userId: string | null
  email: string | null
  /** null also for an account without a password: verify against a dummy hash, as for an unknown email. */
  hashedPassword: string | null
  isActive: boolean | null
  isVerified: boolean | null
}

/**
 * Reserves (counts) one password check before it is made: per trusted device, or
 * per ip and the account's email. With userId it is a re-authentication of that user (AU002).
 */
export async function beginLogin(
  db: Queryable,
  args: {
    /** The login identifier: an address, or (without an @) a username. */
    email: string | null
    userId?: string | null
    ip: string | null
    deviceHash: string | null
    policy: LockoutPolicy
    ctx?: RequestContext
  },
): Promise<BegunLogin> {
  const { policy } = args
  return callOne(db, SQL.beginLogin, [
    args.email,
    args.userId ?? null,
    args.ip,
    args.deviceHash,
    policy.threshold,
    policy.baseSeconds,
    policy.maxSeconds,
    policy.ipThreshold,
    policy.windowSeconds,
    ctxJson(args.ctx),
  ])
}

export type LoginAttemptOutcome = 'password_ok' | 'login_failed' | 'reauth_failed' | 'mfa_failed'

/**
 * Ends a check begun by beginLogin that starts no session: a right password in a
 * re-authentication gives the reservation back; a failure stays counted and is audited.
 * deviceHash only when beginLogin said the device is trusted.
 */
export async function endLoginAttempt(
  db: Queryable,
  args: {
    email: string
    ip: string | null
    deviceHash: string | null
    outcome: LoginAttemptOutcome
    policy: Pick<LockoutPolicy, 'threshold' | 'ipThreshold'>
    ctx?: RequestContext
  },
): Promise<FailedLoginResult> {
  return callOne(db, SQL.endLoginAttempt, [
    args.email,
    args.ip,
    args.deviceHash,
    args.outcome,
    args.policy.threshold,
    args.policy.ipThreshold,
    ctxJson(args.ctx),
  ])
}

/**
 * A right password at login: clears the counter it was reserved on and trusts the
 * device (the presented trusted one, else newDeviceHash). Returns the device hash in effect. AU002/AU003.
 */
export async function completeLogin(
  db: Queryable,
  args: {
    userId: string
    ip: string | null
    deviceHash: string | null
    newDeviceHash: string
    deviceTtlSeconds: number
    ipThreshold: number
    ctx?: RequestContext
  },
): Promise<string> {
  const row = await callOne<{ deviceHash: string }>(db, SQL.completeLogin, [
    args.userId,
    args.ip,
    args.deviceHash,
    args.newDeviceHash,
    args.deviceTtlSeconds,
    args.ipThreshold,
    ctxJson(args.ctx),
  ])
  return row.deviceHash
}

/** How many mails of one kind an address may be sent per window. */
export interface MailBudget {
  max: number
  windowSeconds: number
}

export interface SignupResult {
  status: 'created' | 'taken'
  userId: string
  email: string
  /** Within the mail budget: send the verification mail (created) or the notice (taken). */
  send: boolean
}

/** Signup in one call, the same work for a new and a taken address. AU008 bad email, AU007. */
export async function signup(
  db: Queryable,
  args: { email: string; hashedPassword: string; tokenHash: string; ttlSeconds: number; mail: MailBudget; ctx?: RequestContext },
): Promise<SignupResult> {
  return callOne(db, SQL.signup, [
    args.email,
    args.hashedPassword,
    args.tokenHash,
    args.ttlSeconds,
    args.mail.max,
    args.mail.windowSeconds,
    ctxJson(args.ctx),
  ])
}

export interface EmailLinkRequest {
  /** A link was stored: mail it to email. */
  send: boolean
  email: string | null
  /** A link was due but the address is over its mail budget. */
  suppressed: boolean
}

/** Forgot-password / resend-verification in one call, the same path for every address. AU007. */
export async function requestEmailLink(
  db: Queryable,
  args: {
    email: string
    purpose: EmailTokenPurpose
    tokenHash: string
    ttlSeconds: number
    mail: MailBudget
    ctx?: RequestContext
  },
): Promise<EmailLinkRequest> {
  return callOne(db, SQL.requestEmailLink, [
    args.email,
    args.purpose,
    args.tokenHash,
    args.ttlSeconds,
    args.mail.max,
    args.mail.windowSeconds,
    ctxJson(args.ctx),
  ])
}

// ---------------------------------------------------------------------------
// Email tokens

/**
 * Used by tests only: the service creates tokens through requestEmailLink. Only the newest
 * token per user and purpose works. AU002/AU003/AU007; AU009 verify_email on a verified user.
 */
export async function createEmailToken(
  db: Queryable,
  args: { userId: string; purpose: EmailTokenPurpose; tokenHash: string; ttlSeconds: number; ctx?: RequestContext },
): Promise<EmailTokenRow> {
  return callOne(db, SQL.createEmailToken, [args.userId, args.purpose, args.tokenHash, args.ttlSeconds, ctxJson(args.ctx)])
}

/** AU004 token_invalid, AU006 token_used, AU005 token_expired, AU003 user_inactive, AU007 (reset without hash). */
export async function consumeEmailToken(
  db: Queryable,
  args: { tokenHash: string; purpose: EmailTokenPurpose; newHashedPassword?: string | null; ctx?: RequestContext },
): Promise<ConsumedEmailToken> {
  return callOne(db, SQL.consumeEmailToken, [args.tokenHash, args.purpose, args.newHashedPassword ?? null, ctxJson(args.ctx)])
}

export interface UsedEmailToken {
  /** The token owner's address is verified (now, by whichever link). */
  isVerified: boolean
  /**
   * reset_password only: the owner's current hash, when the token was used within the
   * window and its reset set the current password; null otherwise.
   */
  hashedPassword: string | null
}

/**
 * What a used email token achieved (the link pages' repeated press); undefined when the
 * token is unknown, unused, of another purpose or its owner inactive. AU007. Writes nothing.
 */
export async function getUsedEmailToken(
  db: Queryable,
  args: { tokenHash: string; purpose: EmailTokenPurpose; windowSeconds: number },
): Promise<UsedEmailToken | undefined> {
  const [row] = await call<UsedEmailToken>(db, SQL.getUsedEmailToken, [args.tokenHash, args.purpose, args.windowSeconds])
  return row
}

// ---------------------------------------------------------------------------
// Sign-in with Google and GitHub (OAuth). Only SHA-256 hex hashes of the state, the
// browser binding and the exchange code reach the database; no provider token does.

export interface ConsumedOAuthState {
  /** invalid: unknown or already used; mismatch: other binding or provider (nothing revealed). */
  status: 'ok' | 'invalid' | 'mismatch' | 'expired'
  /** Set for ok and expired. */
  redirectTo: string | null
  /** ok only: the user a link flow was started for; null for a sign-in flow. */
  linkUserId: string | null
}

export type OAuthSignInStatus = 'signed_in' | 'linked' | 'created' | 'link_required' | 'inactive' | 'unverified_email'

export interface OAuthSignInResult {
  /** signed_in, linked and created stored the exchange code; the others wrote none. */
  status: OAuthSignInStatus
  /** null for unverified_email only. */
  userId: string | null
  email: string | null
}

export interface ConsumedOAuthCode {
  userId: string
  provider: OAuthProvider
}

export type OAuthLinkStatus = 'linked' | 'already_linked' | 'identity_taken' | 'provider_in_use' | 'unverified_account'
export type OAuthUnlinkStatus = 'unlinked' | 'not_linked' | 'last_way_in'

export interface OAuthLinkRow {
  provider: OAuthProvider
  /** What the provider asserted, lower case. */
  email: string | null
  emailVerified: boolean
  createdAt: Date
  lastLoginAt: Date | null
}

/**
 * Stores a pending flow before the redirect to the provider; linkUserId for a link flow
 * started from a session. AU007 (provider, hashes, ttl 1..3600, redirect 1..2048, state reused), AU002/AU003.
 */
export async function createOAuthState(
  db: Queryable,
  args: {
    stateHash: string
    bindingHash: string
    provider: OAuthProvider
    redirectTo: string
    linkUserId?: string | null
    ttlSeconds: number
    ctx?: RequestContext
  },
): Promise<void> {
  await call(db, SQL.createOAuthState, [
    args.stateHash,
    args.bindingHash,
    args.provider,
    args.redirectTo,
    args.linkUserId ?? null,
    args.ttlSeconds,
    ctxJson(args.ctx),
  ])
}

/** The callback's state, consumed whatever the outcome (a state works once). AU007 bad provider or hash. */
export async function consumeOAuthState(
  db: Queryable,
  args: { stateHash: string; bindingHash: string; provider: OAuthProvider },
): Promise<ConsumedOAuthState> {
  return callOne(db, SQL.consumeOAuthState, [args.stateHash, args.bindingHash, args.provider])
}

/**
 * Sign-in with a provider identity: the linked user, else the user with the address
 * (linked when both sides verified it), else a new verified user without password.
 * AU007 bad provider, providerUserId, code hash or ttl (1..600); AU008 bad email.
 */
export async function oauthSignIn(
  db: Queryable,
  args: {
    provider: OAuthProvider
    providerUserId: string
    email: string
    emailVerified: boolean
    codeHash: string
    codeTtlSeconds: number
    ctx?: RequestContext
  },
): Promise<OAuthSignInResult> {
  return callOne(db, SQL.oauthSignIn, [
    args.provider,
    args.providerUserId,
    args.email,
    args.emailVerified,
    args.codeHash,
    args.codeTtlSeconds,
    ctxJson(args.ctx),
  ])
}

/** Trades an exchange code once; undefined when unknown, used, expired or its user inactive. AU007 bad hash. */
export async function consumeOAuthCode(
  db: Queryable,
  args: { codeHash: string; ctx?: RequestContext },
): Promise<ConsumedOAuthCode | undefined> {
  const [row] = await call<ConsumedOAuthCode>(db, SQL.consumeOAuthCode, [args.codeHash, ctxJson(args.ctx)])
  return row
}

/** Links an identity to a signed-in user. AU002/AU003, AU007 bad provider or providerUserId, AU008 bad email. */
export async function linkOAuthProvider(
  db: Queryable,
  args: {
    userId: string
    provider: OAuthProvider
    providerUserId: string
    email: string | null
    emailVerified: boolean
    ctx?: RequestContext
  },
): Promise<OAuthLinkStatus> {
  return callScalar<OAuthLinkStatus>(db, SQL.linkOAuthProvider, [
    args.userId,
    args.provider,
    args.providerUserId,
    args.email,
    args.emailVerified,
    ctxJson(args.ctx),
  ])
}

/** Removes the user's identity of a provider, never the last way in. AU002/AU003, AU007 bad provider. */
export async function unlinkOAuthProvider(
  db: Queryable,
  args: { userId: string; provider: OAuthProvider; ctx?: RequestContext },
): Promise<OAuthUnlinkStatus> {
  return callScalar<OAuthUnlinkStatus>(db, SQL.unlinkOAuthProvider, [args.userId, args.provider, ctxJson(args.ctx)])
}

/** The user's linked identities, in OAUTH_PROVIDERS order. */
export async function listOAuthProviders(db: Queryable, args: { userId: string }): Promise<OAuthLinkRow[]> {
  return call<OAuthLinkRow>(db, SQL.listOAuthProviders, [args.userId])
}

// ---------------------------------------------------------------------------
// Maintenance and readiness

/** Used by tests only: runCleanup calls it. AU007 when a retention is < 1. */
export async function cleanupExpired(
  db: Queryable,
  args: { auditRetentionDays: number; attemptRetentionHours?: number },
): Promise<CleanupResult[]> {
  const rows = await call<{ item: CleanupItem; deleted: string }>(db, SQL.cleanupExpired, [
    args.auditRetentionDays,
    args.attemptRetentionHours ?? 24,
  ])
  return rows.map((r) => ({ item: r.item, deleted: Number(r.deleted) }))
}

/**
 * The periodic cleanup in one call. `undefined` when another instance holds the
 * job's advisory lock (it is cleaning right now). AU007 when a retention is < 1.
 */
export async function runCleanup(
  db: Queryable,
  args: { unverifiedHours: number; auditRetentionDays: number; attemptRetentionHours?: number },
): Promise<CleanupResult[] | undefined> {
  const rows = await call<{ item: CleanupItem; deleted: string }>(db, SQL.runCleanup, [
    args.unverifiedHours,
    args.auditRetentionDays,
    args.attemptRetentionHours ?? 24,
  ])
  return rows.length === 0 ? undefined : rows.map((r) => ({ item: r.item, deleted: Number(r.deleted) }))
}

// ---------------------------------------------------------------------------
// Outbox (events for other services)

/**
 * Up to `limit` unpublished events, oldest first, locked until db's transaction
 * ends: pass a client inside BEGIN, publish, markEventsPublished, COMMIT. [] when
 * another instance holds the publisher lock. AU007 limit not 1..10000.
 */
export async function claimEvents(db: Queryable, args: { limit: number }): Promise<OutboxEvent[]> {
  return call<OutboxEvent>(db, SQL.claimEvents, [args.limit])
}

/** Marks events published; returns how many were not yet. */
export async function markEventsPublished(db: Queryable, args: { ids: readonly string[] }): Promise<number> {
  return callScalar<number>(db, SQL.markEventsPublished, [args.ids])
}

/** How many events wait for the publisher, and since when. */
export async function eventsLag(db: Queryable): Promise<EventsLag> {
  const row = await callOne<{ unpublished: string; oldestCreatedAt: Date | null }>(db, SQL.eventsLag, [])
  return { unpublished: Number(row.unpublished), oldestCreatedAt: row.oldestCreatedAt }
}

/**
 * Events after the cursor in (txId, id) order, published or not, none of which can be
 * preceded later by one committing behind it (also granted to write_api_user). AU007 bad cursor or limit.
 */
export async function eventsAfter(db: Queryable, args: { after: EventCursor; limit: number }): Promise<PagedEvent[]> {
  return call<PagedEvent>(db, SQL.eventsAfter, [args.after.txId, args.after.id, args.limit])
}

/** Whether the session (sid) has a live token and its user is active (also granted to write_api_user). */
export async function sessionIsLive(db: Queryable, args: { sessionId: string }): Promise<boolean> {
  return callScalar<boolean>(db, SQL.sessionIsLive, [args.sessionId])
}

/** Deletes events published more than retentionHours ago; returns the count. AU007 when < 1. */
export async function cleanupEvents(db: Queryable, args: { retentionHours: number; unpublishedToo: boolean }): Promise<number> {
  return callScalar<number>(db, SQL.cleanupEvents, [args.retentionHours, args.unpublishedToo])
}

/** Applied migrations, oldest first (readable by auth_api_user and activity_readonly). */
export async function schemaMigrations(db: Queryable): Promise<AppliedMigration[]> {
  return call<AppliedMigration>(db, SQL.schemaMigrations, [])
}

// ---------------------------------------------------------------------------
// Profile and change of email (issue 17)

const PROFILE_SQL = {
  getProfile: statement('sp_get_profile', 'uuid'),
  updateProfile: statement('sp_update_profile', 'uuid', 'jsonb', 'jsonb'),
  requestEmailChange: statement('sp_request_email_change', 'uuid', 'text', 'text', 'integer', 'integer', 'integer', 'jsonb'),
  confirmEmailChange: statement('sp_confirm_email_change', 'text', 'jsonb'),
} as const

export interface Profile {
  username: string | null
  firstName: string | null
  lastName: string | null
  phone: string | null
}

/** The fields to set; an absent key stays as it is, null clears it. */
export type ProfileChanges = Partial<Profile>

/** The user's profile fields; undefined for an unknown user. */
export async function getProfile(db: Queryable, args: { userId: string }): Promise<Profile | undefined> {
  const [row] = await call<Profile>(db, PROFILE_SQL.getProfile, [args.userId])
  return row
}

/**
 * Sets the given fields and returns the profile after. AU002/AU003, AU007 unknown field,
 * AU010 username_taken, AU011 username_reserved, AU012 invalid_username, AU013 invalid_phone, AU014 invalid_name.
 */
export async function updateProfile(
  db: Queryable,
  args: { userId: string; changes: ProfileChanges; ctx?: RequestContext },
): Promise<Profile> {
  const columns: Record<keyof Profile, string> = { username: 'username', firstName: 'first_name', lastName: 'last_name', phone: 'phone' }
  const changes: Record<string, string | null> = {}
  for (const [key, column] of Object.entries(columns)) {
    const value = args.changes[key as keyof Profile]
    if (value !== undefined) changes[column] = value
  }
  return callOne(db, PROFILE_SQL.updateProfile, [args.userId, JSON.stringify(changes), ctxJson(args.ctx)])
}

export interface EmailChangeRequest {
  /** link: a link for the new address was stored (when mailNew); taken: another account has it; unchanged: it is the current one. */
  status: 'link' | 'taken' | 'unchanged'
  oldEmail: string
  newEmail: string
  /** Within the new address's mail budget: send it the link (link) or the notice (taken). */
  mailNew: boolean
  /** Within the current address's mail budget: send it the notice. */
  mailOld: boolean
}

/** A change of email asked by a re-authenticated user. AU002/AU003, AU007, AU008 bad email. */
export async function requestEmailChange(
  db: Queryable,
  args: { userId: string; newEmail: string; tokenHash: string; ttlSeconds: number; mail: MailBudget; ctx?: RequestContext },
): Promise<EmailChangeRequest> {
  return callOne(db, PROFILE_SQL.requestEmailChange, [
    args.userId,
    args.newEmail,
    args.tokenHash,
    args.ttlSeconds,
    args.mail.max,
    args.mail.windowSeconds,
    ctxJson(args.ctx),
  ])
}

export interface ConfirmedEmailChange {
  userId: string
  oldEmail: string
  newEmail: string
  sessionsEnded: number
}

/** Uses a change_email link. AU004/AU005/AU006 like the other links, AU003, AU001 address taken meanwhile, AU007. */
export async function confirmEmailChange(db: Queryable, args: { tokenHash: string; ctx?: RequestContext }): Promise<ConfirmedEmailChange> {
  return callOne(db, PROFILE_SQL.confirmEmailChange, [args.tokenHash, ctxJson(args.ctx)])
}

// ---------------------------------------------------------------------------
// Two-factor sign-in (TOTP and recovery codes). The secret reaches the database only
// encrypted (src/auth/mfa/secret-box.ts), recovery codes and challenge tokens only as
// their SHA-256 hex; the codes are computed and checked in the service.

const MFA_SQL = {
  beginMfaEnrolment: statement('sp_begin_mfa_enrolment', 'uuid', 'text', 'jsonb'),
  getMfaTotp: statement('sp_get_mfa_totp', 'uuid'),
  confirmMfaTotp: statement('sp_confirm_mfa_totp', 'uuid', 'bigint', 'text[]', 'jsonb'),
  useMfaTotpStep: statement('sp_use_mfa_totp_step', 'uuid', 'bigint', 'jsonb'),
  useMfaRecoveryCode: statement('sp_use_mfa_recovery_code', 'uuid', 'text', 'jsonb'),
  replaceMfaRecoveryCodes: statement('sp_replace_mfa_recovery_codes', 'uuid', 'text[]', 'jsonb'),
  disableMfa: statement('sp_disable_mfa', 'uuid', 'jsonb'),
  createMfaChallenge: statement('sp_create_mfa_challenge', 'text', 'uuid', 'text[]', 'text', 'integer', 'jsonb'),
  getMfaChallenge: statement('sp_get_mfa_challenge', 'text'),
  consumeMfaChallenge: statement('sp_consume_mfa_challenge', 'text', 'jsonb'),
} as const

/** How the first factor was made: a password, or a provider (federated) sign-in. */
export type FirstFactor = 'pwd' | 'fed'

export interface MfaTotpState {
  mfaEnabled: boolean
  /** null when the user has no TOTP secret (not even a pending one). */
  secretCiphertext: string | null
  /** The secret is confirmed (false also when there is none). */
  confirmed: boolean
  /** The newest 30-second step a code was accepted for; null without a secret. */
  lastUsedStep: number | null
}

export interface MfaChallenge {
  userId: string
  amr: FirstFactor[]
  /** The login's trusted device (hash), or null. */
  deviceHash: string | null
}

/** Stores a new unconfirmed secret; false when two-factor is already on. AU002/AU003/AU007. */
export async function beginMfaEnrolment(
  db: Queryable,
  args: { userId: string; secretCiphertext: string; ctx?: RequestContext },
): Promise<boolean> {
  return callScalar<boolean>(db, MFA_SQL.beginMfaEnrolment, [args.userId, args.secretCiphertext, ctxJson(args.ctx)])
}

/** The two-factor state of an active user; undefined when unknown or inactive. */
export async function getMfaTotp(db: Queryable, args: { userId: string }): Promise<MfaTotpState | undefined> {
  const [row] = await call<Omit<MfaTotpState, 'lastUsedStep'> & { lastUsedStep: string | null }>(db, MFA_SQL.getMfaTotp, [args.userId])
  return row === undefined ? undefined : { ...row, lastUsedStep: row.lastUsedStep === null ? null : Number(row.lastUsedStep) }
}

/** Turns two-factor on with the step of a checked code and the recovery code hashes; false when nothing was pending. AU002/AU003/AU007. */
export async function confirmMfaTotp(
  db: Queryable,
  args: { userId: string; step: number; recoveryHashes: readonly string[]; ctx?: RequestContext },
): Promise<boolean> {
  return callScalar<boolean>(db, MFA_SQL.confirmMfaTotp, [args.userId, args.step, args.recoveryHashes, ctxJson(args.ctx)])
}

/** True once per step newer than the last accepted (the replay guard). AU007 bad step. */
export async function useMfaTotpStep(db: Queryable, args: { userId: string; step: number; ctx?: RequestContext }): Promise<boolean> {
  return callScalar<boolean>(db, MFA_SQL.useMfaTotpStep, [args.userId, args.step, ctxJson(args.ctx)])
}

/** Spends a recovery code once; remaining: the unused codes left. AU007 bad hash. */
export async function useMfaRecoveryCode(
  db: Queryable,
  args: { userId: string; codeHash: string; ctx?: RequestContext },
): Promise<{ used: boolean; remaining: number }> {
  return callOne(db, MFA_SQL.useMfaRecoveryCode, [args.userId, args.codeHash, ctxJson(args.ctx)])
}

/** New recovery codes in place of all old ones; false when two-factor is off. AU002/AU003/AU007. */
export async function replaceMfaRecoveryCodes(
  db: Queryable,
  args: { userId: string; recoveryHashes: readonly string[]; ctx?: RequestContext },
): Promise<boolean> {
  return callScalar<boolean>(db, MFA_SQL.replaceMfaRecoveryCodes, [args.userId, args.recoveryHashes, ctxJson(args.ctx)])
}

/** Deletes the secret, the codes and open challenges; true when two-factor was on. AU002/AU003. */
export async function disableMfa(db: Queryable, args: { userId: string; ctx?: RequestContext }): Promise<boolean> {
  return callScalar<boolean>(db, MFA_SQL.disableMfa, [args.userId, ctxJson(args.ctx)])
}

/** A first factor passed, waiting for the second (ttl 1..900 s). AU002/AU003, AU007 bad hash, amr, ttl or a hash reused. */
export async function createMfaChallenge(
  db: Queryable,
  args: { tokenHash: string; userId: string; amr: FirstFactor; deviceHash: string | null; ttlSeconds: number; ctx?: RequestContext },
): Promise<void> {
  await call(db, MFA_SQL.createMfaChallenge, [args.tokenHash, args.userId, [args.amr], args.deviceHash, args.ttlSeconds, ctxJson(args.ctx)])
}

/** A live challenge, without spending it; undefined when unknown, used, expired or its user inactive. AU007 bad hash. */
export async function getMfaChallenge(db: Queryable, args: { tokenHash: string }): Promise<MfaChallenge | undefined> {
  const [row] = await call<MfaChallenge>(db, MFA_SQL.getMfaChallenge, [args.tokenHash])
  return row
}

/** Spends a live challenge: exactly one of parallel callers gets it. AU007 bad hash. */
export async function consumeMfaChallenge(
  db: Queryable,
  args: { tokenHash: string; ctx?: RequestContext },
): Promise<MfaChallenge | undefined> {
  const [row] = await call<MfaChallenge>(db, MFA_SQL.consumeMfaChallenge, [args.tokenHash, ctxJson(args.ctx)])
  return row
}
