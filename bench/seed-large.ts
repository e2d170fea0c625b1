// Large-data generator for the growth rows, on its own:
//   npx tsx bench/seed-large.ts --database-url postgresql://postgres@127.0.0.1:5432/activitydb \
//     [--users 1000000] [--tokens 5000000] [--login-attempts 0] [--email-tokens 0] [--no-vacuum]
// The URL is a superuser connection to a database that is already bootstrapped and
// migrated (`npm run db -- init`). Rows go in with COPY (bench/lib/seed.ts); every
// user's password is BENCH_PASSWORD, hashed once with the configured argon2 parameters.
// `npm run bench` uses the same code for its own databases.
import { parseArgs } from 'node:util'
import { createPasswordHasher } from '../src/auth/passwords.ts'
import { loadConfig } from '../src/config.ts'
import { BENCH_PASSWORD, seed } from './lib/seed.ts'

const { values } = parseArgs({
  options: {
    'database-url': { type: 'string' },
    users: { type: 'string', default: '1000000' },
    tokens: { type: 'string', default: '5000000' },
    'login-attempts': { type: 'string', default: '0' },
    'email-tokens': { type: 'string', default: '0' },
    'no-vacuum': { type: 'boolean', default: false },
  },
})

const url = values['database-url'] ?? process.env.BENCH_SEED_URL
if (url === undefined || url === '') {
  console.error('seed-large: --database-url (a superuser URL to a migrated database) is required')
  process.exit(1)
}
const count = (name: string, value: string): number => {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0) {
    console.error(`seed-large: --${name} must be a non-negative integer`)
    process.exit(1)
  }
  return n
}

const config = loadConfig({ ...process.env, NODE_ENV: 'development' })
const hasher = createPasswordHasher(config.argon2)
const result = await seed(url, {
  users: count('users', values.users),
  tokens: count('tokens', values.tokens),
  loginAttempts: count('login-attempts', values['login-attempts']),
  emailTokens: count('email-tokens', values['email-tokens']),
  passwordHash: await hasher.hash(BENCH_PASSWORD),
  vacuum: !values['no-vacuum'],
  log: (line) => console.log(line),
})
console.log(JSON.stringify(result))
