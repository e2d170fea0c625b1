// The successor of a rotated refresh token is derived, not random (issue 11): the
// same presentation always gives the same successor, only with the pepper; and the
// development pepper survives a restart, kept like the development signing key.
import { createHmac } from 'node:crypto'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { deriveRefreshSuccessor, loadRefreshTokenPepper, newRefreshToken } from '../../src/auth/refresh-tokens.ts'
import { hashToken, isWellFormedToken } from '../../src/auth/tokens.ts'

const PEPPER = 'p'.repeat(16) + 'e'.repeat(16) + '0123456789'

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'activity-auth-pepper-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

t.test('the successor: HMAC-SHA-256 of the presented token under the pepper, a well-formed token, stored as SHA-256', async (t) => {
  const presented = newRefreshToken().token
  const a = deriveRefreshSuccessor(PEPPER, presented)
  const b = deriveRefreshSuccessor(PEPPER, presented)
  t.equal(a.token, b.token, 'the same presentation, the same successor')
  t.equal(a.token, createHmac('sha256', PEPPER).update(presented).digest('base64url'))
  t.ok(isWellFormedToken(a.token), '43 base64url characters, like every refresh token')
  t.equal(a.hash, hashToken(a.token))
  t.not(a.jti, b.jti, 'the jti is fresh each time (used only when the successor is inserted)')
  t.not(a.token, presented)
  t.not(deriveRefreshSuccessor(PEPPER, newRefreshToken().token).token, a.token, 'another token, another successor')
  t.not(deriveRefreshSuccessor(`${PEPPER}x`, presented).token, a.token, 'another pepper, another successor')
})

t.test('REFRESH_TOKEN_PEPPER is used as given; production without one refuses', async (t) => {
  const dataDir = await tempDir(t)
  t.equal(await loadRefreshTokenPepper({ pepper: PEPPER, dataDir, production: true }), PEPPER)
  await t.rejects(loadRefreshTokenPepper({ dataDir, production: true }), /REFRESH_TOKEN_PEPPER is required in production/)
  await t.rejects(loadRefreshTokenPepper({ pepper: 'short', dataDir, production: false }), /at least 32/)
  await t.rejects(stat(path.join(dataDir, 'secrets')), { code: 'ENOENT' }, 'nothing generated')
})

t.test('development: generated once under DATA_DIR (0600 in a 0700 directory), the same after a restart', async (t) => {
  const dataDir = await tempDir(t)
  const first = await loadRefreshTokenPepper({ dataDir, production: false })
  t.ok(first.length >= 32)
  const file = path.join(dataDir, 'secrets', 'refresh-token-pepper')
  t.equal((await stat(file)).mode & 0o777, 0o600)
  t.equal((await stat(path.dirname(file))).mode & 0o777, 0o700)
  t.equal((await readFile(file, 'utf8')).trim(), first)
  t.equal(await loadRefreshTokenPepper({ dataDir, production: false }), first, 'a restart reads the same pepper')

  const racing = await tempDir(t)
  const peppers = await Promise.all(Array.from({ length: 8 }, () => loadRefreshTokenPepper({ dataDir: racing, production: false })))
  t.equal(new Set(peppers).size, 1, 'instances starting at once agree on one pepper')

  await writeFile(file, 'short\n')
  await t.rejects(
    loadRefreshTokenPepper({ dataDir, production: false }),
    /fewer than 32/,
    'a damaged file is an error, not silently replaced',
  )
})
