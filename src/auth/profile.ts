// The profile of seed 001 (issue 17): username, names, phone, and the change of
// email. The procedures decide every rule (formats, reserved names, uniqueness);
// this validates only what needs a library (the phone number) and sends the mail.
// Rules that cut across methods:
// - a change of email is asked with the password (AuthService.confirmPassword: its
//   lockout and audit) and happens only when the link mailed to the new address
//   comes back;
// - asking for a taken address looks exactly like asking for a free one: the same
//   answer and one mail to each address (a notice instead of the link), in the background.
import type { FastifyBaseLogger } from 'fastify'
import { parsePhoneNumberFromString } from 'libphonenumber-js/max'
import { DbError } from '../db/errors.ts'
import * as sp from '../db/procedures.ts'
import { badRequest, dbProblem } from '../http/problem.ts'
import type { Mailer } from './mailer.ts'
import type { Ctx } from './service.ts'
import { hashToken, isWellFormedToken, newEmailToken } from './tokens.ts'

export interface ProfileServiceDeps {
  db: sp.Queryable
  mailer: Mailer
  log: FastifyBaseLogger
  policy: { emailTokenTtlSeconds: number; mailBudget: sp.MailBudget }
  /** The password proven again, under the login lockout (AuthService.confirmPassword). */
  confirmPassword: (userId: string, password: string, ctx: Ctx) => Promise<void>
  /** A mail that was due but not sent: its recipient is over the mail budget. */
  onMailSuppressed?: (kind: 'change_email') => void
  /** The account changed (GET /me shows it; a confirmed email change ends every session): the session cache forgets it. */
  changed?: (userId: string) => void
}

/** What PATCH /me may carry: an absent field stays, null clears. */
export type ProfileInput = sp.ProfileChanges

/**
 * A phone number as typed (with its + and country code) in E.164, or undefined when
 * libphonenumber-js does not find a valid number in it.
 */
export function toE164(input: string): string | undefined {
  const parsed = parsePhoneNumberFromString(input.trim())
  return parsed?.isValid() === true ? parsed.number : undefined
}

/** Unicode-trimmed and NFC: "José" typed either way is one name; the procedure caps the length. */
function normaliseName(value: string | null | undefined): string | null | undefined {
  return typeof value === 'string' ? value.trim().normalize('NFC') : value
}

export class ProfileService {
  private readonly pending = new Set<Promise<unknown>>()

  constructor(private readonly deps: ProfileServiceDeps) {}

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

  async update(userId: string, input: ProfileInput, ctx: Ctx): Promise<sp.Profile> {
    const changes: sp.ProfileChanges = { ...input }
    if (input.firstName !== undefined) changes.firstName = normaliseName(input.firstName)
    if (input.lastName !== undefined) changes.lastName = normaliseName(input.lastName)
    if (typeof input.phone === 'string') {
      const e164 = toE164(input.phone)
      if (e164 === undefined) throw dbProblem('AU013')
      changes.phone = e164
    }
    const profile = await sp.updateProfile(this.deps.db, { userId, changes, ctx })
    this.deps.changed?.(userId)
    this.deps.log.info({ event: 'profile_updated', userId, fields: Object.keys(input), requestId: ctx.requestId }, 'profile updated')
    return profile
  }

  async requestEmailChange(userId: string, password: string, newEmail: string, ctx: Ctx): Promise<void> {
    await this.deps.confirmPassword(userId, password, ctx)
    const { token, hash } = newEmailToken()
    const result = await sp.requestEmailChange(this.deps.db, {
      userId,
      newEmail,
      tokenHash: hash,
      ttlSeconds: this.deps.policy.emailTokenTtlSeconds,
      mail: this.deps.policy.mailBudget,
      ctx,
    })
    if (result.status === 'unchanged') return
    const { mailer } = this.deps
    if (result.mailOld) this.background('email-change notice', () => mailer.sendEmailChangeNotice(result.oldEmail, result.newEmail))
    if (!result.mailNew) this.suppressed(ctx)
    else if (result.status === 'link') this.background('change_email mail', () => mailer.sendEmailChange(result.newEmail, token))
    else this.background('email-in-use notice', () => mailer.sendEmailInUse(result.newEmail))
  }

  async confirmEmailChange(token: string, ctx: Ctx): Promise<sp.ConfirmedEmailChange> {
    if (!isWellFormedToken(token)) throw badRequest('invalid_token', 'link is invalid')
    try {
      const done = await sp.confirmEmailChange(this.deps.db, { tokenHash: hashToken(token), ctx })
      this.deps.changed?.(done.userId)
      this.deps.log.info(
        { event: 'email_changed', userId: done.userId, sessionsEnded: done.sessionsEnded, requestId: ctx.requestId },
        'email changed',
      )
      return done
    } catch (err) {
      // A deactivated owner's link is just invalid, as for the other links.
      if (err instanceof DbError) throw dbProblem(err.code === 'user_inactive' ? 'AU004' : err.sqlstate)
      throw err
    }
  }

  private suppressed(ctx: Ctx): void {
    this.deps.onMailSuppressed?.('change_email')
    this.deps.log.warn(
      { event: 'mail_suppressed', kind: 'change_email', requestId: ctx.requestId },
      'mail not sent: recipient over its mail budget',
    )
  }
}
