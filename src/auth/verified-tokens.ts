// Access tokens this instance has already verified, keyed by their exact text.
//
// A client presents the same access token on every call for up to its lifetime, and
// verifying it (base64 and JSON decode of header and payload, a SHA-256 of the token
// for fast-jwt's own cache key, the option merging of @fastify/jwt) was the largest
// part of an authenticated call's CPU after the socket write (issue 18, profile of
// GET /me). The same bytes verify the same way until the token expires, so a token's
// claims are kept here until its `exp` and the signature is checked only on a miss.
// Whether the session is still live is not cached here: the session check runs on
// every call (the session cache and its invalidation decide that).
//
// Only tokens that verified are kept: a forged token costs a verify every time it is
// presented, which is what it cost before. The map is bounded; at the bound the
// oldest entry goes (insertion order), and is verified again when it comes back.

export interface VerifiedTokensOptions {
  maxEntries: number
  now?: () => number
}

interface Entry<T> {
  claims: T
  /** ms since the epoch at which the token expires. */
  expiresAt: number
}

export class VerifiedTokens<T> {
  private readonly entries = new Map<string, Entry<T>>()
  private readonly max: number
  private readonly now: () => number

  constructor(opts: VerifiedTokensOptions) {
    this.max = opts.maxEntries
    this.now = opts.now ?? Date.now
  }

  /** The claims of a token verified before and not yet expired. */
  get(token: string): T | undefined {
    const entry = this.entries.get(token)
    if (entry === undefined) return undefined
    if (entry.expiresAt > this.now()) return entry.claims
    this.entries.delete(token)
    return undefined
  }

  /** Keep a token that just verified, until `exp` (seconds since the epoch). */
  set(token: string, claims: T, exp: number): void {
    if (this.max <= 0) return
    const expiresAt = exp * 1000
    if (!(expiresAt > this.now())) return
    this.entries.delete(token)
    this.entries.set(token, { claims, expiresAt })
    if (this.entries.size > this.max) {
      const oldest = this.entries.keys().next()
      if (oldest.done !== true) this.entries.delete(oldest.value)
    }
  }

  get size(): number {
    return this.entries.size
  }
}
