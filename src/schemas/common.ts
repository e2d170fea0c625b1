// TypeBox schemas shared by several routes. Every object is closed
// (additionalProperties: false): unknown fields are a 400, and responses
// serialize only what the schema names, so nothing leaks by accident.
import { Type, type TObject, type TProperties } from '@sinclair/typebox'

export const closed = <T extends TProperties>(properties: T): TObject<T> => Type.Object(properties, { additionalProperties: false })

/** An address as typed; the procedures normalise it (trim, lowercase). 254 is the SMTP limit. */
export const Email = Type.String({ format: 'email', minLength: 3, maxLength: 254 })

/**
 * A password as typed. The schema only bounds the payload; the policy
 * (8–128 code points, not a common password) answers with its own codes.
 */
export const Password = Type.String({ minLength: 1, maxLength: 4096 })

/** Opaque tokens (refresh, email): 256 bits in base64url are 43 characters. */
export const OpaqueToken = Type.String({ minLength: 1, maxLength: 512 })

export const Uuid = Type.String({ format: 'uuid' })

export const Accepted = closed({ message: Type.String() })
