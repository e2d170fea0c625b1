// Stored procedures through their typed wrappers, as auth_api_user (what the
// service does): the normal path and each error path. Shared setup: ./setup.ts.
// Sign-in with Google and GitHub: OAuth states, the sign-in, exchange codes, linking
// and unlinking identities, and accounts without a password.
import t from 'tap'
import pg from 'pg'
import {
  beginLogin,
  cleanupExpired,
  consumeEmailToken,
  consumeOAuthCode,
  consumeOAuthState,
  createEmailToken,
  createOAuthState,
  deactivateUser,
  getUserById,
  linkOAuthProvider,
  listOAuthProviders,
  oauthSignIn,
  unlinkOAuthProvider,
  type OAuthProvider,
  type Queryable,
} from '../../../src/db/procedures.ts'
import { createTestDatabase, testPool } from '../../helpers/db.ts'
import { dbError, hex64, newUser, rows, uniqueEmail } from '../../helpers/fixtures.ts'
import { setup, NO_USER, LOCKOUT, auditActions, lastAudit, type Ctx } from './setup.ts'

function state(overrides: Partial<Parameters<typeof createOAuthState>[1]> = {}): Parameters<typeof createOAuthState>[1] {
  return {
    stateHash: hex64(),
    bindingHash: hex64(),
    provider: 'google',
    redirectTo: '/account',
    ttlSeconds: 600,
    ...overrides,
  }
}

function identity(overrides: Partial<Parameters<typeof oauthSignIn>[1]> = {}): Parameters<typeof oauthSignIn>[1] {
  return {
    provider: 'google',
    providerUserId: `sub-${hex64().slice(0, 16)}`,
    email: uniqueEmail('oauth'),
    emailVerified: true,
    codeHash: hex64(),
    codeTtlSeconds: 60,
    ...overrides,
  }
}

async function count(admin: pg.Pool, sql: string, params: unknown[] = []): Promise<number> {
  const [row] = await rows<{ n: number }>(admin, `SELECT count(*)::int AS n FROM ${sql}`, params)
  return row?.n ?? -1
}

/** A verified account with a password (signup, then the verification link). */
async function verifiedUser(ctx: Ctx, email = uniqueEmail()): Promise<{ id: string; email: string }> {
  const user = await newUser(ctx.api, email)
  const link = hex64()
  await createEmailToken(ctx.api, { userId: user.id, purpose: 'verify_email', tokenHash: link, ttlSeconds: 600 })
  await consumeEmailToken(ctx.api, { tokenHash: link, purpose: 'verify_email' })
  return user
}

/** A user created by a first Google sign-in: no password, one link. */
async function passwordless(db: Queryable): Promise<{ id: string; email: string; providerUserId: string }> {
  const args = identity()
  const result = await oauthSignIn(db, args)
  if (result.userId === null) throw new Error('no user created')
  return { id: result.userId, email: args.email, providerUserId: args.providerUserId }
}

t.test('an OAuth state is consumed once: ok, then invalid; link flows carry their user', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const flow = state({ linkUserId: user.id, provider: 'github', redirectTo: '/settings/linked' })
  await createOAuthState(ctx.api, flow)
  const [stored] = await rows<Record<string, unknown>>(
    ctx.admin,
    `SELECT state_hash, binding_hash, provider::text, redirect_to, link_user_id,
            expires_at - created_at = interval '600 seconds' AS ttl_ok FROM activity.oauth_states`,
  )
  t.same(stored, {
    state_hash: flow.stateHash,
    binding_hash: flow.bindingHash,
    provider: 'github',
    redirect_to: '/settings/linked',
    link_user_id: user.id,
    ttl_ok: true,
  })

  const consume = { stateHash: flow.stateHash, bindingHash: flow.bindingHash, provider: 'github' as const }
  t.same(await consumeOAuthState(ctx.api, consume), { status: 'ok', redirectTo: '/settings/linked', linkUserId: user.id })
  t.same(await consumeOAuthState(ctx.api, consume), { status: 'invalid', redirectTo: null, linkUserId: null }, 'never twice')
  t.same(await consumeOAuthState(ctx.api, { ...consume, stateHash: hex64() }), { status: 'invalid', redirectTo: null, linkUserId: null })

  const signIn = state()
  await createOAuthState(ctx.api, signIn)
  t.same(await consumeOAuthState(ctx.api, { stateHash: signIn.stateHash, bindingHash: signIn.bindingHash, provider: 'google' }), {
    status: 'ok',
    redirectTo: '/account',
    linkUserId: null,
  })
  t.equal(await count(ctx.admin, 'activity.oauth_states'), 0)
  t.same(await auditActions(ctx.admin, null), [], 'states are not audited')
})

