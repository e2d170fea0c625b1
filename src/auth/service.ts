// The auth flows, one method per use case. Routes validate input and shape
// responses; this decides what happens, always through src/db/procedures.ts.
// Rules that cut across methods:
// - no enumeration: signup, resend and forgot-password do the same visible work
//   whether or not the address has an account; login fails the same way (and in
//   the same time, via a dummy verify) for an unknown email and a wrong password;
// - mail goes out in the background so its latency cannot tell accounts apart;
// - every security event is written to audit_logs by the procedures themselves.
import type { FastifyBaseLogger } from 'fastify'
import * as db from '../db/procedures.ts'
import { DbError } from '../db/errors.ts'
import {
  badRequest,
  forbidden,
  HttpProblem,
  notFound,
  tooManyRequests,
  unauthorized,
} from '../http/problem.ts'
import type { Mailer } from './mailer.ts'
import { checkPasswordPolicy, type PasswordHasher } from './passwords.ts'
import { hashToken, isWellFormedToken, newEmailToken, newRefreshToken } from './refresh-tokens.ts'

export interface AuthPolicy {
  requireEmailVerification: boolean
  refreshTokenTtlSeconds: number
  refreshFamilyTtlSeconds: number
  refreshReuseGraceSeconds: number
  emailTokenTtlSeconds: number
  lockout: {
    threshold: number
    baseSeconds: number
    maxSeconds: number
    ipThreshold: number
    windowSeconds: number
  }
}

export interface AuthServiceDeps {
  db: db.Queryable
  hasher: PasswordHasher
  mailer: Mailer
  policy: AuthPolicy
  log: FastifyBaseLogger
  signAccessToken: (claims: { userId: string; sessionId: string }) => Promise<{ token: string; expiresIn: number }>
  onLoginOutcome?: (outcome: string) => void
  onRefreshReuse?: () => void
}

export interface TokenPair {
  accessToken: string
  refreshToken: string
  tokenType: 'Bearer'
  expiresIn: number
}

export type Ctx = db.RequestContext

const INVALID_CREDENTIALS = () => unauthorized('invalid_credentials', 'email or password is incorrect')
const INVALID_REFRESH = () => unauthorized('invalid_refresh_token', 'refresh token is invalid, expired or revoked')

export class AuthService {
  private readonly pending = new Set<Promise<unknown>>()

  constructor(private readonly deps: AuthServiceDeps) {}

  /** Mail in the background; failures are logged, never shown to the caller. */
  private background(what: string, work: () => Promise<unknown>): void {
    const p = work()
      .catch((err: unknown) => this.deps.log.error({ err }, `${what} failed`))
      .finally(() => this.pending.delete(p))
    this.pending.add(p)
  }

  /** Wait for background mail (graceful shutdown, tests). */
  async drain(): Promise<void> {
    await Promise.all([...this.pending])
  }

  private assertPolicy(password: string): void {
    const violation = checkPasswordPolicy(password)
    if (violation) throw badRequest(violation.code, violation.detail)
  }

  /** A fresh one-time link (stored hashed) mailed in the background. */
  private async mailLink(userId: string, purpose: db.EmailTokenPurpose, ctx: Ctx): Promise<void> {
    const { token, hash } = newEmailToken()
    const created = await db.createEmailToken(this.deps.db, {
      userId,
      purpose,
      tokenHash: hash,
      ttlSeconds: this.deps.policy.emailTokenTtlSeconds,
      ctx,
    })
    const { mailer } = this.deps
    this.background(`${purpose} mail`, () =>
      purpose === 'verify_email' ? mailer.sendVerification(created.email, token) : mailer.sendPasswordReset(created.email, token),
    )
  }

  async signup(email: string, password: string, ctx: Ctx): Promise<void> {
    this.assertPolicy(password)
    // Hash before knowing whether the address is taken: both paths cost the same.
    const hashed = await this.deps.hasher.hash(password)
    try {
      const user = await db.createUser(this.deps.db, { email, hashedPassword: hashed, ctx })
      await this.mailLink(user.id, 'verify_email', ctx)
    } catch (err) {
      if (err instanceof DbError && err.code === 'email_taken') {
        this.background('account-exists notice', () => this.deps.mailer.sendAccountExists(email.trim().toLowerCase()))
        return
      }
      if (err instanceof DbError && err.code === 'invalid_email') throw badRequest('invalid_email', 'email address is not valid')
      throw err
    }
  }

