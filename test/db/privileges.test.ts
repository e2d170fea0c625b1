// What each login role can and cannot do, checked by trying. Object lists come
// from the catalogue, so a table, view or function added later is covered
// without touching this file.
import t from 'tap'
import pg from 'pg'
import { createTestDatabase, testPool, type TestDatabase } from '../helpers/db.ts'
import { oauthSignIn } from '../../src/db/procedures.ts'
import { hex64, newSession, newUser, rows, uniqueEmail } from '../helpers/fixtures.ts'

const DENIED = '42501' // insufficient_privilege

type Teardown = Parameters<typeof createTestDatabase>[0]

async function connect(t: Teardown, url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url })
  client.on('error', () => undefined) // the database is dropped WITH (FORCE) at teardown
  await client.connect()
  t.teardown(() => client.end())
  return client
}

/** Runs sql in a transaction that is always rolled back; the SQLSTATE it failed with, or 'ok'. */
async function attempt(client: pg.Client, sql: string): Promise<string> {
  await client.query('BEGIN')
  try {
    await client.query(sql)
    return 'ok'
  } catch (err) {
    return String((err as { code?: unknown }).code)
  } finally {
    await client.query('ROLLBACK')
  }
}

interface Catalogue {
  tables: { name: string; firstColumn: string }[]
  views: string[]
  sequences: string[]
}

async function catalogue(db: TestDatabase, t: Teardown): Promise<Catalogue> {
  const admin = testPool(t, db.adminUrl, 1)
  const tables = await rows<{ name: string; first_column: string }>(
    admin,
    `
    SELECT c.relname AS name, a.attname AS first_column
      FROM pg_class c
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = 1
     WHERE c.relnamespace = 'activity'::regnamespace AND c.relname IN (SELECT tablename FROM pg_tables WHERE schemaname = 'activity')
     ORDER BY 1`,
  )
  const views = await rows<{ name: string }>(admin, `SELECT viewname AS name FROM pg_views WHERE schemaname = 'activity' ORDER BY 1`)
  const sequences = await rows<{ name: string }>(
    admin,
    `SELECT sequencename AS name FROM pg_sequences WHERE schemaname = 'activity' ORDER BY 1`,
  )
  return {
    tables: tables.map((r) => ({ name: r.name, firstColumn: r.first_column })),
    views: views.map((r) => r.name),
    sequences: sequences.map((r) => r.name),
  }
}

const q = (name: string): string => `activity.${pg.escapeIdentifier(name)}`

t.test('auth_api_user can touch no table, view or sequence directly', async (t) => {
  const db = await createTestDatabase(t)
  const cat = await catalogue(db, t)
  t.ok(
    ['users', 'refresh_tokens', 'login_attempts', 'email_tokens', 'audit_logs'].every((n) => cat.tables.some((x) => x.name === n)),
    'the catalogue lists the known tables',
  )
  const api = await connect(t, db.url)

  for (const { name, firstColumn } of cat.tables) {
    const col = pg.escapeIdentifier(firstColumn)
    t.equal(await attempt(api, `SELECT * FROM ${q(name)} LIMIT 1`), DENIED, `${name}: SELECT denied`)
    t.equal(await attempt(api, `INSERT INTO ${q(name)} DEFAULT VALUES`), DENIED, `${name}: INSERT denied`)
    t.equal(await attempt(api, `UPDATE ${q(name)} SET ${col} = ${col}`), DENIED, `${name}: UPDATE denied`)
    t.equal(await attempt(api, `DELETE FROM ${q(name)}`), DENIED, `${name}: DELETE denied`)
    t.equal(await attempt(api, `TRUNCATE ${q(name)}`), DENIED, `${name}: TRUNCATE denied`)
  }
  for (const view of cat.views) {
    t.equal(await attempt(api, `SELECT * FROM ${q(view)} LIMIT 1`), DENIED, `view ${view}: SELECT denied`)
  }
  t.ok(cat.sequences.length > 0)
  for (const seq of cat.sequences) {
    t.equal(await attempt(api, `SELECT nextval('${q(seq)}')`), DENIED, `sequence ${seq}: nextval denied`)
  }
})

