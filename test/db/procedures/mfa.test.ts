// Stored procedures through their typed wrappers, as auth_api_user (what the
// service does): the normal path and each error path. Shared setup: ./setup.ts.
// Two-factor sign-in: enrolment, confirmation, the replay guard, recovery codes,
// disabling, and the login challenge; the races settled by the database.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import {
  beginLogin,
  beginMfaEnrolment,
  confirmMfaTotp,
  consumeMfaChallenge,
  createMfaChallenge,
  disableMfa,
  endLoginAttempt,
  getMfaChallenge,
  getMfaTotp,
  replaceMfaRecoveryCodes,
  rotateRefreshToken,
  saveRefreshToken,
  useMfaRecoveryCode,
  useMfaTotpStep,
} from '../../../src/db/procedures.ts'
import { createTestDatabase, testPool } from '../../helpers/db.ts'
import { dbError, hex64, newUser, rows } from '../../helpers/fixtures.ts'
import { auditActions, deactivated, lastAudit, LOCKOUT, NO_USER, setup, type Ctx } from './setup.ts'

const SEALED = 'v1:aXY:dGFn:Y2lwaGVy'
const tenHashes = () => Array.from({ length: 10 }, hex64)

/** A user with two-factor on: enrolled, confirmed at `step`; returns the recovery hashes. */
async function enabled(ctx: Ctx, step = 1000): Promise<{ userId: string; hashes: string[] }> {
  const user = await newUser(ctx.api)
  await beginMfaEnrolment(ctx.api, { userId: user.id, secretCiphertext: SEALED })
  const hashes = tenHashes()
  t.ok(await confirmMfaTotp(ctx.api, { userId: user.id, step, recoveryHashes: hashes }))
  return { userId: user.id, hashes }
}

t.test('enrolment: stored unconfirmed, replaced while unconfirmed, refused once on', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  t.same(await getMfaTotp(ctx.api, { userId: user.id }), {
    mfaEnabled: false,
    secretCiphertext: null,
    confirmed: false,
    lastUsedStep: null,
  })
  t.equal(await beginMfaEnrolment(ctx.api, { userId: user.id, secretCiphertext: 'v1:a:b:first' }), true)
  t.equal(await beginMfaEnrolment(ctx.api, { userId: user.id, secretCiphertext: SEALED }), true, 'a new enrolment replaces it')
  t.same(await getMfaTotp(ctx.api, { userId: user.id }), { mfaEnabled: false, secretCiphertext: SEALED, confirmed: false, lastUsedStep: 0 })
  t.equal(await useMfaTotpStep(ctx.api, { userId: user.id, step: 5 }), false, 'no code counts before confirmation')

  t.equal(await confirmMfaTotp(ctx.api, { userId: user.id, step: 77, recoveryHashes: tenHashes() }), true)
  t.same(await getMfaTotp(ctx.api, { userId: user.id }), { mfaEnabled: true, secretCiphertext: SEALED, confirmed: true, lastUsedStep: 77 })
  t.equal(await confirmMfaTotp(ctx.api, { userId: user.id, step: 78, recoveryHashes: tenHashes() }), false, 'confirmed once')
  t.equal(await beginMfaEnrolment(ctx.api, { userId: user.id, secretCiphertext: 'v1:a:b:other' }), false, 'refused while on')
  t.equal((await getMfaTotp(ctx.api, { userId: user.id }))?.secretCiphertext, SEALED, 'the active secret is untouched')
  const [{ count } = { count: 0 }] = await rows<{ count: number }>(
    ctx.admin,
    'SELECT count(*)::int AS count FROM activity.mfa_recovery_codes WHERE user_id = $1',
    [user.id],
  )
  t.equal(count, 10)
  t.same(await auditActions(ctx.admin, user.id), ['user_created', 'mfa_enrolment_started', 'mfa_enrolment_started', 'mfa_enabled'])
  t.same((await lastAudit(ctx.admin, 'mfa_enabled'))?.details, { recovery_codes: 10 })

  const fresh = await newUser(ctx.api)
  t.equal(await confirmMfaTotp(ctx.api, { userId: fresh.id, step: 1, recoveryHashes: tenHashes() }), false, 'nothing to confirm')
})

