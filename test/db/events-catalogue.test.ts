// The event catalogue holds: every event the procedures write (each path driven
// here, as auth_api_user) validates against its payload schema in
// src/events/catalogue.ts, carries a session id exactly when it is about a
// session, and no secret; docs/events.md lists the same types with the same schemas.
import { randomUUID } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import t from 'tap'
import { Ajv2020 } from 'ajv/dist/2020.js'
import formats from 'ajv-formats'
import {
  confirmEmailChange,
  beginLogin,
  beginMfaEnrolment,
  confirmMfaTotp,
  consumeEmailToken,
  createEmailToken,
  deactivateUser,
  disableMfa,
  endLoginAttempt,
  linkOAuthProvider,
  oauthSignIn,
  recordFailedLogin,
  revokeRefreshToken,
  revokeUserSession,
  requestEmailChange,
  revokeUserSessions,
  rotateRefreshToken,
  signup,
  unlinkOAuthProvider,
  updatePassword,
  updateProfile,
  useMfaRecoveryCode,
} from '../../src/db/procedures.ts'
import { EVENT_PAYLOADS, EVENT_TYPES, EVENT_VERSION, type EventType } from '../../src/events/catalogue.ts'
import { projectPath } from '../../src/paths.ts'
import { createTestDatabase, testPool } from '../helpers/db.ts'
import { fakeHash, hex64, newSession, newUser, rows, uniqueEmail } from '../helpers/fixtures.ts'

// ajv-formats is CommonJS (module.exports = the plugin); its types only describe `.default`.
const addFormats = formats as unknown as typeof formats.default

const LOCKOUT = { threshold: 2, baseSeconds: 60, maxSeconds: 600, ipThreshold: 100, windowSeconds: 900 }
const isEventType = (type: string): type is EventType => Object.hasOwn(EVENT_PAYLOADS, type)

