// `tsx scripts/schema-dump.ts [--check]` (npm run db:schema): sql/schema.sql is
// what the migrations build, as pg_dump prints it, so a reviewer reads the current
// body of any procedure in one place and sees every schema change as a diff.
//
// pg_dump cannot read a server newer than itself, and its output changes between
// majors, so the dump always runs on one server: the machine's PostgreSQL
// (--admin-url, SCHEMA_DUMP_ADMIN_URL, default DEFAULT_ADMIN_URL). A scratch
// database there gets the db-init bootstrap and every migration, is dumped and is
// dropped. `--check` writes nothing and exits 1 when the file is stale.
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { withClient, withDatabase } from '../src/db/admin-connection.ts'
import { applyInitFile, bootstrap, initFiles } from '../src/db/bootstrap.ts'
import { migrate, MIGRATIONS_DIR, MIGRATIONS_SCHEMA, MIGRATIONS_TABLE } from '../src/db/migrate.ts'
import { projectPath } from '../src/paths.ts'
import { findToolFor, runTool } from '../src/ops/pg-tools.ts'

export const SCHEMA_FILE = projectPath('sql', 'schema.sql')
export const DEFAULT_ADMIN_URL = 'postgresql://postgres@127.0.0.1:5432/postgres'
const REGENERATE = 'run `npm run db:schema`'

export interface DumpOptions {
  /** Superuser URL of the server the scratch database is made on. */
  adminUrl: string
  /** Scratch database name; must not exist. Default: a random one. */
  database?: string
  migrationsDir?: string
  pgBinDir?: string
}

