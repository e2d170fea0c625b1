// The machine's Redis, shared by every test run: each test gets its own key
// prefix and deletes its keys at teardown, so runs and files never see each other's counters.
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'

export const REDIS_URL = 'redis://127.0.0.1:6379'

interface Teardown {
  teardown(fn: () => unknown): void
}

/** A fresh RATE_LIMIT_REDIS_PREFIX and a client to look at its keys; both cleaned up after the test. */
export function redisNamespace(t: Teardown): { prefix: string; redis: Redis } {
  const prefix = `activity-auth-test-${randomBytes(4).toString('hex')}:`
  const redis = new Redis(REDIS_URL)
  t.teardown(async () => {
    const keys = await redis.keys(`${prefix}*`)
    if (keys.length > 0) await redis.del(...keys)
    await redis.quit()
  })
  return { prefix, redis }
}
