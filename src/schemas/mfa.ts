// Bodies and replies of two-factor sign-in (/api/auth/mfa/*), and the second-factor
// fields the sensitive operations elsewhere take (change-password, DELETE /me, unlink).
import { Type } from '@sinclair/typebox'
import { closed, OpaqueToken, Password } from './common.ts'

export const TotpCode = Type.String({ pattern: '^[0-9]{6}$', description: 'The current 6-digit code of the authenticator app' })
export const RecoveryCode = Type.String({
  minLength: 1,
  maxLength: 64,
  description: 'One of the recovery codes (`xxxx-xxxx-xxxx`; case, dashes and spaces do not matter); each works once',
})

/** A fresh second factor: required (one of the two) when the account has two-factor on. */
export const SecondFactorFields = {
  code: Type.Optional({ ...TotpCode, description: 'With two-factor on: the current code (or send recoveryCode)' }),
  recoveryCode: Type.Optional({ ...RecoveryCode, description: 'With two-factor on: a recovery code instead of the code' }),
}

export const MfaChallengeSchema = closed({
  mfaRequired: Type.Literal(true),
  mfaToken: Type.String({ description: 'Send it with the second factor to POST /api/auth/mfa/verify within 5 minutes; works once' }),
})

export const MfaVerifyBody = closed({
  mfaToken: OpaqueToken,
  ...SecondFactorFields,
  deviceToken: Type.Optional({ ...OpaqueToken, description: 'The device token the login sent, to keep this device trusted' }),
})
export const MfaEnrolmentSchema = closed({
  secret: Type.String({ description: 'The base32 secret, for typing into an app that cannot scan' }),
  otpauthUri: Type.String({ description: 'The otpauth://totp/ URI the QR code holds' }),
  qrCode: Type.String({ description: 'The otpauth URI as a QR code: a PNG data URL' }),
})
export const MfaConfirmBody = closed({ code: TotpCode })
export const RecoveryCodesSchema = closed({
  recoveryCodes: Type.Array(Type.String(), {
    minItems: 10,
    maxItems: 10,
    description: 'Ten single-use recovery codes: shown this once, stored only as hashes',
  }),
})
export const MfaChangeBody = closed({
  password: Type.Optional({ ...Password, description: 'The account password; required when the account has one' }),
  ...SecondFactorFields,
})
/** DELETE /oauth/{provider}: the second factor when two-factor is on; may be sent without a body otherwise. */
export const UnlinkBody = Type.Union([closed(SecondFactorFields), Type.Null()])
