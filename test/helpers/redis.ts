// The machine's Redis, shared by every test run: each test gets its own key
// prefix and deletes its keys at teardown, so runs and files never see each other's counters.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { Redis } from 'ioredis'
import type { Test } from 'tap'

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

export interface RedisProcess {
  proc: ChildProcess
  url: string
  kill: (signal: NodeJS.Signals) => Promise<void>
}

/** Our own redis-server on `port`, killed at teardown whatever state it is in. */
export async function startRedis(t: Test, port: number): Promise<RedisProcess> {
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let exited = false
  const exit = once(proc, 'exit').then(() => {
    exited = true
  })
  t.teardown(async () => {
    if (exited) return
    proc.kill('SIGCONT')
    proc.kill('SIGKILL')
    await exit
  })
  let output = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${output}`)), 10_000)
    proc.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer)
        resolve()
      }
    })
    proc.once('exit', () => reject(new Error(`redis-server exited: ${output}`)))
  })
  return {
    proc,
    url: `redis://127.0.0.1:${port}`,
    kill: async (signal) => {
      proc.kill(signal)
      if (signal === 'SIGKILL') await exit
    },
  }
}
