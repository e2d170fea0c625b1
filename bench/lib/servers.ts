// The processes the bench measures: our service (compiled: dist/server.js), the bare
// Fastify ceiling (bench/servers/bare.ts) and the ceiling worker
// (bench/servers/ceiling-worker.ts), each with the same environment.
import { spawnSync } from 'node:child_process'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { projectPath } from '../../src/paths.ts'
import type { BenchDatabase } from './database.ts'
import { freePort } from './net.ts'
import { nodeArgs, startChild, waitForHttp, type Child } from './proc.ts'

const keyPem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
const refreshPepper = randomBytes(48).toString('base64url')
const mfaKey = randomBytes(32).toString('base64')
const secret = () => randomBytes(12).toString('base64url')
const rolePasswords = { AUTH_API_DB_PASSWORD: secret(), WRITE_API_DB_PASSWORD: secret(), READONLY_DB_PASSWORD: secret() }

/** Settings an operator may tune that the bench passes through to every server process alike. */
const PASSED_THROUGH =
  /^(ARGON2_|DATABASE_POOL_|DATABASE_IDLE_|REFRESH_|ACCESS_TOKEN_|UV_THREADPOOL_SIZE$|MALLOC_ARENA_MAX$|MALLOC_MMAP_THRESHOLD_$|GLIBC_TUNABLES$|NODE_OPTIONS$|PATH$|HOME$|LANG$|TMPDIR$)/

export function baseEnv(): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => PASSED_THROUGH.test(k)))
}

/**
 * The service's environment in the bench: production mode (so nothing runs on
 * development defaults), a real Ed25519 key, rate limiting off (a load generator
 * from one IP would only measure 429s), migrations already applied, and the
 * default log level (one JSON line per request, written to /dev/null).
 */
function serviceEnv(db: BenchDatabase, port: number, dataDir: string): Record<string, string | undefined> {
  return {
    ...baseEnv(),
    NODE_ENV: 'production',
    // As the image sets it (Dockerfile): one malloc arena, so libuv's threads do not each keep a freed argon2 buffer.
    MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '1',
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
    HOST: '127.0.0.1',
    PORT: String(port),
    DATABASE_URL: db.serviceUrl,
    RUN_MIGRATIONS: 'false',
    RATE_LIMIT_ENABLED: 'false',
    JWT_PRIVATE_KEY: keyPem,
    REFRESH_TOKEN_PEPPER: refreshPepper,
    MFA_ENCRYPTION_KEY: mfaKey,
    // Never contacted: no route the bench drives sends mail.
    SMTP_URL: 'smtp://127.0.0.1:9',
    // Production refuses a plain-http or localhost APP_URL; no link is ever mailed here.
    APP_URL: 'https://activity-auth.bench.invalid',
    DATA_DIR: dataDir,
    ...rolePasswords,
  }
}

export interface Running {
  child: Child
  url: string
}

let built = false

/**
 * The production build (`npm run build`: tsc to dist/), made once per bench run: the
 * service is measured as the image runs it, plain node without a TypeScript loader.
 */
export function ensureBuilt(): void {
  if (built) return
  const tsc = spawnSync(process.execPath, [projectPath('node_modules/typescript/bin/tsc'), '-p', projectPath('tsconfig.build.json')], {
    encoding: 'utf8',
  })
  if (tsc.status !== 0) throw new Error(`npm run build failed: ${tsc.stdout}${tsc.stderr}`)
  built = true
}

/** Node arguments for the compiled service, as the image's CMD runs it. */
export function serviceArgs(): string[] {
  ensureBuilt()
  // BENCH_CPU_PROF=<dir>: each service process writes a V8 CPU profile there when it
  // exits (open it in Chrome DevTools); NODE_OPTIONS cannot carry --cpu-prof.
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []
  return [...profile, '--enable-source-maps', projectPath('dist/server.js')]
}

/**
 * The V8 flags the image sets in NODE_OPTIONS (Dockerfile), so the service is measured
 * with the heap limits it runs with; NODE_OPTIONS in the bench's environment wins.
 */
export function imageNodeOptions(): string {
  const options = /^\s*NODE_OPTIONS="([^"]*)"/m.exec(readFileSync(projectPath('Dockerfile'), 'utf8'))?.[1]
  if (options === undefined) throw new Error('Dockerfile: no NODE_OPTIONS="..." line')
  return options
}

export async function startService(db: BenchDatabase, dataDir: string, env: Record<string, string> = {}): Promise<Running> {
  const port = await freePort()
  const nodeOptions = process.env.NODE_OPTIONS ?? imageNodeOptions()
  const child = startChild(serviceArgs(), { env: { ...serviceEnv(db, port, dataDir), NODE_OPTIONS: nodeOptions, ...env } })
  const url = `http://127.0.0.1:${port}`
  await waitForHttp(child, `${url}/api/health/ready`)
  return { child, url }
}

export async function startBare(db: BenchDatabase, dataDir: string, meBody: string): Promise<Running> {
  const port = await freePort()
  const child = startChild(nodeArgs('bench/servers/bare.ts'), { env: { ...serviceEnv(db, port, dataDir), BENCH_ME_BODY: meBody } })
  const url = `http://127.0.0.1:${port}`
  await waitForHttp(child, `${url}/api/health/live`)
  return { child, url }
}

export async function startCeilingWorker(db: BenchDatabase, dataDir: string, users: string): Promise<Child> {
  const child = startChild(nodeArgs('bench/servers/ceiling-worker.ts'), {
    env: { ...serviceEnv(db, 0, dataDir), BENCH_CEILING_USERS: users },
    ipc: true,
  })
  await new Promise<void>((resolve, reject) => {
    child.proc.once('message', () => resolve())
    child.proc.once('exit', () => reject(new Error(`ceiling worker exited:\n${child.tail()}`)))
  })
  return child
}
