import { readFileSync } from 'node:fs'
import argon2 from 'argon2'
import t from 'tap'
import { checkPasswordPolicy, commonPasswordListPath, commonPasswords, createPasswordHasher } from '../../src/auth/passwords.ts'

// Small parameters where only behaviour matters, to keep the suite quick.
const FAST = { memoryKiB: 1024, timeCost: 1, parallelism: 1 }

t.test('hashes are argon2id PHC strings with the configured (default OWASP) parameters', async (t) => {
  const hasher = createPasswordHasher({ memoryKiB: 19456, timeCost: 2, parallelism: 1 })
  const hash = await hasher.hash('correct horse battery staple')
  t.match(hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/)
  t.not(await hasher.hash('correct horse battery staple'), hash, 'a fresh salt each time')
  t.equal(await hasher.verify(hash, 'correct horse battery staple'), true)
})

t.test('verify accepts the right password only, and says false for a malformed hash', async (t) => {
  const hasher = createPasswordHasher(FAST)
  const hash = await hasher.hash('s3cret pässwörd 🔑')
  t.equal(await hasher.verify(hash, 's3cret pässwörd 🔑'), true)
  t.equal(await hasher.verify(hash, 's3cret pässwörd'), false)
  t.equal(await hasher.verify(hash, 'S3cret pässwörd 🔑'), false, 'case matters for the password itself')
  // Exactly what was typed is hashed: the NFD form of the same text is another password.
  t.equal(await hasher.verify(hash, 's3cret pässwörd 🔑'.normalize('NFD')), false)
  for (const bad of ['', 'not a hash', '$argon2id$v=19$m=1024,t=1,p=1$abc', hash.slice(0, 40), '$2b$10$abcdefghijklmnopqrstuv']) {
    t.equal(await hasher.verify(bad, 's3cret pässwörd 🔑'), false, `malformed: ${JSON.stringify(bad)}`)
  }
})

t.test('needsRehash is true only when the stored hash no longer matches the current parameters', async (t) => {
  const hasher = createPasswordHasher(FAST)
  const hash = await hasher.hash('a long enough password')
  t.equal(hasher.needsRehash(hash), false)
  t.equal(createPasswordHasher({ ...FAST, memoryKiB: 2048 }).needsRehash(hash), true, 'memory changed')
  t.equal(createPasswordHasher({ ...FAST, timeCost: 2 }).needsRehash(hash), true, 'time cost changed')
  t.equal(createPasswordHasher({ ...FAST, parallelism: 2 }).needsRehash(hash), true, 'parallelism changed')
  const argon2i = await argon2.hash('a long enough password', { type: argon2.argon2i, memoryCost: 1024, timeCost: 1, parallelism: 1 })
  t.equal(hasher.needsRehash(argon2i), true, 'another argon2 variant')
  t.equal(hasher.needsRehash('garbage'), true, 'an unreadable hash is replaced, not thrown on')
})

t.test('dummyVerify runs for any password without throwing, also when called concurrently', async (t) => {
  const hasher = createPasswordHasher(FAST)
  const results = await Promise.all([hasher.dummyVerify('whatever'), hasher.dummyVerify(''), hasher.dummyVerify('x'.repeat(128))])
  t.same(results, [undefined, undefined, undefined])
  t.equal(await hasher.dummyVerify('again'), undefined)
})

t.test('length is 8 to 128 Unicode code points, with no truncation', async (t) => {
  t.equal(checkPasswordPolicy('k7#vLq2')?.code, 'password_too_short', '7 characters')
  t.equal(checkPasswordPolicy('k7#vLq2z'), null, '8 characters')
  t.equal(checkPasswordPolicy('')?.code, 'password_too_short')
  const long128 = 'Zq9!'.repeat(32)
  t.equal(checkPasswordPolicy(long128), null, '128 characters')
  t.equal(checkPasswordPolicy(`${long128}x`)?.code, 'password_too_long', '129 characters')
  // An emoji is one character even though it is two UTF-16 units.
  t.equal(checkPasswordPolicy('k7#vLq🔑')?.code, 'password_too_short', '6 letters + 1 emoji = 7')
  t.equal(checkPasswordPolicy('k7#vLqZ🔑'), null, '7 letters + 1 emoji = 8')
  t.equal(checkPasswordPolicy('🔑'.repeat(128)), null, '128 emoji')
  t.equal(checkPasswordPolicy('🔑'.repeat(129))?.code, 'password_too_long', '129 emoji')
  const violation = checkPasswordPolicy('short')
  t.ok(violation?.detail.includes('8'), 'the detail tells the minimum')
})

t.test('common passwords are rejected case-insensitively; a random passphrase is accepted', async (t) => {
  for (const common of ['password', 'Password', 'PASSWORD', 'qwerty123', 'QWERTY123']) {
    t.equal(checkPasswordPolicy(common)?.code, 'password_too_common', common)
  }
  t.equal(checkPasswordPolicy('violet kettle drums under 4 quiet moons'), null)
  t.equal(checkPasswordPolicy('password1!x'), null, 'no composition rules, only the list')
})

t.test('the whole bundled list of 10,000 common passwords is loaded', async (t) => {
  const lines = readFileSync(commonPasswordListPath(), 'utf8')
    .split(/\r?\n/)
    .filter((l) => l !== '')
  t.ok(lines.length >= 10_000, `${lines.length} entries in the shipped list`)
  const set = commonPasswords()
  const missing = lines.filter((l) => !set.has(l.toLowerCase()))
  t.same(missing, [], 'every entry is in the set')
  // Entries differing only by case are one entry once folded.
  t.ok(set.size > 9_800, `${set.size} distinct entries ignoring case`)
  const longEnough = lines.filter((l) => l.length >= 8) // the list is ASCII
  t.ok(longEnough.length > 1_000)
  t.same(
    longEnough.filter((l) => checkPasswordPolicy(l)?.code !== 'password_too_common'),
    [],
    'every listed password long enough to pass the length rule is rejected as common',
  )
})

t.test('hashes beyond ARGON2_MAX_CONCURRENT wait their turn, and all of them finish', async (t) => {
  const hasher = createPasswordHasher({ ...FAST, maxConcurrent: 2 })
  const all = Array.from({ length: 6 }, (_, i) => hasher.hash(`password number ${String(i)}`))
  t.same(hasher.load(), { active: 2, waiting: 4 }, 'two run, four queue')
  const hashes = await Promise.all(all)
  t.equal(new Set(hashes).size, 6)
  t.same(hasher.load(), { active: 0, waiting: 0 })
  const checks = await Promise.all(hashes.map((h, i) => hasher.verify(h, `password number ${String(i)}`)))
  t.same(checks, [true, true, true, true, true, true], 'verifies share the same turns')
})
