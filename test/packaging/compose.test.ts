// docker-compose.yml, Dockerfile, .dockerignore and .env.example, read the way
// Docker reads them (no Docker engine here): the services, images, ports, mounts,
// healthchecks and start order the seeds describe, and every value from .env with
// the defaults of .env.example.
import { existsSync, readFileSync } from 'node:fs'
import t from 'tap'
import { EnvSchema, loadConfig } from '../../src/config.ts'
import { projectPath } from '../../src/paths.ts'
import { imageNodeOptions } from '../../bench/lib/servers.ts'
import {
  interpolate,
  loadCompose,
  nodeEntry,
  npmRunEntry,
  readDockerfile,
  readEnvExample,
  runtimeStage,
  service,
  type VariableUse,
  sourceOf,
} from '../helpers/compose.ts'

const example = readEnvExample()
const compose = loadCompose(example)

/** "127.0.0.1:5441:5432" → { host: '127.0.0.1', published: '5441', target: '5432' } */
function port(spec: string) {
  const parts = spec.split(':')
  const target = parts.pop() ?? ''
  const published = parts.pop() ?? ''
  return { host: parts[0], published, target }
}

function volume(spec: string) {
  const [source = '', target = '', mode] = spec.split(':')
  return { source, target, mode }
}

t.test('interpolation follows compose for the forms docker-compose.yml uses, and refuses the others', async (t) => {
  const env = new Map([
    ['SET', 'x'],
    ['EMPTY', ''],
  ])
  t.equal(interpolate('${SET:-d}|${EMPTY:-d}|${UNSET:-d}|$${SET}', env), 'x|d|d|${SET}')
  for (const other of ['${SET}', '${SET-d}', '${SET:?msg}', '$SET', '${UNSET:-a${SET}b}']) {
    t.throws(() => interpolate(other, env), /only \$\$ and/, other)
  }
})

t.test('the five services and their images', async (t) => {
  const plain = Object.entries(compose.services)
    .filter(([, s]) => s.profiles === undefined)
    .map(([name]) => name)
  t.same(plain.sort(), ['auth-api', 'mailpit', 'migrate', 'postgres-db', 'redis'], '`docker compose up` starts these five')
  t.equal(service(compose, 'postgres-db').image, 'postgres:16-alpine')
  t.match(service(compose, 'redis').image, /^redis:\d+(\.\d+)*-alpine$/)
  t.match(service(compose, 'mailpit').image, /^axllent\/mailpit:v\d+\.\d+\.\d+$/, 'mailpit pinned to a release')
  const app = service(compose, 'auth-api')
  const migrate = service(compose, 'migrate')
  t.equal(app.image, 'activity-auth:local', 'the locally built image')
  t.equal(migrate.image, app.image, 'migrate runs the app image')
  t.same(app.build, { context: '.', dockerfile: 'Dockerfile' })
  t.same(migrate.build, app.build)
  for (const [name, s] of Object.entries(compose.services)) {
    t.notMatch(s.image ?? '', /:latest$|^[^:]+$/, `${name}: a pinned tag, not latest`)
  }
})

