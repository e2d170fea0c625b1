// Two-factor sign-in (docs/security.md, "Two-factor"): enrolment, the login challenge
// and its verification, recovery codes, and the fresh second factor that sensitive
// actions need. Routes parse and answer; this decides, through src/db/procedures.ts.
// The rules that matter:
// - the TOTP secret is stored sealed (secret-box.ts); codes are checked here and each
//   accepted step is recorded by the database once (no replay, also in parallel);
// - every code check is a login attempt: reserved with sp_begin_login before the code
//   is looked at, a wrong code ended as `mfa_failed`, so guesses lock like passwords;
// - a challenge (mfaToken) is spent only when its second factor is right, once,
//   within its lifetime; a wrong code leaves it for another try under the lockout.
import type { FastifyBaseLogger } from 'fastify'
import * as sp from '../../db/procedures.ts'
import { badRequest, forbidden, HttpProblem, tooManyRequests, unauthorized } from '../../http/problem.ts'
import type { Mailer } from '../mailer.ts'
import type { Ctx, LoginResult } from '../service.ts'
import { hashToken, isWellFormedToken, newEmailToken } from '../tokens.ts'
import { hashRecoveryCode, isWellFormedRecoveryCode, newRecoveryCodes } from './recovery-codes.ts'
import type { SecretBox } from './secret-box.ts'
import { matchingStep, newTotpSecret, otpauthUri, qrCodeDataUrl } from './totp.ts'

/** How long a login waits for its second factor. */
export const MFA_CHALLENGE_TTL_SECONDS = 300

/** The login's answer when a second factor is due: no tokens yet. */
export interface MfaChallengeAnswer {
  mfaRequired: true
  mfaToken: string
}

/** A second factor as a request carries it: a current code, or a recovery code. */
export interface SecondFactorProof {
  code?: string | undefined
  recoveryCode?: string | undefined
}

export interface Enrolment {
  secret: string
  otpauthUri: string
  qrCode: string
}

export interface MfaServiceDeps {
  db: sp.Queryable
  box: SecretBox
  /** The issuer shown in the authenticator app (APP_NAME). */
  issuer: string
  lockout: sp.LockoutPolicy
  mailer: Pick<Mailer, 'sendMfaDisabled' | 'sendRecoveryCodeUsed'>
  log: FastifyBaseLogger
  /** The password and session parts of the AuthService. */
  accounts: {
    /** Throws the login's problems (401, 429) when the password is wrong. */
    confirmPassword(userId: string, password: string, ctx: Ctx): Promise<void>
    /** The end of a successful login: counters settled, device trusted, a new session. */
    finishLogin(
      userId: string,
      device: { hash: string | null; token: string | undefined },
      amr: readonly string[],
      ctx: Ctx,
    ): Promise<LoginResult>
    /** Two-factor turned on or off (GET /me shows it): the session cache forgets the account. */
    changed?(userId: string): void
  }
  onFailure?: () => void
}

const invalidMfaToken = () => unauthorized('invalid_mfa_token', 'the sign-in step expired or was already used; log in again')
const invalidCode = () => unauthorized('invalid_mfa_code', 'the two-factor code is wrong or was already used')
const mfaRequired = () => forbidden('mfa_required', 'this account has two-factor sign-in on: send a current code or a recovery code')

export class MfaService {
  private readonly pending = new Set<Promise<unknown>>()

  constructor(private readonly deps: MfaServiceDeps) {}

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

  async isEnabled(userId: string): Promise<boolean> {
    return (await sp.getMfaTotp(this.deps.db, { userId }))?.mfaEnabled === true
  }

  /**
   * After a right first factor: a challenge when the user has two-factor on, else
   * undefined (the caller starts the session). deviceHash: the login's trusted device.
   */
  async challenge(
    userId: string,
    firstFactor: sp.FirstFactor,
    deviceHash: string | null,
    ctx: Ctx,
  ): Promise<MfaChallengeAnswer | undefined> {
    if (!(await this.isEnabled(userId))) return undefined
    const { token, hash } = newEmailToken()
    await sp.createMfaChallenge(this.deps.db, {
      tokenHash: hash,
      userId,
      amr: firstFactor,
      deviceHash,
      ttlSeconds: MFA_CHALLENGE_TTL_SECONDS,
      ctx,
    })
    return { mfaRequired: true, mfaToken: token }
  }

