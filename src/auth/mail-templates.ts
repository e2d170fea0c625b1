// The mails this service sends, as pure functions: plain text first (what every
// client shows), a minimal HTML twin. Anything inserted into HTML is escaped.

export interface MailContent {
  subject: string
  text: string
  html: string
}

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
}

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c)
}

const html = (paragraphs: string[]) =>
  `<!doctype html><html><body style="font-family:sans-serif">${paragraphs.map((p) => `<p>${p}</p>`).join('')}</body></html>`

const button = (link: string, label: string) => `<a href="${escapeHtml(link)}">${escapeHtml(label)}</a>`

const IGNORE = 'If you did not ask for this, you can ignore this message.'

export function verificationMail(link: string): MailContent {
  return {
    subject: 'Confirm your email address',
    text: [
      'Welcome! Please confirm your email address by opening this link:',
      '',
      link,
      '',
      'The link works once and expires.',
      IGNORE,
    ].join('\n'),
    html: html([
      'Welcome! Please confirm your email address.',
      button(link, 'Confirm my email address'),
      `Or copy this link into your browser: ${escapeHtml(link)}`,
      'The link works once and expires.',
      IGNORE,
    ]),
  }
}

export function passwordResetMail(link: string): MailContent {
  return {
    subject: 'Reset your password',
    text: [
      'Someone asked to reset the password of the account for this address. To choose a new password, open:',
      '',
      link,
      '',
      'The link works once and expires. Resetting your password signs you out everywhere.',
      IGNORE,
    ].join('\n'),
    html: html([
      'Someone asked to reset the password of the account for this address.',
      button(link, 'Choose a new password'),
      `Or copy this link into your browser: ${escapeHtml(link)}`,
      'The link works once and expires. Resetting your password signs you out everywhere.',
      IGNORE,
    ]),
  }
}

/**
 * Sent instead of a verification mail when someone signs up with an address that already
 * has an account: the sign-up answer is the same either way, only the owner learns of it.
 * No token: a reset must be asked for through the app's "forgot password".
 */
export function accountExistsMail(appUrl: string): MailContent {
  return {
    subject: 'Someone tried to sign up with your email address',
    text: [
      'Someone tried to create an account with this email address, but you already have one.',
      '',
      'If it was you: log in with your password, or use "Forgot password" on the login screen to reset it.',
      appUrl,
      '',
      'If it was not you, you can ignore this message: your account has not been changed.',
    ].join('\n'),
    html: html([
      'Someone tried to create an account with this email address, but you already have one.',
      `If it was you: log in with your password, or use &quot;Forgot password&quot; on the login screen to reset it. ${button(appUrl, appUrl)}`,
      'If it was not you, you can ignore this message: your account has not been changed.',
    ]),
  }
}

/** After a password change or reset (ASVS 5.0 6.3.7): the owner learns of it even when it was not them. */
export function passwordChangedMail(appUrl: string): MailContent {
  return {
    subject: 'Your password was changed',
    text: [
      'The password of your account was just changed, and your other sessions were signed out.',
      '',
      'If it was you, there is nothing to do.',
      'If it was not you, reset your password now with "Forgot password" on the login screen:',
      appUrl,
    ].join('\n'),
    html: html([
      'The password of your account was just changed, and your other sessions were signed out.',
      'If it was you, there is nothing to do.',
      `If it was not you, reset your password now with &quot;Forgot password&quot; on the login screen: ${button(appUrl, appUrl)}`,
    ]),
  }
}

/** To the new address of a change of email: nothing changes until this link is opened. */
export function emailChangeMail(link: string): MailContent {
  return {
    subject: 'Confirm your new email address',
    text: [
      'Someone asked to move an account to this email address. To confirm it, open this link:',
      '',
      link,
      '',
      'The link works once and expires. Confirming signs you out everywhere; sign in again with this address.',
      IGNORE,
    ].join('\n'),
    html: html([
      'Someone asked to move an account to this email address.',
      button(link, 'Confirm my new email address'),
      `Or copy this link into your browser: ${escapeHtml(link)}`,
      'The link works once and expires. Confirming signs you out everywhere; sign in again with this address.',
      IGNORE,
    ]),
  }
}

/**
 * To the current address when its account asks to move: the owner learns of it even when
 * it was not them. Sent whether or not the new address is free, so it tells nothing about it.
 */
export function emailChangeNoticeMail(appUrl: string, newEmail: string): MailContent {
  return {
    subject: 'A change of your email address was requested',
    text: [
      `Someone signed in to your account asked to change its email address to ${newEmail}.`,
      'Nothing changes until the link sent to that address is opened.',
      '',
      'If it was not you, change your password now and sign out everywhere:',
      appUrl,
    ].join('\n'),
    html: html([
      `Someone signed in to your account asked to change its email address to ${escapeHtml(newEmail)}.`,
      'Nothing changes until the link sent to that address is opened.',
      `If it was not you, change your password now and sign out everywhere: ${button(appUrl, appUrl)}`,
    ]),
  }
}

/**
 * Sent instead of the confirmation link when the new address of a change already has an
 * account: the requester's answer is the same either way, only this address's owner learns of it.
 */
export function emailInUseMail(appUrl: string): MailContent {
  return {
    subject: 'Someone tried to use your email address',
    text: [
      'Someone tried to move another account to this email address, but you already have an account with it.',
      '',
      'If it was you, there is nothing to do here: an address belongs to one account.',
      'If it was not you, you can ignore this message: your account has not been changed.',
      appUrl,
    ].join('\n'),
    html: html([
      'Someone tried to move another account to this email address, but you already have an account with it.',
      'If it was you, there is nothing to do here: an address belongs to one account.',
      `If it was not you, you can ignore this message: your account has not been changed. ${button(appUrl, appUrl)}`,
    ]),
  }
}

/** Two-factor sign-in was turned off: a thief who got past both factors must not do it silently. */
export function mfaDisabledMail(appUrl: string): MailContent {
  return {
    subject: 'Two-factor sign-in was turned off',
    text: [
      'Two-factor sign-in was just turned off for your account: a password alone now signs in.',
      '',
      'If it was you, there is nothing to do.',
      'If it was not you, reset your password now with "Forgot password" on the login screen, then turn two-factor sign-in on again:',
      appUrl,
    ].join('\n'),
    html: html([
      'Two-factor sign-in was just turned off for your account: a password alone now signs in.',
      'If it was you, there is nothing to do.',
      `If it was not you, reset your password now with &quot;Forgot password&quot; on the login screen, then turn two-factor sign-in on again: ${button(appUrl, appUrl)}`,
    ]),
  }
}

/** A recovery code was spent: it is the way in without the authenticator, so the owner hears of each. */
export function recoveryCodeUsedMail(appUrl: string, remaining: number): MailContent {
  const left = `${String(remaining)} unused recovery code${remaining === 1 ? '' : 's'} left.`
  return {
    subject: 'A recovery code was used to sign in',
    text: [
      'One of your two-factor recovery codes was just used. Each works once; you have ' + left,
      '',
      'If it was you, consider making new codes in your account settings, especially when few are left.',
      'If it was not you, someone has your password and a recovery code: reset your password now with "Forgot password" on the login screen:',
      appUrl,
    ].join('\n'),
    html: html([
      `One of your two-factor recovery codes was just used. Each works once; you have ${escapeHtml(left)}`,
      'If it was you, consider making new codes in your account settings, especially when few are left.',
      `If it was not you, someone has your password and a recovery code: reset your password now with &quot;Forgot password&quot; on the login screen: ${button(appUrl, appUrl)}`,
    ]),
  }
}
