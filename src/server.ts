// Entry point only: config → database (embedded or configured; migrate) → app → listen.
// close-with-grace lets in-flight requests finish, then closes the pool and the
// embedded server.
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.ts'
import { ConfigError, loadConfig } from './config.ts'
import { prepareDatabase } from './db/database.ts'
import { stdoutLog } from './logging.ts'

async function main(): Promise<void> {
  const config = loadConfig()
  const startedAt = performance.now()
  const db = await prepareDatabase(config, (line) => console.log(line))
  const app = await buildApp(config, { databaseUrl: db.url, logStream: stdoutLog() })

  closeWithGrace({ delay: 10_000 }, async ({ err, signal }) => {
    if (err) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down')
    await app.close()
    await db.embedded?.stop()
  })

  await app.listen({ host: config.http.host, port: config.http.port })
  app.log.info({ seconds: ((performance.now() - startedAt) / 1000).toFixed(2) }, 'ready')
}

main().catch((err: unknown) => {
  // Operator mistakes (bad configuration, unreachable database) get one clear line.
  const message = err instanceof ConfigError || err instanceof Error ? err.message : String(err)
  console.error(`activity-auth: ${message}`)
  process.exit(1)
})
