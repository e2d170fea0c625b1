import t from 'tap'
import { bootstrap } from '../../src/db/bootstrap.ts'
import { withClient, withDatabase } from '../../src/db/admin-connection.ts'
import { readRun, TEST_PASSWORDS } from '../helpers/cluster.ts'

// A catalogue snapshot of everything the bootstrap owns: roles, the database ACL,
// schema ACLs and default privileges.
async function snapshot(adminUrl: string, database: string): Promise<unknown> {
  return withClient(withDatabase(adminUrl, database), async (c) => {
    const roles = await c.query(
      `SELECT rolname, rolcanlogin, rolsuper, rolinherit, rolcreatedb, rolcreaterole, rolconfig
         FROM pg_roles WHERE rolname IN ('activity_owner','auth_api_user','write_api_user','activity_readonly') ORDER BY rolname`,
    )
    const db = await c.query(`SELECT datacl::text FROM pg_database WHERE datname = current_database()`)
    const schemas = await c.query(
      `SELECT nspname, pg_get_userbyid(nspowner) AS owner, nspacl::text FROM pg_namespace WHERE nspname IN ('activity','public') ORDER BY 1`,
    )
    const defaults = await c.query(`SELECT defaclrole::regrole::text, defaclobjtype, defaclacl::text FROM pg_default_acl ORDER BY 1, 2`)
    const members = await c.query(
      `SELECT r.rolname AS role, m.rolname AS member FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid
         JOIN pg_roles m ON m.oid = a.member WHERE m.rolname = 'activity_readonly' ORDER BY 1`,
    )
    return { roles: roles.rows, db: db.rows, schemas: schemas.rows, defaults: defaults.rows, members: members.rows }
  })
}

t.test('bootstrap creates the roles, database and schema, and running it twice changes nothing', async (t) => {
  const run = readRun()
  const database = `${run.prefix}_boot`
  t.teardown(() => withClient(run.adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)))

  await bootstrap({ adminUrl: run.adminUrl, database, passwords: TEST_PASSWORDS })
  const first = (await snapshot(run.adminUrl, database)) as {
    roles: { rolname: string; rolcanlogin: boolean; rolsuper: boolean }[]
    schemas: { nspname: string; owner: string; nspacl: string }[]
    db: { datacl: string }[]
    defaults: { defaclobjtype: string; defaclacl: string }[]
    members: { role: string }[]
  }
  t.same(
    first.roles.map((r) => [r.rolname, r.rolcanlogin, r.rolsuper]),
    [
      ['activity_owner', false, false],
      ['activity_readonly', true, false],
      ['auth_api_user', true, false],
      ['write_api_user', true, false],
    ],
  )
  const activity = first.schemas.find((s) => s.nspname === 'activity')
  t.equal(activity?.owner, 'activity_owner')
  t.match(activity?.nspacl, /auth_api_user=U\//, 'auth_api_user may use the schema')
  t.notMatch(activity?.nspacl, /auth_api_user=U?C/, 'auth_api_user may not create in it')
  t.notMatch(activity?.nspacl, /(^|[{,])=/, 'PUBLIC has nothing on schema activity')
  const pub = first.schemas.find((s) => s.nspname === 'public')
  t.notMatch(pub?.nspacl, /(^|[{,])=/, 'PUBLIC has nothing on schema public')
  t.notMatch(first.db[0]?.datacl, /(^|[{,])=/, 'PUBLIC may not connect')
  t.match(first.db[0]?.datacl, /auth_api_user=c\//)
  t.same(
    first.defaults.map((d) => [d.defaclobjtype, d.defaclacl]),
    [['f', '{activity_owner=X/activity_owner}']],
    'functions created by activity_owner are not executable by PUBLIC',
  )
  t.same(
    first.members.map((m) => m.role),
    ['pg_monitor'],
  )

  await bootstrap({ adminUrl: run.adminUrl, database, passwords: TEST_PASSWORDS })
  t.same(await snapshot(run.adminUrl, database), first, 'second run is a no-op')
})

t.test('bootstrap names the missing environment variable', async (t) => {
  const run = readRun()
  await t.rejects(
    bootstrap({ adminUrl: run.adminUrl, database: `${run.prefix}_x`, passwords: { ...TEST_PASSWORDS, authApi: '' } }),
    /AUTH_API_DB_PASSWORD is not set/,
  )
})