t.test('postgres-db: seed 003 name, port, volume, db-init mount, healthcheck, seed 000 settings', async (t) => {
  const db = service(compose, 'postgres-db')
  t.equal(db.container_name, 'activity-postgres-db')
  t.same(db.ports?.map(port), [{ host: '127.0.0.1', published: '5441', target: '5432' }])
  const mounts = (db.volumes ?? []).map(volume)
  const data = mounts.find((m) => m.target === '/var/lib/postgresql/data')
  t.ok(data !== undefined && Object.keys(compose.volumes ?? {}).includes(data.source), 'data in a declared named volume')
  t.same(
    mounts.find((m) => m.target === '/docker-entrypoint-initdb.d'),
    {
      source: './db-init',
      target: '/docker-entrypoint-initdb.d',
      mode: 'ro',
    },
  )
  t.same(
    db.environment,
    {
      POSTGRES_USER: 'postgres',
      POSTGRES_PASSWORD: example.get('POSTGRES_SUPERUSER_PASSWORD'),
      POSTGRES_DB: 'activitydb',
      AUTH_API_DB_PASSWORD: example.get('AUTH_API_DB_PASSWORD'),
      WRITE_API_DB_PASSWORD: example.get('WRITE_API_DB_PASSWORD'),
      READONLY_DB_PASSWORD: example.get('READONLY_DB_PASSWORD'),
    },
    'the image variables and every variable db-init/ reads with \\getenv',
  )
  for (const file of ['01-roles-and-database.sql', '02-schema-and-privileges.sql']) {
    const sql = readFileSync(projectPath('db-init', file), 'utf8')
    for (const m of sql.matchAll(/^\\getenv\s+\w+\s+(\w+)/gm)) {
      t.ok(m[1] !== undefined && db.environment?.[m[1]] !== undefined, `${file} reads ${m[1] ?? ''}: compose passes it`)
    }
  }
  const health = db.healthcheck?.test.join(' ') ?? ''
  t.match(health, /pg_isready/)
  t.match(health, /-h 127\.0\.0\.1/, 'over TCP, so it stays unhealthy while db-init/ runs on the socket-only server')
  t.match(health, /-U postgres/)
  t.ok((db.healthcheck?.retries ?? 0) > 0 && db.healthcheck?.interval !== undefined)

  const command = Array.isArray(db.command) ? db.command : []
  t.equal(command[0], 'postgres')
  const flags: Record<string, string> = {}
  for (let i = 1; i < command.length; i += 2) {
    t.equal(command[i], '-c')
    const [k = '', v = ''] = (command[i + 1] ?? '').split('=')
    flags[k] = v
  }
  t.same(flags, {
    shared_buffers: '256MB',
    effective_cache_size: '1GB',
    maintenance_work_mem: '64MB',
    wal_buffers: '16MB',
    max_connections: '100',
  })
  t.ok(db.deploy?.resources?.limits?.memory !== undefined && db.deploy.resources.limits.cpus !== undefined, 'resource limits')
})

t.test('migrate: one shot of `npm run db -- migrate` as superuser, after a healthy database', async (t) => {
  const migrate = service(compose, 'migrate')
  t.same(migrate.command, ['npm', 'run', 'db', '--', 'migrate'])
  t.same(npmRunEntry(migrate.command as string[]), { entry: 'src/cli/db.ts', args: ['migrate'] })
  t.same(migrate.depends_on, { 'postgres-db': { condition: 'service_healthy' } })
  t.equal(migrate.restart, 'no')
  const env = migrate.environment ?? {}
  const admin = new URL(env.DATABASE_ADMIN_URL ?? '')
  t.same(
    [admin.username, admin.password, admin.host, admin.pathname],
    ['postgres', example.get('POSTGRES_SUPERUSER_PASSWORD'), 'postgres-db:5432', '/activitydb'],
  )
  const backups = (migrate.volumes ?? []).map(volume).find((v) => v.target === env.BACKUP_DIR)
  t.ok(backups !== undefined && Object.keys(compose.volumes ?? {}).includes(backups.source), 'BACKUP_DIR is a named volume')
  t.equal(runtimeStage().env.get('BACKUP_DIR'), env.BACKUP_DIR, 'the image default agrees')
  const config = loadConfig(env)
  t.equal(config.database.adminUrl, env.DATABASE_ADMIN_URL, 'the CLI accepts the environment')
})

