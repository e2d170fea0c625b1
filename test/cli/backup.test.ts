// Backup and restore with the machine's real pg_dump, pg_restore and psql.
//
// pg_dump cannot dump a server newer than itself, so the round trips run on a
// server it can read: the run's own server when its major is not newer than
// pg_dump's, otherwise BACKUP_TEST_DATABASE_URL (default: the machine's
// PostgreSQL 15 at 127.0.0.1:5432). If neither can be had the test fails: it
// never skips. On a newer server (the embedded 16) the refusal itself is tested.
import { randomBytes } from 'node:crypto'
import { copyFile, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { gzipSync } from 'node:zlib'
import t, { type Test } from 'tap'
import { bootstrap } from '../../src/db/bootstrap.ts'
import { withClient, withDatabase } from '../../src/db/admin-connection.ts'
import { migrate, migrationNames } from '../../src/db/migrate.ts'
import { createEmailToken, createUser, recordFailedLogin, saveRefreshToken } from '../../src/db/procedures.ts'
import type { BackupInfo, BackupMetadata } from '../../src/ops/backup.ts'
import { findTool, findToolFor, toolMajor } from '../../src/ops/pg-tools.ts'
import { newRefreshToken } from '../../src/auth/refresh-tokens.ts'
import { newEmailToken } from '../../src/auth/tokens.ts'
import { cli, cliEnv, cliJson } from '../helpers/cli.ts'
import { readRun, TEST_PASSWORDS } from '../helpers/cluster.ts'
import pg from 'pg'

const run = readRun()
const pgDumpMajor = await toolMajor(await findTool('pg_dump', undefined))
const runMajor = Number(run.serverVersion.split('.')[0])
const serverUrl =
  runMajor <= pgDumpMajor ? run.adminUrl : (process.env.BACKUP_TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres')

/** A bootstrapped, migrated database on the backup server, holding rows in every table. */
async function populatedDatabase(t: Test): Promise<{ env: NodeJS.ProcessEnv; adminUrl: string; name: string }> {
  const name = `${run.prefix}_bk_${randomBytes(3).toString('hex')}`
  t.teardown(() => withClient(serverUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)))
  await bootstrap({ adminUrl: serverUrl, database: name, passwords: TEST_PASSWORDS })
  const adminUrl = withDatabase(serverUrl, name)
  await migrate({ adminUrl })
  const env = cliEnv(name, serverUrl)
  await cli(['seed'], env)
  const pool = new pg.Pool({ connectionString: adminUrl, max: 2 })
  try {
    const user = await createUser(pool, {
      email: 'Backup.Me@Example.com',
      hashedPassword: '$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA',
    })
    await createEmailToken(pool, { userId: user.id, purpose: 'verify_email', tokenHash: newEmailToken().hash, ttlSeconds: 3600 })
    const token = newRefreshToken()
    await saveRefreshToken(pool, { userId: user.id, tokenHash: token.hash, jti: token.jti, idleTtlSeconds: 3600, familyTtlSeconds: 7200 })
    await recordFailedLogin(pool, {
      email: 'nobody@example.com',
      ip: '203.0.113.9',
      threshold: 5,
      baseSeconds: 60,
      maxSeconds: 900,
      ipThreshold: 50,
      windowSeconds: 3600,
    })
  } finally {
    await pool.end()
  }
  return { env, adminUrl, name }
}

/** Every row of every table of schema activity, as JSON text, in a stable order. */
async function contents(adminUrl: string): Promise<Record<string, string>> {
  return withClient(adminUrl, async (c) => {
    const tables = await c.query<{ name: string }>(
      `SELECT relname AS name FROM pg_class WHERE relnamespace = 'activity'::regnamespace AND relkind = 'r' ORDER BY 1`,
    )
    const out: Record<string, string> = {}
    for (const { name } of tables.rows) {
      const { rows } = await c.query<{ j: string | null }>(
        `SELECT json_agg(x ORDER BY x::text)::text AS j FROM activity.${c.escapeIdentifier(name)} x`,
      )
      out[name] = rows[0]?.j ?? '[]'
    }
    return out
  })
}

t.test(
  `backup → drop → restore gives identical rows in every table (server ${serverUrl === run.adminUrl ? 'of the run' : serverUrl})`,
  async (t) => {
    const { env, adminUrl } = await populatedDatabase(t)
    const dir = await mkdtemp(path.join(os.tmpdir(), 'activity-bk-'))
    t.teardown(() => rm(dir, { recursive: true, force: true }))
    const before = await contents(adminUrl)
    for (const table of ['users', 'refresh_tokens', 'email_tokens', 'login_attempts', 'audit_logs']) {
      t.not(before[table], '[]', `${table} has rows to lose`)
    }

    for (const args of [[], ['--plain'], ['--no-compress'], ['--plain', '--no-compress']]) {
      const backup = await cliJson<BackupInfo>(['backup', '--out', dir, ...args], env)
      t.equal(backup.code, 0)
      const info = backup.body
      t.match(info.file, /\.(dump|sql|sql\.gz)$/)
      t.equal(info.format, args.includes('--plain') ? 'plain' : 'custom')
      t.equal(info.compressed, !args.includes('--no-compress'))
      const metadata = JSON.parse(await readFile(`${info.path}.json`, 'utf8')) as BackupMetadata
      t.equal(metadata.sha256.length, 64)
      t.equal(metadata.sizeBytes, (await stat(info.path)).size)
      t.equal(metadata.migrationHead, (await migrationNames()).at(-1))
      t.equal(metadata.rowCounts.users, 5)
      t.equal(metadata.pgDumpVersion, pgDumpMajor)

      // Lose everything, then restore.
      await withClient(adminUrl, (c) => c.query('DROP SCHEMA activity CASCADE'))
      const restored = await cli(['restore', info.path, '--yes'], env)
      t.match(restored.out, /^restored .* into /)
      t.same(await contents(adminUrl), before, `${args.join(' ') || 'custom'}: identical after restore`)
    }
    const status = await cliJson<{ pending: string[]; roles: { role: string; ok: boolean }[] }>(['status'], env)
    t.same(status.body.pending, [], 'migration history restored')
    t.ok(
      status.body.roles.every((r) => r.ok),
      'ownership and grants restored',
    )
    t.equal((await cliJson<unknown[]>(['list-backups', '--out', dir], env)).body.length, 4)
  },
)

t.test('a corrupt, truncated, unchecked or too new backup is refused and the database is untouched', async (t) => {
  const { env, adminUrl } = await populatedDatabase(t)
  const dir = await mkdtemp(path.join(os.tmpdir(), 'activity-bk-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const custom = (await cliJson<BackupInfo>(['backup', '--out', dir], env)).body
  const plain = (await cliJson<BackupInfo>(['backup', '--plain', '--out', dir], env)).body
  // Something changes after the backups: a refused restore must keep it.
  await withClient(adminUrl, (c) => c.query(`UPDATE activity.users SET failed_login_attempts = 3 WHERE email = 'active@example.com'`))
  const before = await contents(adminUrl)

  const copy = async (info: BackupInfo, name: string, metadata?: Partial<BackupMetadata>) => {
    const file = path.join(dir, name)
    await copyFile(info.path, file)
    const original = JSON.parse(await readFile(`${info.path}.json`, 'utf8')) as BackupMetadata
    await writeFile(`${file}.json`, JSON.stringify({ ...original, ...metadata }))
    return file
  }

  // Truncated after the fact: the sha256 no longer matches.
  const truncated = await copy(custom, 'truncated.dump')
  await truncate(truncated, Math.floor(custom.sizeBytes / 2))
  await t.rejects(cli(['restore', truncated, '--yes'], env), /truncated\.dump is corrupt or truncated: its sha256 does not match/)

  // Truncated before its metadata was written (the sha256 matches what is there).
  const cut = await copy(plain, 'cut.sql.gz')
  const text = (await import('node:zlib')).gunzipSync(await readFile(plain.path)).toString('utf8')
  await writeFile(cut, gzipSync(text.slice(0, Math.floor(text.length / 2))))
  const { sha256File } = await import('../../src/ops/backup.ts')
  await writeFile(`${cut}.json`, JSON.stringify({ ...plain, file: 'cut.sql.gz', sha256: await sha256File(cut) }))
  await t.rejects(cli(['restore', cut, '--yes'], env), /cut\.sql\.gz is truncated: it does not end as a complete pg_dump script/)

  // Not gzip at all.
  const garbage = await copy(plain, 'garbage.sql.gz')
  await writeFile(garbage, 'not a gzip stream')
  await writeFile(`${garbage}.json`, JSON.stringify({ ...plain, file: 'garbage.sql.gz', sha256: await sha256File(garbage) }))
  await t.rejects(cli(['restore', garbage, '--yes'], env), /garbage\.sql\.gz is corrupt/)

  // A custom-format file pg_restore cannot read.
  const unreadable = await copy(custom, 'unreadable.dump')
  await writeFile(unreadable, 'PGDMP but not really')
  await writeFile(`${unreadable}.json`, JSON.stringify({ ...custom, file: 'unreadable.dump', sha256: await sha256File(unreadable) }))
  await t.rejects(cli(['restore', unreadable, '--yes'], env), /unreadable\.dump is not readable/)

  // No metadata: nothing to check it against.
  const bare = path.join(dir, 'bare.dump')
  await copyFile(custom.path, bare)
  await t.rejects(cli(['restore', bare, '--yes'], env), /no metadata beside bare\.dump/)

  // Taken by newer code.
  const newer = await copy(custom, 'newer.dump', { migrationHead: '9999999999999_from-the-future' })
  await t.rejects(cli(['restore', newer, '--yes'], env), /at migration 9999999999999_from-the-future, newer than this code/)

  t.same(await contents(adminUrl), before, 'the database is untouched')
})

t.test('migrate takes a backup first when it has something to apply to a database that has data', async (t) => {
  const { env } = await populatedDatabase(t)
  const dir = await mkdtemp(path.join(os.tmpdir(), 'activity-bk-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const envWithDir = { ...env, BACKUP_DIR: dir }
  t.same((await cliJson<{ backup: string | null }>(['migrate'], envWithDir)).body.backup, null, 'nothing pending: no backup')
  await cli(['rollback'], envWithDir)
  const applied = await cliJson<{ applied: string[]; backup: string | null }>(['migrate'], envWithDir)
  t.same(applied.body.applied, [(await migrationNames()).at(-1)])
  t.ok(applied.body.backup !== null && (await stat(applied.body.backup)).size > 0, 'backup taken before applying')
  await cli(['rollback'], envWithDir)
  t.same((await cliJson<{ backup: string | null }>(['migrate', '--no-backup'], envWithDir)).body.backup, null, '--no-backup skips it')
})

t.test('a client older than the server is refused with a clear message', async (t) => {
  await t.rejects(
    findToolFor('pg_dump', undefined, pgDumpMajor + 1),
    new RegExp(
      `pg_dump ${pgDumpMajor} \\(.*\\) is older than the PostgreSQL ${pgDumpMajor + 1} server: install client tools ${pgDumpMajor + 1} or newer`,
    ),
  )
  await t.rejects(findTool('pg_dump', '/nonexistent'), /pg_dump not found in PG_BIN_DIR \(\/nonexistent\)/)
  if (runMajor > pgDumpMajor) {
    // The run's own server is newer (the embedded 16): the CLI says so instead of writing a broken file.
    const name = `${run.prefix}_bknew`
    t.teardown(() => withClient(run.adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)))
    const env = cliEnv(name)
    await cli(['init'], env)
    await t.rejects(cli(['backup', '--out', os.tmpdir()], env), new RegExp(`older than the PostgreSQL ${runMajor} server`))
  }
})
