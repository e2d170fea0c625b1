// What bench/run.ts prepares once and hands to every section.
import type pg from 'pg'
import type { PasswordHasher } from '../../src/auth/passwords.ts'
import type { Chains, TokenTtl } from './chains.ts'
import type { BenchDatabase, BenchServer } from './database.ts'
import type { Summary } from './load.ts'
import type { Running } from './servers.ts'

export interface Context {
  small: BenchDatabase
  server: BenchServer | undefined
  dataDir: string
  /** The configured argon2id hasher (config loaded once, in bench/run.ts). */
  hasher: PasswordHasher
  /** The configured refresh-token lifetimes, for the sessions chains start. */
  tokenTtl: TokenTtl
  passwordHash: string
  pool: pg.Pool
  chains: Chains
  service: Running
  /** RSS of the bare Fastify process at ready: what the runtime alone costs. */
  bareRssMb?: number
  /** Our medians, reused beside the peer. */
  ours: Partial<Record<'login' | 'refresh' | 'me', Summary>>
}
