// Stored procedures through their typed wrappers, as auth_api_user (what the
// service does): the normal path and each error path. Shared setup: ./setup.ts.
// The profile (issue 17): fields, username rules and races, change of email, login by username.
import pg from 'pg'
import t from 'tap'
import {
  beginLogin,
  confirmEmailChange,
  consumeEmailToken,
  createEmailToken,
  endLoginAttempt,
  getProfile,
  getUserById,
  listUserSessions,
  requestEmailChange,
  updateProfile,
} from '../../../src/db/procedures.ts'
import { createTestDatabase, testPool } from '../../helpers/db.ts'
import { dbError, hex64, isCode, newSession, newUser, rows, uniqueEmail } from '../../helpers/fixtures.ts'
import { setup, NO_USER, lastAudit, LOCKOUT } from './setup.ts'

const MAIL = { max: 5, windowSeconds: 3600 }
const uniqueName = (prefix = 'u') => `${prefix}_${hex64().slice(0, 10)}`

t.test('a profile is set field by field, trimmed, and a null clears a field', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  t.same(await getProfile(ctx.api, { userId: user.id }), { username: null, firstName: null, lastName: null, phone: null })
  t.equal(await getProfile(ctx.api, { userId: NO_USER }), undefined)

  const name = uniqueName('Ann.Lee')
  const set = await updateProfile(ctx.api, {
    userId: user.id,
    changes: { username: name, firstName: '  Zoë  ', lastName: '李', phone: '+41446681800' },
    ctx: { requestId: 'req-profile' },
  })
  t.same(set, { username: name, firstName: 'Zoë', lastName: '李', phone: '+41446681800' })
  t.same(await lastAudit(ctx.admin, 'profile_updated'), {
    details: { fields: ['first_name', 'last_name', 'phone', 'username'] },
    user_id: user.id,
    ip: null,
    user_agent: null,
    request_id: 'req-profile',
  })

  const cleared = await updateProfile(ctx.api, { userId: user.id, changes: { phone: null, firstName: '   ' } })
  t.same(cleared, { username: name, firstName: null, lastName: '李', phone: null }, 'null and blank clear; absent fields stay')
  t.same((await lastAudit(ctx.admin, 'profile_updated'))?.details, { fields: ['first_name', 'phone'] }, 'field names, no values')

  const audits = async () => (await rows(ctx.admin, `SELECT 1 FROM activity.audit_logs WHERE action = 'profile_updated'`)).length
  const before = await audits()
  await updateProfile(ctx.api, { userId: user.id, changes: { lastName: '李' } })
  t.equal(await audits(), before, 'nothing changed: nothing audited')

  t.equal((await updateProfile(ctx.api, { userId: user.id, changes: { firstName: 'é'.repeat(100) } })).firstName, 'é'.repeat(100))
})

t.test('each rule answers its own code, and nothing is written', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const update = (changes: Parameters<typeof updateProfile>[1]['changes']) => updateProfile(ctx.api, { userId: user.id, changes })
  for (const bad of ['ab', 'x'.repeat(33), 'has space', 'dash-name', 'ünï', 'a@b.c', '']) {
    await t.rejects(update({ username: bad }), dbError('invalid_username'), `username ${JSON.stringify(bad)}`)
  }
  for (const reserved of ['admin', 'Root', 'SUPPORT', 'Auth', 'null', 'api']) {
    await t.rejects(update({ username: reserved }), dbError('username_reserved'), `reserved ${reserved}`)
  }
  for (const bad of ['0041446681800', '+0123456', '+1 415 555 0123', '+1234567890123456', 'call me']) {
    await t.rejects(update({ phone: bad }), dbError('invalid_phone'), `phone ${bad}`)
  }
  await t.rejects(update({ firstName: 'x'.repeat(101) }), dbError('invalid_name'), '101 characters')
  await t.rejects(update({ lastName: 'a\u0007b' }), dbError('invalid_name'), 'control character')
  await t.rejects(update({ username: 'fine_name', phone: 'nope' }), dbError('invalid_phone'), 'one bad field refuses all')
  t.same(await getProfile(ctx.api, { userId: user.id }), { username: null, firstName: null, lastName: null, phone: null })

  await t.rejects(
    ctx.api.query(`SELECT * FROM activity.sp_update_profile($1, '{"email": "x@example.com"}')`, [user.id]),
    { code: 'AU007' },
    'an unknown field is AU007',
  )
  await t.rejects(updateProfile(ctx.api, { userId: NO_USER, changes: { firstName: 'A' } }), dbError('user_not_found'))
})

