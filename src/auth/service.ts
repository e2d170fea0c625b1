// The auth flows, one method per use case. Routes validate input and shape
// responses; this decides what happens, always through src/db/procedures.ts.
// Rules that cut across methods:
// - no enumeration: signup, resend and forgot-password do the same visible work
//   whether or not the address has an account; login fails the same way (and in
//   the same time, via a dummy verify) for an unknown email and a wrong password;
// - mail goes out in the background so its latency cannot tell accounts apart;
// - every security event is written to audit_logs by the procedures themselves.
import type { FastifyBaseLogger } from 'fastify'
import * as sp from '../db/procedures.ts'
import { DbError } from '../db/errors.ts'
import type { LoginOutcome } from '../plugins/metrics.ts'
import { badRequest, dbProblem, forbidden, HttpProblem, notFound, tooManyRequests, unauthorized } from '../http/problem.ts'
import type { Mailer } from './mailer.ts'
import type { PasswordPolicy } from './password-policy.ts'
import type { PasswordHasher } from './passwords.ts'
import type { SessionCache } from './session-cache.ts'
import { newRefreshToken, type RefreshSuccessor } from './refresh-tokens.ts'
import { hashToken, isWellFormedToken, newEmailToken } from './tokens.ts'
import type { MfaChallengeAnswer, SecondFactorProof } from './mfa/service.ts'

export interface AuthPolicy {
  requireEmailVerification: boolean
  refreshTokenTtlSeconds: number
  refreshFamilyTtlSeconds: number
  refreshReuseGraceSeconds: number
  /** false: only a rotation from another address or user agent writes an audit row. */
  refreshAuditEveryRotation: boolean
  emailTokenTtlSeconds: number
  lockout: sp.LockoutPolicy
  /** How long a device that logged in stays trusted (its own lockout counter). */
  deviceTtlSeconds: number
  /** Mails of one kind per recipient address and window, across every instance. */
  mailBudget: sp.MailBudget
}

export interface AuthServiceDeps {
  db: sp.Queryable
  hasher: PasswordHasher
  /** Length, common and (optionally) breached passwords: password-policy.ts. */
  passwordPolicy: PasswordPolicy
  mailer: Mailer
  policy: AuthPolicy
  log: FastifyBaseLogger
  signAccessToken: (claims: {
    userId: string
    sessionId: string
    amr: readonly string[] | null
  }) => Promise<{ token: string; expiresIn: number }>
  /** The successor of a presented refresh token, derived under REFRESH_TOKEN_PEPPER (refresh-tokens.ts). */
  deriveRefreshSuccessor: (presented: string) => RefreshSuccessor
  onLoginOutcome?: (outcome: LoginOutcome) => void
  onRefreshReuse?: () => void
  /** A mail that was due but not sent: its recipient is over the mail budget. */
  onMailSuppressed?: (kind: MailKind) => void
  /**
   * Live sessions and account rows in memory (session-cache.ts). Every method that
   * ends a session or changes what GET /me shows tells it (changed()) before answering.
   */
  cache?: SessionCache
  /** Two-factor sign-in (mfa/service.ts): the login's challenge and the sensitive actions' fresh factor. */
  secondFactor?: SecondFactor
}

/** What the AuthService needs of the two-factor part. */
export interface SecondFactor {
  /** After a right password: a challenge when the user has two-factor on, else undefined. */
  challenge(userId: string, firstFactor: 'pwd' | 'fed', deviceHash: string | null, ctx: Ctx): Promise<MfaChallengeAnswer | undefined>
  /** Nothing when two-factor is off; else a fresh second factor or a 403/401/429 problem. */
  requireFresh(userId: string, proof: SecondFactorProof, ctx: Ctx): Promise<void>
}

export type MailKind = sp.EmailTokenPurpose | 'account_exists'

/** What GET /me shows: the account row, its profile and its linked providers. */
export type Account = sp.UserRow & sp.Profile & { providers: sp.OAuthLinkRow[]; mfaEnabled: boolean }

