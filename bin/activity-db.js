#!/usr/bin/env node
// `activity-db <command>`: the operations CLI (src/cli/db.ts) run through tsx, so
// the TypeScript sources are the only copy of the code.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const cli = fileURLToPath(new URL('../src/cli/db.ts', import.meta.url))
const result = spawnSync(process.execPath, ['--import', 'tsx', cli, ...process.argv.slice(2)], { stdio: 'inherit' })
process.exit(result.status ?? 1)