t.test('a wrong binding or provider is a mismatch that reveals nothing and burns the state', async (t) => {
  const ctx = await setup(t)
  for (const wrong of [{ bindingHash: hex64() }, { provider: 'github' as OAuthProvider }]) {
    const flow = state({ redirectTo: '/secret-place' })
    await createOAuthState(ctx.api, flow)
    const presented = { stateHash: flow.stateHash, bindingHash: flow.bindingHash, provider: flow.provider, ...wrong }
    t.same(await consumeOAuthState(ctx.api, presented), { status: 'mismatch', redirectTo: null, linkUserId: null })
    t.same(
      await consumeOAuthState(ctx.api, { stateHash: flow.stateHash, bindingHash: flow.bindingHash, provider: flow.provider }),
      { status: 'invalid', redirectTo: null, linkUserId: null },
      'the right browser cannot use it afterwards either',
    )
  }
})

t.test('an expired state says so with its redirect, and is burnt', async (t) => {
  const ctx = await setup(t)
  const flow = state({ redirectTo: '/back-here', linkUserId: (await newUser(ctx.api)).id })
  await createOAuthState(ctx.api, flow)
  await ctx.admin.query(
    `UPDATE activity.oauth_states SET created_at = now() - interval '2 hours', expires_at = now() - interval '1 second'`,
  )
  const presented = { stateHash: flow.stateHash, bindingHash: flow.bindingHash, provider: flow.provider }
  t.same(await consumeOAuthState(ctx.api, presented), { status: 'expired', redirectTo: '/back-here', linkUserId: null })
  t.same(await consumeOAuthState(ctx.api, presented), { status: 'invalid', redirectTo: null, linkUserId: null })
})

t.test('state arguments are checked: AU007, AU002, AU003', async (t) => {
  const ctx = await setup(t)
  const bad = [
    ['unknown provider', { provider: 'facebook' as OAuthProvider }],
    ['state hash', { stateHash: 'A'.repeat(64) }],
    ['binding hash', { bindingHash: 'abc' }],
    ['ttl 0', { ttlSeconds: 0 }],
    ['ttl above an hour', { ttlSeconds: 3601 }],
    ['empty redirect', { redirectTo: '' }],
    ['long redirect', { redirectTo: `/${'x'.repeat(2048)}` }],
  ] as const
  for (const [what, overrides] of bad) {
    await t.rejects(createOAuthState(ctx.api, state(overrides)), dbError('invalid_argument'), what)
  }
  const taken = state()
  await createOAuthState(ctx.api, taken)
  await t.rejects(createOAuthState(ctx.api, state({ stateHash: taken.stateHash })), dbError('invalid_argument'), 'state hash reused')
  await t.rejects(createOAuthState(ctx.api, state({ linkUserId: NO_USER })), dbError('user_not_found'))
  const gone = await newUser(ctx.api)
  await deactivateUser(ctx.api, { userId: gone.id })
  await t.rejects(createOAuthState(ctx.api, state({ linkUserId: gone.id })), dbError('user_inactive'))

  const presented = { stateHash: taken.stateHash, bindingHash: taken.bindingHash, provider: 'google' as const }
  await t.rejects(consumeOAuthState(ctx.api, { ...presented, provider: 'x' as OAuthProvider }), dbError('invalid_argument'))
  await t.rejects(consumeOAuthState(ctx.api, { ...presented, stateHash: 'nope' }), dbError('invalid_argument'))
  await t.rejects(consumeOAuthState(ctx.api, { ...presented, bindingHash: 'nope' }), dbError('invalid_argument'))
  t.equal((await consumeOAuthState(ctx.api, presented)).status, 'ok', 'the refused calls did not burn it')
})

