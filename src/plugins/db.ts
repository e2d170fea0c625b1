// The database plugin: one pool for the app, ended when the app closes.
import fp from 'fastify-plugin'
import type pg from 'pg'
import type { PoolSettings } from '../config.ts'
import { createPool } from '../db/pool.ts'

declare module 'fastify' {
  interface FastifyInstance {
    db: pg.Pool
  }
}

export interface DbPluginOptions {
  pool: PoolSettings
  connectionString: string
}

export default fp<DbPluginOptions>(
  async (app, opts) => {
    const pool = createPool(opts.pool, opts.connectionString)
    app.decorate('db', pool)
    app.addHook('onClose', async () => {
      await pool.end()
    })
  },
  { name: 'db' },
)