t.test('argument and account errors', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  await t.rejects(beginMfaEnrolment(ctx.api, { userId: user.id, secretCiphertext: '' }), dbError('invalid_argument'))
  await t.rejects(beginMfaEnrolment(ctx.api, { userId: NO_USER, secretCiphertext: SEALED }), dbError('user_not_found'))
  await t.rejects(beginMfaEnrolment(ctx.api, { userId: await deactivated(ctx), secretCiphertext: SEALED }), dbError('user_inactive'))
  await beginMfaEnrolment(ctx.api, { userId: user.id, secretCiphertext: SEALED })
  for (const recoveryHashes of [[], ['nope'], [hex64().toUpperCase()], Array.from({ length: 21 }, hex64)]) {
    await t.rejects(confirmMfaTotp(ctx.api, { userId: user.id, step: 1, recoveryHashes }), dbError('invalid_argument'))
  }
  const same = hex64()
  await t.rejects(
    confirmMfaTotp(ctx.api, { userId: user.id, step: 1, recoveryHashes: [same, same] }),
    dbError('invalid_argument'),
    'distinct',
  )
  await t.rejects(confirmMfaTotp(ctx.api, { userId: user.id, step: 0, recoveryHashes: tenHashes() }), dbError('invalid_argument'))
  await t.rejects(useMfaTotpStep(ctx.api, { userId: user.id, step: -1 }), dbError('invalid_argument'))
  await t.rejects(useMfaRecoveryCode(ctx.api, { userId: user.id, codeHash: 'abc' }), dbError('invalid_argument'))
  await t.rejects(replaceMfaRecoveryCodes(ctx.api, { userId: user.id, recoveryHashes: [] }), dbError('invalid_argument'))
  await t.rejects(disableMfa(ctx.api, { userId: NO_USER }), dbError('user_not_found'))
  const challenge = { tokenHash: hex64(), userId: user.id, amr: 'pwd' as const, deviceHash: null, ttlSeconds: 300 }
  await t.rejects(createMfaChallenge(ctx.api, { ...challenge, tokenHash: 'x' }), dbError('invalid_argument'))
  await t.rejects(createMfaChallenge(ctx.api, { ...challenge, deviceHash: 'x' }), dbError('invalid_argument'))
  await t.rejects(createMfaChallenge(ctx.api, { ...challenge, amr: 'otp' as 'pwd' }), dbError('invalid_argument'))
  await t.rejects(createMfaChallenge(ctx.api, { ...challenge, ttlSeconds: 0 }), dbError('invalid_argument'))
  await t.rejects(createMfaChallenge(ctx.api, { ...challenge, ttlSeconds: 901 }), dbError('invalid_argument'))
  await t.rejects(createMfaChallenge(ctx.api, { ...challenge, userId: NO_USER }), dbError('user_not_found'))
  await createMfaChallenge(ctx.api, challenge)
  await t.rejects(createMfaChallenge(ctx.api, challenge), dbError('invalid_argument'), 'a hash stored twice')
  await t.rejects(getMfaChallenge(ctx.api, { tokenHash: 'x' }), dbError('invalid_argument'))
  await t.rejects(consumeMfaChallenge(ctx.api, { tokenHash: 'x' }), dbError('invalid_argument'))
})

