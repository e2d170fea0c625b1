// startup: start to ready of the compiled service (dist/server.js) with the embedded database, the
// first start (initdb, bootstrap, migrations) and later ones.
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { stopEmbedded } from '../../src/db/embedded.ts'
import { median } from '../lib/load.ts'
import { freePort } from '../lib/net.ts'
import { log, options } from '../lib/options.ts'
import { startChild, waitForHttp } from '../lib/proc.ts'
import { reportRow } from '../lib/report.ts'
import { baseEnv, serviceArgs } from '../lib/servers.ts'

export async function startupSection(): Promise<void> {
  log('start to ready: the compiled service (dist/server.js) with the embedded database, first start and later starts')
  const dir = await mkdtemp(path.join(os.tmpdir(), 'activity-auth-bench-start-'))
  // As root the embedded server runs as `postgres`, which must traverse into it.
  await chmod(dir, 0o711)
  const times: number[] = []
  try {
    const env = {
      ...baseEnv(),
      NODE_ENV: 'development',
      LOG_LEVEL: 'warn',
      HOST: '127.0.0.1',
      PORT: String(await freePort()),
      EMBEDDED_PG_PORT: String(await freePort()),
      DATA_DIR: dir,
    }
    for (let i = 0; i <= options.laterStarts; i++) {
      const started = performance.now()
      const child = startChild(serviceArgs(), { env, core: 'all' })
      try {
        await waitForHttp(child, `http://127.0.0.1:${env.PORT}/api/health/ready`, 180_000)
        times.push((performance.now() - started) / 1000)
      } finally {
        await child.stop()
      }
    }
  } finally {
    await stopEmbedded(path.join(dir, 'postgres', 'pgdata')).catch(() => undefined)
    await rm(dir, { recursive: true, force: true })
  }
  reportRow('startup', 'start to ready, first start (embedded db)', times[0] as number, 's', 'initdb + bootstrap + migrations + listen')
  if (times.length > 1) {
    reportRow('startup', 'start to ready, later start', median(times.slice(1)), 's', `median of ${times.length - 1}`)
  }
}
