// `npm run db -- <command>` (also the `activity-db` bin): database operations.
// Each command prints a short human summary, or JSON with --json; an operator
// mistake prints one line and exits 1 (never a stack trace; -v shows it).
// Connection: DATABASE_ADMIN_URL (superuser or owner); without it and without
// DATABASE_URL, the embedded server under .data/ (started for the command if needed).
import { mkdir, readdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { devRolePasswords, loadConfig, type Config } from '../config.ts'
import { bootstrap } from '../db/bootstrap.ts'
import { withClient, withDatabase } from '../db/admin-connection.ts'
import { startCheckoutCluster } from '../db/database.ts'
import { assertDirectConnection, PooledConnectionError } from '../db/direct-connection.ts'
import { migrate, MIGRATIONS_DIR, migrationNames, migrationStatus } from '../db/migrate.ts'
import { cleanupBackups, createBackup, listBackups, restoreBackup } from '../ops/backup.ts'
import { cleanupOnce, describeCounts } from '../ops/cleanup.ts'
import { OperatorError } from '../ops/errors.ts'
import { databaseHealth, describeHealth } from '../ops/health.ts'
import { seedDevelopment } from '../ops/seed.ts'
import { checkRoles, humanBytes, serverFacts } from '../ops/status.ts'

export const USAGE = `usage: npm run db -- <command> [options] [--json] [-v]
  init                          bootstrap (roles, database, schema) + migrate
  migrate [--dry-run] [--no-backup]
                                apply pending migrations (backup first unless --no-backup)
  rollback [N]                  undo the last N migrations (default 1)
  status                        migrations, server, size, role check
  create <name>                 new SQL migration file with Up and Down sections
  seed                          development data (refused in production)
  reset --yes                   drop and recreate the schema (development only)
  backup [--plain] [--schema-only] [--no-compress] [--out DIR]
                                pg_dump custom format (or plain SQL, gzipped) + metadata, validated
  list-backups [--out DIR]
  restore <file> --yes          check, then restore a backup into the database
  cleanup-backups --keep N | --older-than DAYS [--out DIR]
  cleanup [--retention HOURS]   expired tokens, old attempts, old audit logs, stale unverified users
  health                        database and auth health; exit 0 healthy, 1 degraded, 2 down`

const COMMANDS = [
  'init',
  'migrate',
  'rollback',
  'status',
  'create',
  'seed',
  'reset',
  'backup',
  'list-backups',
  'restore',
  'cleanup-backups',
  'cleanup',
  'health',
] as const
type Command = (typeof COMMANDS)[number]

interface Admin {
  /** Superuser URL, any database. */
  url: string
  database: string
  close(): Promise<void>
}

function targetDatabase(config: Config): string {
  if (config.database.url !== undefined) {
    const name = decodeURIComponent(new URL(config.database.url).pathname.slice(1))
    if (name !== '') return name
  }
  return config.database.name
}

async function adminConnection(config: Config, log: (l: string) => void): Promise<Admin> {
  const database = targetDatabase(config)
  const adminUrl = config.database.adminUrl
  if (adminUrl !== undefined) {
    // Every command needs a session (SET ROLE, advisory lock, pg_dump's snapshot):
    // refuse a transaction pooler in one line rather than fail half-way. Anything
    // else (a database init has yet to create, a server that is down) is left to
    // the command itself to report: `health` must still say "down" with exit 2.
    await assertDirectConnection(adminUrl).catch((err: unknown) => {
      if (err instanceof PooledConnectionError) throw err
    })
    return { url: adminUrl, database, close: async () => undefined }
  }
  if (!config.database.embedded) {
    throw new OperatorError('DATABASE_ADMIN_URL is required (a superuser or activity_owner member connection)')
  }
  const cluster = await startCheckoutCluster(config, log)
  return {
    url: cluster.adminUrl,
    database,
    // Leave a server we found running as it was.
    close: () => (cluster.startedHere ? cluster.stop() : Promise.resolve()),
  }
}

export interface CliIo {
  out: (line: string) => void
  err: (line: string) => void
}

const OPTIONS = {
  json: { type: 'boolean', default: false },
  verbose: { type: 'boolean', short: 'v', default: false },
  'dry-run': { type: 'boolean', default: false },
  'no-backup': { type: 'boolean', default: false },
  'schema-only': { type: 'boolean', default: false },
  'no-compress': { type: 'boolean', default: false },
  plain: { type: 'boolean', default: false },
  out: { type: 'string' },
  yes: { type: 'boolean', default: false },
  keep: { type: 'string' },
  'older-than': { type: 'string' },
  retention: { type: 'string' },
} as const

function positiveInt(value: string | undefined, what: string): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new OperatorError(`${what} must be a positive whole number, not "${value}"`)
  return n
}

