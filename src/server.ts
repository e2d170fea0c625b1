// Entry point only: config → database (embedded or configured; migrate) → app → listen.
// close-with-grace lets in-flight requests finish, then closes the pool and the
// embedded server.
import closeWithGrace from 'close-with-grace'
import { destination } from 'pino'
import { buildApp } from './app.ts'
import { ConfigError, loadConfig } from './config.ts'
import { prepareDatabase } from './db/database.ts'

async function main(): Promise<void> {
  const config = loadConfig()
  const startedAt = performance.now()
  const db = await prepareDatabase(config, (line) => console.log(line))
  // Log lines go to stdout asynchronously: pino's default destination makes one write(2)
  // per line on the event loop, about a tenth of an authenticated call's CPU (issue 18);
  // asynchronous, the lines written while one write is in flight leave together in the
  // next. pino flushes what is left when the process exits.
  const logStream = destination({ dest: 1, sync: false })
  const app = await buildApp(config, { databaseUrl: db.url, logStream })

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
