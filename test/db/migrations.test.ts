import t from 'tap'
import { withClient } from '../../src/db/admin-connection.ts'
import { migrate, migrationNames, migrationStatus } from '../../src/db/migrate.ts'
import { createBareDatabase } from '../helpers/db.ts'
import { catalogue, fingerprint } from '../helpers/fingerprint.ts'

t.test('up → down to zero → up gives an identical catalogue', async (t) => {
  const db = await createBareDatabase(t)
  const names = await migrationNames()
  t.ok(names.length > 0, 'the code has migrations')

  const up = await migrate({ adminUrl: db.adminUrl })
  t.same(
    up.map((m) => m.name),
    names,
    'every migration applied, in order',
  )
  const first = await catalogue(db.adminUrl)
  t.ok(first.functions.length >= 11, 'procedures exist')

  const down = await migrate({ adminUrl: db.adminUrl, direction: 'down', count: names.length })
  t.same(
    down.map((m) => m.name),
    [...names].reverse(),
  )
  const empty = await catalogue(db.adminUrl)
  t.same(
    Object.fromEntries(Object.entries(empty).map(([k, rows]) => [k, rows.length])),
    { relations: 0, columns: 0, constraints: 0, indexes: 0, functions: 0, views: 0, types: 0 },
    'down to zero leaves schema activity empty',
  )

  await migrate({ adminUrl: db.adminUrl })
  t.equal(fingerprint(await catalogue(db.adminUrl)), fingerprint(first), 'same fingerprint after re-applying')
})

t.test(
  'refresh-rotation: up replaces only sp_rotate_refresh_token (grants kept), down restores the catalogue before it exactly',
  async (t) => {
    const db = await createBareDatabase(t)
    const names = await migrationNames()
    const index = names.indexOf('1796100000000_refresh-rotation')
    t.ok(index > 0, 'the migration is in the code, after others')
    await migrate({ adminUrl: db.adminUrl, count: index })
    const before = await catalogue(db.adminUrl)
    t.same(
      (await migrate({ adminUrl: db.adminUrl, count: 1 })).map((m) => m.name),
      ['1796100000000_refresh-rotation'],
    )
    const after = await catalogue(db.adminUrl)
    type Fn = { proname: string; args: string; def: string; acl: string | null; comment: string | null }
    const byKey = (rows: unknown[]) => new Map((rows as Fn[]).map((f) => [`${f.proname}(${f.args})`, f]))
    const [old, now] = [byKey(before.functions), byKey(after.functions)]
    t.same([...now.keys()], [...old.keys()], 'the same functions, same signatures')
    t.same(
      [...now].filter(([k, f]) => JSON.stringify(f) !== JSON.stringify(old.get(k))).map(([k]) => k),
      [
        'sp_rotate_refresh_token(p_token_hash text, p_new_token_hash text, p_new_jti text, p_idle_ttl_seconds integer, p_grace_seconds integer, p_ctx jsonb)',
      ],
      'only the rotation procedure changed',
    )
    const rotate = [...now.values()].find((f) => f.proname === 'sp_rotate_refresh_token')
    const previous = [...old.values()].find((f) => f.proname === 'sp_rotate_refresh_token')
    t.equal(rotate?.acl, previous?.acl, 'its grants are kept')
    t.not(rotate?.comment, previous?.comment, 'its comment describes the new contract')
    const { relations, columns, constraints, indexes, views, types } = after
    t.same(
      { relations, columns, constraints, indexes, views, types },
      {
        relations: before.relations,
        columns: before.columns,
        constraints: before.constraints,
        indexes: before.indexes,
        views: before.views,
        types: before.types,
      },
      'no table, index or view touched',
    )

    await migrate({ adminUrl: db.adminUrl, direction: 'down', count: 1 })
    t.equal(fingerprint(await catalogue(db.adminUrl)), fingerprint(before), 'down restores the previous definition exactly')
  },
)

t.test('two migrate runs started at once: one applies, the other waits and finds nothing', async (t) => {
  const db = await createBareDatabase(t)
  const names = await migrationNames()
  const [a, b] = await Promise.all([migrate({ adminUrl: db.adminUrl }), migrate({ adminUrl: db.adminUrl })])
  t.same([a.length, b.length].sort(), [0, names.length])
  const status = await withClient(db.adminUrl, (c) => migrationStatus(c))
  t.same(
    status.applied.map((m) => m.name),
    names,
    'each migration recorded once',
  )
  t.same(status.pending, [])
})

t.test('objects created by migrations belong to activity_owner', async (t) => {
  const db = await createBareDatabase(t)
  await migrate({ adminUrl: db.adminUrl })
  const owners = await withClient(db.adminUrl, async (c) => {
    const { rows } = await c.query<{ owner: string }>(
      `SELECT DISTINCT pg_get_userbyid(relowner) AS owner FROM pg_class WHERE relnamespace = 'activity'::regnamespace
       UNION SELECT DISTINCT pg_get_userbyid(proowner) FROM pg_proc WHERE pronamespace = 'activity'::regnamespace`,
    )
    return rows.map((r) => r.owner)
  })
  t.same(owners, ['activity_owner'])
})

t.test('a failing migration leaves nothing half-applied', async (t) => {
  const db = await createBareDatabase(t)
  const { mkdtemp, cp, writeFile } = await import('node:fs/promises')
  const os = await import('node:os')
  const path = await import('node:path')
  const { MIGRATIONS_DIR } = await import('../../src/db/migrate.ts')
  const dir = await mkdtemp(path.join(os.tmpdir(), 'activity-migrations-'))
  t.teardown(async () => (await import('node:fs/promises')).rm(dir, { recursive: true, force: true }))
  await cp(MIGRATIONS_DIR, dir, { recursive: true })
  await writeFile(
    path.join(dir, '9999999999999_broken.sql'),
    '-- Up Migration\nCREATE TABLE activity.half_done (id int);\nSELECT no_such_function();\n-- Down Migration\nDROP TABLE activity.half_done;\n',
  )
  await t.rejects(migrate({ adminUrl: db.adminUrl, dir }), /no_such_function/)
  const status = await withClient(db.adminUrl, (c) => migrationStatus(c, dir))
  t.same(status.applied, [], 'no migration recorded: the earlier files were rolled back too')
  const tables = await withClient(
    db.adminUrl,
    async (c) =>
      (await c.query(`SELECT to_regclass('activity.users') AS u, to_regclass('activity.half_done') AS h`)).rows[0] as {
        u: unknown
        h: unknown
      },
  )
  t.same(tables, { u: null, h: null })
})