t.test('10 parallel callbacks with one state: exactly one ok', async (t) => {
  const ctx = await setup(t)
  const flow = state()
  await createOAuthState(ctx.api, flow)
  const results = await Promise.all(
    Array.from({ length: 10 }, () =>
      consumeOAuthState(ctx.api, { stateHash: flow.stateHash, bindingHash: flow.bindingHash, provider: flow.provider }),
    ),
  )
  t.same(results.map((r) => r.status).sort(), ['invalid', ...Array<string>(8).fill('invalid'), 'ok'].sort())
})

t.test('a first sign-in creates a verified user without password, its link, a code, and the events', async (t) => {
  const ctx = await setup(t)
  const args = identity({ email: '  New.Person@Example.COM ', ctx: { ip: '198.51.100.4', requestId: 'req-oauth' } })
  const result = await oauthSignIn(ctx.api, args)
  t.match(result, { status: 'created', email: 'new.person@example.com' })
  const userId = result.userId ?? ''
  t.match(await getUserById(ctx.api, { userId }), { hashedPassword: null, isVerified: true, isActive: true, verifiedAt: Date })
  const [link] = await listOAuthProviders(ctx.api, { userId })
  t.match(link, { provider: 'google', email: 'new.person@example.com', emailVerified: true, createdAt: Date })
  t.type(link?.lastLoginAt, Date, 'the sign-in counts as a use of the link')
  t.same(await auditActions(ctx.admin, userId), ['user_created', 'email_verified', 'oauth_linked'])
  t.match(await lastAudit(ctx.admin, 'oauth_linked'), {
    details: { provider: 'google', auto: true },
    ip: '198.51.100.4',
    request_id: 'req-oauth',
  })
  t.same(await rows(ctx.admin, 'SELECT type, payload FROM activity.events WHERE user_id = $1 ORDER BY id', [userId]), [
    { type: 'user.created', payload: { email: 'new.person@example.com' } },
    { type: 'user.verified', payload: { email: 'new.person@example.com' } },
    { type: 'oauth.linked', payload: { provider: 'google' } },
  ])
  t.same(await consumeOAuthCode(ctx.api, { codeHash: args.codeHash }), { userId, provider: 'google' })
  const written = JSON.stringify(await rows(ctx.admin, 'SELECT details FROM activity.audit_logs'))
  t.notOk(written.includes(args.codeHash), 'no code hash in the audit log')
  t.notOk(written.includes(args.providerUserId), 'no provider user id in the audit log')
})

t.test('a linked identity signs in: the link is refreshed and a code issued', async (t) => {
  const ctx = await setup(t)
  const user = await passwordless(ctx.api)
  await ctx.admin.query(`UPDATE activity.oauth_providers SET last_login_at = now() - interval '1 day'`)
  const again = identity({ providerUserId: user.providerUserId, email: 'Renamed@Example.com', emailVerified: false })
  t.same(await oauthSignIn(ctx.api, again), { status: 'signed_in', userId: user.id, email: user.email })
  const [link] = await rows<{ email: string; email_verified: boolean; recent: boolean }>(
    ctx.admin,
    `SELECT email, email_verified, last_login_at > now() - interval '1 minute' AS recent FROM activity.oauth_providers`,
  )
  t.same(link, { email: 'renamed@example.com', email_verified: false, recent: true }, 'what the provider asserts now')
  t.match(await lastAudit(ctx.admin, 'oauth_login'), { user_id: user.id, details: { provider: 'google' } })
  t.same(await consumeOAuthCode(ctx.api, { codeHash: again.codeHash }), { userId: user.id, provider: 'google' })
  t.equal(await count(ctx.admin, 'activity.users'), 1)
})

