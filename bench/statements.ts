// `npx tsx bench/statements.ts`: what DATABASE_STATEMENT_CACHE costs. A hot
// procedure (sp_get_user_by_id, what every GET /me and refresh runs) called through
// src/db/procedures.ts on a pool of the service's own kind, once with named
// (prepared once per connection) and once with unnamed statements, interleaved
// rounds, N calls in flight. Printed as a ratio: unnamed calls/s ÷ named calls/s
// (1.00 = free; 0.95 = unnamed costs 5 %). docs/performance.md keeps the figure
// and the default it chose.
//
// Env: BENCH_DATABASE_URL (a superuser URL; default: an embedded cluster),
// BENCH_SECONDS (per round, default 5), BENCH_REPEATS (rounds, default 3),
// BENCH_CONNECTIONS (pool size and calls in flight, default 10).
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import { createUser, getUserById, setStatementCache } from '../src/db/procedures.ts'
import { startBenchServer } from './lib/database.ts'
import { median } from './lib/load.ts'

const num = (name: string, fallback: number): number => {
  const n = Number(process.env[name])
  return Number.isFinite(n) && n > 0 ? n : fallback
}
const seconds = num('BENCH_SECONDS', 5)
const repeats = num('BENCH_REPEATS', 3)
const inFlight = num('BENCH_CONNECTIONS', 10)

async function rate(pool: pg.Pool, ids: string[], secs: number): Promise<number> {
  const end = performance.now() + secs * 1000
  let calls = 0
  const worker = async (w: number): Promise<void> => {
    for (let i = w; performance.now() < end; i += inFlight) {
      await getUserById(pool, { userId: ids[i % ids.length] as string })
      calls++
    }
  }
  const started = performance.now()
  await Promise.all(Array.from({ length: inFlight }, (_, w) => worker(w)))
  return calls / ((performance.now() - started) / 1000)
}

const server = await startBenchServer((line) => console.error(`# ${line}`))
try {
  const db = await server.createDatabase('statements')
  const pools = {
    named: new pg.Pool({ connectionString: db.serviceUrl, max: inFlight }),
    unnamed: new pg.Pool({ connectionString: db.serviceUrl, max: inFlight }),
  }
  setStatementCache(pools.named, true)
  setStatementCache(pools.unnamed, false)
  try {
    const ids: string[] = []
    for (let i = 0; i < 200; i++) {
      const user = await createUser(pools.named, {
        email: `bench-stmt-${i}-${randomUUID()}@example.test`,
        hashedPassword: `$argon2id$v=19$m=1024,t=1,p=1$${'A'.repeat(22)}$${'B'.repeat(43)}`,
      })
      ids.push(user.id)
    }
    // Warm both pools (connections open, the named statement prepared on each).
    await rate(pools.named, ids, 1)
    await rate(pools.unnamed, ids, 1)
    const results: Record<'named' | 'unnamed', number[]> = { named: [], unnamed: [] }
    for (let r = 0; r < repeats; r++) {
      // Alternate which goes first, so a drift of the machine falls on both.
      const order = r % 2 === 0 ? (['named', 'unnamed'] as const) : (['unnamed', 'named'] as const)
      for (const kind of order) results[kind].push(await rate(pools[kind], ids, seconds))
    }
    const named = median(results.named)
    const unnamed = median(results.unnamed)
    const ratio = unnamed / named
    console.log(`sp_get_user_by_id calls/s, ${inFlight} in flight, ${repeats} × ${seconds} s (median):`)
    console.log(`  named (DATABASE_STATEMENT_CACHE=on)    ${named.toFixed(0)}`)
    console.log(`  unnamed (DATABASE_STATEMENT_CACHE=off) ${unnamed.toFixed(0)}`)
    console.log(`  ratio unnamed / named                  ${ratio.toFixed(3)}  (cost of unnamed: ${((1 - ratio) * 100).toFixed(1)} %)`)
  } finally {
    await Promise.all([pools.named.end(), pools.unnamed.end()])
  }
} finally {
  await server.stop()
}
