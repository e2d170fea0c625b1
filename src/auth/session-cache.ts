// Live sessions and account rows kept in memory, so an authenticated call does not ask
// the database each time (docs/performance.md, docs/security.md "Session cache").
// What keeps it honest:
// - every instance LISTENs on activity_events, whose payload is the user an event is
//   about (fn_audit): a revocation or change committed anywhere drops that user's
//   entries here within milliseconds (measured: bench, "revocation delay");
// - the instance that made a change drops the user's entries before it answers
//   (AuthService and OAuthService call changed()), so it never accepts what it revoked;
// - a result read before an invalidation is not stored (the generation counter): a
//   check that raced a revocation cannot put a revoked session back;
// - without a LISTEN connection (lost, or a transaction pooler) nothing is cached and
//   everything is asked of the database; when it comes back the cache starts empty;
// - entries live at most ttlMs (a session that ends by expiry has no event), and the
//   maps are bounded (the oldest entries go first).

export interface SessionCacheOptions {
  /** The longest an entry is trusted; 0 turns the cache off. */
  ttlMs: number
  /** Users kept (their sessions and account row); the least recently stored go first. */
  maxUsers: number
  now?: () => number
}

/** What is known of one user: live sessions (id → expiry) and the account row. */
interface UserEntry {
  sessions: Map<string, number>
  account?: { value: unknown; expires: number }
}

export class SessionCache {
  /** By user, in insertion order, so the oldest go first and a user's invalidation is one delete. */
  private readonly users = new Map<string, UserEntry>()
  private readonly now: () => number
  private enabled = false
  /** Bumped by every invalidation: a load that began before one is not stored. */
  private generation = 0

  constructor(private readonly opts: SessionCacheOptions) {
    this.now = opts.now ?? Date.now
  }

  /** Caching is on only while invalidations can arrive (a LISTEN connection is up). */
  get active(): boolean {
    return this.enabled && this.opts.ttlMs > 0
  }

  enable(): void {
    this.clear()
    this.enabled = true
  }

  disable(): void {
    this.enabled = false
    this.clear()
  }

  /** Whether the session is live: from memory, or asked (and kept when live). */
  async isLive(userId: string, sessionId: string, ask: () => Promise<boolean>): Promise<boolean> {
    if (this.active && (this.users.get(userId)?.sessions.get(sessionId) ?? 0) > this.now()) return true
    const generation = this.generation
    const live = await ask()
    // Only positive answers are kept: a session that is not live stays that way.
    if (live && this.storable(generation)) this.entry(userId).sessions.set(sessionId, this.now() + this.opts.ttlMs)
    return live
  }

  /** The account's row for GET /me: from memory, or loaded (and kept). */
  async account<T>(userId: string, load: () => Promise<T>): Promise<T> {
    const hit = this.active ? this.users.get(userId)?.account : undefined
    if (hit !== undefined && hit.expires > this.now()) return hit.value as T
    const generation = this.generation
    const value = await load()
    if (this.storable(generation)) this.entry(userId).account = { value, expires: this.now() + this.opts.ttlMs }
    return value
  }

  /** The user's sessions or account changed (undefined or '': someone's, unknown whose). */
  changed(userId?: string): void {
    this.generation++
    if (userId === undefined || userId === '') this.users.clear()
    else this.users.delete(userId)
  }

  private storable(generation: number): boolean {
    return this.active && generation === this.generation
  }

  private entry(userId: string): UserEntry {
    let entry = this.users.get(userId)
    if (entry === undefined) {
      entry = { sessions: new Map() }
      this.users.set(userId, entry)
      if (this.users.size > this.opts.maxUsers) {
        const oldest = this.users.keys().next()
        if (oldest.done !== true) this.users.delete(oldest.value)
      }
    }
    return entry
  }

  private clear(): void {
    this.generation++
    this.users.clear()
  }

  /** Users held now (for tests). */
  get size(): number {
    return this.users.size
  }
}
