// `docker compose up` without Docker: what the postgres:16 image's entrypoint does
// on an empty volume, then the migrate service, then auth-api — each with the
// environment docker-compose.yml gives it (defaults of .env.example) — and a user
// signing up, verifying, logging in and refreshing over HTTP.
//
// The image, on first start: initdb (superuser POSTGRES_USER / POSTGRES_PASSWORD),
// PGPASSWORD=POSTGRES_PASSWORD, a temporary server, CREATE DATABASE POSTGRES_DB
// (unless it is `postgres`), then every file of /docker-entrypoint-initdb.d in
// sorted order: *.sh executed if executable, sourced otherwise; *.sql through
// `psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc
// --dbname "$POSTGRES_DB"`; anything else ignored. The container environment is
// compose's `environment:` and nothing else, so that is all psql's \getenv sees.
//
// What differs from the containers, and only this: a fresh embedded PostgreSQL 16
// cluster in a temp dir on a free port (TCP instead of the image's unix socket),
// the compose host names mapped to this machine (postgres-db → that cluster,
// redis → 127.0.0.1:6379, mailpit → an in-process SMTP server), /app paths mapped
// to temp dirs, the API's port and rate-limit key prefix made unique to this run.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmod, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { withClient, withDatabase } from '../../src/db/admin-connection.ts'
import { startEmbedded, type EmbeddedCluster } from '../../src/db/embedded.ts'
import { migrationNames } from '../../src/db/migrate.ts'
import { PROJECT_ROOT } from '../../src/paths.ts'
import { nodeArgs } from '../helpers/child.ts'
import { linksIn, readMail, smtpSink } from '../helpers/smtp.ts'
import { hostEnv, loadCompose, nodeEntry, npmRunEntry, runtimeStage, service } from '../helpers/compose.ts'
import { freePort } from '../helpers/net.ts'

interface Ran {
  code: number | null
  stdout: string
  stderr: string
}