t.test('a step is accepted once and only forward, also when presented in parallel', async (t) => {
  const ctx = await setup(t)
  const { userId } = await enabled(ctx, 1000)
  t.equal(await useMfaTotpStep(ctx.api, { userId, step: 1000 }), false, 'the step the confirmation used is spent')
  t.equal(await useMfaTotpStep(ctx.api, { userId, step: 999 }), false, 'an older step')
  const parallel = await Promise.all(Array.from({ length: 8 }, () => useMfaTotpStep(ctx.api, { userId, step: 1001 })))
  t.equal(parallel.filter(Boolean).length, 1, 'eight presentations of one code: one accepted')
  t.equal((await getMfaTotp(ctx.api, { userId }))?.lastUsedStep, 1001)
  t.equal(await useMfaTotpStep(ctx.api, { userId, step: 1002 }), true)
  t.same((await lastAudit(ctx.admin, 'mfa_verified'))?.details, { method: 'totp', step: 1002 })
})

t.test('a recovery code works once, also in parallel; replacing them voids the old ones', async (t) => {
  const ctx = await setup(t)
  const { userId, hashes } = await enabled(ctx)
  const [first = '', second = ''] = hashes
  const parallel = await Promise.all(Array.from({ length: 6 }, () => useMfaRecoveryCode(ctx.api, { userId, codeHash: first })))
  t.equal(parallel.filter((r) => r.used).length, 1, 'one of six wins')
  t.same(
    parallel.find((r) => r.used),
    { used: true, remaining: 9 },
  )
  t.same(await useMfaRecoveryCode(ctx.api, { userId, codeHash: first }), { used: false, remaining: 9 }, 'spent')
  t.same(await useMfaRecoveryCode(ctx.api, { userId, codeHash: hex64() }), { used: false, remaining: 9 }, 'unknown')
  t.same((await lastAudit(ctx.admin, 'mfa_recovery_code_used'))?.details, { remaining: 9 })

  const fresh = tenHashes()
  t.equal(await replaceMfaRecoveryCodes(ctx.api, { userId, recoveryHashes: fresh }), true)
  t.same(await useMfaRecoveryCode(ctx.api, { userId, codeHash: second }), { used: false, remaining: 10 }, 'an old code is void')
  t.same(await useMfaRecoveryCode(ctx.api, { userId, codeHash: fresh[0] ?? '' }), { used: true, remaining: 9 })
  t.ok((await auditActions(ctx.admin, userId)).includes('mfa_recovery_codes_replaced'))

  const off = await newUser(ctx.api)
  t.equal(await replaceMfaRecoveryCodes(ctx.api, { userId: off.id, recoveryHashes: tenHashes() }), false, 'two-factor off')
})

t.test('disable deletes the secret, the codes and open challenges', async (t) => {
  const ctx = await setup(t)
  const { userId, hashes } = await enabled(ctx)
  await createMfaChallenge(ctx.api, { tokenHash: hex64(), userId, amr: 'pwd', deviceHash: null, ttlSeconds: 300 })
  t.equal(await disableMfa(ctx.api, { userId }), true)
  t.same(await getMfaTotp(ctx.api, { userId }), { mfaEnabled: false, secretCiphertext: null, confirmed: false, lastUsedStep: null })
  t.same(await useMfaRecoveryCode(ctx.api, { userId, codeHash: hashes[1] ?? '' }), { used: false, remaining: 0 })
  for (const table of ['mfa_totp', 'mfa_recovery_codes', 'mfa_challenges']) {
    const found = await rows(ctx.admin, `SELECT 1 FROM activity.${table} WHERE user_id = $1`, [userId])
    t.equal(found.length, 0, `${table} emptied`)
  }
  t.equal(await disableMfa(ctx.api, { userId }), false, 'already off: false, no second audit')
  t.equal((await auditActions(ctx.admin, userId)).filter((a) => a === 'mfa_disabled').length, 1)
})