t.test('auth_api_user cannot create objects anywhere', async (t) => {
  const db = await createTestDatabase(t)
  const api = await connect(t, db.url)
  t.equal(await attempt(api, 'CREATE TABLE activity.intruder (id int)'), DENIED, 'not in activity')
  t.equal(await attempt(api, 'CREATE TABLE public.intruder (id int)'), DENIED, 'not in public')
  t.equal(await attempt(api, 'CREATE TABLE intruder (id int)'), DENIED, 'not on its search_path')
  t.equal(await attempt(api, 'CREATE TEMP TABLE intruder (id int)'), DENIED, 'not even a temporary table')
  t.equal(await attempt(api, 'CREATE FUNCTION activity.sp_intruder() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$'), DENIED, 'no function')
  t.equal(await attempt(api, 'CREATE VIEW activity.intruder AS SELECT 1 AS x'), DENIED, 'no view')
})

t.test('auth_api_user may execute exactly the sp_* procedures', async (t) => {
  const db = await createTestDatabase(t)
  const api = await connect(t, db.url)
  const fns = (
    await api.query<{ fn: string; name: string; can: boolean }>(`
    SELECT p.oid::regprocedure::text AS fn, p.proname AS name, has_function_privilege(p.oid, 'EXECUTE') AS can
      FROM pg_proc p WHERE p.pronamespace = 'activity'::regnamespace ORDER BY 1`)
  ).rows
  const procedures = fns.filter((f) => f.name.startsWith('sp_')).map((f) => f.fn)
  t.ok(procedures.length >= 20, `${procedures.length} procedures found`)
  t.ok(
    fns.some((f) => f.name.startsWith('fn_')),
    'internal helpers exist',
  )
  t.same(
    fns.filter((f) => f.can).map((f) => f.fn),
    procedures,
    'the EXECUTE grants are the sp_* list, nothing more, nothing less',
  )

  t.equal(await attempt(api, `SELECT activity.fn_audit('forged', NULL, '{}', '{}')`), DENIED, 'fn_audit is internal')
  t.equal(await attempt(api, 'SELECT activity.fn_lock_until(9, 1, 1, 1)'), DENIED, 'fn_lock_until is internal')
  t.equal(await attempt(api, `SELECT activity.fn_revoke_user_families(gen_random_uuid(), NULL, 'logout')`), DENIED)
  t.equal(await attempt(api, 'SELECT * FROM activity.sp_schema_migrations()'), 'ok', 'a granted procedure runs')
})

t.test('procedures run with their owner rights and a pinned search_path; internal helpers with their caller rights', async (t) => {
  const db = await createTestDatabase(t)
  const admin = testPool(t, db.adminUrl, 1)
  const fns = await rows<{ fn: string; name: string; definer: boolean; config: string[] | null; owner: string; inlinable: boolean }>(
    admin,
    `
    SELECT p.oid::regprocedure::text AS fn, p.proname AS name, p.prosecdef AS definer, p.proconfig AS config,
           pg_get_userbyid(p.proowner) AS owner,
           l.lanname = 'sql' AND p.provolatile IN ('i', 's') AS inlinable
      FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
     WHERE p.pronamespace = 'activity'::regnamespace ORDER BY 1`,
  )
  t.ok(
    fns.some((f) => f.name.startsWith('fn_') && f.inlinable),
    'an inlinable helper exists',
  )
  const pinned = ['search_path=activity, pg_temp']
  for (const f of fns) {
    if (f.name.startsWith('sp_')) {
      t.same([f.definer, f.config, f.owner], [true, pinned, 'activity_owner'], `${f.fn}: SECURITY DEFINER, pinned search_path`)
    } else {
      t.match(f.name, /^fn_/, `${f.fn}: every function is a procedure or an internal helper`)
      // A SET clause would keep an sql helper from being inlined; the others pin the path.
      t.same(
        [f.definer, f.config, f.owner],
        [false, f.inlinable ? null : pinned, 'activity_owner'],
        `${f.fn}: SECURITY INVOKER, ${f.inlinable ? 'no SET clause (inlinable)' : 'pinned search_path'}`,
      )
    }
  }
})