/** The normalised `pg_dump --schema-only` of schema activity after every migration. */
export async function dumpSchema(options: DumpOptions): Promise<string> {
  const database = options.database ?? `activity_schema_dump_${randomBytes(4).toString('hex')}`
  const url = withDatabase(options.adminUrl, database)
  // The scratch database is dropped at the end: never one that was there before.
  const taken = await withClient(
    options.adminUrl,
    async (c) => (await c.query('SELECT FROM pg_database WHERE datname = $1', [database])).rowCount,
  )
  if (taken !== 0) throw new Error(`database ${database} exists: the scratch database must be a new one`)
  try {
    await createScratchDatabase(options.adminUrl, database)
    await migrate({ adminUrl: url, dir: options.migrationsDir ?? MIGRATIONS_DIR })
    const major = await withClient(url, async (c) => {
      const { rows } = await c.query<{ num: number }>(`SELECT current_setting('server_version_num')::int AS num`)
      return Math.floor((rows[0]?.num ?? 0) / 10000)
    })
    const { bin } = await findToolFor('pg_dump', options.pgBinDir, major)
    // node-pg-migrate's bookkeeping table is not part of our design.
    const bookkeeping = `${MIGRATIONS_SCHEMA}.${MIGRATIONS_TABLE}`
    const args = [
      '--schema-only',
      `--schema=${MIGRATIONS_SCHEMA}`,
      `--exclude-table=${bookkeeping}`,
      `--exclude-table=${bookkeeping}_id_seq`,
    ]
    const { stdout } = await runTool(bin, args, { url, what: 'pg_dump' })
    return normaliseDump(stdout)
  } finally {
    await withClient(options.adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(database)} WITH (FORCE)`))
  }
}

/**
 * The bootstrap, without ever changing an existing role: on a developer's server
 * the roles carry the passwords the service logs in with. A server without them
 * gets them with throwaway passwords.
 */
async function createScratchDatabase(adminUrl: string, database: string): Promise<void> {
  const [rolesFile, ...inDatabase] = await initFiles()
  if (rolesFile === undefined) throw new Error('no db-init files')
  const roles = [...(await readFile(rolesFile, 'utf8')).matchAll(/CREATE ROLE (\w+)/g)].map((m) => m[1] ?? '')
  const existing = await withClient(adminUrl, async (c) => {
    const { rows } = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_roles WHERE rolname = ANY($1)', [roles])
    return rows[0]?.n ?? 0
  })
  if (existing === 0) {
    const throwaway = () => randomBytes(18).toString('base64url')
    await bootstrap({ adminUrl, database, passwords: { authApi: throwaway(), writeApi: throwaway(), readonly: throwaway() } })
    return
  }
  if (existing < roles.length) {
    throw new Error(`the server has only some of the roles ${roles.join(', ')}: run \`npm run db -- init\` against it first`)
  }
  await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${c.escapeIdentifier(database)}`))
  await withClient(withDatabase(adminUrl, database), async (c) => {
    for (const file of inDatabase) await applyInitFile(c, file, { POSTGRES_DB: database })
  })
}

/** pg_dump's text without what changes from run to run or says nothing about the schema. */
export function normaliseDump(raw: string): string {
  const kept: string[] = []
  // Closing tag of the function body being read: its lines are kept verbatim.
  let bodyEnd: string | undefined
  for (const line of raw.split('\n')) {
    if (bodyEnd !== undefined) {
      if (line.includes(bodyEnd)) bodyEnd = undefined
      kept.push(line)
      continue
    }
    const opening = /^ {4}AS (\$\w*\$)(.*)$/.exec(line)
    if (opening?.[1] !== undefined && !(opening[2] ?? '').includes(opening[1])) bodyEnd = opening[1]
    const noise =
      // The preamble's session settings, and the ones pg_dump repeats before tables.
      /^SET \w+ = .*;$/.test(line) ||
      line === "SELECT pg_catalog.set_config('search_path', '', false);" ||
      // A random key per run (pg_dump 15.14 and later).
      /^\\(un)?restrict /.test(line) ||
      /^-- (PostgreSQL database dump( complete)?|Dumped (from|by) .*)$/.test(line)
    const blankAgain = line.trim() === '' && (kept.at(-1) ?? '') === ''
    if (!noise && !blankAgain) kept.push(line.trimEnd())
  }
  // The emptied header and trailer leave lone "--" lines.
  const text = kept
    .join('\n')
    .replace(/^(--\n)+/, '')
    .replace(/(\n--)+\n*$/, '')
  return `${text.trim()}\n`
}

/**
 * What a stale file misses, one line per object pg_dump names ("changed: FUNCTION
 * sp_signup(...)"), or the first differing line when only the order differs.
 */
export function schemaDiff(committed: string, current: string): string[] {
  if (committed === current) return []
  const [before, after] = [sections(committed), sections(current)]
  const lines = [
    ...[...after.keys()].filter((k) => !before.has(k)).map((k) => `added: ${k}`),
    ...[...before.keys()].filter((k) => !after.has(k)).map((k) => `removed: ${k}`),
    ...[...after].filter(([k, body]) => before.has(k) && before.get(k) !== body).map(([k]) => `changed: ${k}`),
  ]
  if (lines.length > 0) return lines
  const [a, b] = [committed.split('\n'), current.split('\n')]
  const at = a.findIndex((line, i) => line !== b[i])
  const line = at === -1 ? a.length + 1 : at + 1
  return [`line ${line}: ${JSON.stringify(a[line - 1] ?? '')} is now ${JSON.stringify(b[line - 1] ?? '')}`]
}

/** Objects keyed by pg_dump's "-- Name: x; Type: y" headers. */
function sections(text: string): Map<string, string> {
  const out = new Map<string, string>()
  let key = '(before the first object)'
  for (const line of text.split('\n')) {
    const header = /^-- Name: (.*); Type: ([^;]+); Schema: /.exec(line)
    if (header) key = `${header[2] ?? ''} ${header[1] ?? ''}`
    out.set(key, `${out.get(key) ?? ''}${line}\n`)
  }
  return out
}

export interface DumpIo {
  out(line: string): void
  err(line: string): void
}

const USAGE = 'usage: tsx scripts/schema-dump.ts [--check] [--admin-url URL] [--out FILE] [--migrations DIR] [--database NAME]'

/** The command; returns its exit code (1: stale file under --check, 2: failure). */
export async function runSchemaDump(argv: string[], env: NodeJS.ProcessEnv, io: DumpIo): Promise<number> {
  let values
  try {
    ;({ values } = parseArgs({
      args: argv,
      options: {
        check: { type: 'boolean', default: false },
        'admin-url': { type: 'string' },
        out: { type: 'string' },
        migrations: { type: 'string' },
        database: { type: 'string' },
      },
    }))
  } catch (err) {
    io.err(`schema-dump: ${err instanceof Error ? err.message : String(err)}\n${USAGE}`)
    return 2
  }
  const file = values.out === undefined ? SCHEMA_FILE : path.resolve(values.out)
  const shown = path.relative(process.cwd(), file)
  try {
    const current = await dumpSchema({
      adminUrl: values['admin-url'] ?? (env.SCHEMA_DUMP_ADMIN_URL || DEFAULT_ADMIN_URL),
      ...(values.database === undefined ? {} : { database: values.database }),
      ...(values.migrations === undefined ? {} : { migrationsDir: path.resolve(values.migrations) }),
      ...(env.PG_BIN_DIR ? { pgBinDir: env.PG_BIN_DIR } : {}),
    })
    if (!values.check) {
      await writeFile(file, current)
      io.out(`schema-dump: wrote ${shown}`)
      return 0
    }
    const committed = await readFile(file, 'utf8').catch(() => '')
    const diff = schemaDiff(committed, current)
    if (diff.length === 0) {
      io.out(`schema-dump: ${shown} is up to date`)
      return 0
    }
    io.err(`schema-dump: ${shown} does not match the migrations (${REGENERATE} and commit it):\n${diff.map((l) => `  ${l}`).join('\n')}`)
    return 1
  } catch (err) {
    io.err(`schema-dump: ${err instanceof Error ? err.message : String(err)}`)
    return 2
  }
}

const isMain = process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)
if (isMain) {
  process.exitCode = await runSchemaDump(process.argv.slice(2), process.env, {
    out: (line) => console.log(line),
    err: (line) => console.error(line),
  })
}