t.test('auth-api: port 8000, waits for the database and the finished migration, ready healthcheck', async (t) => {
  const app = service(compose, 'auth-api')
  t.same(app.ports?.map(port), [{ host: undefined, published: '8000', target: '8000' }])
  t.same(app.depends_on?.['postgres-db'], { condition: 'service_healthy' })
  t.same(app.depends_on?.migrate, { condition: 'service_completed_successfully' })
  t.same(app.depends_on?.redis, { condition: 'service_healthy' })
  t.ok(app.depends_on?.mailpit !== undefined)
  const health = app.healthcheck?.test.join(' ') ?? ''
  t.match(health, /http:\/\/127\.0\.0\.1:8000\/api\/health\/ready/)
  t.match(health, /status === 200/)
  const env = app.environment ?? {}
  t.equal(env.PORT, '8000')
  t.equal(env.RUN_MIGRATIONS, 'false', 'the migrate service migrates')
  t.notOk('DATABASE_ADMIN_URL' in env, 'no superuser credentials in the API')
  const url = new URL(env.DATABASE_URL ?? '')
  t.same(
    [url.username, url.password, url.host, url.pathname],
    ['auth_api_user', 'auth_api_dev_password', 'postgres-db:5432', '/activitydb'],
  )
  t.equal(env.SMTP_URL, 'smtp://mailpit:1025', 'mail goes to mailpit')
  t.equal(env.REDIS_URL, 'redis://redis:6379', 'rate limits shared in redis')
  const config = loadConfig(env)
  t.equal(config.database.embedded, false)
  t.equal(config.database.runMigrations, false)
  const data = (app.volumes ?? []).map(volume).find((v) => v.target === runtimeStage().env.get('DATA_DIR'))
  t.ok(data !== undefined && Object.keys(compose.volumes ?? {}).includes(data.source), 'DATA_DIR (dev signing key) in a named volume')
})

t.test('redis and mailpit', async (t) => {
  const redis = service(compose, 'redis')
  t.match(redis.healthcheck?.test.join(' '), /redis-cli ping/)
  const mailpit = service(compose, 'mailpit')
  t.same(
    mailpit.ports
      ?.map(port)
      .map((p) => p.target)
      .sort(),
    ['1025', '8025'],
    'SMTP and web UI',
  )
  t.same(
    mailpit.ports
      ?.map(port)
      .map((p) => p.published)
      .sort(),
    ['1025', '8025'],
  )
})

t.test('network activity-network, joinable by name', async (t) => {
  t.same(compose.networks?.['activity-network'], { name: 'activity-network', driver: 'bridge' })
  for (const [name, s] of Object.entries(compose.services)) t.same(s.networks, ['activity-network'], `${name} on it`)
})

t.test('every ${VAR} is in .env.example, with its default', async (t) => {
  // ${VAR:-default} is the only form interpolate accepts: the stack starts without a .env.
  const seen: VariableUse[] = []
  loadCompose(example, seen)
  const names = [...new Set(seen.map((s) => s.name))].sort()
  t.ok(names.length > 20)
  for (const use of seen) {
    t.ok(example.has(use.name), `${use.name} is in .env.example`)
    const value = example.get(use.name)
    if (value !== undefined && value !== '') t.equal(use.fallback, value, `${use.name}: compose default = .env.example`)
  }
  t.same(loadCompose(new Map()), compose, 'no .env gives the same stack as cp .env.example .env')

  const changed = loadCompose(new Map([...example, ['POSTGRES_HOST_PORT', '6543'], ['AUTH_API_DB_PASSWORD', 'p4ss'], ['PORT', '9000']]))
  t.same(service(changed, 'postgres-db').ports, ['127.0.0.1:6543:5432'], '.env values win')
  t.match(service(changed, 'auth-api').environment?.DATABASE_URL, /^postgresql:\/\/auth_api_user:p4ss@/)
  t.equal(service(changed, 'postgres-db').environment?.AUTH_API_DB_PASSWORD, 'p4ss', 'db-init and the API agree')
  t.same(service(changed, 'auth-api').ports, ['9000:8000'])
})

