// Recovery codes: ten single-use codes shown once at enrolment, `xxxx-xxxx-xxxx` from
// a base32 alphabet (60 random bits each, no 0/1/8/9 to misread). Typing is forgiving:
// case, dashes and spaces do not matter. Only the SHA-256 of the normalised code is stored.
import { createHash, randomInt } from 'node:crypto'

export const RECOVERY_CODE_COUNT = 10
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567'
const GROUPS = 3
const GROUP_LENGTH = 4

function newCode(): string {
  const groups: string[] = []
  for (let g = 0; g < GROUPS; g++) {
    let group = ''
    for (let i = 0; i < GROUP_LENGTH; i++) group += ALPHABET.charAt(randomInt(ALPHABET.length))
    groups.push(group)
  }
  return groups.join('-')
}

/** What a presented code is compared as: lower case, without dashes or white space. */
export function normaliseRecoveryCode(code: string): string {
  return code.toLowerCase().replace(/[\s-]+/g, '')
}

/** A normalised code that could be one of ours: a wrong shape never reaches the database. */
export function isWellFormedRecoveryCode(code: string): boolean {
  return new RegExp(`^[${ALPHABET}]{${String(GROUPS * GROUP_LENGTH)}}$`).test(normaliseRecoveryCode(code))
}

export function hashRecoveryCode(code: string): string {
  return createHash('sha256').update(normaliseRecoveryCode(code)).digest('hex')
}

/** A fresh set: the codes to show once, and the hashes to store. */
export function newRecoveryCodes(): { codes: string[]; hashes: string[] } {
  const codes = new Set<string>()
  while (codes.size < RECOVERY_CODE_COUNT) codes.add(newCode())
  const list = [...codes]
  return { codes: list, hashes: list.map(hashRecoveryCode) }
}
