// Two-factor sign-in and Google/GitHub: a provider sign-in of a user with two-factor on
// gets the same challenge as a password login (no path skips the second factor), its
// session says fed+otp; unlinking a provider needs a fresh second factor; an account
// without a password turns two-factor off with the code alone.
import t from 'tap'
import { bearer, json } from '../helpers/app.ts'
import { callback, exchange, fragment, atProvider, oauthHarness, start, type TokenPair } from '../helpers/oauth-flow.ts'
import { base32Decode, hotp, stepAt } from '../helpers/totp.ts'
import { adminPool, freshCode, mailTo, rewindSteps, turnOn, verifiedClaims, verify } from './harness.ts'
import type { TestApp } from '../helpers/app.ts'

/** A provider sign-in up to the exchange's answer (tokens, or the challenge). */
async function providerSignIn(h: TestApp, provider: 'google' | 'github') {
  const started = await start(h, provider)
  const { values } = fragment(await callback(h, await atProvider(started.authorizeUrl), started.cookie))
  return exchange(h, values.get('code') ?? '')
}

t.test('a provider sign-in of a user with two-factor on is challenged; the second step gives a fed+otp session', async (t) => {
  const { h, google, github } = await oauthHarness(t)
  const admin = adminPool(t, h)
  google.state.user = { sub: '2000001', email: 'mia@example.com', email_verified: true, name: 'Mia' }
  const first = await providerSignIn(h, 'google')
  t.equal(first.statusCode, 200)
  const tokens = json<TokenPair>(first)
  t.same((await verifiedClaims(h, tokens.accessToken)).amr, ['fed'], 'a provider sign-in says fed')
  const userId = json<{ id: string }>(await h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(tokens.accessToken) })).id
  const { secret } = await turnOn(h, admin, userId, tokens.accessToken)

  const challenged = await providerSignIn(h, 'google')
  t.equal(challenged.statusCode, 200)
  const challenge = json<{ mfaRequired?: boolean; mfaToken?: string; accessToken?: string }>(challenged)
  t.equal(challenge.mfaRequired, true, 'the exchange answers the challenge')
  t.equal(challenge.accessToken, undefined, 'and no token')
  const done = await verify(h, { mfaToken: challenge.mfaToken ?? '', code: await freshCode(admin, userId, secret) })
  t.equal(done.statusCode, 200)
  const session = json<TokenPair>(done)
  t.same((await verifiedClaims(h, session.accessToken)).amr, ['fed', 'otp'])

  // A second provider for the same verified address: linked on sign-in, and challenged too.
  github.state.user = { id: 3000001, login: 'mia', name: 'Mia', emails: [{ email: 'mia@example.com', primary: true, verified: true }] }
  const viaGithub = json<{ mfaRequired?: boolean }>(await providerSignIn(h, 'github'))
  t.equal(viaGithub.mfaRequired, true, 'every provider goes through the challenge')

  const unlink = (payload?: Record<string, string>) =>
    h.app.inject({
      method: 'DELETE',
      url: '/api/auth/oauth/github',
      headers: bearer(session.accessToken),
      ...(payload === undefined ? {} : { payload }),
    })
  const bare = await unlink()
  t.equal(bare.statusCode, 403, 'unlink without a body: the second factor is missing')
  t.equal(json(bare).code, 'mfa_required')
  t.equal(json(await unlink({ code: hotp(base32Decode(secret), stepAt() + 9) })).code, 'invalid_mfa_code')
  t.equal((await unlink({ code: await freshCode(admin, userId, secret) })).statusCode, 204, 'with a code')

  // No password on this account: the code alone turns two-factor off (a fourth code: past the 90-second window).
  await rewindSteps(admin, userId)
  const off = await h.app.inject({
    method: 'DELETE',
    url: '/api/auth/mfa/totp',
    headers: bearer(session.accessToken),
    payload: { code: await freshCode(admin, userId, secret) },
  })
  t.equal(off.statusCode, 204)
  await mailTo(h, 'mia@example.com', /turned off/)
  const plain = json<TokenPair>(await providerSignIn(h, 'google'))
  t.same((await verifiedClaims(h, plain.accessToken)).amr, ['fed'], 'signed in directly again')
})

t.test('unlinking without two-factor needs no body at all', async (t) => {
  const { h, google, github } = await oauthHarness(t)
  google.state.user = { sub: '2000002', email: 'noah@example.com', email_verified: true, name: 'Noah' }
  const tokens = json<TokenPair>(await providerSignIn(h, 'google'))
  github.state.user = { id: 3000002, login: 'noah', name: 'Noah', emails: [{ email: 'noah@example.com', primary: true, verified: true }] }
  await providerSignIn(h, 'github')
  const res = await h.app.inject({ method: 'DELETE', url: '/api/auth/oauth/github', headers: bearer(tokens.accessToken) })
  t.equal(res.statusCode, 204)
})
