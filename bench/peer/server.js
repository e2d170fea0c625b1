// better-auth beside activity-auth: email + password, its Kysely/pg adapter on a
// pg Pool (its documented `database: new Pool(...)`), its defaults otherwise.
// Plain JavaScript on purpose: better-auth lives in this package's own
// node_modules (bench/peer), so the root typecheck does not depend on it.
//
// Two instances share one database and secret:
//   /api/auth/*      better-auth's defaults (sign-in, get-session: a session is
//                    extended at most once a day, updateAge 86400)
//   /api/auth-upd/*  the same with session.updateAge = 0, so every get-session
//                    extends the session (an UPDATE and a new cookie): the
//                    closest equivalent of our refresh-token rotation.
// Rate limiting is off, as it is for our service in the bench (better-auth turns
// it on by default in production only).
//
// Env: PORT, DATABASE_URL, BETTER_AUTH_SECRET, BENCH_PEER_USERS (seeded with
// password BENCH_PASSWORD, the same emails as our bench users).
import http from 'node:http'
import { betterAuth } from 'better-auth'
import { hashPassword } from 'better-auth/crypto'
import { getMigrations } from 'better-auth/db/migration'
import { toNodeHandler } from 'better-auth/node'
import pg from 'pg'

const port = Number(process.env.PORT ?? 8100)
const baseURL = `http://127.0.0.1:${port}`
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL })
pool.on('error', () => undefined)

const common = {
  database: pool,
  baseURL,
  secret: process.env.BETTER_AUTH_SECRET,
  emailAndPassword: { enabled: true },
  rateLimit: { enabled: false },
  telemetry: { enabled: false },
}
const auth = betterAuth(common)
const updating = betterAuth({ ...common, basePath: '/api/auth-upd', session: { updateAge: 0 } })

const { runMigrations } = await getMigrations(auth.options)
await runMigrations()

const users = Number(process.env.BENCH_PEER_USERS ?? 0)
if (users > 0) {
  // One scrypt hash made by better-auth itself, shared by every seeded account.
  const hash = await hashPassword(process.env.BENCH_PASSWORD ?? 'correct horse battery staple')
  await pool.query(`TRUNCATE "session", "account", "user" CASCADE`)
  await pool.query(
    `INSERT INTO "user" (id, name, email, "emailVerified", "createdAt", "updatedAt")
     SELECT 'u' || g, 'Bench ' || g, 'bench-' || g || '@bench.example', true, now(), now() FROM generate_series(0, $1::int - 1) g`,
    [users],
  )
  await pool.query(
    `INSERT INTO "account" (id, "accountId", "providerId", "userId", password, "createdAt", "updatedAt")
     SELECT 'a' || g, 'u' || g, 'credential', 'u' || g, $2, now(), now() FROM generate_series(0, $1::int - 1) g`,
    [users, hash],
  )
  await pool.query(`ANALYZE "user"; ANALYZE "account"`)
}

const handleDefault = toNodeHandler(auth)
const handleUpdating = toNodeHandler(updating)
const server = http.createServer((req, res) => {
  if (req.url === '/live') {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}')
    return
  }
  if (req.url?.startsWith('/api/auth-upd/')) {
    void handleUpdating(req, res)
    return
  }
  void handleDefault(req, res)
})
server.listen(port, '127.0.0.1')

process.on('SIGTERM', () => {
  server.close()
  void pool.end().finally(() => process.exit(0))
})