/** docs/events.md: each `### \`type\`` heading and the first ```json block after it. */
async function documented(): Promise<Map<string, unknown>> {
  const text = await readFile(projectPath('docs', 'events.md'), 'utf8')
  const found = new Map<string, unknown>()
  for (const section of text.split(/^### /m).slice(1)) {
    const type = /^`([a-z_]+\.[a-z_]+)`/.exec(section)?.[1]
    const schema = /```json\n([\s\S]*?)\n```/.exec(section)?.[1]
    if (type !== undefined) found.set(type, schema === undefined ? undefined : JSON.parse(schema))
  }
  return found
}

t.test('every event written validates against its catalogue schema and carries no secret', async (t) => {
  const db = await createTestDatabase(t)
  const api = testPool(t, db.url, 4)
  const admin = testPool(t, db.adminUrl, 1)
  const secrets: string[] = []
  const remember = (hash: string): string => (secrets.push(hash), hash)

  const verifyLink = remember(hex64())
  const { userId } = await signup(api, {
    email: uniqueEmail('catalogue'),
    hashedPassword: remember(fakeHash()),
    tokenHash: verifyLink,
    ttlSeconds: 3600,
    mail: { max: 5, windowSeconds: 3600 },
  })
  await consumeEmailToken(api, { tokenHash: verifyLink, purpose: 'verify_email' })
  const [a, b, c, d] = [
    await newSession(api, userId),
    await newSession(api, userId),
    await newSession(api, userId),
    await newSession(api, userId),
  ]
  for (const s of [a, b, c, d]) remember(s.tokenHash)
  const rotated = remember(hex64())
  await rotateRefreshToken(api, {
    tokenHash: a.tokenHash,
    newTokenHash: rotated,
    newJti: randomUUID(),
    idleTtlSeconds: 600,
    graceSeconds: 0,
  })
  await rotateRefreshToken(api, {
    tokenHash: a.tokenHash,
    newTokenHash: hex64(),
    newJti: randomUUID(),
    idleTtlSeconds: 600,
    graceSeconds: 0,
  })
  await revokeRefreshToken(api, { tokenHash: b.tokenHash })
  await revokeUserSession(api, { userId, familyId: c.familyId })
  await newSession(api, userId)
  await revokeUserSessions(api, { userId, exceptFamilyId: d.familyId })
  await newSession(api, userId)
  await updatePassword(api, { userId, hashedPassword: remember(fakeHash()), keepFamilyId: d.familyId })
  await updatePassword(api, { userId, hashedPassword: remember(fakeHash()) })
  await newSession(api, userId)
  const reset = remember(hex64())
  await createEmailToken(api, { userId, purpose: 'reset_password', tokenHash: reset, ttlSeconds: 600 })
  await consumeEmailToken(api, { tokenHash: reset, purpose: 'reset_password', newHashedPassword: remember(fakeHash()) })
  const other = await newUser(api)
  for (let i = 0; i < LOCKOUT.threshold; i++) await recordFailedLogin(api, { email: other.email, ip: null, ...LOCKOUT })
  await newSession(api, other.id)
  await deactivateUser(api, { userId: other.id })
  const viaGoogle = await oauthSignIn(api, {
    provider: 'google',
    providerUserId: remember(hex64()),
    email: uniqueEmail('oauth'),
    emailVerified: true,
    codeHash: remember(hex64()),
    codeTtlSeconds: 60,
  })
  const oauthUser = viaGoogle.userId ?? ''
  await linkOAuthProvider(api, {
    userId: oauthUser,
    provider: 'github',
    providerUserId: remember(hex64()),
    email: null,
    emailVerified: false,
  })
  await unlinkOAuthProvider(api, { userId: oauthUser, provider: 'google' })
  await updateProfile(api, { userId: oauthUser, changes: { username: `cat_${hex64().slice(0, 8)}`, phone: '+14155550123' } })
  await newSession(api, oauthUser)
  const change = remember(hex64())
  await requestEmailChange(api, {
    userId: oauthUser,
    newEmail: uniqueEmail('moved'),
    tokenHash: change,
    ttlSeconds: 600,
    mail: { max: 5, windowSeconds: 3600 },
  })
  await confirmEmailChange(api, { tokenHash: change })
  const mfaUser = await newUser(api)
  await beginMfaEnrolment(api, { userId: mfaUser.id, secretCiphertext: remember('v1:aXY:dGFn:Y2lwaGVy') })
  const recovery = [remember(hex64()), remember(hex64())]
  await confirmMfaTotp(api, { userId: mfaUser.id, step: 1, recoveryHashes: recovery })
  await useMfaRecoveryCode(api, { userId: mfaUser.id, codeHash: recovery[0] ?? '' })
  const guess = await beginLogin(api, { email: null, userId: mfaUser.id, ip: null, deviceHash: null, policy: LOCKOUT })
  await endLoginAttempt(api, { email: guess.email ?? '', ip: null, deviceHash: null, outcome: 'mfa_failed', policy: LOCKOUT })
  await disableMfa(api, { userId: mfaUser.id })

  const events = await rows<{ type: string; version: number; session_id: string | null; payload: unknown }>(
    admin,
    'SELECT type, version, session_id, payload FROM activity.events ORDER BY id',
  )
  const ajv = new Ajv2020({ allErrors: true, strict: false })
  addFormats(ajv)
  for (const [i, e] of events.entries()) {
    if (!isEventType(e.type)) {
      t.fail(`event ${String(i)}: ${e.type} is not in the catalogue`)
      continue
    }
    const validate = ajv.compile(EVENT_PAYLOADS[e.type])
    t.ok(validate(e.payload), `event ${String(i)}: ${e.type} ${JSON.stringify(e.payload)}`, { errors: validate.errors })
    t.equal(e.version, EVENT_VERSION)
    t.equal(e.session_id !== null, e.type.startsWith('session.'), `${e.type}: a session id exactly when it is about a session`)
  }
  t.same([...new Set(events.map((e) => e.type))].sort(), [...EVENT_TYPES].sort(), 'the paths above produced every type of the catalogue')
  const written = JSON.stringify(events)
  t.same(
    secrets.filter((s) => written.includes(s)),
    [],
    'no token or password hash in any event',
  )
  t.notOk(written.includes('$argon2'), 'no password hash at all')
})

t.test('docs/events.md documents exactly the catalogue, with the same schemas', async (t) => {
  const docs = await documented()
  t.same([...docs.keys()].sort(), [...EVENT_TYPES].sort(), 'the same types')
  for (const type of EVENT_TYPES) {
    t.same(docs.get(type), JSON.parse(JSON.stringify(EVENT_PAYLOADS[type])), `${type}: the documented schema is the catalogue's`)
  }
})
