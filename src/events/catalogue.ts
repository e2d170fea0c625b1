// The payload of each outbox event type, version 1 (docs/events.md is the prose
// catalogue; test/db/events-catalogue.test.ts validates every event the procedures
// write against these and holds the two lists equal). The payloads are built in
// SQL (activity.fn_event_for_audit): ids, counts and reasons, never a secret.
// A breaking change to a payload is a new version, listed next to the old one.
import { Type, type TSchema } from '@sinclair/typebox'

// The same rule the procedures check (sp_create_user), stored lower case.
const Email = Type.String({ pattern: '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$', maxLength: 255 })
const SessionsEnded = Type.Integer({ minimum: 0, description: 'How many live sessions the change ended (each also a session.revoked).' })

/** Why a session ended: the labels of activity.revoke_reason a revocation can carry. */
export const SessionRevokedReason = Type.Union(
  [
    Type.Literal('logout'),
    Type.Literal('logout_all'),
    Type.Literal('session_ended'),
    Type.Literal('password_changed'),
    Type.Literal('password_reset'),
    Type.Literal('user_deactivated'),
    Type.Literal('reuse_detected'),
    Type.Literal('email_changed'),
  ],
  { description: 'Why the session ended.' },
)

/** The provider of a linked identity: the labels of activity.oauth_provider. */
const OAuthProvider = Type.Union([Type.Literal('google'), Type.Literal('github')], { description: 'The identity provider.' })

export const EVENT_PAYLOADS = {
  'user.created': Type.Object({ email: Email }, { additionalProperties: false }),
  'user.verified': Type.Object({ email: Email }, { additionalProperties: false }),
  'user.password_changed': Type.Object(
    {
      sessionsEnded: SessionsEnded,
      keptSessionId: Type.Union([Type.String({ format: 'uuid' }), Type.Null()], {
        description: 'The session that changed the password and stays live, if any.',
      }),
    },
    { additionalProperties: false },
  ),
  'user.password_reset': Type.Object({ sessionsEnded: SessionsEnded }, { additionalProperties: false }),
  'user.deactivated': Type.Object({ sessionsEnded: SessionsEnded }, { additionalProperties: false }),
  'session.created': Type.Object({}, { additionalProperties: false }),
  'session.revoked': Type.Object({ reason: SessionRevokedReason }, { additionalProperties: false }),
  'session.reuse_detected': Type.Object(
    { tokensRevoked: Type.Integer({ minimum: 1, description: 'Live tokens of the session revoked with it.' }) },
    { additionalProperties: false },
  ),
  'account.locked': Type.Object(
    {
      lockedUntil: Type.String({ format: 'date-time' }),
      failedCount: Type.Integer({ minimum: 1 }),
    },
    { additionalProperties: false },
  ),
  'oauth.linked': Type.Object({ provider: OAuthProvider }, { additionalProperties: false }),
  'oauth.unlinked': Type.Object({ provider: OAuthProvider }, { additionalProperties: false }),
  'user.profile_updated': Type.Object(
    {
      fields: Type.Array(
        Type.Union([Type.Literal('username'), Type.Literal('first_name'), Type.Literal('last_name'), Type.Literal('phone')]),
        { minItems: 1, uniqueItems: true, description: 'The profile fields that changed (never their values).' },
      ),
    },
    { additionalProperties: false },
  ),
  'user.email_changed': Type.Object(
    {
      email: Email,
      previousEmail: Email,
      sessionsEnded: SessionsEnded,
    },
    { additionalProperties: false },
  ),
  'mfa.enabled': Type.Object({}, { additionalProperties: false }),
  'mfa.disabled': Type.Object({}, { additionalProperties: false }),
  'mfa.recovery_code_used': Type.Object(
    { remaining: Type.Integer({ minimum: 0, description: 'Unused recovery codes left.' }) },
    { additionalProperties: false },
  ),
  'mfa.failed': Type.Object(
    {
      failedCount: Type.Integer({
        minimum: 0,
        description: 'Failed attempts the lockout now counts for the account (or the trusted device).',
      }),
    },
    { additionalProperties: false },
  ),
} as const satisfies Record<string, TSchema>

export type EventType = keyof typeof EVENT_PAYLOADS
export const EVENT_TYPES = Object.keys(EVENT_PAYLOADS) as EventType[]
/** Every payload above is version 1; the envelope's `version` says which schema applies. */
export const EVENT_VERSION = 1
