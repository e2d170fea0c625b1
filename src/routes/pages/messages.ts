// What the link pages say. The API's `detail` strings are for developers (short,
// lowercase, no next step); a person who opened a mail link needs to read what
// happened and what to do now, so every outcome has its own sentences here.

export type LinkKind = 'verify' | 'reset' | 'email_change'

/** A result shown in place of the form: a heading, then sentences. */
export interface Notice {
  title: string
  lines: string[]
}

/** The password rules as configured (PASSWORD_MIN_LENGTH, the fixed maximum, the breach check). */
export interface PasswordRules {
  minLength: number
  maxLength: number
  breachCheck: boolean
}

export function successNotice(kind: LinkKind, appName: string): Notice {
  if (kind === 'email_change') {
    return {
      title: 'Email address changed',
      lines: [
        `Your ${appName} account now uses this email address. For your safety, every device that was logged in has been logged out.`,
        'Log in with this address.',
      ],
    }
  }
  return kind === 'verify'
    ? { title: 'Email address confirmed', lines: [`Your email address is confirmed. You can now log in to ${appName}.`] }
    : {
        title: 'Password changed',
        lines: [
          `Your ${appName} password has been changed. For your safety, every device that was logged in has been logged out.`,
          'Log in with your new password.',
        ],
      }
}

/** The link itself is unusable: missing, damaged, unknown, expired or used. */
export type LinkProblem = 'incomplete' | 'invalid_token' | 'token_expired' | 'token_used'

const LINK_PROBLEMS: ReadonlySet<string> = new Set<LinkProblem>(['incomplete', 'invalid_token', 'token_expired', 'token_used'])

export function isLinkProblem(code: string): code is LinkProblem {
  return LINK_PROBLEMS.has(code)
}

const ASK_AGAIN: Record<LinkKind, string> = {
  verify: 'Log in and ask for a new confirmation email there, then open the link in the newest email.',
  reset: 'Ask for a new link with "Forgot password" on the login page, then open the link in the newest email.',
  email_change: 'Log in with your current address and ask for the change again, then open the link in the newest email.',
}

/** A change of email whose new address another account took after the link was sent. */
export const EMAIL_TAKEN_NOTICE: Notice = {
  title: 'This address is already in use',
  lines: [
    'Another account started using this email address after the link was sent, so your account keeps its current address.',
    'Log in with your current address and choose another one.',
  ],
}

export function linkNotice(kind: LinkKind, problem: LinkProblem): Notice {
  const askAgain = ASK_AGAIN[kind]
  switch (problem) {
    case 'incomplete':
      return {
        title: 'This link is incomplete',
        lines: [
          'Part of the link is missing or damaged. Open the link from the email again; if your mail program split it over two lines, copy the whole link into the address bar.',
          `If that does not help: ${askAgain}`,
        ],
      }
    case 'invalid_token':
      return {
        title: 'This link does not work',
        lines: ['The link is not valid (it may be from an older email, or its account was closed).', askAgain],
      }
    case 'token_expired':
      return {
        title: 'This link has expired',
        lines: ['For your safety, links in our emails only work for a limited time.', askAgain],
      }
    case 'token_used':
      if (kind === 'email_change') {
        return {
          title: 'This link was already used',
          lines: [
            'This link was already used, or a newer one replaced it. If you just confirmed the change, log in with your new address.',
            `Otherwise: ${askAgain}`,
          ],
        }
      }
      return kind === 'verify'
        ? {
            title: 'This link was already used',
            lines: [
              'This confirmation link was already used, or a newer one replaced it.',
              'Log in: if your address is confirmed, that is all. If the app asks you to confirm it, ask for a new link there and open the newest email.',
            ],
          }
        : {
            title: 'This link was already used',
            lines: [
              'This password reset link was already used. If you just chose a new password, log in with it.',
              'Otherwise ask for a new link with "Forgot password" on the login page.',
            ],
          }
  }
}

/** A password the policy refused, as a sentence shown above the form (undefined: not a password problem). */
export function passwordMessage(code: string, rules: PasswordRules): string | undefined {
  switch (code) {
    case 'password_missing':
      return 'Type a new password, then press the button.'
    case 'password_too_short':
      return `That password is too short. Use at least ${String(rules.minLength)} characters.`
    case 'password_too_long':
      return `That password is too long. Use at most ${String(rules.maxLength)} characters.`
    case 'password_too_common':
      return 'That password is too common and easy to guess. Choose another one.'
    case 'password_breached':
      return 'That password has appeared in a data breach, so others may know it. Choose another one.'
    case 'breach_check_unavailable':
      return 'We could not check your password right now. Wait a minute, then press the button again.'
    default:
      return undefined
  }
}