t.test('.env.example lists every variable the service and CLI read', async (t) => {
  for (const key of Object.keys(EnvSchema.properties)) t.ok(example.has(key), `${key} in .env.example`)
  t.same(loadConfig(Object.fromEntries(example)).nodeEnv, 'development', '.env.example loads as it is')
  t.throws(
    () =>
      loadConfig({
        ...Object.fromEntries(example),
        NODE_ENV: 'production',
        DATABASE_URL: 'postgresql://auth_api_user:auth_api_dev_password@db/activitydb',
      }),
    /refusing to start in production/,
    'production refuses its development values',
  )
  // Settings the API container does not take from .env, each for a reason.
  const fixed: Record<string, string> = {
    HOST: 'always 0.0.0.0 in a container',
    PORT: 'the container listens on 8000; .env PORT is the host port',
    RUN_MIGRATIONS: 'the migrate service migrates',
    DATABASE_ADMIN_URL: 'migrate only, built from POSTGRES_SUPERUSER_PASSWORD',
    POSTGRES_HOST: 'DATABASE_URL is set',
    POSTGRES_PORT: 'DATABASE_URL is set',
    POSTGRES_USER: 'DATABASE_URL is set',
    POSTGRES_PASSWORD: 'DATABASE_URL is set',
    POSTGRES_DB: 'part of DATABASE_URL',
    EMBEDDED_PG_PORT: 'no embedded server in the image',
    DATA_DIR: 'the image sets it (a volume)',
    BACKUP_DIR: 'the image sets it (a volume)',
    PG_BIN_DIR: 'the image has client tools 16 on PATH',
  }
  const appEnv = service(compose, 'auth-api').environment ?? {}
  for (const key of Object.keys(EnvSchema.properties)) {
    t.ok(key in appEnv || key in fixed, `${key}: passed to auth-api${key in fixed ? ` (or fixed: ${fixed[key] ?? ''})` : ''}`)
  }
})

t.test('Dockerfile: multi-stage, production dependencies, non-root, healthcheck', async (t) => {
  const stages = readDockerfile()
  t.ok(stages.length >= 2, 'multi-stage')
  const build = stages[0]
  const runtime = runtimeStage()
  t.match(build?.runs.join('\n'), /npm ci(?! .*--omit)/, 'build stage installs dev dependencies')
  t.match(build?.runs.join('\n'), /npm prune --omit=dev/, 'then drops them')
  t.match(runtime.from, /^node:20-alpine$/)
  t.ok(
    runtime.copies.some((c) => c.from !== undefined && c.from === build?.name && c.sources.includes('/app/node_modules')),
    'runtime gets the pruned node_modules',
  )
  t.notMatch(runtime.runs.join('\n'), /npm (ci|install)(?! .*--omit=dev)/, 'no dev dependencies installed at runtime')
  t.match(runtime.runs.join('\n'), /apk add --no-cache postgresql16-client/, 'pg_dump 16 for migrate backups')
  t.equal(runtime.env.get('NODE_ENV'), 'production')
  // The heap limits of docs/performance.md, and the bench measures the service with them.
  t.match(runtime.env.get('NODE_OPTIONS'), /--max-old-space-size=\d+/)
  t.equal(runtime.env.get('NODE_OPTIONS'), imageNodeOptions(), 'the bench reads the same NODE_OPTIONS')
  t.ok(runtime.user !== undefined && !['root', '0'].includes(runtime.user), 'non-root user')
  t.match(runtime.healthcheck?.join(' '), /\/api\/health\/ready/)
  const cmd = nodeEntry(runtime.cmd ?? [])
  t.ok(existsSync(projectPath(sourceOf(cmd.entry))), `CMD runs ${cmd.entry}, compiled from ${sourceOf(cmd.entry)}`)
  t.match(build?.runs.join('\n'), /npm run build/, 'the build stage compiles')
  t.ok(
    runtime.copies.some((c) => c.from === build?.name && c.sources.includes('/app/dist')),
    'runtime gets the compiled dist/',
  )
  const pkg = JSON.parse(readFileSync(projectPath('package.json'), 'utf8')) as {
    dependencies: Record<string, string>
    scripts: Record<string, string>
  }
  t.equal(pkg.scripts.build, 'tsc -p tsconfig.build.json')
  t.ok('tsx' in pkg.dependencies, 'tsx is a production dependency (the operations CLI runs the sources)')
})