export interface TokenPair {
  accessToken: string
  refreshToken: string
  tokenType: 'Bearer'
  expiresIn: number
}

export interface LoginResult extends TokenPair {
  /** Present it at the next login from this device: its guesses then count against it alone. */
  deviceToken: string
}

export type Ctx = sp.RequestContext

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

  private async assertPolicy(password: string): Promise<void> {
    const violation = await this.deps.passwordPolicy.check(password)
    if (violation === undefined) return
    // The breach service being down is our failure, not the user's password.
    if (violation.code === 'breach_check_unavailable') throw new HttpProblem(503, violation.code, violation.detail)
    throw badRequest(violation.code, violation.detail)
  }

  /** Mail of a kind that was due but is over its recipient's budget: counted and logged, never shown. */
  private suppressed(kind: MailKind, ctx: Ctx): void {
    this.deps.onMailSuppressed?.(kind)
    this.deps.log.warn({ event: 'mail_suppressed', kind, requestId: ctx.requestId }, 'mail not sent: recipient over its mail budget')
  }

  private sendLink(purpose: sp.EmailTokenPurpose, to: string, token: string): void {
    const { mailer } = this.deps
    this.background(`${purpose} mail`, () =>
      purpose === 'verify_email' ? mailer.sendVerification(to, token) : mailer.sendPasswordReset(to, token),
    )
  }

  /**
   * Forgot-password and resend-verification: one procedure call that takes the same
   * path for every address (a token is made for each; only an eligible account's is stored and mailed).
   */
  private async requestLink(email: string, purpose: sp.EmailTokenPurpose, ctx: Ctx): Promise<void> {
    const { token, hash } = newEmailToken()
    const result = await sp.requestEmailLink(this.deps.db, {
      email,
      purpose,
      tokenHash: hash,
      ttlSeconds: this.deps.policy.emailTokenTtlSeconds,
      mail: this.deps.policy.mailBudget,
      ctx,
    })
    if (result.send && result.email !== null) this.sendLink(purpose, result.email, token)
    else if (result.suppressed) this.suppressed(purpose, ctx)
  }

  async signup(email: string, password: string, ctx: Ctx): Promise<void> {
    await this.assertPolicy(password)
    // Hash and make a token before knowing whether the address is taken, then one
    // call and one queued mail either way: the two paths cost the same.
    const hashed = await this.deps.hasher.hash(password)
    const { token, hash } = newEmailToken()
    const result = await sp.signup(this.deps.db, {
      email,
      hashedPassword: hashed,
      tokenHash: hash,
      ttlSeconds: this.deps.policy.emailTokenTtlSeconds,
      mail: this.deps.policy.mailBudget,
      ctx,
    })
    const kind: MailKind = result.status === 'created' ? 'verify_email' : 'account_exists'
    if (!result.send) return this.suppressed(kind, ctx)
    if (kind === 'verify_email') this.sendLink(kind, result.email, token)
    else this.background('account-exists notice', () => this.deps.mailer.sendAccountExists(result.email))
  }

  async resendVerification(email: string, ctx: Ctx): Promise<void> {
    await this.requestLink(email, 'verify_email', ctx)
  }

  async verifyEmail(token: string, ctx: Ctx): Promise<void> {
    if (!isWellFormedToken(token)) throw badRequest('invalid_token', 'verification link is invalid')
    try {
      const consumed = await sp.consumeEmailToken(this.deps.db, { tokenHash: hashToken(token), purpose: 'verify_email', ctx })
      this.changed(consumed.userId)
    } catch (err) {
      throw linkProblem(err)
    }
  }

  /**
   * One password check under the lockout: the attempt is counted (reserved) before
   * the password is verified, so parallel guesses cannot get past the threshold.
   * Returns the account when the password is right; a wrong one is recorded as
   * `failure` and answered 401, a locked key 429 (docs/security.md).
   */
  private async checkPassword(
    who: { email: string; userId?: undefined } | { email?: undefined; userId: string },
    password: string,
    deviceToken: string | undefined,
    failure: 'login_failed' | 'reauth_failed',
    ctx: Ctx,
  ): Promise<{ user: sp.BegunLogin & { userId: string; email: string; hashedPassword: string }; deviceHash: string | null }> {
    const { policy } = this.deps
    const ip = ctx.ip ?? null
    const presented = deviceToken !== undefined && isWellFormedToken(deviceToken) ? hashToken(deviceToken) : null
    const begun = await sp.beginLogin(this.deps.db, {
      email: who.email ?? null,
      userId: who.userId ?? null,
      ip,
      deviceHash: presented,
      policy: policy.lockout,
      ctx,
    })
    if (!begun.allowed) {
      this.deps.onLoginOutcome?.('locked')
      this.deps.log.warn({ event: 'login_locked', requestId: ctx.requestId, lockedUntil: begun.lockedUntil }, 'login refused: locked')
      throw lockedProblem(begun.lockedUntil ?? new Date())
    }
    const deviceHash = begun.trusted ? presented : null
    let ok = false
    if (begun.isActive === true && begun.hashedPassword !== null) {
      ok = await this.deps.hasher.verify(begun.hashedPassword, password)
    } else {
      await this.deps.hasher.dummyVerify(password)
    }
    if (!ok || begun.userId === null || begun.email === null || begun.hashedPassword === null) {
      const failed = await sp.endLoginAttempt(this.deps.db, {
        email: begun.email ?? who.email ?? '',
        ip,
        deviceHash,
        outcome: failure,
        policy: policy.lockout,
        ctx,
      })
      this.deps.onLoginOutcome?.('failure')
      // No email in the log line: the audit row has it, logs travel further.
      this.deps.log.warn(
        { event: failure, requestId: ctx.requestId, failedCount: failed.failedCount, locked: failed.lockedUntil !== null },
        failure === 'login_failed' ? 'login failed' : 're-authentication failed',
      )
      throw INVALID_CREDENTIALS()
    }
    return { user: { ...begun, userId: begun.userId, email: begun.email, hashedPassword: begun.hashedPassword }, deviceHash }
  }

  /** A right password that starts no session gives its reservation back. */
  private async passwordAccepted(email: string, deviceHash: string | null, ctx: Ctx): Promise<void> {
    await sp.endLoginAttempt(this.deps.db, {
      email,
      ip: ctx.ip ?? null,
      deviceHash,
      outcome: 'password_ok',
      policy: this.deps.policy.lockout,
      ctx,
    })
  }

  /** identifier: an address or a username; both count against the account's one lockout key. */
  async login(identifier: string, password: string, deviceToken: string | undefined, ctx: Ctx): Promise<LoginResult | MfaChallengeAnswer> {
    const { policy } = this.deps
    const { user, deviceHash } = await this.checkPassword({ email: identifier }, password, deviceToken, 'login_failed', ctx)
    if (user.isVerified !== true && policy.requireEmailVerification) {
      await this.passwordAccepted(user.email, deviceHash, ctx)
      this.deps.onLoginOutcome?.('unverified')
      throw forbidden('email_not_verified', 'verify your email address before logging in')
    }
    if (this.deps.hasher.needsRehash(user.hashedPassword)) {
      const rehashed = await this.deps.hasher.hash(password)
      await sp.updatePassword(this.deps.db, { userId: user.userId, hashedPassword: rehashed, endSessions: false, ctx })
    }
    // Two-factor on: the password is settled, the session waits for the second factor.
    const challenge = await this.deps.secondFactor?.challenge(user.userId, 'pwd', deviceHash, ctx)
    if (challenge !== undefined) {
      await this.passwordAccepted(user.email, deviceHash, ctx)
      return challenge
    }
    return this.finishLogin(user.userId, { hash: deviceHash, token: deviceToken }, ['pwd'], ctx)
  }

  /**
   * The end of a successful login (after the password, or after the second factor):
   * the reservation settled, the device trusted, a new session with its amr.
   */
  async finishLogin(
    userId: string,
    trusted: { hash: string | null; token: string | undefined },
    amr: readonly string[],
    ctx: Ctx,
  ): Promise<LoginResult> {
    const { policy } = this.deps
    // A trusted device keeps its token; any other gets a new one.
    const device = trusted.hash !== null && trusted.token !== undefined ? { token: trusted.token, hash: trusted.hash } : newEmailToken()
    await sp.completeLogin(this.deps.db, {
      userId,
      ip: ctx.ip ?? null,
      deviceHash: trusted.hash,
      newDeviceHash: device.hash,
      deviceTtlSeconds: policy.deviceTtlSeconds,
      ipThreshold: policy.lockout.ipThreshold,
      ctx,
    })
    // last_login_at moved: GET /me shows it.
    this.changed(userId)
    const pair = await this.startSession(userId, ctx, amr)
    this.deps.onLoginOutcome?.('success')
    return { ...pair, deviceToken: device.token }
  }

  /**
   * A new session (refresh token family) and its token pair: after a login, or a provider
   * sign-in's exchange. amr (RFC 8176) says how the user authenticated, for the whole session.
   */
  async startSession(userId: string, ctx: Ctx, amr: readonly string[]): Promise<TokenPair> {
    const refresh = newRefreshToken()
    const saved = await sp.saveRefreshToken(this.deps.db, {
      userId,
      tokenHash: refresh.hash,
      jti: refresh.jti,
      idleTtlSeconds: this.deps.policy.refreshTokenTtlSeconds,
      familyTtlSeconds: this.deps.policy.refreshFamilyTtlSeconds,
      amr,
      ctx,
    })
    return this.pair(userId, saved.familyId, refresh.token, saved.amr)
  }

  private async pair(userId: string, sessionId: string, refreshToken: string, amr: readonly string[] | null): Promise<TokenPair> {
    const access = await this.deps.signAccessToken({ userId, sessionId, amr })
    return { accessToken: access.token, refreshToken, tokenType: 'Bearer', expiresIn: access.expiresIn }
  }

  async refresh(refreshToken: string, ctx: Ctx): Promise<TokenPair> {
    if (!isWellFormedToken(refreshToken)) throw INVALID_REFRESH()
    // Derived, not random: a retry or a parallel presentation inside the grace window
    // passes the same successor, and the procedure hands that one out again instead of
    // minting a second (which would fork the session).
    const next = this.deps.deriveRefreshSuccessor(refreshToken)
    const result = await sp.rotateRefreshToken(this.deps.db, {
      tokenHash: hashToken(refreshToken),
      newTokenHash: next.hash,
      newJti: next.jti,
      idleTtlSeconds: this.deps.policy.refreshTokenTtlSeconds,
      graceSeconds: this.deps.policy.refreshReuseGraceSeconds,
      auditEveryRotation: this.deps.policy.refreshAuditEveryRotation,
      ctx,
    })
    if (result.status === 'reuse_detected') {
      this.changed(result.userId)
      this.deps.onRefreshReuse?.()
      this.deps.log.warn(
        { event: 'refresh_token_reuse', userId: result.userId, sessionId: result.familyId, requestId: ctx.requestId },
        'refresh token reuse: session revoked',
      )
    } else if (result.status === 'invalid' && result.familyId !== null) {
      // The live successor was not derived the way this instance derives it: instances
      // with different REFRESH_TOKEN_PEPPER values, or a pepper changed seconds ago.
      this.deps.log.warn(
        { event: 'refresh_successor_mismatch', userId: result.userId, sessionId: result.familyId, requestId: ctx.requestId },
        'refresh retry refused: successor derived differently (is REFRESH_TOKEN_PEPPER the same on every instance?)',
      )
    }
    if (result.status !== 'rotated' && result.status !== 'grace') throw INVALID_REFRESH()
    return this.pair(result.userId, result.familyId, next.token, result.amr)
  }

  async logout(refreshToken: string, ctx: Ctx): Promise<void> {
    // Idempotent: an unknown or already ended session is not an error for logout.
    if (!isWellFormedToken(refreshToken)) return
    // The procedure does not say whose session it was: forget every cached one.
    if (await sp.revokeRefreshToken(this.deps.db, { tokenHash: hashToken(refreshToken), reason: 'logout', ctx })) this.changed()
  }

  async logoutAll(userId: string, ctx: Ctx): Promise<void> {
    await sp.revokeUserSessions(this.deps.db, { userId, exceptFamilyId: null, reason: 'logout_all', ctx })
    this.changed(userId)
  }

  async me(userId: string): Promise<Account> {
    const load = () => this.loadAccount(userId)
    const account = await (this.deps.cache === undefined ? load() : this.deps.cache.account(userId, load))
    if (account === undefined) throw unauthorized('invalid_token', 'session ended')
    return account
  }

  private async loadAccount(userId: string): Promise<Account | undefined> {
    const [user, profile, providers, mfa] = await Promise.all([
      sp.getUserById(this.deps.db, { userId }),
      sp.getProfile(this.deps.db, { userId }),
      sp.listOAuthProviders(this.deps.db, { userId }),
      sp.getMfaTotp(this.deps.db, { userId }),
    ])
    if (user?.isActive !== true || profile === undefined) return undefined
    return { ...user, ...profile, providers, mfaEnabled: mfa?.mfaEnabled === true }
  }

  /** Tell the session cache before answering: this instance never serves what it just revoked or changed. */
  changed(userId?: string): void {
    this.deps.cache?.changed(userId)
  }

  /**
   * A signed-in user proves the password again (a stolen access token must not be
   * an account takeover): the same lockout and audit as a login, as `reauth_failed`.
   * Returns the account's email.
   */
  private async reauthenticate(userId: string, password: string, ctx: Ctx): Promise<string> {
    const { user, deviceHash } = await this.checkPassword({ userId }, password, undefined, 'reauth_failed', ctx)
    await this.passwordAccepted(user.email, deviceHash, ctx)
    return user.email
  }

  /** The password proven again (linking a provider): the reauthentication's lockout and audit. */
  async confirmPassword(userId: string, password: string, ctx: Ctx): Promise<void> {
    await this.reauthenticate(userId, password, ctx)
  }

  /** After a password change or reset the owner hears of it (ASVS 5.0 6.3.7). */
  private noticePasswordChanged(email: string): void {
    this.background('password-changed notice', () => this.deps.mailer.sendPasswordChanged(email))
  }

  async deleteAccount(userId: string, password: string, proof: SecondFactorProof, ctx: Ctx): Promise<void> {
    await this.reauthenticate(userId, password, ctx)
    await this.deps.secondFactor?.requireFresh(userId, proof, ctx)
    await sp.deactivateUser(this.deps.db, { userId, ctx })
    this.changed(userId)
  }

  async changePassword(
    userId: string,
    sessionId: string,
    current: string,
    next: string,
    proof: SecondFactorProof,
    ctx: Ctx,
  ): Promise<void> {
    await this.assertPolicy(next)
    const email = await this.reauthenticate(userId, current, ctx)
    await this.deps.secondFactor?.requireFresh(userId, proof, ctx)
    const hashed = await this.deps.hasher.hash(next)
    const ended = await sp.updatePassword(this.deps.db, { userId, hashedPassword: hashed, endSessions: true, keepFamilyId: sessionId, ctx })
    this.changed(userId)
    this.deps.log.info({ event: 'password_changed', userId, sessionsEnded: ended, requestId: ctx.requestId }, 'password changed')
    this.noticePasswordChanged(email)
  }

  async forgotPassword(email: string, ctx: Ctx): Promise<void> {
    await this.requestLink(email, 'reset_password', ctx)
  }

  async resetPassword(token: string, newPassword: string, ctx: Ctx): Promise<void> {
    if (!isWellFormedToken(token)) throw badRequest('invalid_token', 'reset link is invalid')
    await this.assertPolicy(newPassword)
    const hashed = await this.deps.hasher.hash(newPassword)
    let consumed: sp.ConsumedEmailToken
    try {
      consumed = await sp.consumeEmailToken(this.deps.db, {
        tokenHash: hashToken(token),
        purpose: 'reset_password',
        newHashedPassword: hashed,
        ctx,
      })
    } catch (err) {
      throw linkProblem(err)
    }
    this.changed(consumed.userId)
    this.noticePasswordChanged(consumed.email)
  }

  /**
   * The link page's confirm button (POST /verify-email). A second press of a link that
   * already did its work (a double-click, a reload, a form sent twice without
   * JavaScript) finds the token used; that is success when the owner's address is
   * verified. A link superseded by a newer one is "used" too, but then the address is
   * not verified and the answer stays token_used.
   */
  async verifyEmailFromLink(token: string, ctx: Ctx): Promise<void> {
    try {
      await this.verifyEmail(token, ctx)
    } catch (err) {
      if (!isProblem(err, 'token_used')) throw err
      const used = await sp.getUsedEmailToken(this.deps.db, {
        tokenHash: hashToken(token),
        purpose: 'verify_email',
        windowSeconds: LINK_REPEAT_WINDOW_SECONDS,
      })
      if (used?.isVerified !== true) throw err
    }
  }

  /**
   * The reset page's form (POST /reset-password). A second POST of the same token
   * finds it used. It is answered as success only when it repeats the first one: the
   * token was used in the last LINK_REPEAT_WINDOW_SECONDS, its reset set the password
   * the account still has (sp_get_used_email_token), and the presented password
   * verifies against that hash. Anything else (another password, a later change,
   * an older use) stays token_used.
   * Why this is no password oracle: only the holder of the token (256 random bits,
   * mailed to the owner) can ask; only about the password that token itself set, and
   * only until the owner changes it again; only for LINK_REPEAT_WINDOW_SECONDS after
   * the reset; each guess must pass the password policy and costs an argon2 hash and
   * verify; and the form route is under the credential rate limit (a few guesses per
   * address in the whole window). Someone who can read the owner's mail could have
   * used the link first anyway. Storing nothing new (no "last password" column, no
   * session) keeps the repeat honest: it is checked against the live hash.
   */
  async resetPasswordFromLink(token: string, newPassword: string, ctx: Ctx): Promise<void> {
    try {
      await this.resetPassword(token, newPassword, ctx)
    } catch (err) {
      if (!isProblem(err, 'token_used')) throw err
      const used = await sp.getUsedEmailToken(this.deps.db, {
        tokenHash: hashToken(token),
        purpose: 'reset_password',
        windowSeconds: LINK_REPEAT_WINDOW_SECONDS,
      })
      if (used?.hashedPassword == null || !(await this.deps.hasher.verify(used.hashedPassword, newPassword))) throw err
    }
  }

  async sessions(userId: string, currentSessionId: string) {
    const rows = await sp.listUserSessions(this.deps.db, { userId })
    return rows.map((s) => ({ ...s, current: s.familyId === currentSessionId }))
  }

  async endSession(userId: string, sessionId: string, ctx: Ctx): Promise<void> {
    const ended = await sp.revokeUserSession(this.deps.db, { userId, familyId: sessionId, ctx })
    this.changed(userId)
    if (!ended) throw notFound('session_not_found', 'no such live session')
  }
}

/** How long after a link did its work a repeated press of it still shows success (resetPasswordFromLink). */
export const LINK_REPEAT_WINDOW_SECONDS = 300

function isProblem(err: unknown, code: string): boolean {
  return err instanceof HttpProblem && err.code === code
}

function lockedProblem(lockedUntil: Date): HttpProblem {
  const seconds = Math.max(1, Math.ceil((lockedUntil.getTime() - Date.now()) / 1000))
  return tooManyRequests('too_many_attempts', 'too many failed logins; try again later', seconds)
}

/**
 * A link the procedure refused, answered from the table in src/db/errors.ts but as an
 * HttpProblem (the pages render those) and with a deactivated owner's link just invalid.
 */
function linkProblem(err: unknown): unknown {
  if (!(err instanceof DbError)) return err
  return dbProblem(err.code === 'user_inactive' ? 'AU004' : err.sqlstate)
}
