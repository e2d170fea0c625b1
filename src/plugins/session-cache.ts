// The session cache (src/auth/session-cache.ts) and the LISTEN connection that keeps
// it honest: it caches only while that connection is up, drops a user's entries on
// every notification about them, and starts empty after a reconnect.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { SessionCache } from '../auth/session-cache.ts'
import { Listener } from '../db/listener.ts'
import { EVENTS_CHANNEL } from '../events/publisher.ts'

declare module 'fastify' {
  interface FastifyInstance {
    sessionCache: SessionCache
  }
}

export interface SessionCachePluginOptions {
  ttlMs: number
  maxUsers: number
  /** Session connection for LISTEN (the service's URL). */
  listenUrl: string
  listenSsl: boolean
}

async function sessionCachePlugin(app: FastifyInstance, opts: SessionCachePluginOptions): Promise<void> {
  const cache = new SessionCache({ ttlMs: opts.ttlMs, maxUsers: opts.maxUsers })
  app.decorate('sessionCache', cache)
  if (opts.ttlMs === 0) return
  const listener = new Listener(
    {
      url: opts.listenUrl,
      ssl: opts.listenSsl,
      channel: EVENTS_CHANNEL,
      name: 'session_cache',
      gap: 'every authenticated call asks the database meanwhile',
      unavailable: 'every authenticated call asks the database',
      log: app.log,
      retry: { minMs: 100, maxMs: 5000 },
    },
    {
      onNotify: (userId) => cache.changed(userId),
      onLost: () => cache.disable(),
      onRestored: () => cache.enable(),
    },
  )
  app.addHook('onReady', async () => {
    if ((await listener.start()) && listener.listening) cache.enable()
  })
  app.addHook('onClose', async () => {
    cache.disable()
    await listener.close()
  })
}

export default fp(sessionCachePlugin, { name: 'session-cache', fastify: '5.x', dependencies: ['db'] })
