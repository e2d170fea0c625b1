// `npm run db -- seed`: the rows of sql/seed/development.sql, with a known password
// and known refresh tokens so a developer can log in and refresh at once. The
// tokens are derived from fixed labels, so every run (and every machine) seeds the
// same ones.
import { createHash } from 'node:crypto'
import { applyInitFile } from '../db/bootstrap.ts'
import { withClient } from '../db/admin-connection.ts'
import { projectPath } from '../paths.ts'
import { createPasswordHasher } from '../auth/passwords.ts'

const SEED_FILE = projectPath('sql', 'seed', 'development.sql')
export const SEED_PASSWORD = 'activity-dev-password'
export const SEED_EMAILS = ['active@example.com', 'unverified@example.com', 'deactivated@example.com', 'locked@example.com']

/** A well-formed (43-character base64url) refresh token, the same on every run. */
export function seedToken(label: string): string {
  return createHash('sha256').update(`activity-auth seed ${label}`).digest('base64url')
}

export interface SeedResult {
  users: number
  sessions: number
  password: string
  liveRefreshToken: string
}

export async function seedDevelopment(options: {
  adminUrl: string
  argon2: { memoryKiB: number; timeCost: number; parallelism: number }
}): Promise<SeedResult> {
  const hasher = createPasswordHasher(options.argon2)
  const env = {
    SEED_PASSWORD_HASH: await hasher.hash(SEED_PASSWORD),
    SEED_LIVE_TOKEN: seedToken('live'),
    SEED_EXPIRED_TOKEN: seedToken('expired'),
    SEED_REVOKED_TOKEN: seedToken('revoked'),
  }
  return withClient(options.adminUrl, async (c) => {
    await applyInitFile(c, SEED_FILE, env)
    const { rows } = await c.query<{ users: number; sessions: number }>(
      `SELECT (SELECT count(*)::int FROM activity.users WHERE email = ANY($1)) AS users,
              (SELECT count(*)::int FROM activity.refresh_tokens WHERE jti LIKE 'seed-%') AS sessions`,
      [SEED_EMAILS],
    )
    return { users: rows[0]?.users ?? 0, sessions: rows[0]?.sessions ?? 0, password: SEED_PASSWORD, liveRefreshToken: env.SEED_LIVE_TOKEN }
  })
}
