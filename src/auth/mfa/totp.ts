// TOTP (RFC 6238) through otplib with the parameters every authenticator app reads:
// SHA-1, 6 digits, 30-second steps, a 160-bit base32 secret. A code is accepted for
// the current step and one step either side (clock drift); which step matched is
// returned, because the database accepts each step once (sp_use_mfa_totp_step).
import { generateSecret, generateURI, verify } from 'otplib'
import QRCode from 'qrcode'

export const TOTP_PERIOD_SECONDS = 30
const DIGITS = 6
const CODE = /^[0-9]{6}$/

export function newTotpSecret(): string {
  return generateSecret({ length: 20 })
}

/** The otpauth:// URI an authenticator app enrols from (as text, or as the QR code of it). */
export function otpauthUri(issuer: string, account: string, secret: string): string {
  return generateURI({ issuer, label: account, secret, algorithm: 'sha1', digits: DIGITS, period: TOTP_PERIOD_SECONDS })
}

/** The URI as a PNG data URL, for an <img> in the enrolment screen. */
export async function qrCodeDataUrl(uri: string): Promise<string> {
  return QRCode.toDataURL(uri, { errorCorrectionLevel: 'M', margin: 2, width: 256 })
}

/**
 * The step the code is valid for (now, one earlier or one later) and newer than
 * afterStep; undefined when it is none of those. Anything but six digits is refused
 * before any HMAC is computed.
 */
export async function matchingStep(secret: string, code: string, afterStep: number | null, now = Date.now()): Promise<number | undefined> {
  if (!CODE.test(code)) return undefined
  const result = await verify({
    secret,
    token: code,
    algorithm: 'sha1',
    digits: DIGITS,
    period: TOTP_PERIOD_SECONDS,
    epoch: Math.floor(now / 1000),
    epochTolerance: TOTP_PERIOD_SECONDS,
    ...(afterStep === null ? {} : { afterTimeStep: afterStep }),
  })
  // A TOTP verification's result carries the matched step (an HOTP one would not).
  return result.valid && 'timeStep' in result ? result.timeStep : undefined
}
