// Refresh tokens: random like an email token (tokens.ts), plus a jti.
// A rotated refresh token's successor is not random but derived from the token
// presented, under a server-side secret (REFRESH_TOKEN_PEPPER): a retry or a
// parallel presentation inside the grace window re-derives the same successor,
// so rotation never forks a session.
import { createHmac, randomBytes, randomUUID } from 'node:crypto'
import { chmod, link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { hashToken, newEmailToken } from './tokens.ts'

export function newRefreshToken(): { token: string; hash: string; jti: string } {
  return { ...newEmailToken(), jti: randomUUID() }
}

/** Fewer characters than this are refused for REFRESH_TOKEN_PEPPER (config schema and the generated file). */
export const PEPPER_MIN_LENGTH = 32

export interface RefreshSuccessor {
  token: string
  hash: string
  jti: string
}

/**
 * The successor of a presented refresh token: base64url(HMAC-SHA-256(pepper, token)),
 * 43 characters like every refresh token (isWellFormedToken), stored only as its
 * SHA-256. Deterministic, so the same presentation always yields the same token;
 * without the pepper it cannot be computed from the presented token. The jti is
 * fresh each time: it only matters when the successor is inserted (once).
 */
export function deriveRefreshSuccessor(pepper: string, presented: string): RefreshSuccessor {
  const token = createHmac('sha256', pepper).update(presented).digest('base64url')
  return { token, hash: hashToken(token), jti: randomUUID() }
}

export interface PepperOptions {
  /** REFRESH_TOKEN_PEPPER, when set. */
  pepper?: string | undefined
  dataDir: string
  production: boolean
}

/**
 * REFRESH_TOKEN_PEPPER, or — outside production only — one generated once and
 * kept under DATA_DIR (mode 0600, like the development signing key), so a restart
 * keeps re-deriving the same successors.
 */
export async function loadRefreshTokenPepper(opts: PepperOptions): Promise<string> {
  if (opts.pepper !== undefined && opts.pepper !== '') {
    if (opts.pepper.length < PEPPER_MIN_LENGTH)
      throw new Error(`REFRESH_TOKEN_PEPPER must be at least ${String(PEPPER_MIN_LENGTH)} characters`)
    return opts.pepper
  }
  if (opts.production) throw new Error('REFRESH_TOKEN_PEPPER is required in production')
  const dir = path.join(opts.dataDir, 'secrets')
  const file = path.join(dir, 'refresh-token-pepper')
  const stored = async (): Promise<string> => {
    const pepper = (await readFile(file, 'utf8')).trim()
    if (pepper.length < PEPPER_MIN_LENGTH)
      throw new Error(`${file} holds fewer than ${String(PEPPER_MIN_LENGTH)} characters: delete it to generate a new pepper`)
    return pepper
  }
  try {
    return await stored()
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ENOENT') throw err
  }
  await mkdir(dir, { recursive: true, mode: 0o700 })
  await chmod(dir, 0o700)
  const pepper = randomBytes(32).toString('base64url')
  // Written aside, then linked into place: the file appears whole or not at all, and
  // two instances starting at once cannot overwrite each other's pepper (link fails).
  const temp = `${file}.${String(process.pid)}.${randomBytes(4).toString('hex')}`
  await writeFile(temp, `${pepper}\n`, { mode: 0o600, flag: 'wx' })
  try {
    await link(temp, file)
    return pepper
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'EEXIST') throw err
    return await stored()
  } finally {
    await unlink(temp)
  }
}
