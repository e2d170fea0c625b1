// The password policy as configured: length in code points (PASSWORD_MIN_LENGTH..128),
// not a common password, and optionally not a breached one. The breach check uses
// Have I Been Pwned's k-anonymity range API: only the first 5 hex characters of the
// password's SHA-1 leave the service, and the answer lists every known suffix for
// that prefix, so the service learns the verdict and the API learns nothing usable.
import { createHash } from 'node:crypto'
import { checkPasswordPolicy, PASSWORD_MAX_LENGTH } from './passwords.ts'

export interface BreachCheckOptions {
  /** Base URL of the range API (https://api.pwnedpasswords.com); `/range/<prefix>` is appended. */
  url: string
  /** Give up after this long: a signup must not hang on a third party. */
  timeoutMs: number
  /**
   * When the API is unreachable, times out or answers 5xx: true lets the password
   * through (and logs a warning), false rejects it with `breach_check_unavailable`.
   */
  failOpen: boolean
}

export interface PasswordPolicyOptions {
  /** Minimum length in Unicode code points. */
  minLength: number
  /** Maximum length in code points; PASSWORD_MAX_LENGTH (128) when unset. */
  maxLength?: number
  /** Off when unset. */
  breachCheck?: BreachCheckOptions
  /** Where a fail-open breach check reports that it could not check. */
  log?: { warn(obj: object, msg: string): void }
}

export interface PasswordRejection {
  /**
   * password_too_short | password_too_long | password_too_common | password_breached
   * | breach_check_unavailable (the only one that is the service's fault: HTTP 503).
   */
  code: string
  detail: string
}

export interface PasswordPolicy {
  /** undefined when the password is acceptable. */
  check(password: string): Promise<PasswordRejection | undefined>
}

/** The range API's answer: one `SUFFIX:COUNT` per line (35 hex characters, a count). */
const RANGE_LINE = /^([0-9A-F]{35}):(\d+)$/

class BreachCheckUnavailable extends Error {
  override name = 'BreachCheckUnavailable'
}

/** True when the range API lists the password with a count above 0. */
async function isBreached(password: string, opts: BreachCheckOptions): Promise<boolean> {
  const digest = createHash('sha1').update(password, 'utf8').digest('hex').toUpperCase()
  const prefix = digest.slice(0, 5)
  const suffix = digest.slice(5)
  const url = `${opts.url.replace(/\/+$/, '')}/range/${prefix}`
  let body: string
  try {
    const res = await fetch(url, {
      // Padding: every answer is 800–1000 lines, so its size does not reveal the prefix's bucket.
      headers: { 'add-padding': 'true', 'user-agent': 'activity-auth' },
      signal: AbortSignal.timeout(opts.timeoutMs),
      redirect: 'error',
    })
    if (!res.ok) throw new BreachCheckUnavailable(`range API answered ${String(res.status)}`)
    body = await res.text()
  } catch (err) {
    if (err instanceof BreachCheckUnavailable) throw err
    // Timeout (AbortSignal), refused connection, reset, DNS: all "could not check".
    throw new BreachCheckUnavailable(err instanceof Error ? `${err.name}: ${err.message}` : String(err))
  }
  for (const line of body.split(/\r?\n/)) {
    const match = RANGE_LINE.exec(line.trim().toUpperCase())
    // Padding lines have a count of 0: not a breached password.
    if (match?.[1] === suffix && Number(match[2]) > 0) return true
  }
  return false
}

export function createPasswordPolicy(opts: PasswordPolicyOptions): PasswordPolicy {
  const maxLength = opts.maxLength ?? PASSWORD_MAX_LENGTH
  if (!Number.isInteger(opts.minLength) || opts.minLength < 1 || opts.minLength > maxLength) {
    throw new RangeError(`password minimum length must be 1..${String(maxLength)}, got ${String(opts.minLength)}`)
  }
  const { breachCheck } = opts

  return {
    async check(password) {
      // The bundled checks first: length and the common list cost nothing and need no network.
      const violation = checkPasswordPolicy(password, { minLength: opts.minLength, maxLength })
      if (violation !== null) return violation
      if (breachCheck === undefined) return undefined
      try {
        if (await isBreached(password, breachCheck)) {
          return {
            code: 'password_breached',
            detail: 'this password has appeared in a data breach; choose another one',
          }
        }
        return undefined
      } catch (err) {
        if (!(err instanceof BreachCheckUnavailable)) throw err
        if (breachCheck.failOpen) {
          opts.log?.warn({ event: 'breach_check_unavailable', reason: err.message }, 'breached-password check skipped')
          return undefined
        }
        return { code: 'breach_check_unavailable', detail: 'the password could not be checked right now; try again later' }
      }
    },
  }
}