function runChild(command: string, args: string[], env: NodeJS.ProcessEnv, input?: string): Ran {
  const r = spawnSync(command, args, { env, input, encoding: 'utf8', cwd: PROJECT_ROOT })
  if (r.error) throw r.error
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

function started(entry: string, args: string[], env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, nodeArgs(entry, ...args), { env, cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr.on('data', (d: Buffer) => (output += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return { child, output: () => output, exited }
}

async function stop(child: ChildProcess, exited: Promise<number | null>): Promise<number | null> {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
  return exited
}

/**
 * The image's docker_process_sql, docker_setup_db and docker_process_init_files for
 * *.sql files (the only kind db-init/ holds; the test checks that), against a server
 * reached over TCP.
 */
function emulateEntrypoint(initDir: string, initFiles: string[], container: Record<string, string>, port: number) {
  const user = container.POSTGRES_USER ?? 'postgres'
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    ...container,
    PGHOST: '127.0.0.1',
    PGPORT: String(port),
    PGPASSWORD: container.POSTGRES_PASSWORD,
  }
  const processSql = (dbname: string, args: string[], input?: string) =>
    runChild('psql', ['-v', 'ON_ERROR_STOP=1', '--username', user, '--no-password', '--no-psqlrc', '--dbname', dbname, ...args], env, input)
  const log: { file: string; result: Ran }[] = []
  const db = container.POSTGRES_DB ?? user
  if (db !== 'postgres') {
    const exists = processSql('postgres', ['--set', `db=${db}`, '--tuples-only'], "SELECT 1 FROM pg_database WHERE datname = :'db' ;")
    log.push({ file: '(docker_setup_db check)', result: exists })
    if (exists.stdout.trim() === '') {
      log.push({ file: '(docker_setup_db)', result: processSql('postgres', ['--set', `db=${db}`], 'CREATE DATABASE :"db" ;') })
    }
  }
  for (const name of initFiles) {
    log.push({ file: name, result: processSql(db, ['-f', path.join(initDir, name)]) })
    // The entrypoint runs under `set -e`: the first failure ends the container.
    if (log.at(-1)?.result.code !== 0) break
  }
  return log
}

t.test('docker compose up, emulated: postgres entrypoint → migrate → auth-api → signup, login, refresh', async (t) => {
  const compose = loadCompose()
  const db = service(compose, 'postgres-db')
  const migrateService = service(compose, 'migrate')
  const api = service(compose, 'auth-api')
  const image = runtimeStage()

  // --- postgres-db: the mounted init directory and the server flags, from the compose file.
  const initMount = (db.volumes ?? []).map((v) => v.split(':')).find((v) => v[1] === '/docker-entrypoint-initdb.d')
  t.ok(initMount, 'db-init is mounted')
  const initDir = path.resolve(PROJECT_ROOT, initMount?.[0] ?? 'missing')
  const command = Array.isArray(db.command) ? db.command : []
  const settings: Record<string, string> = {}
  for (let i = 1; i < command.length; i += 2) {
    const [k = '', v = ''] = (command[i + 1] ?? '').split('=')
    settings[k] = v
  }
  const container = db.environment ?? {}
  t.equal(container.POSTGRES_USER, 'postgres', 'the embedded cluster has the same superuser')

  const tmp = await mkdtemp(path.join(os.tmpdir(), 'activity-auth-compose-'))
  // As root the server runs as `postgres`, which must traverse into the data dir.
  await chmod(tmp, 0o711)
  const children: { child: ChildProcess; exited: Promise<number | null> }[] = []
  const state: { cluster?: EmbeddedCluster } = {}
  t.teardown(async () => {
    for (const c of children) await stop(c.child, c.exited)
    await state.cluster?.stop()
    await rm(tmp, { recursive: true, force: true })
  })

  const pgPort = await freePort()
  const cluster = await startEmbedded({ dataDir: path.join(tmp, 'postgres'), port: pgPort, settings })
  state.cluster = cluster
  t.ok(cluster.startedHere, 'a brand-new cluster')
  // initdb --pwfile=<(echo "$POSTGRES_PASSWORD") in the image.
  await withClient(cluster.adminUrl, async (c) => {
    await c.query(`ALTER ROLE postgres PASSWORD ${c.escapeLiteral(container.POSTGRES_PASSWORD ?? '')}`)
    const shown = await c.query<{ name: string; setting: string }>(
      `SELECT name, current_setting(name) AS setting FROM unnest($1::text[]) AS name ORDER BY 1`,
      [Object.keys(settings)],
    )
    t.same(Object.fromEntries(shown.rows.map((r) => [r.name, r.setting])), settings, 'the seed-000 flags are valid PostgreSQL 16 settings')
  })

  const files = (await readdir(initDir)).sort()
  t.ok(files.length > 0)
  // The image also sources *.sh and ignores anything else; this test runs *.sql only.
  t.same(
    files.filter((f) => !f.endsWith('.sql')),
    [],
    'db-init/ holds only *.sql files, each run by the image',
  )
  const log = emulateEntrypoint(initDir, files, container, pgPort)
  for (const step of log) {
    t.equal(step.result.code, 0, `${step.file} (psql)`, { stderr: step.result.stderr })
    t.notMatch(step.result.stderr, /ERROR|FATAL/, `${step.file}: no error`)
  }
  t.same(
    log.filter((s) => !s.file.startsWith('(')).map((s) => s.file),
    files,
    'all files ran, in order',
  )

  const database = container.POSTGRES_DB ?? ''
  const superUrl = `postgresql://postgres:${encodeURIComponent(container.POSTGRES_PASSWORD ?? '')}@127.0.0.1:${pgPort}/${database}`
  for (const [role, key] of [
    ['auth_api_user', 'AUTH_API_DB_PASSWORD'],
    ['write_api_user', 'WRITE_API_DB_PASSWORD'],
    ['activity_readonly', 'READONLY_DB_PASSWORD'],
  ] as const) {
    const url = `postgresql://${role}:${encodeURIComponent(container[key] ?? '')}@127.0.0.1:${pgPort}/${database}`
    const who = await withClient(url, async (c) => (await c.query<{ u: string }>('SELECT current_user AS u')).rows[0]?.u)
    t.equal(who, role, `${role} logs in with compose's ${key}`)
  }

  // --- the services' environment: Dockerfile ENV, then compose's, host names mapped.
  const smtp = await smtpSink(t)
  const paths = { '/app/.data': path.join(tmp, 'data'), '/app/backups': path.join(tmp, 'backups') }
  for (const dir of Object.values(paths)) await mkdir(dir, { recursive: true })
  const toHost = (value: string): string => {
    let v = value
      .replace('@postgres-db:5432/', `@127.0.0.1:${pgPort}/`)
      .replace('redis://redis:6379', 'redis://127.0.0.1:6379')
      .replace('smtp://mailpit:1025', smtp.url)
    for (const [from, to] of Object.entries(paths)) if (v === from) v = to
    return v
  }
  const envFor = (serviceEnv: Record<string, string>): NodeJS.ProcessEnv => {
    const merged: Record<string, string> = { ...Object.fromEntries(image.env), ...serviceEnv }
    const mapped = Object.fromEntries(Object.entries(merged).map(([k, v]) => [k, toHost(v)]))
    for (const [k, v] of Object.entries(mapped)) {
      t.notMatch(v, /postgres-db|redis:\/\/redis|mailpit|^\/app\//, `${k}: every host name and path is mapped`)
    }
    return { ...hostEnv(), ...mapped }
  }

  // --- migrate: `npm run db -- migrate`, the package script's entry under the test loader.
  const migrateCommand = npmRunEntry(migrateService.command as string[])
  const migrateEnv = envFor(migrateService.environment ?? {})
  const names = await migrationNames()
  const first = started(migrateCommand.entry, migrateCommand.args, migrateEnv)
  children.push(first)
  t.equal(await first.exited, 0, 'migrate exits 0 (service_completed_successfully)', { output: first.output() })
  t.match(first.output(), `applied: ${names.join(', ')}`)
  t.notMatch(first.output(), /backup/, 'a brand-new database needs no backup (and no pg_dump)')
  t.same(await readdir(paths['/app/backups']), [], 'nothing written to the backups volume')
  const again = started(migrateCommand.entry, migrateCommand.args, migrateEnv)
  children.push(again)
  t.equal(await again.exited, 0, 'the next `docker compose up` runs it again')
  t.match(again.output(), 'nothing to migrate')

  // --- auth-api: the image's CMD with compose's environment.
  // The image's CMD runs the compiled service: build it as the image's build stage does.
  const cmd = nodeEntry(image.cmd ?? [])
  const built = runChild(
    process.execPath,
    [path.join(PROJECT_ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
    hostEnv(),
  )
  t.equal(built.code, 0, 'npm run build compiles the service', { output: built.stdout + built.stderr })
  const apiPort = await freePort()
  const apiEnv = envFor(api.environment ?? {})
  apiEnv.PORT = String(apiPort)
  apiEnv.RATE_LIMIT_REDIS_PREFIX = `${apiEnv.RATE_LIMIT_REDIS_PREFIX ?? ''}packaging-${randomBytes(4).toString('hex')}:`
  t.match(apiEnv.DATABASE_URL, /^postgresql:\/\/auth_api_user:/, 'DATABASE_URL for auth_api_user')
  const server = started(cmd.entry, cmd.args, apiEnv)
  children.push(server)
  const base = `http://127.0.0.1:${apiPort}`
  let ready: Response | undefined
  for (const deadline = Date.now() + 90_000; ready === undefined && Date.now() < deadline;) {
    if (server.child.exitCode !== null) break
    try {
      const res = await fetch(`${base}/api/health/ready`)
      if (res.status === 200) ready = res
    } catch {
      // not listening yet
    }
    if (ready === undefined) await new Promise((r) => setTimeout(r, 200))
  }
  if (ready === undefined) {
    t.fail('auth-api became ready', { output: server.output() })
    return
  }
  t.same(await ready.json(), { status: 'ready', database: 'up', pendingMigrations: [] })

  // The healthchecks, compose's and the image's, as Docker would run them.
  const composeCheck = api.healthcheck?.test ?? []
  t.equal(composeCheck[0], 'CMD')
  const [bin = '', ...checkArgs] = composeCheck.slice(1).map((a) => a.replace('127.0.0.1:8000', `127.0.0.1:${apiPort}`))
  t.equal(runChild(bin === 'node' ? process.execPath : bin, checkArgs, hostEnv()).code, 0, 'compose healthcheck passes')
  const imageCheck = image.healthcheck ?? []
  t.equal(imageCheck[0], 'node')
  t.equal(runChild(process.execPath, imageCheck.slice(1), { ...hostEnv(), PORT: String(apiPort) }).code, 0, 'Dockerfile HEALTHCHECK passes')

  // --- a user: signup → verification mail → verify → login → refresh.
  const post = (route: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base}${route}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  const email = `compose-${randomBytes(4).toString('hex')}@example.com`
  const password = 'a long passphrase'
  t.equal((await post('/api/auth/signup', { email, password })).status, 202)
  let token: string | undefined
  for (const deadline = Date.now() + 30_000; token === undefined && Date.now() < deadline;) {
    const mail = smtp.delivered.find((d) => d.rcptTo.includes(email))
    const link = mail === undefined ? undefined : linksIn(readMail(mail.raw).text).find((l) => l.includes('token='))
    if (link !== undefined) {
      t.match(link, `${apiEnv.APP_URL ?? ''}/verify-email?token=`, 'the link points at APP_URL')
      token = new URL(link).searchParams.get('token') ?? undefined
    } else await new Promise((r) => setTimeout(r, 100))
  }
  if (token === undefined) {
    t.fail('verification mail arrived (compose: Mailpit)', { output: server.output() })
    return
  }
  t.equal((await post('/api/auth/verify-email', { token })).status, 200)
  const login = await post('/api/auth/login', { email, password })
  t.equal(login.status, 200)
  const tokens = (await login.json()) as { accessToken: string; refreshToken: string; tokenType: string }
  t.equal(tokens.tokenType, 'Bearer')
  const me = await fetch(`${base}/api/auth/me`, { headers: { authorization: `Bearer ${tokens.accessToken}` } })
  t.equal(me.status, 200)
  t.match(await me.json(), { email, isVerified: true })
  const refreshed = await post('/api/auth/refresh', { refreshToken: tokens.refreshToken })
  t.equal(refreshed.status, 200)
  const pair = (await refreshed.json()) as { accessToken: string; refreshToken: string }
  t.not(pair.refreshToken, tokens.refreshToken, 'a new refresh token')
  t.ok(pair.accessToken.split('.').length === 3, 'a new access token (JWT)')

  // The API holds connections as auth_api_user only.
  const users = await withClient(withDatabase(superUrl, database), async (c) =>
    (
      await c.query<{ usename: string }>(
        `SELECT DISTINCT usename FROM pg_stat_activity
          WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()`,
      )
    ).rows.map((r) => r.usename),
  )
  t.same(users, ['auth_api_user'], 'the service connects as auth_api_user')

  t.equal(await stop(server.child, server.exited), 0, 'SIGTERM: clean exit')
})