  /** POST /mfa/verify: the challenge's second factor; the answer of a login. */
  async verify(mfaToken: string, proof: SecondFactorProof, deviceToken: string | undefined, ctx: Ctx): Promise<LoginResult> {
    if (proof.code === undefined && proof.recoveryCode === undefined) throw badRequest('validation_failed', 'send code or recoveryCode')
    if (!isWellFormedToken(mfaToken)) throw invalidMfaToken()
    const tokenHash = hashToken(mfaToken)
    const pending = await sp.getMfaChallenge(this.deps.db, { tokenHash })
    if (pending === undefined) throw invalidMfaToken()
    // The login's trusted device counts (and is kept) only when its token comes again:
    // the attempt is reserved and settled on the same key.
    const presented = deviceToken !== undefined && isWellFormedToken(deviceToken) ? hashToken(deviceToken) : null
    const device = pending.deviceHash !== null && presented === pending.deviceHash ? pending.deviceHash : null
    const checked = await this.checkFactor(pending.userId, proof, device, ctx)
    const spent = await sp.consumeMfaChallenge(this.deps.db, { tokenHash, ctx })
    if (spent === undefined) throw invalidMfaToken()
    const [first] = spent.amr
    return this.deps.accounts.finishLogin(
      spent.userId,
      { hash: checked.deviceHash, token: checked.deviceHash === null ? undefined : deviceToken },
      [first ?? 'pwd', 'otp'],
      ctx,
    )
  }

  /**
   * A sensitive action of a signed-in user (change password, delete the account,
   * unlink a provider, two-factor changes): nothing when two-factor is off, else a
   * fresh second factor, checked under the lockout. 403 mfa_required when none was sent.
   */
  async requireFresh(userId: string, proof: SecondFactorProof, ctx: Ctx): Promise<void> {
    if (!(await this.isEnabled(userId))) return
    await this.checkFresh(userId, proof, ctx)
  }

  private async checkFresh(userId: string, proof: SecondFactorProof, ctx: Ctx): Promise<void> {
    if (proof.code === undefined && proof.recoveryCode === undefined) throw mfaRequired()
    const checked = await this.checkFactor(userId, proof, null, ctx)
    // Right: the reservation was no failure.
    await sp.endLoginAttempt(this.deps.db, {
      email: checked.email,
      ip: ctx.ip ?? null,
      deviceHash: checked.deviceHash,
      outcome: 'password_ok',
      policy: this.deps.lockout,
      ctx,
    })
  }

  /**
   * One second-factor check under the lockout: reserved before the code is looked at,
   * a wrong one recorded as mfa_failed (401 invalid_mfa_code), a locked key 429.
   */
  private async checkFactor(
    userId: string,
    proof: SecondFactorProof,
    deviceHash: string | null,
    ctx: Ctx,
  ): Promise<{ email: string; deviceHash: string | null }> {
    const ip = ctx.ip ?? null
    const begun = await sp.beginLogin(this.deps.db, { email: null, userId, ip, deviceHash, policy: this.deps.lockout, ctx })
    if (!begun.allowed) {
      this.deps.log.warn(
        { event: 'mfa_locked', requestId: ctx.requestId, lockedUntil: begun.lockedUntil },
        'two-factor check refused: locked',
      )
      const seconds = Math.max(1, Math.ceil(((begun.lockedUntil ?? new Date()).getTime() - Date.now()) / 1000))
      throw tooManyRequests('too_many_attempts', 'too many failed attempts; try again later', seconds)
    }
    const trusted = begun.trusted ? deviceHash : null
    const email = begun.email ?? ''
    const ok = begun.isActive === true && (await this.proofHolds(userId, email, proof, ctx))
    if (!ok) {
      const failed = await sp.endLoginAttempt(this.deps.db, {
        email,
        ip,
        deviceHash: trusted,
        outcome: 'mfa_failed',
        policy: this.deps.lockout,
        ctx,
      })
      this.deps.onFailure?.()
      this.deps.log.warn(
        { event: 'mfa_failed', requestId: ctx.requestId, failedCount: failed.failedCount, locked: failed.lockedUntil !== null },
        'two-factor check failed',
      )
      throw invalidCode()
    }
    return { email, deviceHash: trusted }
  }

  /** The code is right for a step not used before (recorded now), or the recovery code is unspent (spent now). */
  private async proofHolds(userId: string, email: string, proof: SecondFactorProof, ctx: Ctx): Promise<boolean> {
    if (proof.code !== undefined) {
      const state = await sp.getMfaTotp(this.deps.db, { userId })
      if (state?.mfaEnabled !== true || state.secretCiphertext === null || !state.confirmed) return false
      const secret = this.deps.box.open(userId, state.secretCiphertext)
      const step = await matchingStep(secret, proof.code, state.lastUsedStep)
      return step !== undefined && (await sp.useMfaTotpStep(this.deps.db, { userId, step, ctx }))
    }
    if (proof.recoveryCode === undefined || !isWellFormedRecoveryCode(proof.recoveryCode)) return false
    const spent = await sp.useMfaRecoveryCode(this.deps.db, { userId, codeHash: hashRecoveryCode(proof.recoveryCode), ctx })
    if (!spent.used) return false
    this.deps.log.info(
      { event: 'mfa_recovery_code_used', userId, remaining: spent.remaining, requestId: ctx.requestId },
      'recovery code used',
    )
    this.background('recovery-code notice', () => this.deps.mailer.sendRecoveryCodeUsed(email, spent.remaining))
    return true
  }

