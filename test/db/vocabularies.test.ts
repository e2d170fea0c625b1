// Each fixed vocabulary is listed once in SQL (an enum type) and once in
// TypeScript (the union in src/db/procedures.ts): the two lists must agree, and a
// value outside them is an API error (AU007), not a failed cast (22P02, a 500).
import t from 'tap'
import {
  EMAIL_TOKEN_PURPOSES,
  OAUTH_PROVIDERS,
  REVOKE_REASONS,
  createEmailToken,
  revokeRefreshToken,
  unlinkOAuthProvider,
} from '../../src/db/procedures.ts'
import { newUser, rows } from '../helpers/fixtures.ts'
import { setup } from './procedures/setup.ts'

t.test('the TypeScript unions list the enum labels, in order', async (t) => {
  const ctx = await setup(t)
  const labels = async (type: string) =>
    (await rows<{ label: string }>(ctx.admin, `SELECT unnest(enum_range(NULL::${type}))::text AS label`)).map((r) => r.label)
  t.same(await labels('activity.revoke_reason'), [...REVOKE_REASONS])
  t.same(await labels('activity.email_token_purpose'), [...EMAIL_TOKEN_PURPOSES])
  t.same(await labels('activity.oauth_provider'), [...OAUTH_PROVIDERS])
})

t.test('a value outside the type is AU007', async (t) => {
  const ctx = await setup(t)
  const user = await newUser(ctx.api)
  const bad = 'not_a_label' as never
  await t.rejects(revokeRefreshToken(ctx.api, { tokenHash: 'a'.repeat(64), reason: bad }), { code: 'invalid_argument' }, 'revoke reason')
  await t.rejects(
    createEmailToken(ctx.api, { userId: user.id, purpose: bad, tokenHash: 'b'.repeat(64), ttlSeconds: 60 }),
    { code: 'invalid_argument' },
    'email token purpose',
  )
  await t.rejects(unlinkOAuthProvider(ctx.api, { userId: user.id, provider: bad }), { code: 'invalid_argument' }, 'oauth provider')
})
