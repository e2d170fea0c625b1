// `npm run bench`: every figure as a ratio against a ceiling measured in the same
// run, one table on stdout, the same rows in bench/results/latest.json.
// docs/performance.md explains each ceiling and the latest numbers.
//
//   npm run bench                         the full run (about 15 minutes on 2 cores)
//   npm run bench -- --quick              short runs, 100k users / 500k tokens for growth
//   npm run bench -- --only=http,login    a subset: http, pair, login, growth, rss, startup, peer, enum, revoke
//   npm run bench -- --smoke              what `npm test` runs (test/bench/smoke.test.ts)
//   npm run bench -- --json=/tmp/out.json write the results elsewhere
// Env: BENCH_DATABASE_URL (a superuser URL: use that server instead of an embedded
// cluster), BENCH_ONLY, BENCH_SECONDS, BENCH_REPEATS, BENCH_WARMUP, BENCH_CONNECTIONS,
// BENCH_USERS, BENCH_LARGE_USERS, BENCH_LARGE_TOKENS, BENCH_RSS_SECONDS,
// BENCH_LOG_LEVEL (service log level, default info), BENCH_NO_PIN, BENCH_ENUM_PAIRS,
// BENCH_PG_CORE=load (the embedded PostgreSQL on the load generator's core, not free to
// run on the server core: what the refresh row reaches when the service has its core alone).
//
// Layout: bench/lib/options.ts (flags and profiles), bench/lib/report.ts (rows and
// the table), bench/lib/chains.ts + runners.ts (the loads), bench/lib/servers.ts
// (the processes measured), one file per section in bench/sections/.
// bench/statements.ts and bench/seed-large.ts are standalone tools.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { createPasswordHasher } from '../src/auth/passwords.ts'
import { loadConfig } from '../src/config.ts'
import { Chains, spread } from './lib/chains.ts'
import type { Context } from './lib/context.ts'
import { preparedDatabase, startBenchServer, type BenchServer } from './lib/database.ts'
import { log, options } from './lib/options.ts'
import { canPin, pinSelf } from './lib/proc.ts'
import { rows, table } from './lib/report.ts'
import { BENCH_PASSWORD, seed } from './lib/seed.ts'
import { baseEnv, startService, type Running } from './lib/servers.ts'
import { enumSection } from './sections/enum.ts'
import { growthSection } from './sections/growth.ts'
import { httpSection } from './sections/http.ts'
import { loginSection } from './sections/login.ts'
import { pairSection } from './sections/pair.ts'
import { peerSection } from './sections/peer.ts'
import { revokeSection } from './sections/revoke.ts'
import { rssSection } from './sections/rss.ts'
import { startupSection } from './sections/startup.ts'

async function main(): Promise<void> {
  const startedAt = new Date()
  const prepared = preparedDatabase()
  const server = prepared ? undefined : await startBenchServer(log)
  // After the database server has started (it keeps both cores): the load generator takes its own.
  pinSelf()
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'activity-auth-bench-data-'))
  let service: Running | undefined
  let pool: pg.Pool | undefined
  try {
    log(
      `${server?.description ?? 'prepared database'}; profile ${options.profile}; sections ${[...options.sections].join(', ')}; pinning ${canPin() ? 'on (load core 0, servers core 1)' : 'off'}`,
    )
    const small = prepared ?? (await (server as BenchServer).createDatabase('small'))
    // The only configuration the bench process reads: the argon2 and refresh-token
    // settings the servers it starts get too (bench/lib/servers.ts passes them through).
    const config = loadConfig({ ...baseEnv(), NODE_ENV: 'development' })
    const hasher = createPasswordHasher(config.argon2)
    const tokenTtl = { idleTtlSeconds: config.refresh.ttlSeconds, familyTtlSeconds: config.refresh.familyTtlSeconds }
    const passwordHash = await hasher.hash(BENCH_PASSWORD)
    await seed(small.adminUrl, { users: options.users, tokens: options.users * 5, passwordHash, log })
    pool = new pg.Pool({ connectionString: small.serviceUrl, max: 4 })
    pool.on('error', () => undefined)
    service = await startService(small, dataDir)
    const chains = new Chains(pool, spread(options.users, options.connections), tokenTtl)
    await chains.fill(options.connections)
    const ctx: Context = { small, server, dataDir, hasher, tokenTtl, passwordHash, pool, chains, service, ours: {} }

    if (options.sections.has('http')) await httpSection(ctx)
    if (options.sections.has('pair')) await pairSection(ctx)
    if (options.sections.has('login')) await loginSection(ctx)
    if (options.sections.has('peer')) await peerSection(ctx)
    if (options.sections.has('growth')) await growthSection(ctx)
    // Before enum: its wrong-password logins all come from this one address and put it
    // under the per-address lockout, so revoke's logins after it would get 429.
    if (options.sections.has('revoke')) await revokeSection(ctx)
    if (options.sections.has('enum')) await enumSection(ctx)
    await service.child.stop()
    service = undefined
    if (options.sections.has('rss')) await rssSection(ctx)
    if (options.sections.has('startup')) await startupSection()
  } finally {
    await service?.child.stop()
    await pool?.end()
    await server?.stop()
    await rm(dataDir, { recursive: true, force: true })
  }

  console.log(table())
  const result = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: {
      cpus: os.cpus().length,
      model: os.cpus()[0]?.model ?? '?',
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
    },
    database: server?.description ?? 'prepared database',
    options: { ...options, sections: [...options.sections], pinned: canPin() },
    rows,
  }
  await mkdir(path.dirname(options.jsonPath), { recursive: true })
  await writeFile(options.jsonPath, `${JSON.stringify(result, null, 2)}\n`)
  log(`written ${path.relative(process.cwd(), options.jsonPath)}`)
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    // What was measured before the failure is not lost with it.
    if (rows.length > 0) console.log(table())
    console.error(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
    process.exit(1)
  },
)
