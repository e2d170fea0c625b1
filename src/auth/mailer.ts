// Outgoing mail. With SMTP_URL it goes through nodemailer; without (development)
// nothing is sent and one log line carries the recipient, subject and link, so the
// verify and reset flows still work by copying the link from the log.
import nodemailer from 'nodemailer'
import {
  accountExistsMail,
  emailChangeMail,
  emailChangeNoticeMail,
  emailInUseMail,
  mfaDisabledMail,
  passwordChangedMail,
  passwordResetMail,
  recoveryCodeUsedMail,
  verificationMail,
  type MailContent,
} from './mail-templates.ts'

export interface MailerOptions {
  /** e.g. smtp://user:pass@host:587 or smtps://…; append ?pool=true to reuse connections. Unset: log only. */
  smtpUrl?: string
  from: string
  /** Base of the links in mail (APP_URL), with or without a trailing slash. */
  appUrl: string
  /**
   * Production has no log transport at all: a link in a log line is a credential in
   * every place logs are shipped to. Without smtpUrl, createMailer throws instead.
   */
  production?: boolean
  logger: { info(obj: object, msg: string): void }
}

export interface Mailer {
  sendVerification(to: string, token: string): Promise<void>
  sendPasswordReset(to: string, token: string): Promise<void>
  sendAccountExists(to: string): Promise<void>
  sendPasswordChanged(to: string): Promise<void>
  /** Change of email: the link to the new address, the notice to the current one, the notice to a taken one. */
  sendEmailChange(to: string, token: string): Promise<void>
  sendEmailChangeNotice(to: string, newEmail: string): Promise<void>
  sendEmailInUse(to: string): Promise<void>
  /** Two-factor: turned off; a recovery code spent (the owner hears of each). */
  sendMfaDisabled(to: string): Promise<void>
  sendRecoveryCodeUsed(to: string, remaining: number): Promise<void>
  close(): Promise<void>
}

export function createMailer(opts: MailerOptions): Mailer {
  const base = opts.appUrl.replace(/\/+$/, '')
  const tokenLink = (path: string, token: string) => `${base}${path}?token=${encodeURIComponent(token)}`
  if (opts.production === true && opts.smtpUrl === undefined) {
    throw new Error('SMTP_URL is required in production: mail links are never written to the log there')
  }
  const transport = opts.smtpUrl === undefined ? undefined : nodemailer.createTransport(opts.smtpUrl)

  const send = async (to: string, mail: MailContent, link: string): Promise<void> => {
    if (!transport) {
      opts.logger.info({ to, subject: mail.subject, link }, `mail not sent (no SMTP_URL): ${mail.subject}`)
      return
    }
    const info = await transport.sendMail({ from: opts.from, to, subject: mail.subject, text: mail.text, html: mail.html })
    // No recipient and no link here: a sent link is a credential and belongs only in the mailbox.
    opts.logger.info({ messageId: info.messageId, subject: mail.subject }, 'mail sent')
  }

  return {
    async sendVerification(to, token) {
      const link = tokenLink('/verify-email', token)
      await send(to, verificationMail(link), link)
    },
    async sendPasswordReset(to, token) {
      const link = tokenLink('/reset-password', token)
      await send(to, passwordResetMail(link), link)
    },
    async sendAccountExists(to) {
      await send(to, accountExistsMail(base), base)
    },
    async sendPasswordChanged(to) {
      await send(to, passwordChangedMail(base), base)
    },
    async sendEmailChange(to, token) {
      const link = tokenLink('/confirm-email-change', token)
      await send(to, emailChangeMail(link), link)
    },
    async sendEmailChangeNotice(to, newEmail) {
      await send(to, emailChangeNoticeMail(base, newEmail), base)
    },
    async sendEmailInUse(to) {
      await send(to, emailInUseMail(base), base)
    },
    async sendMfaDisabled(to) {
      await send(to, mfaDisabledMail(base), base)
    },
    async sendRecoveryCodeUsed(to, remaining) {
      await send(to, recoveryCodeUsedMail(base, remaining), base)
    },
    async close() {
      transport?.close()
    },
  }
}
