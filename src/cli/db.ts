// `npm run db -- <command>`: database operations for operators.
//   init              bootstrap (roles, database, schema) + migrate
//   migrate           apply pending migrations
//   rollback [N]      undo the last N migrations (default 1)
//   status            applied and pending migrations
// Connection: DATABASE_ADMIN_URL (superuser or owner); without it and without
// DATABASE_URL, the embedded server under .data/ (started for the command if needed).
// An operator mistake prints one line and exits 1; never a stack trace.
import { parseArgs } from 'node:util'
import { loadConfig, type Config } from '../config.ts'
import { bootstrap, withClient, withDatabase } from '../db/bootstrap.ts'
import { rolePasswords } from '../db/database.ts'
import { startEmbedded } from '../db/embedded.ts'
import { migrate, migrationStatus } from '../db/migrate.ts'
import path from 'node:path'

export class UsageError extends Error {}

interface Admin {
  /** Superuser URL, any database. */
  url: string
  database: string
  close(): Promise<void>
}

function targetDatabase(config: Config): string {
  if (config.databaseUrl !== undefined) {
    const name = decodeURIComponent(new URL(config.databaseUrl).pathname.slice(1))
    if (name !== '') return name
  }
  return config.POSTGRES_DB
}

async function adminConnection(config: Config, log: (l: string) => void): Promise<Admin> {
  const database = targetDatabase(config)
  if (config.databaseAdminUrl !== undefined) {
    return { url: config.databaseAdminUrl, database, close: async () => undefined }
  }
  if (!config.embedded) {
    throw new UsageError('DATABASE_ADMIN_URL is required (a superuser or activity_owner member connection)')
  }
  const cluster = await startEmbedded({ dataDir: path.join(config.dataDir, 'postgres'), port: config.EMBEDDED_PG_PORT, log })
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

export async function runCli(argv: string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { json: { type: 'boolean', default: false }, verbose: { type: 'boolean', short: 'v', default: false } },
  })
  const [command, ...rest] = positionals
  const json = values.json
  const log = values.verbose ? io.err : () => undefined
  const print = (human: string, machine: unknown) => io.out(json ? JSON.stringify(machine) : human)

  if (command === undefined || command === 'help') {
    io.out('usage: npm run db -- <init | migrate | rollback [N] | status> [--json] [-v]')
    return command === undefined ? 1 : 0
  }
  if (!['init', 'migrate', 'rollback', 'status'].includes(command)) {
    throw new UsageError(`unknown command "${command}" (init, migrate, rollback [N], status)`)
  }
  const config = loadConfig(env)
  const admin = await adminConnection(config, log)
  try {
    const url = withDatabase(admin.url, admin.database)
    switch (command) {
      case 'init': {
        await bootstrap({ adminUrl: admin.url, database: admin.database, passwords: rolePasswords(config), log })
        const ran = await migrate({ adminUrl: url, log })
        print(`initialised ${admin.database}: ${ran.length} migration(s) applied`, { database: admin.database, applied: ran.map((m) => m.name) })
        return 0
      }
      case 'migrate': {
        const ran = await migrate({ adminUrl: url, log })
        print(ran.length === 0 ? 'nothing to migrate' : `applied: ${ran.map((m) => m.name).join(', ')}`, { applied: ran.map((m) => m.name) })
        return 0
      }
      case 'rollback': {
        const count = rest[0] === undefined ? 1 : Number(rest[0])
        if (!Number.isInteger(count) || count < 1) throw new UsageError(`rollback takes a positive count, not "${rest[0] ?? ''}"`)
        const ran = await migrate({ adminUrl: url, direction: 'down', count, log })
        print(ran.length === 0 ? 'nothing to roll back' : `rolled back: ${ran.map((m) => m.name).join(', ')}`, { rolledBack: ran.map((m) => m.name) })
        return 0
      }
      default: {
        const status = await withClient(url, (c) => migrationStatus(c))
        const lines = [
          `database ${admin.database}`,
          ...status.applied.map((m) => `  applied  ${m.name}  (${m.runOn.toISOString()})`),
          ...status.pending.map((n) => `  pending  ${n}`),
          ...status.unknown.map((n) => `  unknown  ${n} (applied, not in this code)`),
        ]
        print(lines.join('\n'), status)
        return 0
      }
    }
  } finally {
    await admin.close()
  }
}

/** One clear line for what an operator can fix; the full error only with --verbose. */
export function describeError(err: unknown): string {
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
