// The ceilings that are not HTTP servers, run in a child pinned to the server
// core with the service's environment (so the same argon2 parameters, the same
// libuv thread pool size, the same pool settings). Driven over IPC by bench/run.ts:
//   { cmd: 'argon2', seconds, concurrency }  argon2id verifies with the service's hasher
//   { cmd: 'rotate', seconds, concurrency }  sp_rotate_refresh_token through the typed
//                                            wrapper and a pool configured like the service's
// Each answers { ok, value: Sample }.
import { createPasswordHasher } from '../../src/auth/passwords.ts'
import { deriveRefreshSuccessor, newRefreshToken } from '../../src/auth/refresh-tokens.ts'
import { hashToken } from '../../src/auth/tokens.ts'
import { loadConfig } from '../../src/config.ts'
import { createPool } from '../../src/db/pool.ts'
import { rotateRefreshToken, saveRefreshToken } from '../../src/db/procedures.ts'
import { percentile, type Sample } from '../lib/load.ts'
import { BENCH_PASSWORD, benchUserId } from '../lib/seed.ts'

const config = loadConfig()
const hasher = createPasswordHasher(config.argon2)
const pool = createPool(config.database.pool, config.database.url as string)
const [firstUser, userCount] = (process.env.BENCH_CEILING_USERS ?? '0:50').split(':').map(Number) as [number, number]
// The service's (bench/run.ts sets one: production mode requires it).
const pepper = config.refresh.pepper ?? 'ceiling-worker-refresh-token-pepper-0123456789'
const policy = {
  idle: config.refresh.ttlSeconds,
  family: config.refresh.familyTtlSeconds,
  grace: config.refresh.reuseGraceSeconds,
  auditEveryRotation: config.refresh.auditEveryRotation,
}

/** `concurrency` loops calling op for `seconds`; latencies of completed ops. */
async function closedLoop(seconds: number, concurrency: number, op: (worker: number) => Promise<boolean>): Promise<Sample> {
  const deadline = performance.now() + seconds * 1000
  const latencies: number[] = []
  let failures = 0
  const started = performance.now()
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (performance.now() < deadline) {
        const t0 = performance.now()
        if (await op(worker)) latencies.push(performance.now() - t0)
        else failures++
      }
    }),
  )
  const elapsed = (performance.now() - started) / 1000
  return {
    rps: latencies.length / elapsed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    failures,
    total: latencies.length + failures,
  }
}

let digest: string | undefined
async function argon2(seconds: number, concurrency: number): Promise<Sample> {
  digest ??= await hasher.hash(BENCH_PASSWORD)
  const hash = digest
  return closedLoop(seconds, concurrency, (): Promise<boolean> => hasher.verify(hash, BENCH_PASSWORD))
}

/** One refresh-token chain per loop, started once and rotated for the rest of the run. */
const chains: string[] = []
async function chainFor(i: number): Promise<string> {
  const user = firstUser + (i % userCount)
  const t = newRefreshToken()
  await saveRefreshToken(pool, {
    userId: benchUserId(user),
    tokenHash: t.hash,
    jti: t.jti,
    idleTtlSeconds: policy.idle,
    familyTtlSeconds: policy.family,
  })
  return t.token
}

async function rotate(seconds: number, concurrency: number): Promise<Sample> {
  for (let i = chains.length; i < concurrency; i++) chains.push(await chainFor(i))
  return closedLoop(seconds, concurrency, async (worker) => {
    // What AuthService.refresh does besides HTTP and the JWT: the successor derived from the
    // presented token, its hash, the call.
    const next = deriveRefreshSuccessor(pepper, chains[worker] as string)
    const result = await rotateRefreshToken(pool, {
      tokenHash: hashToken(chains[worker] as string),
      newTokenHash: next.hash,
      newJti: next.jti,
      idleTtlSeconds: policy.idle,
      graceSeconds: policy.grace,
      auditEveryRotation: policy.auditEveryRotation,
      ctx: { ip: '127.0.0.1', userAgent: 'autocannon', requestId: 'bench' },
    })
    if (result.status !== 'rotated') {
      chains[worker] = await chainFor(worker)
      return false
    }
    chains[worker] = next.token
    return true
  })
}

process.on('message', (message: { cmd: string; seconds: number; concurrency: number }) => {
  const run = message.cmd === 'argon2' ? argon2 : message.cmd === 'rotate' ? rotate : undefined
  if (run === undefined) {
    process.send?.({ ok: false, error: `unknown command ${message.cmd}` })
    return
  }
  run(message.seconds, message.concurrency).then(
    (value) => process.send?.({ ok: true, value }),
    (err: unknown) => process.send?.({ ok: false, error: err instanceof Error ? err.message : String(err) }),
  )
})
process.on('disconnect', () => {
  void pool.end().finally(() => process.exit(0))
})
process.on('SIGTERM', () => {
  void pool.end().finally(() => process.exit(0))
})
process.send?.({ ready: true })