t.test('a challenge: read without spending, spent once (one of parallel callers), dead after expiry', async (t) => {
  const ctx = await setup(t)
  const { userId } = await enabled(ctx)
  const device = hex64()
  const tokenHash = hex64()
  await createMfaChallenge(ctx.api, { tokenHash, userId, amr: 'pwd', deviceHash: device, ttlSeconds: 300 })
  const expected = { userId, amr: ['pwd'], deviceHash: device }
  t.same(await getMfaChallenge(ctx.api, { tokenHash }), expected)
  t.same(await getMfaChallenge(ctx.api, { tokenHash }), expected, 'reading spends nothing')
  const parallel = await Promise.all(Array.from({ length: 6 }, () => consumeMfaChallenge(ctx.api, { tokenHash })))
  t.same(
    parallel.filter((r) => r !== undefined),
    [expected],
    'exactly one caller spends it',
  )
  t.equal(await getMfaChallenge(ctx.api, { tokenHash }), undefined, 'used')

  const late = hex64()
  await createMfaChallenge(ctx.api, { tokenHash: late, userId, amr: 'fed', deviceHash: null, ttlSeconds: 300 })
  await ctx.admin.query(
    "UPDATE activity.mfa_challenges SET created_at = now() - interval '10 minutes', expires_at = now() - interval '1 second' WHERE token_hash = $1",
    [late],
  )
  t.equal(await getMfaChallenge(ctx.api, { tokenHash: late }), undefined, 'expired: not readable')
  t.equal(await consumeMfaChallenge(ctx.api, { tokenHash: late }), undefined, 'expired: not spendable')
  // The next challenge of the user sweeps the dead ones.
  await createMfaChallenge(ctx.api, { tokenHash: hex64(), userId, amr: 'pwd', deviceHash: null, ttlSeconds: 300 })
  const left = await rows(ctx.admin, 'SELECT 1 FROM activity.mfa_challenges WHERE user_id = $1', [userId])
  t.equal(left.length, 1, 'used and expired challenges swept')
  t.same((await lastAudit(ctx.admin, 'mfa_challenged'))?.details, { amr: ['pwd'] })

  const inactive = hex64()
  await createMfaChallenge(ctx.api, { tokenHash: inactive, userId, amr: 'pwd', deviceHash: null, ttlSeconds: 300 })
  await ctx.admin.query('UPDATE activity.users SET is_active = false WHERE id = $1', [userId])
  t.equal(await consumeMfaChallenge(ctx.api, { tokenHash: inactive }), undefined, 'a deactivated user’s challenge is dead')
})

t.test('a wrong code ends its login attempt as mfa_failed: counted, audited, and locks at the threshold', async (t) => {
  const ctx = await setup(t)
  const { userId } = await enabled(ctx)
  for (let i = 1; i <= LOCKOUT.threshold; i++) {
    const begun = await beginLogin(ctx.api, { email: null, userId, ip: null, deviceHash: null, policy: LOCKOUT })
    t.equal(begun.allowed, true)
    const ended = await endLoginAttempt(ctx.api, {
      email: begun.email ?? '',
      ip: null,
      deviceHash: null,
      outcome: 'mfa_failed',
      policy: LOCKOUT,
    })
    t.equal(ended.failedCount, i)
  }
  const refused = await beginLogin(ctx.api, { email: null, userId, ip: null, deviceHash: null, policy: LOCKOUT })
  t.equal(refused.allowed, false, 'locked like wrong passwords')
  const actions = await auditActions(ctx.admin, userId)
  t.equal(actions.filter((a) => a === 'mfa_failed').length, LOCKOUT.threshold)
  t.ok(actions.includes('account_locked'))
  const events = await rows<{ type: string; payload: unknown }>(
    ctx.admin,
    "SELECT type, payload FROM activity.events WHERE user_id = $1 AND type LIKE 'mfa.%' ORDER BY id",
    [userId],
  )
  t.same(
    events.map((e) => e.type),
    ['mfa.enabled', ...Array.from({ length: LOCKOUT.threshold }, () => 'mfa.failed')],
  )
  t.same(events.at(-1)?.payload, { failedCount: LOCKOUT.threshold })
  await t.rejects(
    endLoginAttempt(ctx.api, { email: 'x@example.com', ip: null, deviceHash: null, outcome: 'mfa_ok' as 'mfa_failed', policy: LOCKOUT }),
    dbError('invalid_argument'),
    'the outcomes are still a closed list',
  )
})

