// buildApp(config): the whole HTTP application, in three layers — external
// plugins, app plugins, routes. server.ts and the tests build it the same way.
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Config } from './config.ts'
import dbPlugin from './plugins/db.ts'
import healthRoutes from './routes/health/index.ts'

export interface AppOptions {
  /** auth_api_user connection string. */
  databaseUrl: string
}

/** Constructor options shared by the server and the tests. */
export function serverOptions(config: Config): FastifyServerOptions {
  return {
    logger: config.LOG_LEVEL === 'silent' ? false : { level: config.LOG_LEVEL },
    trustProxy: false,
  }
}

export async function buildApp(config: Config, options: AppOptions): Promise<FastifyInstance> {
  const app = Fastify(serverOptions(config))
  // app layer
  await app.register(dbPlugin, { config, connectionString: options.databaseUrl })
  // routes
  await app.register(healthRoutes)
  return app
}
