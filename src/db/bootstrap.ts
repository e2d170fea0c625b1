// Applies db-init/ — the files the postgres image runs once from
// /docker-entrypoint-initdb.d — to a server the image did not start (the embedded
// one, an operator's own). One source of truth: this reads the same files and
// understands exactly the psql subset they use (sql/CONVENTIONS.md):
//   \getenv VAR ENV       set a variable from the environment
//   :'var'  :"var"        interpolate as a literal / an identifier
//   <query> \gexec        run the query, then run each value it returned as SQL
// Anything else starting with a backslash is refused, so the two runners cannot
// silently drift apart.
import { readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import pg from 'pg'
import { projectPath } from '../paths.ts'
import { withClient, withDatabase } from './admin-connection.ts'

const DB_INIT_DIR = projectPath('db-init')

export interface BootstrapOptions {
  /** Superuser connection string (any database: the first file runs in `postgres`). */
  adminUrl: string
  /** Database that receives the schema (POSTGRES_DB for the image). */
  database: string
  /** Role passwords, as the image gets them from the environment. */
  passwords: { authApi: string; writeApi: string; readonly: string }
  log?: (line: string) => void
}

type Vars = Map<string, string>

/** Run one db-init file the way `psql -v ON_ERROR_STOP=1 -f file` would. */
export async function applyInitFile(client: pg.ClientBase, file: string, env: Readonly<Record<string, string | undefined>>): Promise<void> {
  const text = await readFile(file, 'utf8')
  const name = path.basename(file)
  const vars: Vars = new Map()
  let buffer = ''

  const flush = async (gexec: boolean) => {
    const sql = interpolate(client, buffer, vars)
    buffer = ''
    if (sql.trim() === '') return
    const results = await client.query(sql)
    if (!gexec) return
    // Like psql: every value of every row of the (last) result is a statement.
    const last = Array.isArray(results) ? (results.at(-1) as pg.QueryResult) : results
    for (const row of last.rows as Record<string, unknown>[]) {
      for (const value of Object.values(row)) {
        if (typeof value === 'string') await client.query(value)
      }
    }
  }

  for (const [index, line] of text.split('\n').entries()) {
    const trimmed = line.trim()
    if (trimmed.startsWith('--')) continue
    const getenv = /^\\getenv\s+(\w+)\s+(\w+)$/.exec(trimmed)
    if (getenv) {
      const [, variable, envName] = getenv as unknown as [string, string, string]
      const value = env[envName]
      if (value === undefined || value === '') {
        throw new Error(`${name}: environment variable ${envName} is not set`)
      }
      vars.set(variable, value)
      continue
    }
    if (trimmed.endsWith('\\gexec')) {
      buffer += line.slice(0, line.lastIndexOf('\\gexec')) + '\n'
      await flush(true)
      continue
    }
    if (trimmed.startsWith('\\')) {
      throw new Error(`${name}:${index + 1}: psql meta-command not supported by bootstrap: ${trimmed}`)
    }
    buffer += line + '\n'
  }
  await flush(false)
}

function interpolate(client: pg.ClientBase, sql: string, vars: Vars): string {
  // Unknown variables stay as written, as psql leaves them.
  return sql.replace(/:(['"])(\w+)\1/g, (whole, quote: string, name: string) => {
    const value = vars.get(name)
    if (value === undefined) return whole
    return quote === "'" ? client.escapeLiteral(value) : client.escapeIdentifier(value)
  })
}

export async function initFiles(dir = DB_INIT_DIR): Promise<string[]> {
  const names = (await readdir(dir)).sort()
  const unsupported = names.filter((n) => n.endsWith('.sh'))
  if (unsupported.length > 0) throw new Error(`bootstrap applies .sql files only: ${unsupported.join(', ')}`)
  return names.filter((n) => n.endsWith('.sql')).map((n) => path.join(dir, n))
}

/**
 * Create roles, database, schema and privilege defaults. The first file holds the
 * cluster-wide part and runs in the maintenance database `postgres` (the target
 * may not exist yet), as createdb does; the others run inside the target, as the
 * image runs them all.
 */
export async function bootstrap(options: BootstrapOptions): Promise<void> {
  const env = {
    AUTH_API_DB_PASSWORD: options.passwords.authApi,
    WRITE_API_DB_PASSWORD: options.passwords.writeApi,
    READONLY_DB_PASSWORD: options.passwords.readonly,
    POSTGRES_DB: options.database,
  }
  const [first, ...rest] = await initFiles()
  if (first === undefined) throw new Error(`no .sql files in ${DB_INIT_DIR}`)
  await withClient(withDatabase(options.adminUrl, 'postgres'), (c) => applyInitFile(c, first, env))
  await withClient(withDatabase(options.adminUrl, options.database), async (c) => {
    for (const file of rest) await applyInitFile(c, file, env)
  })
  options.log?.(`bootstrap applied to database ${options.database}`)
}
