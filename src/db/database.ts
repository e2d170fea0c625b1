// Where the service's database comes from: the embedded server (no DATABASE_URL)
// or the configured one. Bootstrap and migrations run here at start when asked to.
import type { Config } from '../config.ts'
import { bootstrap } from './bootstrap.ts'
import { withDatabase } from './admin-connection.ts'
import { PortInUseError, startEmbedded, type EmbeddedCluster } from './embedded.ts'
import { migrate } from './migrate.ts'
import path from 'node:path'

export interface PreparedDatabase {
  /** auth_api_user connection for the pool. */
  url: string
  /** Admin connection to the service database, when one is known. */
  adminUrl: string | undefined
  embedded: EmbeddedCluster | undefined
}

export function serviceUrl(adminUrl: string, database: string, password: string): string {
  const u = new URL(withDatabase(adminUrl, database))
  u.username = 'auth_api_user'
  u.password = password
  return u.toString()
}

/**
 * The embedded cluster of this checkout (DATA_DIR/postgres), started if needed.
 * `npm start` and `npm run db` both come here, so they find the same cluster on
 * the same port.
 */
export async function startCheckoutCluster(config: Config, log: (line: string) => void): Promise<EmbeddedCluster> {
  try {
    return await startEmbedded({ dataDir: path.join(config.dataDir, 'postgres'), port: config.database.embeddedPort, log })
  } catch (err) {
    if (err instanceof PortInUseError) {
      throw new Error(
        `EMBEDDED_PG_PORT=${err.port}, but ${err.message}: stop the program listening there, set another port, ` +
          'or unset EMBEDDED_PG_PORT to let the embedded server pick a free one',
        { cause: err },
      )
    }
    throw err
  }
}

export async function prepareDatabase(config: Config, log: (line: string) => void): Promise<PreparedDatabase> {
  const { name, rolePasswords, runMigrations: migrateNow } = config.database
  if (config.database.embedded) {
    const cluster = await startCheckoutCluster(config, log)
    await bootstrap({ adminUrl: cluster.adminUrl, database: name, passwords: rolePasswords, log })
    const adminUrl = withDatabase(cluster.adminUrl, name)
    if (migrateNow) await runMigrations(adminUrl, log)
    return { url: serviceUrl(cluster.adminUrl, name, rolePasswords.authApi), adminUrl, embedded: cluster }
  }
  const { url, adminUrl } = config.database
  if (migrateNow) {
    if (adminUrl === undefined) log('RUN_MIGRATIONS is on but DATABASE_ADMIN_URL is unset: skipping migrations')
    else await runMigrations(adminUrl, log)
  }
  return { url: url as string, adminUrl, embedded: undefined }
}

async function runMigrations(adminUrl: string, log: (line: string) => void): Promise<void> {
  const ran = await migrate({ adminUrl })
  log(ran.length === 0 ? 'migrations: up to date' : `migrations applied: ${ran.map((m) => m.name).join(', ')}`)
}