  async resendVerification(email: string, ctx: Ctx): Promise<void> {
    const user = await db.getUserByEmail(this.deps.db, { email })
    if (user?.isActive !== true || user.isVerified) return
    await this.mailLink(user.id, 'verify_email', ctx)
  }

  async verifyEmail(token: string, ctx: Ctx): Promise<void> {
    if (!isWellFormedToken(token)) throw badRequest('invalid_token', 'verification link is invalid')
    try {
      await db.consumeEmailToken(this.deps.db, { tokenHash: hashToken(token), purpose: 'verify_email', ctx })
    } catch (err) {
      throw emailTokenProblem(err)
    }
  }

  async login(email: string, password: string, ctx: Ctx): Promise<TokenPair> {
    const { policy } = this.deps
    const lock = await db.checkLoginLock(this.deps.db, { email, ip: ctx.ip ?? null })
    if (lock) {
      this.deps.onLoginOutcome?.('locked')
      this.deps.log.warn({ event: 'login_locked', requestId: ctx.requestId, lockedUntil: lock }, 'login refused: locked')
      throw lockedProblem(lock)
    }
    const user = await db.getUserByEmail(this.deps.db, { email })
    let ok = false
    if (user?.isActive === true) {
      ok = await this.deps.hasher.verify(user.hashedPassword, password)
    } else {
      await this.deps.hasher.dummyVerify(password)
    }
    if (!user || !ok) {
      const failed = await db.recordFailedLogin(this.deps.db, {
        email,
        ip: ctx.ip ?? null,
        threshold: policy.lockout.threshold,
        baseSeconds: policy.lockout.baseSeconds,
        maxSeconds: policy.lockout.maxSeconds,
        ipThreshold: policy.lockout.ipThreshold,
        windowSeconds: policy.lockout.windowSeconds,
        ctx,
      })
      this.deps.onLoginOutcome?.('failure')
      // No email in the log line: the audit row has it, logs travel further.
      this.deps.log.warn(
        { event: 'login_failed', requestId: ctx.requestId, failedCount: failed.failedCount, locked: failed.lockedUntil !== null },
        'login failed',
      )
      throw INVALID_CREDENTIALS()
    }
    if (!user.isVerified && policy.requireEmailVerification) {
      this.deps.onLoginOutcome?.('unverified')
      throw forbidden('email_not_verified', 'verify your email address before logging in')
    }
    if (this.deps.hasher.needsRehash(user.hashedPassword)) {
      const rehashed = await this.deps.hasher.hash(password)
      await db.updatePassword(this.deps.db, { userId: user.id, hashedPassword: rehashed, endSessions: false, ctx })
    }
    await db.recordSuccessfulLogin(this.deps.db, { userId: user.id, ctx })
    const pair = await this.startSession(user.id, ctx)
    this.deps.onLoginOutcome?.('success')
    return pair
  }

  private async startSession(userId: string, ctx: Ctx): Promise<TokenPair> {
    const refresh = newRefreshToken()
    const saved = await db.saveRefreshToken(this.deps.db, {
      userId,
      tokenHash: refresh.hash,
      jti: refresh.jti,
      idleTtlSeconds: this.deps.policy.refreshTokenTtlSeconds,
      familyTtlSeconds: this.deps.policy.refreshFamilyTtlSeconds,
      ctx,
    })
    return this.pair(userId, saved.familyId, refresh.token)
  }

  private async pair(userId: string, sessionId: string, refreshToken: string): Promise<TokenPair> {
    const access = await this.deps.signAccessToken({ userId, sessionId })
    return { accessToken: access.token, refreshToken, tokenType: 'Bearer', expiresIn: access.expiresIn }
  }

