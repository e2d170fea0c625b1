// The building blocks of two-factor sign-in, without the app: the TOTP codes the
// service accepts agree with an independent RFC 6238 implementation (test/helpers/totp.ts,
// itself checked against the RFC's test vectors); sealed secrets open only with their
// key and user; recovery codes normalise and hash as documented; MFA_ENCRYPTION_KEY parsing.
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { hashRecoveryCode, isWellFormedRecoveryCode, newRecoveryCodes, normaliseRecoveryCode } from '../../src/auth/mfa/recovery-codes.ts'
import { loadMfaKey, parseMfaKey, secretBox } from '../../src/auth/mfa/secret-box.ts'
import { matchingStep, newTotpSecret, otpauthUri } from '../../src/auth/mfa/totp.ts'
import { base32Decode, hotp, stepAt, totp } from '../helpers/totp.ts'

t.test('the hand-written TOTP meets the RFC 6238 SHA-1 test vectors', async (t) => {
  const key = Buffer.from('12345678901234567890', 'ascii')
  const vectors: [number, string][] = [
    [59, '94287082'],
    [1111111109, '07081804'],
    [1111111111, '14050471'],
    [1234567890, '89005924'],
    [2000000000, '69279037'],
    [20000000000, '65353130'],
  ]
  for (const [seconds, code] of vectors) t.equal(hotp(key, Math.floor(seconds / 30), 8), code, `T=${String(seconds)}`)
  t.same(base32Decode('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ'), key, 'base32 of the RFC key')
})

t.test('the service accepts now and one step either side, nothing further, and says which step', async (t) => {
  const secret = newTotpSecret()
  t.equal(base32Decode(secret).length, 20, '160-bit secret')
  const now = stepAt()
  for (const offset of [-1, 0, 1]) {
    t.equal(await matchingStep(secret, totp(secret, offset), null), now + offset, `offset ${String(offset)} accepted`)
  }
  for (const offset of [-3, 3])
    t.equal(await matchingStep(secret, totp(secret, offset), null), undefined, `offset ${String(offset)} refused`)
  t.equal(await matchingStep(secret, totp(secret, 0), now), undefined, 'a step not newer than afterStep is refused')
  t.equal(await matchingStep(secret, totp(secret, 1), now), now + 1, 'a newer one passes')
  t.equal(await matchingStep(secret, '12345', null), undefined, 'five digits')
  t.equal(await matchingStep(secret, ` ${totp(secret)}`, null), undefined, 'not six digits exactly')
  const uri = new URL(otpauthUri('Activity', 'ann@example.com', secret))
  t.equal(uri.protocol, 'otpauth:')
  t.equal(uri.host, 'totp')
  t.equal(uri.searchParams.get('secret'), secret)
  t.equal(uri.searchParams.get('issuer'), 'Activity')
  t.match(decodeURIComponent(uri.pathname), /^\/Activity:ann@example\.com$/)
})

t.test('a sealed secret opens only with its key, for its user, unchanged', async (t) => {
  const box = secretBox(randomBytes(32))
  const user = '7d0f8a8e-2f4c-4a51-9c39-0f5f0c0b7a11'
  const sealed = box.seal(user, 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP')
  t.match(sealed, /^v1:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+$/, 'versioned format')
  t.notOk(sealed.includes('JBSWY3DP'), 'no plaintext')
  t.not(box.seal(user, 'same'), box.seal(user, 'same'), 'a fresh IV each time')
  t.equal(box.open(user, sealed), 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP')
  t.throws(() => box.open('00000000-0000-4000-8000-000000000000', sealed), 'another user: refused')
  t.throws(() => secretBox(randomBytes(32)).open(user, sealed), 'another key: refused')
  const parts = sealed.split(':')
  const ct = Buffer.from(parts[3] ?? '', 'base64url')
  ct[0] = (ct[0] ?? 0) ^ 1
  t.throws(() => box.open(user, [parts[0], parts[1], parts[2], ct.toString('base64url')].join(':')), 'changed: refused')
  t.throws(() => box.open(user, sealed.replace(/^v1/, 'v9')), 'unknown key version: refused')
})

t.test('MFA_ENCRYPTION_KEY: 32 bytes as hex or base64; generated once in development, refused missing in production', async (t) => {
  const raw = randomBytes(32)
  t.same(parseMfaKey(raw.toString('hex')), raw)
  t.same(parseMfaKey(raw.toString('base64')), raw)
  t.same(parseMfaKey(raw.toString('base64url')), raw)
  t.throws(() => parseMfaKey(randomBytes(16).toString('hex')), /32 bytes/)
  t.throws(() => parseMfaKey('x'.repeat(44)), /32 bytes/)
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mfa-key-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const first = await loadMfaKey({ dataDir, production: false })
  t.same(await loadMfaKey({ dataDir, production: false }), first, 'a restart reads the same key')
  const file = path.join(dataDir, 'secrets', 'mfa-encryption-key')
  t.equal((await stat(file)).mode & 0o777, 0o600)
  t.same(parseMfaKey(await readFile(file, 'utf8')), first)
  await t.rejects(loadMfaKey({ dataDir, production: true }), /required in production/)
  t.same(await loadMfaKey({ key: raw.toString('hex'), dataDir, production: true }), raw)
})

t.test('recovery codes: ten distinct xxxx-xxxx-xxxx, compared after normalising, stored as SHA-256', async (t) => {
  const { codes, hashes } = newRecoveryCodes()
  t.equal(codes.length, 10)
  t.equal(new Set(codes).size, 10)
  for (const code of codes) t.match(code, /^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$/)
  const [code = ''] = codes
  t.equal(hashRecoveryCode(code.toUpperCase().replace(/-/g, ' ')), hashes[0], 'case, dashes and spaces do not matter')
  t.match(hashes[0], /^[0-9a-f]{64}$/)
  t.equal(normaliseRecoveryCode(' AbCd-EfGh ijkl '), 'abcdefghijkl')
  t.ok(isWellFormedRecoveryCode('ABCD-EFGH-IJKL'))
  t.notOk(isWellFormedRecoveryCode('abcd-efgh-ijk1'), '1 is not in the alphabet')
  t.notOk(isWellFormedRecoveryCode('abcd-efgh'), 'too short')
})
