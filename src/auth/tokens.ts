// Opaque token material. Refresh and one-time email tokens are 256 random bits,
// sent to the client base64url-encoded and stored only as their SHA-256: a
// database leak gives nothing that can be presented back.
import { createHash, randomBytes } from 'node:crypto'

const TOKEN_BYTES = 32
/** 32 bytes in base64url without padding. */
const WELL_FORMED = /^[A-Za-z0-9_-]{43}$/

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex')
}

export function newEmailToken(): { token: string; hash: string } {
  const token = randomBytes(TOKEN_BYTES).toString('base64url')
  return { token, hash: hashToken(token) }
}

/** Garbage never reaches the database: a malformed token is simply invalid. */
export function isWellFormedToken(token: string): boolean {
  return WELL_FORMED.test(token)
}
