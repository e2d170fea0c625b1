// An independent TOTP (RFC 6238 over RFC 4226 HOTP, HMAC-SHA-1) written with node:crypto
// only, so the tests check the service's otplib-based codes against another implementation.
import { createHmac } from 'node:crypto'

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'

export function base32Decode(text: string): Buffer {
  const clean = text.replace(/=+$/, '').toUpperCase()
  let bits = 0
  let value = 0
  const out: number[] = []
  for (const char of clean) {
    const index = BASE32.indexOf(char)
    if (index < 0) throw new Error(`not base32: ${char}`)
    value = (value << 5) | index
    bits += 5
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff)
      bits -= 8
    }
  }
  return Buffer.from(out)
}

/** RFC 4226 §5.3: HMAC-SHA-1 of the 8-byte counter, dynamic truncation, modulo 10^digits. */
export function hotp(key: Buffer, counter: number, digits = 6): string {
  const message = Buffer.alloc(8)
  message.writeBigUInt64BE(BigInt(counter))
  const mac = createHmac('sha1', key).update(message).digest()
  const offset = (mac[mac.length - 1] ?? 0) & 0x0f
  const binary = (mac.readUInt32BE(offset) & 0x7fffffff) % 10 ** digits
  return String(binary).padStart(digits, '0')
}

export const PERIOD = 30

/** The 30-second step of a time (ms since the epoch). */
export function stepAt(ms = Date.now()): number {
  return Math.floor(ms / 1000 / PERIOD)
}

/** The code of a base32 secret for the step `offset` steps from now. */
export function totp(secretBase32: string, offset = 0, digits = 6): string {
  return hotp(base32Decode(secretBase32), stepAt() + offset, digits)
}