export async function runCli(argv: string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: OPTIONS })
  } catch (err) {
    throw new OperatorError(err instanceof Error ? err.message : String(err))
  }
  const { positionals, values } = parsed
  const [name, ...rest] = positionals
  if (name === undefined || name === 'help') {
    io.out(USAGE)
    return name === undefined ? 1 : 0
  }
  if (!(COMMANDS as readonly string[]).includes(name)) {
    throw new OperatorError(`unknown command "${name}" (${COMMANDS.join(', ')})`)
  }
  const command = name as Command
  const json = values.json
  const print = (human: string, machine: unknown) => io.out(json ? JSON.stringify(machine) : human)
  // Progress of long work goes to stderr (stdout stays one summary, or JSON);
  // the detail of the migration runner and the embedded server only with -v.
  const progress = json ? () => undefined : io.err
  const detail = values.verbose ? io.err : () => undefined
  const config = loadConfig(env, 'operations')
  const production = config.production
  const backupDir = path.resolve(values.out ?? config.database.backupDir)

  // Commands that need no database connection.
  if (command === 'create') return createMigration(rest[0], print)
  if (command === 'list-backups') {
    const backups = await listBackups(backupDir)
    print(backups.length === 0 ? `no backups in ${backupDir}` : backups.map((b) => describeBackup(b)).join('\n'), backups)
    return 0
  }
  if (command === 'cleanup-backups') {
    const keep = positiveInt(values.keep, '--keep')
    const olderThanDays = positiveInt(values['older-than'], '--older-than')
    if ((keep === undefined) === (olderThanDays === undefined)) throw new OperatorError('give exactly one of --keep N or --older-than DAYS')
    const removed = await cleanupBackups({
      dir: backupDir,
      ...(keep === undefined ? {} : { keep }),
      ...(olderThanDays === undefined ? {} : { olderThanDays }),
    })
    print(`removed ${removed.length} backup(s)${removed.map((b) => `\n  ${b.file}`).join('')}`, { removed })
    return 0
  }
  if ((command === 'seed' || command === 'reset') && production) {
    throw new OperatorError(`${command} is refused when NODE_ENV=production`)
  }
  const devPasswords = devRolePasswords(config)
  if (command === 'init' && production && devPasswords.length > 0) {
    throw new OperatorError(`init refuses to set development passwords in production: ${devPasswords.join('; ')}`)
  }
  if (command === 'reset' && !values.yes) throw new OperatorError('reset drops every table and row of schema activity: add --yes')
  if (command === 'restore' && rest[0] === undefined) throw new OperatorError('restore needs a backup file')
  if (command === 'restore' && !values.yes) throw new OperatorError('restore replaces the database contents: add --yes')

  const admin = await adminConnection(config, detail)
  try {
    const url = withDatabase(admin.url, admin.database)
    // Bootstrap (roles, database, schema, grants) then every migration: init, and reset after its drop.
    const initialise = async (verb: string) => {
      await bootstrap({ adminUrl: admin.url, database: admin.database, passwords: config.database.rolePasswords, log: detail })
      const ran = await migrate({ adminUrl: url, log: detail })
      print(`${verb} ${admin.database}: ${ran.length} migration(s) applied`, { database: admin.database, applied: ran.map((m) => m.name) })
      return 0
    }
    switch (command) {
      case 'init':
        return await initialise('initialised')
      case 'migrate': {
        const status = await withClient(url, (c) => migrationStatus(c))
        const pending = status.pending
        if (values['dry-run']) {
          const sql: string[] = []
          await migrate({ adminUrl: url, dryRun: true, onSql: (s) => sql.push(s), log: detail })
          print(pending.length === 0 ? 'nothing to migrate' : `-- dry run: would apply ${pending.join(', ')}\n${sql.join('\n')}`, {
            pending,
            sql,
          })
          return 0
        }
        // A brand-new database (no migration applied yet) has nothing to lose.
        let backup: string | undefined
        if (pending.length > 0 && status.applied.length > 0 && !values['no-backup']) {
          progress('taking a backup before migrating (--no-backup skips it)')
          backup = (await createBackup({ adminUrl: url, dir: backupDir, pgBinDir: config.database.pgBinDir, progress })).path
        }
        if (pending.length > 0) progress(`applying ${pending.length} migration(s)`)
        const ran = await migrate({ adminUrl: url, log: detail })
        const names = ran.map((m) => m.name)
        print(
          names.length === 0 ? 'nothing to migrate' : `applied: ${names.join(', ')}${backup === undefined ? '' : ` (backup: ${backup})`}`,
          { applied: names, backup: backup ?? null },
        )
        return 0
      }
      case 'rollback': {
        const count = positiveInt(rest[0], 'rollback count') ?? 1
        const ran = await migrate({ adminUrl: url, direction: 'down', count, log: detail })
        print(ran.length === 0 ? 'nothing to roll back' : `rolled back: ${ran.map((m) => m.name).join(', ')}`, {
          rolledBack: ran.map((m) => m.name),
        })
        return 0
      }
      case 'status': {
        const report = await withClient(url, async (c) => ({
          database: admin.database,
          ...(await serverFacts(c)),
          ...(await migrationStatus(c)),
          roles: await checkRoles(c),
        }))
        const lines = [
          `database ${report.database} on PostgreSQL ${report.serverVersion}, ${humanBytes(report.databaseSizeBytes)}`,
          ...report.applied.map((m) => `  applied  ${m.name}  ${m.runOn.toISOString()}`),
          ...report.pending.map((n) => `  pending  ${n}`),
          ...report.unknown.map((n) => `  unknown  ${n} (applied, not in this code)`),
          ...report.roles.map((r) => `  role     ${r.role}: ${r.ok ? 'ok' : r.problems.join('; ')}`),
        ]
        print(lines.join('\n'), report)
        return 0
      }
      case 'seed': {
        const seeded = await seedDevelopment({
          adminUrl: url,
          argon2: config.argon2,
        })
        print(
          `seeded ${seeded.users} users (active@, unverified@, deactivated@, locked@example.com; password ${seeded.password}) ` +
            `and ${seeded.sessions} sessions of active@example.com (live, expired, revoked; live refresh token ${seeded.liveRefreshToken})`,
          seeded,
        )
        return 0
      }
      case 'reset': {
        await withClient(url, (c) => c.query('DROP SCHEMA IF EXISTS activity CASCADE'))
        return await initialise('reset')
      }
      case 'backup': {
        const info = await createBackup({
          adminUrl: url,
          dir: backupDir,
          format: values.plain ? 'plain' : 'custom',
          schemaOnly: values['schema-only'],
          compress: !values['no-compress'],
          pgBinDir: config.database.pgBinDir,
          progress,
        })
        print(`backup written and validated: ${describeBackup(info)}`, info)
        return 0
      }
      case 'restore': {
        const file = path.resolve(rest[0] ?? '')
        const restored = await restoreBackup({
          adminUrl: url,
          file,
          pgBinDir: config.database.pgBinDir,
          codeMigrations: await migrationNames(),
          progress,
        })
        print(
          `restored ${path.basename(file)} (taken ${restored.createdAt}, head ${restored.migrationHead ?? 'none'}) into ${admin.database}`,
          {
            restored: file,
            database: admin.database,
            metadata: restored,
          },
        )
        return 0
      }
      case 'cleanup': {
        const retentionHours = positiveInt(values.retention, '--retention') ?? config.cleanup.unverifiedRetentionHours
        const counts = await withClient(url, (c) =>
          cleanupOnce(c, {
            retentionHours,
            auditRetentionDays: config.cleanup.auditRetentionDays,
            // Never unpublished events from here: whether a publisher runs is the service's setting, not this shell's.
            eventsRetention: { hours: config.events.retentionHours, unpublishedToo: false },
          }),
        )
        if (counts === undefined) throw new OperatorError('another cleanup is running right now (advisory lock held); try again later')
        print(`cleanup: ${describeCounts(counts)}`, counts)
        return 0
      }
      case 'health': {
        const report = await databaseHealth({
          adminUrl: url,
          pool: config.database.pool,
        })
        print(describeHealth(report), report)
        return report.status === 'healthy' ? 0 : report.status === 'degraded' ? 1 : 2
      }
    }
  } finally {
    await admin.close()
  }
  return 0
}