t.test('a username is unique in any letter case, also when twenty users race for it', async (t) => {
  const ctx = await setup(t)
  const owner = await newUser(ctx.api)
  const other = await newUser(ctx.api)
  const name = uniqueName('Taken')
  await updateProfile(ctx.api, { userId: owner.id, changes: { username: name } })
  await t.rejects(updateProfile(ctx.api, { userId: other.id, changes: { username: name.toLowerCase() } }), dbError('username_taken'))
  t.same(
    (await updateProfile(ctx.api, { userId: owner.id, changes: { username: name.toUpperCase() } })).username,
    name.toUpperCase(),
    'the owner may change its case',
  )

  const db = await createTestDatabase(t)
  const racers = await Promise.all(Array.from({ length: 20 }, async () => newUser(testPool(t, db.url, 1))))
  const pools = racers.map(() => testPool(t, db.url, 1))
  const contested = uniqueName('race')
  const results = await Promise.allSettled(
    racers.map((u, i) => {
      const spelled = i % 2 === 0 ? contested.toUpperCase() : contested
      return updateProfile(pools[i] ?? ctx.api, { userId: u.id, changes: { username: spelled } })
    }),
  )
  t.equal(results.filter((r) => r.status === 'fulfilled').length, 1, 'exactly one wins')
  t.equal(
    results.filter((r) => r.status === 'rejected' && isCode(r.reason, 'username_taken')).length,
    19,
    'the others are told username_taken',
  )
})

t.test('a change of email: a link for the new address, nothing changes until it comes back', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const stays = await newSession(ctx.api, user.id)
  await newSession(ctx.api, user.id)
  const reset = hex64()
  await createEmailToken(ctx.api, { userId: user.id, purpose: 'reset_password', tokenHash: reset, ttlSeconds: 600 })
  const target = uniqueEmail('Moved').toUpperCase()
  const link = hex64()
  const asked = await requestEmailChange(ctx.api, {
    userId: user.id,
    newEmail: ` ${target} `,
    tokenHash: link,
    ttlSeconds: 600,
    mail: MAIL,
  })
  t.same(asked, { status: 'link', oldEmail: user.email, newEmail: target.toLowerCase(), mailNew: true, mailOld: true })
  t.match(await getUserById(ctx.api, { userId: user.id }), { email: user.email }, 'unchanged before confirmation')
  t.same(
    await rows(ctx.admin, `SELECT purpose::text, email FROM activity.email_tokens WHERE token_hash = $1`, [link]),
    [{ purpose: 'change_email', email: target.toLowerCase() }],
    'the token keeps the new address',
  )
  await t.rejects(
    consumeEmailToken(ctx.api, { tokenHash: link, purpose: 'change_email' }),
    dbError('invalid_argument'),
    'never as a generic link',
  )
  await t.rejects(confirmEmailChange(ctx.api, { tokenHash: reset }), dbError('token_invalid'), 'another purpose')

  const done = await confirmEmailChange(ctx.api, { tokenHash: link, ctx: { requestId: 'req-confirm' } })
  t.same(done, { userId: user.id, oldEmail: user.email, newEmail: target.toLowerCase(), sessionsEnded: 2 })
  t.match(await getUserById(ctx.api, { userId: user.id }), { email: target.toLowerCase(), isVerified: true })
  t.same(await listUserSessions(ctx.api, { userId: user.id }), [], 'every session ended')
  t.same(
    await rows(ctx.admin, `SELECT DISTINCT revoked_reason::text AS reason FROM activity.refresh_tokens WHERE family_id = $1`, [
      stays.familyId,
    ]),
    [{ reason: 'email_changed' }],
  )
  await t.rejects(
    consumeEmailToken(ctx.api, { tokenHash: reset, purpose: 'reset_password', newHashedPassword: '$argon2id$x' }),
    dbError('token_used'),
    'links sent to the old address are burnt',
  )
  t.match(await lastAudit(ctx.admin, 'email_changed'), {
    user_id: user.id,
    request_id: 'req-confirm',
    details: { old_email: user.email, email: target.toLowerCase(), sessions_ended: 2 },
  })
  await t.rejects(confirmEmailChange(ctx.api, { tokenHash: link }), dbError('token_used'), 'once')
})