  /** POST /mfa/totp: a new secret, not active until confirmed. 409 when two-factor is already on. */
  async enrol(userId: string, ctx: Ctx): Promise<Enrolment> {
    const user = await sp.getUserById(this.deps.db, { userId })
    if (user?.isActive !== true) throw unauthorized('invalid_token', 'session ended')
    const secret = newTotpSecret()
    const stored = await sp.beginMfaEnrolment(this.deps.db, { userId, secretCiphertext: this.deps.box.seal(userId, secret), ctx })
    if (!stored) throw alreadyEnabled()
    const uri = otpauthUri(this.deps.issuer, user.email, secret)
    return { secret, otpauthUri: uri, qrCode: await qrCodeDataUrl(uri) }
  }

  /** POST /mfa/totp/confirm: a current code turns two-factor on; returns the recovery codes (shown once). */
  async confirm(userId: string, code: string, ctx: Ctx): Promise<string[]> {
    const state = await sp.getMfaTotp(this.deps.db, { userId })
    if (state?.mfaEnabled === true) throw alreadyEnabled()
    if (state?.secretCiphertext == null)
      throw new HttpProblem(409, 'mfa_not_enrolled', 'start the enrolment first (POST /api/auth/mfa/totp)')
    const secret = this.deps.box.open(userId, state.secretCiphertext)
    const step = await matchingStep(secret, code, state.lastUsedStep)
    if (step === undefined)
      throw badRequest('invalid_mfa_code', 'the code does not match the new secret: check the device clock and try a fresh code')
    const recovery = newRecoveryCodes()
    const confirmed = await sp.confirmMfaTotp(this.deps.db, { userId, step, recoveryHashes: recovery.hashes, ctx })
    this.deps.accounts.changed?.(userId)
    // Lost a race with another confirm or a new enrolment: nothing changed here.
    if (!confirmed) throw new HttpProblem(409, 'mfa_not_enrolled', 'the enrolment changed meanwhile; start again')
    this.deps.log.info({ event: 'mfa_enabled', userId, requestId: ctx.requestId }, 'two-factor turned on')
    return recovery.codes
  }

  /** Two-factor changes need the password (when the account has one) and a fresh second factor. */
  private async assertBothFactors(userId: string, password: string | undefined, proof: SecondFactorProof, ctx: Ctx): Promise<string> {
    const user = await sp.getUserById(this.deps.db, { userId })
    if (user?.isActive !== true) throw unauthorized('invalid_token', 'session ended')
    if (!(await this.isEnabled(userId))) throw new HttpProblem(409, 'mfa_not_enabled', 'two-factor sign-in is not on')
    if (user.hashedPassword !== null) {
      if (password === undefined) throw badRequest('password_required', 'confirm your password')
      await this.deps.accounts.confirmPassword(userId, password, ctx)
    }
    await this.checkFresh(userId, proof, ctx)
    return user.email
  }

  /** DELETE /mfa/totp. */
  async disable(userId: string, password: string | undefined, proof: SecondFactorProof, ctx: Ctx): Promise<void> {
    const email = await this.assertBothFactors(userId, password, proof, ctx)
    const disabled = await sp.disableMfa(this.deps.db, { userId, ctx })
    this.deps.accounts.changed?.(userId)
    if (disabled) {
      this.deps.log.info({ event: 'mfa_disabled', userId, requestId: ctx.requestId }, 'two-factor turned off')
      this.background('two-factor-off notice', () => this.deps.mailer.sendMfaDisabled(email))
    }
  }

  /** POST /mfa/recovery-codes: new codes in place of all old ones. */
  async replaceRecoveryCodes(userId: string, password: string | undefined, proof: SecondFactorProof, ctx: Ctx): Promise<string[]> {
    await this.assertBothFactors(userId, password, proof, ctx)
    const recovery = newRecoveryCodes()
    if (!(await sp.replaceMfaRecoveryCodes(this.deps.db, { userId, recoveryHashes: recovery.hashes, ctx }))) {
      throw new HttpProblem(409, 'mfa_not_enabled', 'two-factor sign-in is not on')
    }
    return recovery.codes
  }
}

function alreadyEnabled(): HttpProblem {
  return new HttpProblem(409, 'mfa_already_enabled', 'two-factor sign-in is already on: turn it off first to enrol another device')
}
