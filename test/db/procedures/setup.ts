// Shared setup for the stored-procedure tests in this folder: every procedure
// call goes through its typed wrapper as auth_api_user (what the service does);
// the superuser connection only inspects tables and moves timestamps into the past.
import type pg from 'pg'
import { deactivateUser } from '../../../src/db/procedures.ts'
import { createTestDatabase, testPool } from '../../helpers/db.ts'
import { newUser, rows } from '../../helpers/fixtures.ts'

export interface Ctx {
  /** auth_api_user: every procedure call goes through here. */
  api: pg.Pool
  /** Superuser: inspection and time travel only. */
  admin: pg.Pool
}

/** A fresh migrated database per test: cleanup and counts see only their own rows. */
export async function setup(t: Parameters<typeof createTestDatabase>[0]): Promise<Ctx> {
  const db = await createTestDatabase(t)
  return { api: testPool(t, db.url, 4), admin: testPool(t, db.adminUrl, 2) }
}

export const NO_USER = '00000000-0000-4000-8000-000000000000'

export async function auditActions(admin: pg.Pool, userId: string | null): Promise<string[]> {
  const found = await rows<{ action: string }>(
    admin,
    'SELECT action FROM activity.audit_logs WHERE user_id IS NOT DISTINCT FROM $1 ORDER BY id',
    [userId],
  )
  return found.map((r) => r.action)
}

export async function lastAudit(admin: pg.Pool, action: string): Promise<Record<string, unknown> | undefined> {
  const [row] = await rows<{
    details: Record<string, unknown>
    user_id: string | null
    ip: string | null
    user_agent: string | null
    request_id: string | null
  }>(
    admin,
    'SELECT details, user_id, host(ip) AS ip, user_agent, request_id FROM activity.audit_logs WHERE action = $1 ORDER BY id DESC LIMIT 1',
    [action],
  )
  return row
}

export async function tokenRows(
  admin: pg.Pool,
  familyId: string,
): Promise<{ token: string; revoked: boolean; revoked_reason: string | null }[]> {
  return rows(admin, 'SELECT token, revoked, revoked_reason FROM activity.refresh_tokens WHERE family_id = $1 ORDER BY id', [familyId])
}

export async function deactivated(ctx: Ctx): Promise<string> {
  const user = await newUser(ctx.api)
  await deactivateUser(ctx.api, { userId: user.id })
  return user.id
}

export const LOCKOUT = { threshold: 3, baseSeconds: 60, maxSeconds: 600, ipThreshold: 100, windowSeconds: 900 }