t.test('a taken or unchanged address stores no link; a taken one meanwhile refuses the confirmation', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const holder = await newUser(ctx.api)
  const taken = await requestEmailChange(ctx.api, {
    userId: user.id,
    newEmail: holder.email,
    tokenHash: hex64(),
    ttlSeconds: 600,
    mail: MAIL,
  })
  t.same(taken, { status: 'taken', oldEmail: user.email, newEmail: holder.email, mailNew: true, mailOld: true })
  const same = await requestEmailChange(ctx.api, { userId: user.id, newEmail: user.email, tokenHash: hex64(), ttlSeconds: 600, mail: MAIL })
  t.match(same, { status: 'unchanged', mailNew: false, mailOld: false })
  t.same(await rows(ctx.admin, `SELECT 1 FROM activity.email_tokens WHERE purpose = 'change_email'`), [], 'no link stored')

  const later = uniqueEmail('later')
  const link = hex64()
  await requestEmailChange(ctx.api, { userId: user.id, newEmail: later, tokenHash: link, ttlSeconds: 600, mail: MAIL })
  await newUser(ctx.api, later)
  await t.rejects(confirmEmailChange(ctx.api, { tokenHash: link }), dbError('email_taken'))
  t.match(await getUserById(ctx.api, { userId: user.id }), { email: user.email })

  await t.rejects(
    requestEmailChange(ctx.api, { userId: user.id, newEmail: 'not an address', tokenHash: hex64(), ttlSeconds: 600, mail: MAIL }),
    dbError('invalid_email'),
  )
  await t.rejects(
    requestEmailChange(ctx.api, { userId: user.id, newEmail: uniqueEmail(), tokenHash: 'nothex', ttlSeconds: 600, mail: MAIL }),
    dbError('invalid_argument'),
  )
  const budget = { max: 1, windowSeconds: 3600 }
  const fresh = uniqueEmail('budget')
  t.match(await requestEmailChange(ctx.api, { userId: holder.id, newEmail: fresh, tokenHash: hex64(), ttlSeconds: 600, mail: budget }), {
    mailNew: true,
  })
  t.match(
    await requestEmailChange(ctx.api, { userId: holder.id, newEmail: fresh, tokenHash: hex64(), ttlSeconds: 600, mail: budget }),
    {
      status: 'link',
      mailNew: false,
      mailOld: false,
    },
    'over the budget: no mail either way',
  )
})

t.test('login by username: the account, its one lockout key, and an unknown name counts like an unknown address', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const name = uniqueName('Login')
  await updateProfile(ctx.api, { userId: user.id, changes: { username: name } })
  t.match(await beginLogin(ctx.api, { email: ` ${name.toUpperCase()} `, ip: null, deviceHash: null, policy: LOCKOUT }), {
    allowed: true,
    userId: user.id,
    email: user.email,
  })
  for (let i = 1; i < LOCKOUT.threshold; i++) {
    await beginLogin(ctx.api, { email: i % 2 === 0 ? name : user.email, ip: null, deviceHash: null, policy: LOCKOUT })
  }
  t.match(
    await beginLogin(ctx.api, { email: name, ip: null, deviceHash: null, policy: LOCKOUT }),
    { allowed: false },
    'username and address share one counter',
  )
  t.match(await beginLogin(ctx.api, { email: user.email, ip: null, deviceHash: null, policy: LOCKOUT }), { allowed: false })

  const ghost = uniqueName('Ghost')
  const first = await beginLogin(ctx.api, { email: ghost, ip: null, deviceHash: null, policy: LOCKOUT })
  t.match(first, { allowed: true, userId: null, email: null })
  await endLoginAttempt(ctx.api, { email: ghost, ip: null, deviceHash: null, outcome: 'login_failed', policy: LOCKOUT })
  for (let i = 1; i < LOCKOUT.threshold; i++) await beginLogin(ctx.api, { email: ghost, ip: null, deviceHash: null, policy: LOCKOUT })
  t.match(
    await beginLogin(ctx.api, { email: ghost.toUpperCase(), ip: null, deviceHash: null, policy: LOCKOUT }),
    { allowed: false },
    'an unknown name locks too',
  )
})

t.test('activity_readonly reads the profile columns of active_users', async (t) => {
  const db = await createTestDatabase(t)
  const api = testPool(t, db.url, 1)
  const user = await newUser(api)
  const name = uniqueName('seen')
  await updateProfile(api, { userId: user.id, changes: { username: name, firstName: 'Ann', lastName: 'Lee', phone: '+41446681800' } })
  const ro = new pg.Client({ connectionString: db.readonlyUrl })
  await ro.connect()
  t.teardown(() => ro.end())
  const { rows: seen } = await ro.query('SELECT username, first_name, last_name, phone FROM activity.active_users WHERE id = $1', [user.id])
  t.same(seen, [{ username: name, first_name: 'Ann', last_name: 'Lee', phone: '+41446681800' }])
  await t.rejects(ro.query('SELECT username FROM activity.users'), { code: '42501' }, 'not the table')
})
