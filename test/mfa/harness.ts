// Shared steps of the two-factor tests: accounts, logins, enrolment through the API,
// and codes computed by the independent TOTP of test/helpers/totp.ts. freshCode reads
// the last accepted step, so a test never presents a replay unless it means to.
import pg from 'pg'
import type { Test } from 'tap'
import jsQRModule from 'jsqr'
import { PNG } from 'pngjs'
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose'
import { bearer, json, type TestApp } from '../helpers/app.ts'
import { hotp, base32Decode, stepAt } from '../helpers/totp.ts'

// jsqr is CommonJS (module.exports = the function, plus .default); its types only describe `.default`.
const jsQR = jsQRModule.default

export const PASSWORD = 'two factors beat one factor'

export interface Tokens {
  accessToken: string
  refreshToken: string
  deviceToken?: string
}

export interface Enrolled {
  email: string
  userId: string
  secret: string
  recoveryCodes: string[]
  tokens: Tokens
}

export function adminPool(t: Test, h: TestApp): pg.Pool {
  const pool = new pg.Pool({ connectionString: h.db.adminUrl, max: 2 })
  t.teardown(() => pool.end())
  return pool
}

export async function signupVerified(h: TestApp, email: string): Promise<void> {
  const res = await h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email, password: PASSWORD } })
  if (res.statusCode !== 202) throw new Error(`signup ${String(res.statusCode)}: ${res.body}`)
  const token = await h.tokenFor(email, /Confirm your email/)
  const verified = await h.app.inject({ method: 'POST', url: '/api/auth/verify-email', payload: { token } })
  if (verified.statusCode !== 200) throw new Error(`verify ${String(verified.statusCode)}`)
}

export function login(h: TestApp, email: string, password = PASSWORD, extra: Record<string, string> = {}) {
  return h.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email, password, ...extra } })
}

export function verify(h: TestApp, payload: Record<string, string>) {
  return h.app.inject({ method: 'POST', url: '/api/auth/mfa/verify', payload })
}

/** The code for the first step after the last accepted one, if that step is still within now ± 1. */
export async function freshCode(admin: pg.Pool, userId: string, secret: string): Promise<string> {
  const { rows } = await admin.query<{ last: string | null }>(
    'SELECT last_used_step::text AS last FROM activity.mfa_totp WHERE user_id = $1',
    [userId],
  )
  const last = Number(rows[0]?.last ?? 0)
  const now = stepAt()
  const step = Math.max(last + 1, now - 1)
  if (step > now + 1) throw new Error('no fresh step left in the window: rewind the last used step first')
  return hotp(base32Decode(secret), step)
}

/** Test time travel for tests that need more codes than a 90-second window holds. */
export async function rewindSteps(admin: pg.Pool, userId: string): Promise<void> {
  await admin.query('UPDATE activity.mfa_totp SET last_used_step = $2 WHERE user_id = $1', [userId, stepAt() - 5])
}

/** A verified password account with two-factor turned on through the API. */
export async function enrolledAccount(h: TestApp, admin: pg.Pool, email: string): Promise<Enrolled> {
  await signupVerified(h, email)
  const tokens = json<Tokens>(await login(h, email))
  const userId = json<{ id: string }>(await h.app.inject({ method: 'GET', url: '/api/auth/me', headers: bearer(tokens.accessToken) })).id
  const { secret, recoveryCodes } = await turnOn(h, admin, userId, tokens.accessToken)
  return { email, userId, secret, recoveryCodes, tokens }
}

export async function turnOn(
  h: TestApp,
  admin: pg.Pool,
  userId: string,
  accessToken: string,
): Promise<{ secret: string; recoveryCodes: string[] }> {
  const enrolment = await h.app.inject({ method: 'POST', url: '/api/auth/mfa/totp', headers: bearer(accessToken) })
  if (enrolment.statusCode !== 200) throw new Error(`enrol ${String(enrolment.statusCode)}: ${enrolment.body}`)
  const { secret } = json<{ secret: string }>(enrolment)
  const confirmed = await h.app.inject({
    method: 'POST',
    url: '/api/auth/mfa/totp/confirm',
    headers: bearer(accessToken),
    payload: { code: await freshCode(admin, userId, secret) },
  })
  if (confirmed.statusCode !== 200) throw new Error(`confirm ${String(confirmed.statusCode)}: ${confirmed.body}`)
  return { secret, recoveryCodes: json<{ recoveryCodes: string[] }>(confirmed).recoveryCodes }
}

/** The text a PNG data URL's QR code holds. */
export function decodeQr(dataUrl: string): string | undefined {
  const png = PNG.sync.read(Buffer.from(dataUrl.replace(/^data:image\/png;base64,/, ''), 'base64'))
  return jsQR(new Uint8ClampedArray(png.data), png.width, png.height)?.data
}

/** The access token's claims, verified with jose against the published JWKS. */
export async function verifiedClaims(h: TestApp, accessToken: string): Promise<JWTPayload> {
  const jwks = json<JSONWebKeySet>(await h.app.inject({ method: 'GET', url: '/.well-known/jwks.json' }))
  const { payload } = await jwtVerify(accessToken, createLocalJWKSet(jwks), {
    issuer: h.config.jwt.issuer,
    audience: h.config.jwt.audience,
  })
  return payload
}

/** Wait for a background mail to `to` whose subject matches. */
export async function mailTo(h: TestApp, to: string, subject: RegExp): Promise<{ subject: string; text: string }> {
  const deadline = Date.now() + 10_000
  for (;;) {
    await h.app.mfa.drain()
    const found = h.mail().find((m) => m.to.includes(to) && subject.test(m.subject))
    if (found !== undefined) return found
    if (Date.now() > deadline) throw new Error(`no mail to ${to} matching ${String(subject)}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

export async function auditActions(admin: pg.Pool, userId: string): Promise<string[]> {
  const { rows } = await admin.query<{ action: string }>('SELECT action FROM activity.audit_logs WHERE user_id = $1 ORDER BY id', [userId])
  return rows.map((r) => r.action)
}

export async function eventTypes(admin: pg.Pool, userId: string): Promise<string[]> {
  const { rows } = await admin.query<{ type: string }>('SELECT type FROM activity.events WHERE user_id = $1 ORDER BY id', [userId])
  return rows.map((r) => r.type)
}
