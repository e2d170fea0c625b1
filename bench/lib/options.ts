// The bench's options: command-line flags, the profile's defaults, BENCH_* overrides.
// Read once, when this module is first imported (bench/run.ts lists them all).
import { parseArgs } from 'node:util'
import { projectPath } from '../../src/paths.ts'
import type { Plan } from './load.ts'

export const SECTIONS = ['http', 'pair', 'login', 'growth', 'rss', 'startup', 'peer', 'enum', 'revoke'] as const
export type Section = (typeof SECTIONS)[number]

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    only: { type: 'string' },
    json: { type: 'string' },
  },
})

const envNumber = (name: string, fallback: number): number => {
  const raw = process.env[name]
  const n = raw === undefined || raw === '' ? NaN : Number(raw)
  return Number.isFinite(n) && n >= 0 ? n : fallback
}

const profile = flags.smoke ? 'smoke' : flags.quick ? 'quick' : 'full'
const defaults = {
  full: {
    seconds: 10,
    repeats: 3,
    warmup: 3,
    users: 10_000,
    largeUsers: 1_000_000,
    largeTokens: 5_000_000,
    rss: 60,
    laterStarts: 3,
    enumPairs: 200,
    enumWarmup: 20,
    revocations: 200,
  },
  quick: {
    seconds: 3,
    repeats: 1,
    warmup: 1,
    users: 10_000,
    largeUsers: 100_000,
    largeTokens: 500_000,
    rss: 10,
    laterStarts: 1,
    enumPairs: 100,
    enumWarmup: 10,
    revocations: 50,
  },
  smoke: {
    seconds: 1,
    repeats: 1,
    warmup: 0,
    users: 300,
    largeUsers: 0,
    largeTokens: 0,
    rss: 1,
    laterStarts: 0,
    enumPairs: 5,
    enumWarmup: 1,
    revocations: 3,
  },
}[profile]

export const options = {
  profile,
  plan: {
    seconds: Math.max(1, Math.round(envNumber('BENCH_SECONDS', defaults.seconds))),
    repeats: Math.max(1, Math.round(envNumber('BENCH_REPEATS', defaults.repeats))),
    warmupSeconds: Math.round(envNumber('BENCH_WARMUP', defaults.warmup)),
  } satisfies Plan,
  connections: Math.max(1, Math.round(envNumber('BENCH_CONNECTIONS', 50))),
  users: Math.max(100, Math.round(envNumber('BENCH_USERS', defaults.users))),
  largeUsers: Math.round(envNumber('BENCH_LARGE_USERS', defaults.largeUsers)),
  largeTokens: Math.round(envNumber('BENCH_LARGE_TOKENS', defaults.largeTokens)),
  rssSeconds: Math.max(1, Math.round(envNumber('BENCH_RSS_SECONDS', defaults.rss))),
  laterStarts: defaults.laterStarts,
  enumPairs: Math.max(1, Math.round(envNumber('BENCH_ENUM_PAIRS', defaults.enumPairs))),
  enumWarmup: defaults.enumWarmup,
  revocations: Math.max(1, Math.round(envNumber('BENCH_REVOCATIONS', defaults.revocations))),
  sections: selectedSections(),
  jsonPath: flags.json ?? projectPath('bench', 'results', 'latest.json'),
}

function selectedSections(): Set<Section> {
  const only = flags.only ?? process.env.BENCH_ONLY
  if (flags.smoke && (only === undefined || only === '')) return new Set<Section>(['http', 'pair', 'login', 'rss', 'enum', 'revoke'])
  if (only === undefined || only === '') return new Set(SECTIONS)
  const picked = only.split(',').map((s) => s.trim())
  const unknown = picked.filter((s) => !(SECTIONS as readonly string[]).includes(s))
  if (unknown.length > 0) {
    console.error(`bench: unknown section(s) ${unknown.join(', ')}; choose from ${SECTIONS.join(', ')}`)
    process.exit(1)
  }
  return new Set(picked as Section[])
}

export const log = (line: string) => console.error(`# ${line}`)