t.test('an existing verified account is linked only when the provider verified the address too', async (t) => {
  const ctx = await setup(t)
  const user = await verifiedUser(ctx)
  const unverified = identity({ email: user.email.toUpperCase(), emailVerified: false })
  t.same(await oauthSignIn(ctx.api, unverified), { status: 'link_required', userId: user.id, email: user.email })
  t.match(await lastAudit(ctx.admin, 'oauth_link_refused'), { details: { provider: 'google', reason: 'unverified_provider_email' } })
  t.equal(await consumeOAuthCode(ctx.api, { codeHash: unverified.codeHash }), undefined, 'no code')
  t.equal(await count(ctx.admin, 'activity.oauth_providers'), 0)

  const verified = identity({ email: user.email, provider: 'github' })
  t.same(await oauthSignIn(ctx.api, verified), { status: 'linked', userId: user.id, email: user.email })
  t.match(await lastAudit(ctx.admin, 'oauth_linked'), { user_id: user.id, details: { provider: 'github', auto: true } })
  t.same(await consumeOAuthCode(ctx.api, { codeHash: verified.codeHash }), { userId: user.id, provider: 'github' })
  t.match(await getUserById(ctx.api, { userId: user.id }), { hashedPassword: /^\$argon2/ }, 'the password stays')

  const secondGithub = identity({ email: user.email, provider: 'github' })
  t.same(await oauthSignIn(ctx.api, secondGithub), { status: 'link_required', userId: user.id, email: user.email })
  t.match(await lastAudit(ctx.admin, 'oauth_link_refused'), { details: { provider: 'github', reason: 'provider_in_use' } })
})

t.test('an unverified account is never linked by a sign-in (pre-account takeover)', async (t) => {
  const ctx = await setup(t)
  const squatter = await newUser(ctx.api)
  const victim = identity({ email: squatter.email })
  t.same(await oauthSignIn(ctx.api, victim), { status: 'link_required', userId: squatter.id, email: squatter.email })
  t.match(await lastAudit(ctx.admin, 'oauth_link_refused'), { details: { provider: 'google', reason: 'unverified_account' } })
  t.equal(await count(ctx.admin, 'activity.oauth_providers'), 0)
  t.equal(await count(ctx.admin, 'activity.oauth_codes'), 0)
})

t.test('a deactivated user gets no code, found by link or by address', async (t) => {
  const ctx = await setup(t)
  const linked = await passwordless(ctx.api)
  await deactivateUser(ctx.api, { userId: linked.id })
  const byLink = identity({ providerUserId: linked.providerUserId })
  t.same(await oauthSignIn(ctx.api, byLink), { status: 'inactive', userId: linked.id, email: linked.email })
  t.match(await lastAudit(ctx.admin, 'oauth_login_refused'), { user_id: linked.id, details: { provider: 'google', reason: 'inactive' } })

  const byEmail = await verifiedUser(ctx)
  await deactivateUser(ctx.api, { userId: byEmail.id })
  t.same(await oauthSignIn(ctx.api, identity({ email: byEmail.email })), { status: 'inactive', userId: byEmail.id, email: byEmail.email })
  t.equal(await count(ctx.admin, 'activity.oauth_codes'), 1, 'only the code of the first sign-in, before the deactivation')
  t.equal(await count(ctx.admin, 'activity.oauth_providers'), 1, 'only the first user link')
})

t.test('an unverified provider address creates nothing', async (t) => {
  const ctx = await setup(t)
  t.same(await oauthSignIn(ctx.api, identity({ emailVerified: false })), { status: 'unverified_email', userId: null, email: null })
  for (const table of ['users', 'oauth_providers', 'oauth_codes', 'audit_logs', 'events']) {
    t.equal(await count(ctx.admin, `activity.${table}`), 0, `nothing in ${table}`)
  }
})