t.test('activity_readonly reads the views, never a secret, and runs no procedure but sp_schema_migrations', async (t) => {
  const db = await createTestDatabase(t)
  const api = testPool(t, db.url, 1)
  const user = await newUser(api)
  const session = await newSession(api, user.id, { ip: '192.0.2.5' })
  // A linked identity, so that oauth_links has a row to show.
  await oauthSignIn(api, {
    provider: 'google',
    providerUserId: 'sub-1',
    email: uniqueEmail('linked'),
    emailVerified: true,
    codeHash: hex64(),
    codeTtlSeconds: 60,
  })
  const cat = await catalogue(db, t)
  t.ok(cat.views.length >= 3, 'the catalogue lists the views')
  const ro = await connect(t, db.readonlyUrl)

  const seen: string[] = []
  for (const view of cat.views) {
    const { rows: got } = await ro.query(`SELECT * FROM ${q(view)}`)
    t.ok(got.length > 0, `${view}: readable and not empty`)
    seen.push(JSON.stringify(got))
  }
  t.notOk(seen.join('\n').includes(session.tokenHash), 'no view shows the token hash')
  t.notOk(seen.join('\n').includes('$argon2'), 'no view shows a password hash')

  for (const [table, column] of [
    ['users', 'hashed_password'],
    ['refresh_tokens', 'token'],
    ['email_tokens', 'token_hash'],
  ] as const) {
    t.equal(await attempt(ro, `SELECT ${column} FROM activity.${table}`), DENIED, `${table}.${column} denied`)
  }
  for (const { name } of cat.tables) {
    t.equal(await attempt(ro, `SELECT * FROM ${q(name)} LIMIT 1`), DENIED, `${name}: SELECT denied`)
  }
  for (const view of cat.views) {
    // 55000: the view is not updatable at all; 42501: it is, but not by this role.
    t.match(await attempt(ro, `DELETE FROM ${q(view)}`), /^(42501|55000)$/, `${view}: read only`)
  }
  t.equal(await attempt(ro, `UPDATE activity.active_users SET email = email`), DENIED, 'an updatable view does not write through')

  const admin = testPool(t, db.adminUrl, 1)
  const columns = await rows<{ view: string; column: string }>(
    admin,
    `
    SELECT table_name AS view, column_name AS column FROM information_schema.columns
     WHERE table_schema = 'activity' AND table_name IN (SELECT viewname FROM pg_views WHERE schemaname = 'activity')`,
  )
  t.ok(columns.length > 0)
  t.same(
    // has_password (active_users) says whether there is one, never what it is.
    columns.filter((c) => /password|hash|^token$/.test(c.column) && c.column !== 'has_password'),
    [],
    'no view has a secret column',
  )

  const { rows: grants } = await ro.query<{ fn: string }>(`
    SELECT p.proname AS fn FROM pg_proc p
     WHERE p.pronamespace = 'activity'::regnamespace AND has_function_privilege(p.oid, 'EXECUTE') ORDER BY 1`)
  t.same(
    grants.map((g) => g.fn),
    ['sp_schema_migrations'],
  )
  t.equal(await attempt(ro, `SELECT * FROM activity.sp_get_user_by_email('${user.email}')`), DENIED, 'cannot look a user up')
  t.equal(await attempt(ro, 'SELECT * FROM activity.sp_schema_migrations()'), 'ok')
})
