// Backups of schema `activity` with pg_dump, and their restore.
//
// A backup is a file plus a metadata JSON beside it (`<file>.json`: time, server
// version, migration head, size, sha256, row counts). Formats: pg_dump's custom
// format (default; compressed unless --no-compress) or plain SQL, gzipped unless
// --no-compress. Every backup is validated after writing; a restore checks the
// sha256, the metadata and the migration head before it touches anything, and then
// replaces the schema in one transaction (psql --single-transaction), so a failure
// leaves the database as it was.
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGunzip, createGzip } from 'node:zlib'
import { withClient } from '../db/admin-connection.ts'
import { MIGRATIONS_SCHEMA } from '../db/migrate.ts'
import { OperatorError } from './errors.ts'
import { findTool, findToolFor, runTool } from './pg-tools.ts'
import { databaseFacts, serverFacts } from './status.ts'

export type BackupFormat = 'custom' | 'plain'

export interface BackupMetadata {
  file: string
  format: BackupFormat
  compressed: boolean
  schemaOnly: boolean
  database: string
  createdAt: string
  serverVersion: string
  pgDumpVersion: number
  /** Last applied migration, null for a database with none. */
  migrationHead: string | null
  sizeBytes: number
  sha256: string
  rowCounts: Record<string, number>
}

export interface BackupInfo extends BackupMetadata {
  /** Absolute path of the backup file. */
  path: string
}

export interface BackupOptions {
  adminUrl: string
  dir: string
  format?: BackupFormat
  schemaOnly?: boolean
  compress?: boolean
  pgBinDir?: string | undefined
  progress?: (line: string) => void
}

const EXTENSIONS: Record<BackupFormat, { compressed: string; plain: string }> = {
  custom: { compressed: '.dump', plain: '.dump' },
  plain: { compressed: '.sql.gz', plain: '.sql' },
}
const BACKUP_FILE = /\.(dump|sql|sql\.gz)$/
// pg_dump ends every complete plain script with this line.
const PLAIN_TRAILER = '-- PostgreSQL database dump complete'

function metadataPath(file: string): string {
  return `${file}.json`
}

export async function createBackup(options: BackupOptions): Promise<BackupInfo> {
  const progress = options.progress ?? (() => undefined)
  const format = options.format ?? 'custom'
  const compress = options.compress ?? true
  const schemaOnly = options.schemaOnly ?? false
  const facts = await withClient(options.adminUrl, (c) => databaseFacts(c))
  const { bin: pgDump, major: pgDumpMajor } = await findToolFor('pg_dump', options.pgBinDir, facts.serverMajor)

  await mkdir(options.dir, { recursive: true })
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  const ext = compress ? EXTENSIONS[format].compressed : EXTENSIONS[format].plain
  const name = `${facts.database}-${stamp}${schemaOnly ? '-schema' : ''}${ext}`
  const file = path.join(path.resolve(options.dir), name)
  // Written under a temporary name and renamed when complete: an interrupted
  // backup never looks like a backup.
  const partial = `${file}.partial`
  const args = [`--schema=${MIGRATIONS_SCHEMA}`, ...(schemaOnly ? ['--schema-only'] : [])]
  try {
    progress(`pg_dump ${facts.database} (${format}${compress ? ', compressed' : ''}${schemaOnly ? ', schema only' : ''})`)
    if (format === 'custom') {
      await runTool(pgDump, [...args, '--format=custom', `--compress=${compress ? 6 : 0}`, `--file=${partial}`], {
        url: options.adminUrl,
        what: 'pg_dump failed',
      })
    } else if (!compress) {
      await runTool(pgDump, [...args, '--format=plain', `--file=${partial}`], { url: options.adminUrl, what: 'pg_dump failed' })
    } else {
      const raw = `${partial}.sql`
      await runTool(pgDump, [...args, '--format=plain', `--file=${raw}`], { url: options.adminUrl, what: 'pg_dump failed' })
      await pipeline(createReadStream(raw), createGzip(), createWriteStream(partial))
      await rm(raw)
    }
    await rename(partial, file)
  } finally {
    await rm(partial, { force: true })
  }

  progress('validating the backup')
  await validateBackupFile(file, format, compress, options.pgBinDir)
  const metadata: BackupMetadata = {
    file: name,
    format,
    compressed: compress,
    schemaOnly,
    database: facts.database,
    createdAt: new Date().toISOString(),
    serverVersion: facts.serverVersion,
    pgDumpVersion: pgDumpMajor,
    migrationHead: facts.migrationHead,
    sizeBytes: (await stat(file)).size,
    sha256: await sha256File(file),
    rowCounts: facts.rowCounts,
  }
  await writeFile(metadataPath(file), `${JSON.stringify(metadata, null, 2)}\n`)
  return { ...metadata, path: file }
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256')
  await pipeline(createReadStream(file), hash)
  return hash.digest('hex')
}