t.test('sign-in arguments are checked: AU007, AU008', async (t) => {
  const ctx = await setup(t)
  const bad = [
    ['unknown provider', { provider: 'gitlab' as OAuthProvider }, 'invalid_argument'],
    ['empty provider user id', { providerUserId: '' }, 'invalid_argument'],
    ['long provider user id', { providerUserId: 'x'.repeat(256) }, 'invalid_argument'],
    ['code hash', { codeHash: 'A'.repeat(64) }, 'invalid_argument'],
    ['code ttl 0', { codeTtlSeconds: 0 }, 'invalid_argument'],
    ['code ttl above 600', { codeTtlSeconds: 601 }, 'invalid_argument'],
    ['email', { email: 'not-an-address' }, 'invalid_email'],
    ['long email', { email: `${'a'.repeat(250)}@example.com` }, 'invalid_email'],
  ] as const
  for (const [what, overrides, code] of bad) {
    await t.rejects(oauthSignIn(ctx.api, identity(overrides)), dbError(code), what)
  }
  const first = identity()
  await oauthSignIn(ctx.api, first)
  await t.rejects(oauthSignIn(ctx.api, identity({ codeHash: first.codeHash })), dbError('invalid_argument'), 'code hash reused')
  t.equal(await count(ctx.admin, 'activity.users'), 1, 'the refused call created no user')
})

t.test('10 parallel first sign-ins of one identity: one user, one link, no error', async (t) => {
  const ctx = await setup(t)
  const args = identity()
  const results = await Promise.all(Array.from({ length: 10 }, () => oauthSignIn(ctx.api, { ...args, codeHash: hex64() })))
  t.same(results.map((r) => r.status).sort(), ['created', ...Array<string>(9).fill('signed_in')])
  t.equal(new Set(results.map((r) => r.userId)).size, 1, 'every call found the same user')
  t.equal(await count(ctx.admin, 'activity.users'), 1)
  t.equal(await count(ctx.admin, 'activity.oauth_providers'), 1)
  t.equal(await count(ctx.admin, 'activity.oauth_codes'), 10, 'each got its code')
})

t.test('parallel first sign-ins of two identities with one address: one user, both linked, no error', async (t) => {
  const ctx = await setup(t)
  const email = uniqueEmail('both')
  const results = await Promise.all(
    (['google', 'github'] as const).flatMap((provider) => {
      const providerUserId = `id-${hex64().slice(0, 8)}`
      return Array.from({ length: 3 }, () => oauthSignIn(ctx.api, identity({ provider, providerUserId, email })))
    }),
  )
  t.equal(results.filter((r) => r.status === 'created').length, 1)
  t.ok(
    results.every((r) => ['created', 'linked', 'signed_in'].includes(r.status)),
    results.map((r) => r.status).join(', '),
  )
  t.equal(await count(ctx.admin, 'activity.users'), 1)
  t.equal(await count(ctx.admin, 'activity.oauth_providers'), 2)
})

t.test('an exchange code works once, before it expires, for an active user', async (t) => {
  const ctx = await setup(t)
  const args = identity()
  const { userId } = await oauthSignIn(ctx.api, args)
  t.same(await consumeOAuthCode(ctx.api, { codeHash: args.codeHash }), { userId, provider: 'google' })
  t.equal(await consumeOAuthCode(ctx.api, { codeHash: args.codeHash }), undefined, 'used')
  t.equal(await consumeOAuthCode(ctx.api, { codeHash: hex64() }), undefined, 'unknown')

  const late = identity({ providerUserId: args.providerUserId })
  await oauthSignIn(ctx.api, late)
  await ctx.admin.query(`UPDATE activity.oauth_codes SET created_at = now() - interval '1 hour', expires_at = now() - interval '1 second'`)
  t.equal(await consumeOAuthCode(ctx.api, { codeHash: late.codeHash }), undefined, 'expired')
  t.equal(await count(ctx.admin, 'activity.oauth_codes'), 0, 'an expired code is gone once presented')

  const beforeDeactivation = identity({ providerUserId: args.providerUserId })
  await oauthSignIn(ctx.api, beforeDeactivation)
  await deactivateUser(ctx.api, { userId: userId ?? '' })
  t.equal(await consumeOAuthCode(ctx.api, { codeHash: beforeDeactivation.codeHash }), undefined, 'inactive user')
  await t.rejects(consumeOAuthCode(ctx.api, { codeHash: 'short' }), dbError('invalid_argument'))
})

