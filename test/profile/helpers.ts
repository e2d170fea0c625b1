// Shared by the profile API tests: a verified account that is signed in.
import { bearer, json, type TestApp } from '../helpers/app.ts'

export const PASSWORD = 'the owners passphrase'

export async function verifiedUser(h: TestApp, email: string, password = PASSWORD): Promise<void> {
  await h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email, password } })
  const token = await h.tokenFor(email, /Confirm your email/)
  const res = await h.app.inject({ method: 'POST', url: '/api/auth/verify-email', payload: { token } })
  if (res.statusCode !== 200) throw new Error(`verify ${String(res.statusCode)}`)
}

export interface SignedIn {
  accessToken: string
  refreshToken: string
}

export async function login(h: TestApp, payload: Record<string, string>): Promise<SignedIn> {
  const res = await h.app.inject({ method: 'POST', url: '/api/auth/login', payload })
  if (res.statusCode !== 200) throw new Error(`login ${String(res.statusCode)}: ${res.body}`)
  return json<SignedIn>(res)
}

export async function signedIn(h: TestApp, email: string): Promise<{ headers: ReturnType<typeof bearer>; session: SignedIn }> {
  await verifiedUser(h, email)
  const session = await login(h, { email, password: PASSWORD })
  return { headers: bearer(session.accessToken), session }
}

/** The body of a problem answer without its request id: what two answers must share. */
export function problem(body: string): Record<string, unknown> {
  const parsed = JSON.parse(body) as Record<string, unknown>
  delete parsed.requestId
  return parsed
}