function describeBackup(b: { file: string; createdAt?: string; sizeBytes?: number; migrationHead?: string | null }): string {
  const size = b.sizeBytes === undefined ? '' : `, ${humanBytes(b.sizeBytes)}`
  return `${path.basename(b.file)} (${b.createdAt ?? 'no metadata'}${size}${b.migrationHead ? `, head ${b.migrationHead}` : ''})`
}

const MIGRATION_TEMPLATE = `-- Up Migration
-- Runs as activity_owner in one transaction with every other pending migration.
-- Qualify names with activity.; see sql/CONVENTIONS.md (grants, SECURITY DEFINER, errcodes).


-- Down Migration
-- Undo exactly what Up did, in reverse order.

`

export async function createMigration(
  name: string | undefined,
  print: (human: string, machine: unknown) => void,
  dir = MIGRATIONS_DIR,
): Promise<number> {
  if (name === undefined || !/^[a-z0-9][a-z0-9_-]{0,80}$/.test(name)) {
    throw new OperatorError('create needs a name of lowercase letters, digits, - and _ (e.g. add-user-locale)')
  }
  await mkdir(dir, { recursive: true })
  // Millisecond timestamps keep the order node-pg-migrate applies them in; never
  // reuse or precede the newest existing prefix.
  const existing = (await readdir(dir)).map((f) => Number.parseInt(f, 10)).filter(Number.isFinite)
  const stamp = Math.max(Date.now(), ...existing.map((n) => n + 1))
  const file = path.join(dir, `${stamp}_${name}.sql`)
  await writeFile(file, MIGRATION_TEMPLATE, { flag: 'wx' })
  print(`created ${path.relative(process.cwd(), file)}`, { file })
  return 0
}

/** One clear line for what an operator can fix; the full error only with --verbose. */
export function describeError(err: unknown): string {
  if (err instanceof OperatorError) return err.message
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code
    if (code === 'ECONNREFUSED') return `cannot reach the database server (${err.message})`
    if (code === '28P01' || code === '28000') return `database login refused: ${err.message}`
    if (code === '3D000') return `database does not exist: ${err.message} (run \`npm run db -- init\`)`
    return err.message.split('\n')[0] ?? 'unknown error'
  }
  return String(err)
}

const isMain = process.argv[1] !== undefined && import.meta.url.endsWith(path.basename(process.argv[1]))
if (isMain) {
  const verbose = process.argv.includes('-v') || process.argv.includes('--verbose')
  runCli(process.argv.slice(2), process.env, { out: (l) => console.log(l), err: (l) => console.error(l) })
    .then((code) => process.exit(code))
    .catch((err: unknown) => {
      console.error(`activity-db: ${describeError(err)}`)
      if (verbose) console.error(err)
      process.exit(1)
    })
}