t.test('10 parallel trades of one code: exactly one gets the user', async (t) => {
  const ctx = await setup(t)
  const args = identity()
  await oauthSignIn(ctx.api, args)
  const results = await Promise.all(Array.from({ length: 10 }, () => consumeOAuthCode(ctx.api, { codeHash: args.codeHash })))
  t.equal(results.filter((r) => r !== undefined).length, 1)
})

t.test('linking from a session: every status and error', async (t) => {
  const ctx = await setup(t)
  const user = await verifiedUser(ctx)
  const github = { userId: user.id, provider: 'github' as const, providerUserId: 'gh-1', email: 'Me@Example.com', emailVerified: true }
  t.equal(await linkOAuthProvider(ctx.api, { ...github, ctx: { requestId: 'link-1' } }), 'linked')
  t.match(await lastAudit(ctx.admin, 'oauth_linked'), {
    user_id: user.id,
    details: { provider: 'github', auto: false },
    request_id: 'link-1',
  })
  t.match(await listOAuthProviders(ctx.api, { userId: user.id }), [
    { provider: 'github', email: 'me@example.com', emailVerified: true, lastLoginAt: null },
  ])
  const audits = (await auditActions(ctx.admin, user.id)).length
  t.equal(await linkOAuthProvider(ctx.api, github), 'already_linked')
  t.equal((await auditActions(ctx.admin, user.id)).length, audits, 'already_linked writes nothing')
  t.equal(await linkOAuthProvider(ctx.api, { ...github, providerUserId: 'gh-2' }), 'provider_in_use')
  t.match(await lastAudit(ctx.admin, 'oauth_link_refused'), { details: { provider: 'github', reason: 'provider_in_use' } })

  const other = await verifiedUser(ctx)
  t.equal(await linkOAuthProvider(ctx.api, { ...github, userId: other.id }), 'identity_taken')
  t.match(await lastAudit(ctx.admin, 'oauth_link_refused'), { user_id: other.id, details: { reason: 'identity_taken' } })
  t.equal(
    await linkOAuthProvider(ctx.api, { userId: other.id, provider: 'google', providerUserId: 'g-1', email: null, emailVerified: false }),
    'linked',
    'no address needed to link',
  )
  t.same(
    (await listOAuthProviders(ctx.api, { userId: user.id })).map((l) => l.provider),
    ['github'],
  )

  const unverified = await newUser(ctx.api)
  t.equal(await linkOAuthProvider(ctx.api, { ...github, userId: unverified.id, providerUserId: 'gh-3' }), 'unverified_account')
  t.equal(await count(ctx.admin, 'activity.oauth_providers WHERE user_id = $1', [unverified.id]), 0)

  await t.rejects(linkOAuthProvider(ctx.api, { ...github, userId: NO_USER }), dbError('user_not_found'))
  const gone = await verifiedUser(ctx)
  await deactivateUser(ctx.api, { userId: gone.id })
  await t.rejects(linkOAuthProvider(ctx.api, { ...github, userId: gone.id }), dbError('user_inactive'))
  await t.rejects(linkOAuthProvider(ctx.api, { ...github, provider: 'x' as OAuthProvider }), dbError('invalid_argument'))
  await t.rejects(linkOAuthProvider(ctx.api, { ...github, providerUserId: '' }), dbError('invalid_argument'))
  await t.rejects(linkOAuthProvider(ctx.api, { ...github, email: 'nope' }), dbError('invalid_email'))
})