  async refresh(refreshToken: string, ctx: Ctx): Promise<TokenPair> {
    if (!isWellFormedToken(refreshToken)) throw INVALID_REFRESH()
    const next = newRefreshToken()
    const result = await db.rotateRefreshToken(this.deps.db, {
      tokenHash: hashToken(refreshToken),
      newTokenHash: next.hash,
      newJti: next.jti,
      idleTtlSeconds: this.deps.policy.refreshTokenTtlSeconds,
      graceSeconds: this.deps.policy.refreshReuseGraceSeconds,
      ctx,
    })
    if (result.status === 'reuse_detected') {
      this.deps.onRefreshReuse?.()
      this.deps.log.warn(
        { event: 'refresh_token_reuse', userId: result.userId, sessionId: result.familyId, requestId: ctx.requestId },
        'refresh token reuse: session revoked',
      )
    }
    if ((result.status !== 'rotated' && result.status !== 'grace') || result.userId === null || result.familyId === null) {
      throw INVALID_REFRESH()
    }
    return this.pair(result.userId, result.familyId, next.token)
  }

  async logout(refreshToken: string, ctx: Ctx): Promise<void> {
    // Idempotent: an unknown or already ended session is not an error for logout.
    if (!isWellFormedToken(refreshToken)) return
    await db.revokeRefreshToken(this.deps.db, { tokenHash: hashToken(refreshToken), reason: 'logout', ctx })
  }

  async logoutAll(userId: string, ctx: Ctx): Promise<void> {
    await db.revokeUserSessions(this.deps.db, { userId, exceptFamilyId: null, reason: 'logout_all', ctx })
  }

  async me(userId: string): Promise<db.UserRow> {
    const user = await db.getUserById(this.deps.db, { userId })
    if (user?.isActive !== true) throw unauthorized('invalid_token', 'session ended')
    return user
  }

  private async assertPassword(userId: string, password: string): Promise<void> {
    const user = await this.me(userId)
    if (!(await this.deps.hasher.verify(user.hashedPassword, password))) {
      throw unauthorized('invalid_credentials', 'password is incorrect')
    }
  }

  async deleteAccount(userId: string, password: string, ctx: Ctx): Promise<void> {
    await this.assertPassword(userId, password)
    await db.deactivateUser(this.deps.db, { userId, ctx })
  }

  async changePassword(userId: string, sessionId: string, current: string, next: string, ctx: Ctx): Promise<void> {
    await this.assertPassword(userId, current)
    this.assertPolicy(next)
    const hashed = await this.deps.hasher.hash(next)
    const ended = await db.updatePassword(this.deps.db, { userId, hashedPassword: hashed, endSessions: true, keepFamilyId: sessionId, ctx })
    this.deps.log.info({ event: 'password_changed', userId, sessionsEnded: ended, requestId: ctx.requestId }, 'password changed')
  }

  async forgotPassword(email: string, ctx: Ctx): Promise<void> {
    const user = await db.getUserByEmail(this.deps.db, { email })
    if (user?.isActive !== true) return
    await this.mailLink(user.id, 'reset_password', ctx)
  }

  async resetPassword(token: string, newPassword: string, ctx: Ctx): Promise<void> {
    if (!isWellFormedToken(token)) throw badRequest('invalid_token', 'reset link is invalid')
    this.assertPolicy(newPassword)
    const hashed = await this.deps.hasher.hash(newPassword)
    try {
      await db.consumeEmailToken(this.deps.db, {
        tokenHash: hashToken(token),
        purpose: 'reset_password',
        newHashedPassword: hashed,
        ctx,
      })
    } catch (err) {
      throw emailTokenProblem(err)
    }
  }

  async sessions(userId: string, currentSessionId: string) {
    const rows = await db.listUserSessions(this.deps.db, { userId })
    return rows.map((s) => ({ ...s, current: s.familyId === currentSessionId }))
  }

  async endSession(userId: string, sessionId: string, ctx: Ctx): Promise<void> {
    const ended = await db.revokeUserSession(this.deps.db, { userId, familyId: sessionId, ctx })
    if (!ended) throw notFound('session_not_found', 'no such live session')
  }
}

function lockedProblem(lockedUntil: Date): HttpProblem {
  const seconds = Math.max(1, Math.ceil((lockedUntil.getTime() - Date.now()) / 1000))
  return tooManyRequests('too_many_attempts', 'too many failed logins; try again later', seconds)
}

function emailTokenProblem(err: unknown): unknown {
  if (err instanceof DbError) {
    switch (err.code) {
      case 'token_invalid':
      case 'user_inactive':
        return badRequest('invalid_token', 'link is invalid')
      case 'token_expired':
        return badRequest('token_expired', 'link has expired; ask for a new one')
      case 'token_used':
        return badRequest('token_used', 'link has already been used')
      default:
        return err
    }
  }
  return err
}