t.test('.dockerignore keeps secrets and local state out, and keeps what the image copies', async (t) => {
  const ignored = readFileSync(projectPath('.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
  for (const p of ['.env', 'node_modules', '.data', '.git', 'backups']) t.ok(ignored.includes(p), `${p} ignored`)
  const copied = readDockerfile()
    .flatMap((s) => s.copies)
    .filter((c) => c.from === undefined)
    .flatMap((c) => c.sources)
  t.ok(copied.length > 0)
  for (const src of copied) {
    t.notOk(ignored.includes(src), `${src} is copied, not ignored`)
    t.ok(existsSync(projectPath(src)), `${src} exists`)
  }
})

t.test('scale profile: replicas behind haproxy, PgBouncer in transaction mode between them and PostgreSQL', async (t) => {
  const scaled = Object.entries(compose.services)
    .filter(([, s]) => s.profiles?.includes('scale'))
    .map(([name]) => name)
  t.same(scaled.sort(), ['auth-api-replica', 'lb', 'pgbouncer'])
  const replica = service(compose, 'auth-api-replica')
  const app = service(compose, 'auth-api')
  t.equal(replica.container_name, undefined, 'no container name: --scale can start several')
  t.equal(replica.ports, undefined, 'no host port: only the balancer reaches a replica')
  t.equal(replica.image, app.image, 'the same image')
  const env = replica.environment ?? {}
  for (const [key, value] of Object.entries(app.environment ?? {})) {
    if (!['DATABASE_URL', 'DATABASE_STATEMENT_CACHE', 'TRUST_PROXY'].includes(key)) t.equal(env[key], value, `${key} as auth-api`)
  }
  t.match(env.DATABASE_URL, /^postgresql:\/\/auth_api_user:[^@]+@pgbouncer:5432\//, 'the service connection goes through PgBouncer')
  t.equal(env.DATABASE_STATEMENT_CACHE, 'off', 'no prepared statement outlives a pooled transaction')
  t.equal(env.TRUST_PROXY, '1', 'one trusted hop: the balancer')
  t.ok(loadConfig({ ...env, NODE_ENV: 'development' }).http.trustProxy === 1)
  t.same(
    replica.depends_on?.migrate,
    { condition: 'service_completed_successfully' },
    'migrations run once, directly, never through the pooler',
  )
  t.match(service(compose, 'migrate').environment?.DATABASE_ADMIN_URL, /@postgres-db:5432\//, 'the admin connection is direct')

  const bouncer = service(compose, 'pgbouncer')
  t.match(bouncer.image, /^edoburu\/pgbouncer:v\d+\.\d+\.\d+/, 'pinned')
  t.equal(bouncer.environment?.POOL_MODE, 'transaction')
  t.equal(bouncer.environment?.DB_HOST, 'postgres-db')
  const maxConnections = Number(example.get('POSTGRES_MAX_CONNECTIONS'))
  t.ok(Number(bouncer.environment?.DEFAULT_POOL_SIZE) < maxConnections / 2, 'server connections leave room under max_connections')
  t.ok(Number(bouncer.environment?.MAX_CLIENT_CONN) >= 10 * Number(env.DATABASE_POOL_MAX), 'clients of ten replicas fit')

  const lb = service(compose, 'lb')
  t.match(lb.image, /^haproxy:\d+\.\d+-alpine$/)
  t.same(lb.ports, ['8080:8080'])
  t.ok(lb.volumes?.includes('./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro'))
  const cfg = readFileSync(projectPath('deploy/haproxy.cfg'), 'utf8')
  t.match(cfg, /server-template api \d+ auth-api-replica:8000/, 'every replica docker DNS knows')
  t.match(cfg, /option httpchk GET \/api\/health\/ready/, 'health-checked on readiness')
  t.match(cfg, /option forwardfor/, 'passes the client address to the replicas')
  t.match(cfg, /bind :8080/)
  for (const name of scaled) t.same(service(compose, name).networks, ['activity-network'], `${name} on activity-network`)
})