t.test('the identities of a user are listed in provider order', async (t) => {
  const ctx = await setup(t)
  const user = await verifiedUser(ctx)
  t.same(await listOAuthProviders(ctx.api, { userId: user.id }), [])
  for (const provider of ['github', 'google'] as const) {
    await linkOAuthProvider(ctx.api, { userId: user.id, provider, providerUserId: `${provider}-1`, email: null, emailVerified: false })
  }
  t.same(
    (await listOAuthProviders(ctx.api, { userId: user.id })).map((l) => l.provider),
    ['google', 'github'],
  )
  t.same(await listOAuthProviders(ctx.api, { userId: NO_USER }), [])
})

t.test('unlinking never removes the last way in', async (t) => {
  const ctx = await setup(t)
  const user = await passwordless(ctx.api)
  t.equal(await unlinkOAuthProvider(ctx.api, { userId: user.id, provider: 'github' }), 'not_linked')
  t.equal(await unlinkOAuthProvider(ctx.api, { userId: user.id, provider: 'google' }), 'last_way_in')
  t.match(await lastAudit(ctx.admin, 'oauth_unlink_refused'), { user_id: user.id, details: { provider: 'google', reason: 'last_way_in' } })
  t.equal(await count(ctx.admin, 'activity.oauth_providers'), 1)

  await linkOAuthProvider(ctx.api, { userId: user.id, provider: 'github', providerUserId: 'gh', email: null, emailVerified: false })
  const pending = identity({ providerUserId: user.providerUserId })
  await oauthSignIn(ctx.api, pending)
  t.equal(await unlinkOAuthProvider(ctx.api, { userId: user.id, provider: 'google', ctx: { requestId: 'unlink-1' } }), 'unlinked')
  t.match(await lastAudit(ctx.admin, 'oauth_unlinked'), { details: { provider: 'google' }, request_id: 'unlink-1' })
  t.equal(await consumeOAuthCode(ctx.api, { codeHash: pending.codeHash }), undefined, "the identity's untraded code died with it")
  t.same(await rows(ctx.admin, `SELECT payload FROM activity.events WHERE type = 'oauth.unlinked'`), [{ payload: { provider: 'google' } }])

  const withPassword = await verifiedUser(ctx)
  await linkOAuthProvider(ctx.api, { userId: withPassword.id, provider: 'google', providerUserId: 'g', email: null, emailVerified: false })
  t.equal(await unlinkOAuthProvider(ctx.api, { userId: withPassword.id, provider: 'google' }), 'unlinked', 'the password is a way in')

  await t.rejects(unlinkOAuthProvider(ctx.api, { userId: NO_USER, provider: 'google' }), dbError('user_not_found'))
  await deactivateUser(ctx.api, { userId: user.id })
  await t.rejects(unlinkOAuthProvider(ctx.api, { userId: user.id, provider: 'github' }), dbError('user_inactive'))
})

t.test('parallel unlinks of both providers of a passwordless user: one unlinked, one last_way_in', async (t) => {
  const ctx = await setup(t)
  for (let round = 0; round < 5; round++) {
    const user = await passwordless(ctx.api)
    await linkOAuthProvider(ctx.api, { userId: user.id, provider: 'github', providerUserId: hex64(), email: null, emailVerified: false })
    const results = await Promise.all(
      (['google', 'github'] as const).map((provider) => unlinkOAuthProvider(ctx.api, { userId: user.id, provider })),
    )
    t.same([...results].sort(), ['last_way_in', 'unlinked'], `round ${String(round)}`)
    t.equal(await count(ctx.admin, 'activity.oauth_providers WHERE user_id = $1', [user.id]), 1, 'one way in is left')
  }
})