/** Reads the whole file the way a restore would; throws an OperatorError when it cannot. */
async function validateBackupFile(file: string, format: BackupFormat, compressed: boolean, pgBinDir: string | undefined): Promise<void> {
  if (format === 'custom') {
    // pg_restore --list reads the table of contents; the data blocks are checked
    // by the sha256 (pg_restore reads them only while restoring).
    const pgRestore = await findTool('pg_restore', pgBinDir)
    const { stdout } = await runTool(pgRestore, ['--list', file], { what: `backup ${path.basename(file)} is not readable` })
    if (!/SCHEMA - activity|SCHEMA \S+ activity/.test(stdout)) {
      throw new OperatorError(`backup ${path.basename(file)} holds no schema activity`)
    }
    return
  }
  let tail = ''
  const keepTail = async function* (source: AsyncIterable<Buffer>) {
    for await (const chunk of source) {
      tail = (tail + chunk.toString('utf8')).slice(-4096)
      yield chunk
    }
  }
  // Reading to the end is the check: gunzip fails on a damaged stream.
  const discard = () => new Writable({ write: (_chunk, _encoding, done) => done() })
  try {
    if (compressed) await pipeline(createReadStream(file), createGunzip(), keepTail, discard())
    else await pipeline(createReadStream(file), keepTail, discard())
  } catch (err) {
    throw new OperatorError(`backup ${path.basename(file)} is corrupt: ${err instanceof Error ? err.message : String(err)}`)
  }
  if (!tail.includes(PLAIN_TRAILER)) {
    throw new OperatorError(`backup ${path.basename(file)} is truncated: it does not end as a complete pg_dump script`)
  }
}

async function readMetadata(file: string): Promise<BackupMetadata> {
  let text: string
  try {
    text = await readFile(metadataPath(file), 'utf8')
  } catch {
    throw new OperatorError(`no metadata beside ${path.basename(file)} (${path.basename(metadataPath(file))}): refusing an unchecked file`)
  }
  try {
    return JSON.parse(text) as BackupMetadata
  } catch {
    throw new OperatorError(`metadata ${path.basename(metadataPath(file))} is not valid JSON`)
  }
}

export interface RestoreOptions {
  adminUrl: string
  file: string
  /** Migration names known to this code, oldest first. */
  codeMigrations: string[]
  pgBinDir?: string | undefined
  progress?: (line: string) => void
}

export async function restoreBackup(options: RestoreOptions): Promise<BackupMetadata> {
  const progress = options.progress ?? (() => undefined)
  const file = path.resolve(options.file)
  try {
    await stat(file)
  } catch {
    throw new OperatorError(`no such backup file: ${options.file}`)
  }
  const metadata = await readMetadata(file)
  progress('checking sha256')
  const actual = await sha256File(file)
  if (actual !== metadata.sha256) {
    throw new OperatorError(`backup ${path.basename(file)} is corrupt or truncated: its sha256 does not match its metadata`)
  }
  if (metadata.migrationHead !== null && !options.codeMigrations.includes(metadata.migrationHead)) {
    throw new OperatorError(
      `backup ${path.basename(file)} is at migration ${metadata.migrationHead}, newer than this code (${options.codeMigrations.at(-1) ?? 'none'}): restore it with the code it came from`,
    )
  }
  await validateBackupFile(file, metadata.format, metadata.compressed, options.pgBinDir)

  const { serverVersion } = await withClient(options.adminUrl, (c) => serverFacts(c))
  const psql = await findTool('psql', options.pgBinDir)
  const work = await mkdtemp(path.join(os.tmpdir(), 'activity-restore-'))
  try {
    // Everything becomes one plain SQL script that psql runs after dropping the
    // schema, all in a single transaction.
    let script = file
    if (metadata.format === 'custom') {
      script = path.join(work, 'restore.sql')
      const { bin: pgRestore } = await findToolFor('pg_restore', options.pgBinDir, metadata.pgDumpVersion)
      await runTool(pgRestore, [`--file=${script}`, file], { what: 'cannot read the backup' })
    } else if (metadata.compressed) {
      script = path.join(work, 'restore.sql')
      await pipeline(createReadStream(file), createGunzip(), createWriteStream(script))
    }
    progress(`restoring ${path.basename(file)} into PostgreSQL ${serverVersion}`)
    await runTool(
      psql,
      [
        '-X',
        '-q',
        '-v',
        'ON_ERROR_STOP=1',
        '--single-transaction',
        '-c',
        `DROP SCHEMA IF EXISTS ${MIGRATIONS_SCHEMA} CASCADE`,
        '-f',
        script,
      ],
      { url: options.adminUrl, what: 'restore failed, the database is unchanged' },
    )
  } finally {
    await rm(work, { recursive: true, force: true })
  }
  return metadata
}

export interface ListedBackup {
  path: string
  file: string
  createdAt: string
  sizeBytes: number
  migrationHead: string | null
  /** False when the metadata JSON is missing or unreadable. */
  hasMetadata: boolean
}

/** Backups in `dir`, newest first. */
export async function listBackups(dir: string): Promise<ListedBackup[]> {
  let names: string[]
  try {
    names = await readdir(dir)
  } catch {
    return []
  }
  const backups: ListedBackup[] = []
  for (const name of names.filter((n) => BACKUP_FILE.test(n))) {
    const file = path.join(dir, name)
    const info = await stat(file)
    const metadata = await readMetadata(file).catch(() => undefined)
    backups.push({
      path: file,
      file: name,
      createdAt: metadata?.createdAt ?? info.mtime.toISOString(),
      sizeBytes: info.size,
      migrationHead: metadata?.migrationHead ?? null,
      hasMetadata: metadata !== undefined,
    })
  }
  return backups.sort((a, b) => b.createdAt.localeCompare(a.createdAt))
}

/** Deletes backups (and their metadata) beyond the newest `keep`, or older than `olderThanDays`. */
export async function cleanupBackups(options: { dir: string; keep?: number; olderThanDays?: number; now?: Date }): Promise<ListedBackup[]> {
  const backups = await listBackups(options.dir)
  const now = (options.now ?? new Date()).getTime()
  const doomed =
    options.keep !== undefined
      ? backups.slice(options.keep)
      : backups.filter((b) => now - Date.parse(b.createdAt) > (options.olderThanDays ?? Infinity) * 86_400_000)
  for (const b of doomed) {
    await rm(b.path, { force: true })
    await rm(metadataPath(b.path), { force: true })
  }
  return doomed
}
