// Refresh-token chains for the refresh loads, and which seeded users they belong to.
import pg from 'pg'
import { newRefreshToken } from '../../src/auth/refresh-tokens.ts'
import { saveRefreshToken } from '../../src/db/procedures.ts'
import { JSON_HEADERS } from './load.ts'
import { benchUserId } from './seed.ts'

/** Lifetimes of the sessions a chain starts (the configured refresh TTLs). */
export interface TokenTtl {
  idleTtlSeconds: number
  familyTtlSeconds: number
}

/** `count` seeded users spread evenly over the first `users`. */
export function spread(users: number, count: number): number[] {
  const step = Math.max(1, Math.floor(users / count))
  return Array.from({ length: count }, (_, i) => (i * step) % users)
}

/**
 * Refresh-token chains: each answer's new token is the chain's next request's.
 * autocannon resets its per-request context after every request, so a chain is
 * checked out for exactly one request at a time and checked in by its answer;
 * a request still in flight when a run ends never tells us its new token, so
 * its chain is replaced by a fresh session before the next run (as is one that
 * got an error).
 */
export class Chains {
  readonly tokens: string[] = []
  readonly access: string[] = []
  private free: number[] = []
  private readonly inFlight = new Set<number>()
  private readonly broken = new Set<number>()
  /** Non-2xx answers by status and code, for the row's note. */
  readonly failures = new Map<string, number>()

  constructor(
    private readonly pool: pg.Pool,
    private readonly users: number[],
    private readonly ttl: TokenTtl,
  ) {}

  private async start(i: number): Promise<string> {
    const t = newRefreshToken()
    await saveRefreshToken(this.pool, {
      userId: benchUserId(this.users[i % this.users.length] as number),
      tokenHash: t.hash,
      jti: t.jti,
      ...this.ttl,
    })
    return t.token
  }

  async fill(count: number): Promise<void> {
    for (let i = this.tokens.length; i < count; i++) this.tokens.push(await this.start(i))
    this.free = this.tokens.map((_, i) => i)
  }

  checkout(): number {
    const i = this.free.pop()
    if (i === undefined) throw new Error('more refresh requests in flight than chains')
    this.inFlight.add(i)
    return i
  }

  /** The answer to chain i's request: its next token, or a broken chain. */
  checkin(i: number, status: number, body: string): void {
    this.inFlight.delete(i)
    if (status === 200) {
      const pair = JSON.parse(body) as { refreshToken: string; accessToken: string }
      this.tokens[i] = pair.refreshToken
      this.access[i] = pair.accessToken
      this.free.push(i)
      return
    }
    this.broken.add(i)
    const code = (/"code":"([a-z_]+)"/.exec(body) ?? [])[1] ?? ''
    const key = `${status} ${code}`.trim()
    this.failures.set(key, (this.failures.get(key) ?? 0) + 1)
  }

  /** Between runs: fresh sessions for broken and abandoned chains, all chains free again. */
  async endRun(): Promise<void> {
    for (const i of this.inFlight) this.broken.add(i)
    this.inFlight.clear()
    for (const i of this.broken) this.tokens[i] = await this.start(i)
    this.broken.clear()
    this.free = this.tokens.map((_, i) => i)
  }

  /** One refresh per chain over plain HTTP, to get an access token for each. */
  async accessTokens(url: string): Promise<string[]> {
    for (let i = 0; i < this.tokens.length; i++) {
      const res = await fetch(`${url}/api/auth/refresh`, {
        method: 'POST',
        headers: JSON_HEADERS,
        body: JSON.stringify({ refreshToken: this.tokens[i] }),
      })
      const body = (await res.json()) as { accessToken: string; refreshToken: string }
      if (res.status !== 200) throw new Error(`refresh for an access token: ${res.status} ${JSON.stringify(body)}`)
      this.tokens[i] = body.refreshToken
      this.access[i] = body.accessToken
    }
    return this.access
  }

  /** The non-2xx answers, for a row's note: `(401 invalid_token: 2)`, or empty. */
  statuses(): string {
    return this.failures.size === 0 ? '' : `(${[...this.failures].map(([k, n]) => `${k}: ${n}`).join(', ')})`
  }
}