t.test('a passwordless user: the login behaves as for a wrong password, a reset sets a password', async (t) => {
  const ctx = await setup(t)
  const user = await passwordless(ctx.api)
  const begun = await beginLogin(ctx.api, { email: user.email, ip: '192.0.2.9', deviceHash: null, policy: LOCKOUT })
  t.match(begun, { allowed: true, userId: user.id, hashedPassword: null, isActive: true })
  t.equal(await count(ctx.admin, `activity.login_attempts WHERE scope = 'email' AND key = $1`, [user.email]), 1, 'the attempt counted')

  const reset = hex64()
  await createEmailToken(ctx.api, { userId: user.id, purpose: 'reset_password', tokenHash: reset, ttlSeconds: 600 })
  const newHash = '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo'
  await consumeEmailToken(ctx.api, { tokenHash: reset, purpose: 'reset_password', newHashedPassword: newHash })
  t.equal((await getUserById(ctx.api, { userId: user.id }))?.hashedPassword, newHash, 'now the user has a password')
  t.equal(await unlinkOAuthProvider(ctx.api, { userId: user.id, provider: 'google' }), 'unlinked', 'and may drop the provider')
})

t.test('cleanup removes expired states and codes only', async (t) => {
  const ctx = await setup(t)
  await createOAuthState(ctx.api, state())
  await createOAuthState(ctx.api, state())
  await oauthSignIn(ctx.api, identity())
  await oauthSignIn(ctx.api, identity())
  await oauthSignIn(ctx.api, identity())
  await ctx.admin.query(`
    UPDATE activity.oauth_states SET created_at = now() - interval '1 hour', expires_at = now() - interval '1 second'
     WHERE state_hash = (SELECT min(state_hash) FROM activity.oauth_states)`)
  await ctx.admin.query(`
    UPDATE activity.oauth_codes SET created_at = now() - interval '1 hour', expires_at = now() - interval '1 second'
     WHERE code_hash <> (SELECT min(code_hash) FROM activity.oauth_codes)`)
  const result = await cleanupExpired(ctx.api, { auditRetentionDays: 30 })
  t.match(
    result.filter((r) => r.item.startsWith('oauth_')),
    [
      { item: 'oauth_states', deleted: 1 },
      { item: 'oauth_codes', deleted: 2 },
    ],
  )
  t.equal(await count(ctx.admin, 'activity.oauth_states'), 1)
  t.equal(await count(ctx.admin, 'activity.oauth_codes'), 1)
  t.match(await lastAudit(ctx.admin, 'cleanup'), { details: { oauth_states: 1, oauth_codes: 2 } })
})

t.test('activity_readonly sees oauth_links and has_password, never the OAuth tables; auth_api_user no table', async (t) => {
  const db = await createTestDatabase(t)
  const api = testPool(t, db.url, 2)
  const user = await passwordless(api)
  const ro = new pg.Client({ connectionString: db.readonlyUrl })
  ro.on('error', () => undefined)
  await ro.connect()
  t.teardown(() => ro.end())
  const { rows: links } = await ro.query('SELECT * FROM activity.oauth_links')
  t.match(links, [{ user_id: user.id, user_email: user.email, provider: 'google', provider_email: user.email, email_verified: true }])
  t.same(Object.keys(links[0] as object).sort(), [
    'created_at',
    'email_verified',
    'last_login_at',
    'provider',
    'provider_email',
    'user_email',
    'user_id',
  ])
  const { rows: active } = await ro.query('SELECT has_password FROM activity.active_users WHERE id = $1', [user.id])
  t.same(active, [{ has_password: false }])

  const denied = async (client: pg.Client | pg.Pool, sql: string): Promise<string | undefined> => {
    try {
      await client.query(sql)
      return undefined
    } catch (err) {
      return (err as { code?: string }).code
    }
  }
  for (const table of ['oauth_states', 'oauth_codes', 'oauth_providers']) {
    t.equal(await denied(ro, `SELECT * FROM activity.${table}`), '42501', `readonly: ${table} denied`)
    t.equal(await denied(api, `SELECT * FROM activity.${table}`), '42501', `auth_api_user: ${table} denied`)
    t.equal(await denied(api, `DELETE FROM activity.${table}`), '42501', `auth_api_user: no DELETE on ${table}`)
  }
})
