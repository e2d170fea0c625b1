// TOTP secrets at rest: AES-256-GCM under MFA_ENCRYPTION_KEY, in Node, so a copy of
// the database (a backup, a read replica, a SQL injection elsewhere) cannot mint
// codes. The stored text names the key version (`v1:iv:tag:ciphertext`, base64url),
// so a later rotation can read old rows with the old key while writing new ones.
// The user id is bound in as associated data: a ciphertext copied onto another
// account does not decrypt there.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { chmod, link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises'
import path from 'node:path'

const KEY_BYTES = 32
const IV_BYTES = 12
const VERSION = 'v1'

/** MFA_ENCRYPTION_KEY as 32 bytes: 64 hex digits, or base64 / base64url of 32 bytes. */
export function parseMfaKey(text: string): Buffer {
  const trimmed = text.trim()
  const key = /^[0-9a-fA-F]{64}$/.test(trimmed) ? Buffer.from(trimmed, 'hex') : Buffer.from(trimmed, 'base64')
  if (key.length !== KEY_BYTES || (!/^[0-9a-fA-F]{64}$/.test(trimmed) && !/^[A-Za-z0-9+/_-]{43}=?$/.test(trimmed))) {
    throw new Error('MFA_ENCRYPTION_KEY must be 32 bytes, as 64 hex digits or base64 (e.g. openssl rand -base64 32)')
  }
  return key
}

export interface SecretBox {
  seal(userId: string, plaintext: string): string
  /** Throws when the text was not sealed with this key for this user (or was changed). */
  open(userId: string, sealed: string): string
}

export function secretBox(key: Buffer): SecretBox {
  if (key.length !== KEY_BYTES) throw new Error('the MFA key must be 32 bytes')
  return {
    seal(userId, plaintext) {
      const iv = randomBytes(IV_BYTES)
      const cipher = createCipheriv('aes-256-gcm', key, iv).setAAD(Buffer.from(userId))
      const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
      return [VERSION, iv, cipher.getAuthTag(), ciphertext].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join(':')
    },
    open(userId, sealed) {
      const [version, iv, tag, ciphertext, ...rest] = sealed.split(':')
      if (version !== VERSION || iv === undefined || tag === undefined || ciphertext === undefined || rest.length > 0) {
        throw new Error('unknown MFA secret format or key version')
      }
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url')).setAAD(Buffer.from(userId))
      decipher.setAuthTag(Buffer.from(tag, 'base64url'))
      return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8')
    },
  }
}

export interface MfaKeyOptions {
  /** MFA_ENCRYPTION_KEY, when set. */
  key?: string | undefined
  dataDir: string
  production: boolean
}

/**
 * MFA_ENCRYPTION_KEY, or — outside production only — one generated once and kept
 * under DATA_DIR/secrets (mode 0600), like the refresh token pepper: a restart must
 * still read the secrets it sealed.
 */
export async function loadMfaKey(opts: MfaKeyOptions): Promise<Buffer> {
  if (opts.key !== undefined && opts.key !== '') return parseMfaKey(opts.key)
  if (opts.production) throw new Error('MFA_ENCRYPTION_KEY is required in production')
  const dir = path.join(opts.dataDir, 'secrets')
  const file = path.join(dir, 'mfa-encryption-key')
  try {
    return parseMfaKey(await readFile(file, 'utf8'))
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ENOENT') throw err
  }
  await mkdir(dir, { recursive: true, mode: 0o700 })
  await chmod(dir, 0o700)
  const generated = randomBytes(KEY_BYTES).toString('base64')
  // Written aside, then linked into place: two instances starting at once keep one key.
  const temp = `${file}.${String(process.pid)}.${randomBytes(4).toString('hex')}`
  await writeFile(temp, `${generated}\n`, { mode: 0o600, flag: 'wx' })
  try {
    await link(temp, file)
    return parseMfaKey(generated)
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'EEXIST') throw err
    return parseMfaKey(await readFile(file, 'utf8'))
  } finally {
    await unlink(temp)
  }
}
