// The real app listening on a real port for the link-page tests, with accounts
// made through the API and mail read from the SMTP sink, and a superuser client
// to look at what the database recorded.
import type { Test } from 'tap'
import pg from 'pg'
import { build, json, type TestApp } from '../helpers/app.ts'
import { freePort } from '../helpers/net.ts'

export const APP_NAME = 'Trailhead'
export const LOGIN_URL = 'https://app.trailhead.test/login'
export const PASSWORD = 'correct horse battery staple'

export interface Site extends TestApp {
  /** http://<host>:<port>: where the browser opens the pages (also APP_URL). */
  base: string
  /** One audit count (email_verified, password_reset) for an address. */
  auditCount: (action: string, email: string) => Promise<number>
  /** The superuser client of this test's database. */
  admin: pg.Client
}

export async function site(t: Test, env: Record<string, string> = {}, host = '127.0.0.1'): Promise<Site> {
  const port = await freePort()
  const base = `http://${host}:${String(port)}`
  const h = await build(t, { APP_URL: base, APP_NAME, LOGIN_URL, ...env })
  await h.app.listen({ port, host: '127.0.0.1' })
  const admin = new pg.Client({ connectionString: h.db.adminUrl })
  await admin.connect()
  t.teardown(() => admin.end())
  const auditCount = async (action: string, email: string) => {
    const { rows } = await admin.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM activity.audit_logs l JOIN activity.users u ON u.id = l.user_id
        WHERE l.action = $1 AND u.email = $2`,
      [action, email],
    )
    return rows[0]?.n ?? -1
  }
  return { ...h, base, auditCount, admin }
}

/** Signs up through the API; returns the token of the confirmation mail. */
export async function signup(h: TestApp, email: string, password = PASSWORD): Promise<string> {
  const res = await h.app.inject({ method: 'POST', url: '/api/auth/signup', payload: { email, password } })
  if (res.statusCode !== 202) throw new Error(`signup ${String(res.statusCode)} ${res.body}`)
  return h.tokenFor(email, /Confirm your email/)
}

/** A verified account (through the API), then a reset link for it; returns the reset token. */
export async function resetLinkFor(h: TestApp, email: string, password = PASSWORD): Promise<string> {
  const token = await signup(h, email, password)
  const verified = await h.app.inject({ method: 'POST', url: '/api/auth/verify-email', payload: { token } })
  if (verified.statusCode !== 200) throw new Error(`verify ${String(verified.statusCode)} ${verified.body}`)
  const forgot = await h.app.inject({ method: 'POST', url: '/api/auth/forgot-password', payload: { email } })
  if (forgot.statusCode !== 202) throw new Error(`forgot ${String(forgot.statusCode)} ${forgot.body}`)
  return h.tokenFor(email, /Reset your password/)
}

/** A login through the API: its status and problem code (undefined on success). */
export async function login(h: TestApp, email: string, password = PASSWORD): Promise<{ status: number; code: string | undefined }> {
  const res = await h.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email, password } })
  return { status: res.statusCode, code: res.statusCode === 200 ? undefined : json<{ code: string }>(res).code }
}