t.test('activity_readonly sees none of the two-factor tables', async (t) => {
  const ctx = await setup(t)
  for (const table of ['mfa_totp', 'mfa_recovery_codes', 'mfa_challenges']) {
    const [row] = await rows<{ can: boolean }>(
      ctx.admin,
      `SELECT has_table_privilege('activity_readonly', 'activity.${table}', 'SELECT') AS can`,
    )
    t.equal(row?.can, false, `${table}: no SELECT`)
    const [api] = await rows<{ can: boolean }>(
      ctx.admin,
      `SELECT has_table_privilege('auth_api_user', 'activity.${table}', 'SELECT') AS can`,
    )
    t.equal(api?.can, false, `${table}: auth_api_user only through the procedures`)
  }
})

t.test('a session keeps its amr across rotations; only the amr values this service issues are stored', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const first = hex64()
  const saved = await saveRefreshToken(ctx.api, {
    userId: user.id,
    tokenHash: first,
    jti: randomUUID(),
    idleTtlSeconds: 600,
    familyTtlSeconds: 3600,
    amr: ['pwd', 'otp'],
  })
  t.same(saved.amr, ['pwd', 'otp'])
  let token = first
  for (let i = 0; i < 3; i++) {
    const next = hex64()
    const rotated = await rotateRefreshToken(ctx.api, {
      tokenHash: token,
      newTokenHash: next,
      newJti: randomUUID(),
      idleTtlSeconds: 600,
      graceSeconds: 0,
    })
    t.equal(rotated.status, 'rotated')
    t.same(rotated.amr, ['pwd', 'otp'], `rotation ${String(i + 1)} keeps it`)
    token = next
  }
  const legacy = await saveRefreshToken(ctx.api, {
    userId: user.id,
    tokenHash: hex64(),
    jti: randomUUID(),
    idleTtlSeconds: 600,
    familyTtlSeconds: 3600,
  })
  t.equal(legacy.amr, null, 'not stated: null (its tokens carry no amr)')
  for (const amr of [[], ['otp'], ['pwd', 'fed'], ['pwd', 'otp', 'otp'], ['mfa'], ['fed', 'sms']]) {
    await t.rejects(
      saveRefreshToken(ctx.api, {
        userId: user.id,
        tokenHash: hex64(),
        jti: randomUUID(),
        idleTtlSeconds: 600,
        familyTtlSeconds: 3600,
        amr,
      }),
      dbError('invalid_argument'),
      JSON.stringify(amr),
    )
  }
})

t.test('activity_readonly sees in active_users whether two-factor is on, and nothing of its secrets', async (t) => {
  const db = await createTestDatabase(t)
  const ctx: Ctx = { api: testPool(t, db.url, 2), admin: testPool(t, db.adminUrl, 1) }
  const { userId } = await enabled(ctx)
  const off = await newUser(ctx.api)
  const ro = testPool(t, db.readonlyUrl, 1)
  const seen = await rows<{ id: string; mfa_enabled: boolean }>(
    ro,
    'SELECT id, mfa_enabled FROM activity.active_users WHERE id = ANY($1::uuid[]) ORDER BY mfa_enabled',
    [[userId, off.id]],
  )
  t.same(seen, [
    { id: off.id, mfa_enabled: false },
    { id: userId, mfa_enabled: true },
  ])
  const columns = await rows<{ column_name: string }>(
    ro,
    `SELECT column_name FROM information_schema.columns WHERE table_schema = 'activity' AND table_name = 'active_users'`,
  )
  t.notOk(
    columns.some((c) => /secret|recovery|ciphertext/.test(c.column_name)),
    'no second-factor secret among the columns',
  )
})
