// One typed function per stored procedure granted to auth_api_user: the only SQL
// text in src/. Each call is one parameterised, named (prepared once per
// connection) `SELECT * FROM activity.sp_x(...)`, with every parameter cast so
// the server resolves exactly the intended function. Custom SQLSTATEs become a
// DbError (errors.ts); anything else is rethrown unchanged.
import type pg from 'pg'
import { fromPgError } from './errors.ts'

export type Queryable = Pick<pg.Pool, 'query'> // Pool or PoolClient

export interface RequestContext {
  ip?: string | null
  userAgent?: string | null
  requestId?: string | null
}

export type RevokeReason =
  | 'rotated'
  | 'logout'
  | 'logout_all'
  | 'session_ended'
  | 'reuse_detected'
  | 'password_changed'
  | 'password_reset'
  | 'user_deactivated'
export type EmailTokenPurpose = 'verify_email' | 'reset_password'
export type RotationStatus = 'rotated' | 'grace' | 'reuse_detected' | 'expired' | 'invalid'
export type CleanupItem = 'refresh_tokens' | 'email_tokens' | 'login_attempts' | 'audit_logs' | 'unverified_users'

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
  hashedPassword: string
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

export interface RotationResult {
  status: RotationStatus
  /** Set for rotated, grace, reuse_detected and expired. */
  userId: string | null
  familyId: string | null
  /** The new token's id: rotated and grace only. */
  tokenId: number | null
  expiresAt: Date | null
  familyExpiresAt: Date | null
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

/** Runs one procedure; rows come back with camelCase keys (pg already parses timestamptz to Date). */
/** Deadlock and serialization failure: the whole call was rolled back, so it may simply run again. */
const RETRYABLE = new Set(['40P01', '40001'])
const ATTEMPTS = 3

async function call<Row>(db: Queryable, stmt: Statement, values: unknown[]): Promise<Row[]> {
  // Each call is one statement in autocommit, i.e. one whole transaction; a
  // rare deadlock between a revoke-all and a session write under heavy load on
  // one user is retried here instead of surfacing as a 5xx.
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await db.query<Record<string, unknown>>({ name: stmt.name, text: stmt.text, values })
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
  saveRefreshToken: statement('sp_save_refresh_token', 'uuid', 'text', 'text', 'integer', 'integer', 'jsonb'),
  revokeRefreshToken: statement('sp_revoke_refresh_token', 'text', 'text', 'jsonb'),
  getValidRefreshToken: statement('sp_get_valid_refresh_token', 'text'),
  rotateRefreshToken: statement('sp_rotate_refresh_token', 'text', 'text', 'text', 'integer', 'integer', 'jsonb'),
  checkLoginLock: statement('sp_check_login_lock', 'text', 'text'),
  recordFailedLogin: statement(
    'sp_record_failed_login',
    'text', 'text', 'integer', 'integer', 'integer', 'integer', 'integer', 'jsonb',
  ),
  recordSuccessfulLogin: statement('sp_record_successful_login', 'uuid', 'jsonb'),
  revokeUserSessions: statement('sp_revoke_user_sessions', 'uuid', 'uuid', 'text', 'jsonb'),
  revokeUserSession: statement('sp_revoke_user_session', 'uuid', 'uuid', 'jsonb'),
  listUserSessions: statement('sp_list_user_sessions', 'uuid'),
  checkSession: statement('sp_check_session', 'uuid', 'uuid'),
  createEmailToken: statement('sp_create_email_token', 'uuid', 'text', 'text', 'integer', 'jsonb'),
  consumeEmailToken: statement('sp_consume_email_token', 'text', 'text', 'text', 'jsonb'),
  cleanupExpired: statement('sp_cleanup_expired', 'integer', 'integer'),
  runCleanup: statement('sp_run_cleanup', 'integer', 'integer', 'integer'),
  schemaMigrations: statement('sp_schema_migrations'),
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

export async function getUserByEmail(db: Queryable, args: { email: string }): Promise<UserRow | undefined> {
  const [row] = await call<UserRow>(db, SQL.getUserByEmail, [args.email])
  return row
}

export async function getUserById(db: Queryable, args: { userId: string }): Promise<UserRow | undefined> {
  const [row] = await call<UserRow>(db, SQL.getUserById, [args.userId])
  return row
}

/** AU002 user_not_found, AU003 user_inactive, AU009 already_verified. */
export async function verifyUserEmail(
  db: Queryable,
  args: { userId: string; ctx?: RequestContext },
): Promise<VerifiedUser> {
  return callOne(db, SQL.verifyUserEmail, [args.userId, ctxJson(args.ctx)])
}

/** Seed compatibility; the login flow uses recordSuccessfulLogin. AU002. */
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

/** Deletes unverified users older than olderThanHours (default 168); AU007 when < 1. */
export async function cleanupUnverifiedUsers(db: Queryable, args: { olderThanHours?: number } = {}): Promise<number> {
  return callScalar<number>(db, SQL.cleanupUnverifiedUsers, [args.olderThanHours ?? 168])
}

// ---------------------------------------------------------------------------
// Refresh tokens and sessions

/** Starts a session (new family). AU002/AU003; AU007 for ttl <= 0, bad hash or a hash/jti already used. */
export async function saveRefreshToken(
  db: Queryable,
  args: {
    userId: string
    tokenHash: string
    jti: string
    idleTtlSeconds: number
    familyTtlSeconds: number
    ctx?: RequestContext
  },
): Promise<SavedRefreshToken> {
  return callOne(db, SQL.saveRefreshToken, [
    args.userId,
    args.tokenHash,
    args.jti,
    args.idleTtlSeconds,
    args.familyTtlSeconds,
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

export async function getValidRefreshToken(
  db: Queryable,
  args: { tokenHash: string },
): Promise<RefreshTokenRow | undefined> {
  const [row] = await call<RefreshTokenRow>(db, SQL.getValidRefreshToken, [args.tokenHash])
  return row
}

/** Rotation with reuse detection in one transaction; never throws for a bad token (see status). */
export async function rotateRefreshToken(
  db: Queryable,
  args: {
    tokenHash: string
    newTokenHash: string
    newJti: string
    idleTtlSeconds: number
    graceSeconds: number
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
export async function revokeUserSession(
  db: Queryable,
  args: { userId: string; familyId: string; ctx?: RequestContext },
): Promise<boolean> {
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

/** The end of the current email or ip lock, null when not locked. */
export async function checkLoginLock(db: Queryable, args: { email: string; ip: string | null }): Promise<Date | null> {
  const row = await callOne<{ lockedUntil: Date | null }>(db, SQL.checkLoginLock, [args.email, args.ip])
  return row.lockedUntil
}

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

/** AU002/AU003. */
export async function recordSuccessfulLogin(
  db: Queryable,
  args: { userId: string; ctx?: RequestContext },
): Promise<void> {
  await call(db, SQL.recordSuccessfulLogin, [args.userId, ctxJson(args.ctx)])
}

// ---------------------------------------------------------------------------
// Email tokens

/** Only the newest token per user and purpose works. AU002/AU003/AU007; AU009 verify_email on a verified user. */
export async function createEmailToken(
  db: Queryable,
  args: { userId: string; purpose: EmailTokenPurpose; tokenHash: string; ttlSeconds: number; ctx?: RequestContext },
): Promise<EmailTokenRow> {
  return callOne(db, SQL.createEmailToken, [
    args.userId,
    args.purpose,
    args.tokenHash,
    args.ttlSeconds,
    ctxJson(args.ctx),
  ])
}

/** AU004 token_invalid, AU006 token_used, AU005 token_expired, AU003 user_inactive, AU007 (reset without hash). */
export async function consumeEmailToken(
  db: Queryable,
  args: { tokenHash: string; purpose: EmailTokenPurpose; newHashedPassword?: string | null; ctx?: RequestContext },
): Promise<ConsumedEmailToken> {
  return callOne(db, SQL.consumeEmailToken, [
    args.tokenHash,
    args.purpose,
    args.newHashedPassword ?? null,
    ctxJson(args.ctx),
  ])
}

// ---------------------------------------------------------------------------
// Maintenance and readiness

/** AU007 when a retention is < 1. */
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

/** Applied migrations, oldest first (readable by auth_api_user and activity_readonly). */
export async function schemaMigrations(db: Queryable): Promise<AppliedMigration[]> {
  return call<AppliedMigration>(db, SQL.schemaMigrations, [])
}
