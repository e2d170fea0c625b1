// Bodies, params and replies of /api/auth/*. The routes are typed from these
// (@fastify/type-provider-typebox): a handler's `request.body` is what its schema
// lets through, and what it returns must be what the reply schema serializes.
import { Type, type TSchema } from '@sinclair/typebox'
import { closed, Email, OpaqueToken, Password, Uuid } from './common.ts'
import { MfaChallengeSchema, SecondFactorFields } from './mfa.ts'

export const SignupBody = closed({ email: Email, password: Password })
/** Exactly one of email and identifier (a username or an address); the route refuses both or neither. */
export const LoginBody = closed({
  email: Type.Optional(Email),
  identifier: Type.Optional(Type.String({ minLength: 1, maxLength: 254, description: 'A username or an email address' })),
  password: Password,
  deviceToken: Type.Optional(OpaqueToken),
})
/** The token of a mailed link (verify email). */
export const LinkTokenBody = closed({ token: OpaqueToken })
/** Resend verification, forgot password: an address, and the same answer whether it has an account. */
export const EmailBody = closed({ email: Email })
export const RefreshTokenBody = closed({ refreshToken: OpaqueToken })
/** A re-authentication (delete the account); with two-factor on, a second factor too. */
export const PasswordBody = closed({ password: Password, ...SecondFactorFields })
export const ChangePasswordBody = closed({ currentPassword: Password, newPassword: Password, ...SecondFactorFields })
export const ResetPasswordBody = closed({ token: OpaqueToken, newPassword: Password })
export const SessionParams = closed({ id: Uuid })

export const TokenPairSchema = closed({
  accessToken: Type.String(),
  refreshToken: Type.String(),
  tokenType: Type.Literal('Bearer'),
  expiresIn: Type.Integer(),
})
export const LoginTokensSchema = closed({
  ...TokenPairSchema.properties,
  // OWASP device cookie: sent back at the next login from this device, its guesses
  // count against it alone, so nobody else can lock the owner out (docs/security.md).
  deviceToken: Type.String(),
})
/** A login's answer: the session, or (two-factor on) the challenge POST /mfa/verify completes. */
export const LoginSchema = Type.Union([LoginTokensSchema, MfaChallengeSchema])
export const VerifiedSchema = closed({ verified: Type.Literal(true) })
const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()])
/** The profile fields of GET /me (issue 17); null when not set. */
export const ProfileProperties = {
  username: Nullable(Type.String({ description: 'Sign-in name, unique case-insensitively' })),
  firstName: Nullable(Type.String()),
  lastName: Nullable(Type.String()),
  phone: Nullable(Type.String({ description: 'E.164' })),
}
export const MeSchema = closed({
  id: Uuid,
  email: Type.String(),
  isVerified: Type.Boolean(),
  createdAt: Type.String({ format: 'date-time' }),
  lastLoginAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  /** False for an account made through a provider until a reset sets one. */
  hasPassword: Type.Boolean(),
  ...ProfileProperties,
  /** Two-factor sign-in is on. */
  mfaEnabled: Type.Boolean(),
  /** The linked sign-in providers (Google, GitHub). */
  providers: Type.Array(
    closed({
      provider: Type.Union([Type.Literal('google'), Type.Literal('github')]),
      email: Type.Union([Type.String(), Type.Null()], { description: 'The address the provider asserted' }),
      linkedAt: Type.String({ format: 'date-time' }),
      lastLoginAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    }),
  ),
})
export const SessionSchema = closed({
  id: Uuid,
  device: Type.Union([Type.String(), Type.Null()]),
  ip: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
  lastUsedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  expiresAt: Type.String({ format: 'date-time' }),
  current: Type.Boolean(),
})
export const SessionsSchema = Type.Array(SessionSchema)

/**
 * PATCH /me: any of the profile fields; null clears one. The lengths here only bound the
 * payload: the procedures answer the rules with their own codes (invalid_username, invalid_name ...).
 */
export const ProfilePatchBody = closed({
  username: Type.Optional(Nullable(Type.String({ maxLength: 64 }))),
  firstName: Type.Optional(Nullable(Type.String({ maxLength: 1000 }))),
  lastName: Type.Optional(Nullable(Type.String({ maxLength: 1000 }))),
  phone: Type.Optional(Nullable(Type.String({ maxLength: 64 }))),
})
export const ChangeEmailBody = closed({ password: Password, newEmail: Email })
export const EmailChangedSchema = closed({ email: Type.String(), sessionsEnded: Type.Integer({ minimum: 0 }) })
