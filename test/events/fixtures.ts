// Shared by the event tests: an app instance that publishes to a stream and channel of
// its own on a Redis, activity that writes events, and readers of what arrived —
// the stream, the channel, and the outbox itself.
import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import type { Test } from 'tap'
import { withClient } from '../../src/db/admin-connection.ts'
import type { EventEnvelope } from '../../src/events/redis-sink.ts'
import { loggedApp } from '../helpers/app.ts'
import type { TestDatabase } from '../helpers/db.ts'
import { REDIS_URL } from '../helpers/redis.ts'

export const PASSWORD = 'correct horse battery staple'

/** A stream and channel name nobody else uses; both removed at teardown. */
export function eventNames(t: Test, redisUrl = REDIS_URL): { stream: string; channel: string } {
  const name = `activity-auth-test-${randomBytes(4).toString('hex')}:events`
  t.teardown(async () => {
    const redis = quietRedis(redisUrl)
    await redis.connect().catch(() => undefined)
    if (redis.status === 'ready') await redis.del(name)
    redis.disconnect()
  })
  return { stream: name, channel: name }
}

/** A client that fails instead of queueing or reconnecting (for a Redis the test kills). */
export function quietRedis(url: string): Redis {
  const redis = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null })
  redis.on('error', () => undefined)
  return redis
}

export interface Instance {
  app: FastifyInstance
  logs: Record<string, unknown>[]
  /** Log lines of one structured event (e.g. 'events_publish_failed'). */
  lines: (event: string) => Record<string, unknown>[]
}

export async function instance(t: Test, db: TestDatabase, env: Record<string, string>): Promise<Instance> {
  const { app, logs } = await loggedApp(t, db, { RATE_LIMIT_ENABLED: 'false', REQUIRE_EMAIL_VERIFICATION: 'false', ...env })
  return { app, logs, lines: (event) => logs.filter((l) => l.event === event) }
}

/** Signup, login and logout: several events for one user, in an order the user caused. */
export async function userActivity(app: FastifyInstance, email: string): Promise<void> {
  const signup = await app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email, password: PASSWORD } })
  if (signup.statusCode !== 202) throw new Error(`signup ${signup.statusCode} ${signup.body}`)
  const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email, password: PASSWORD } })
  if (login.statusCode !== 200) throw new Error(`login ${login.statusCode} ${login.body}`)
  const { refreshToken } = login.json<{ refreshToken: string }>()
  const logout = await app.inject({ method: 'POST', url: '/api/auth/logout', payload: { refreshToken } })
  if (logout.statusCode >= 300) throw new Error(`logout ${logout.statusCode} ${logout.body}`)
}

export interface OutboxRow {
  id: string
  userId: string | null
  published: boolean
}

/** The outbox as the database holds it, oldest first. */
export async function outbox(db: TestDatabase): Promise<OutboxRow[]> {
  return withClient(db.adminUrl, async (c) => {
    const { rows } = await c.query<OutboxRow>(
      `SELECT id::text AS id, user_id::text AS "userId", published_at IS NOT NULL AS published FROM activity.events e ORDER BY e.id`,
    )
    return rows
  })
}

/** The envelopes in a stream, in stream order. */
export async function streamEvents(redis: Redis, stream: string): Promise<EventEnvelope[]> {
  const entries = await redis.xrange(stream, '-', '+')
  return entries.map(([, fields]) => {
    const json = fields[fields.indexOf('event') + 1]
    if (json === undefined) throw new Error('a stream entry without an event field')
    return JSON.parse(json) as EventEnvelope
  })
}

/** Everything published on `channel` from now on. */
export async function subscribe(t: Test, channel: string, url = REDIS_URL): Promise<EventEnvelope[]> {
  const received: EventEnvelope[] = []
  const sub = new Redis(url)
  sub.on('error', () => undefined)
  sub.on('message', (_channel: string, message: string) => received.push(JSON.parse(message) as EventEnvelope))
  await sub.subscribe(channel)
  t.teardown(() => sub.disconnect())
  return received
}

/** Each user's event ids in the order they arrived. */
export function perUser(events: readonly { id: string; userId: string | null }[]): Map<string, string[]> {
  const users = new Map<string, string[]>()
  for (const e of events) {
    const key = e.userId ?? '-'
    users.set(key, [...(users.get(key) ?? []), e.id])
  }
  return users
}

export const ascending = (ids: readonly string[]): boolean => ids.every((id, i) => i === 0 || BigInt(ids[i - 1] ?? '0') < BigInt(id))

export async function until(what: string, check: () => Promise<boolean> | boolean): Promise<void> {
  // A bound so a lost event fails the test instead of hanging it; not a timing assertion.
  const deadline = Date.now() + 30_000
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** A metric's value in the app's /metrics. */
export async function metric(app: FastifyInstance, name: string): Promise<number | undefined> {
  const body = (await app.inject({ method: 'GET', url: '/metrics' })).body
  const value = new RegExp(`^${name} (\\S+)$`, 'm').exec(body)?.[1]
  return value === undefined ? undefined : Number(value)
}

export { startRedis, type RedisProcess } from '../helpers/redis.ts'
