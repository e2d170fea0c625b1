// The service's own cleanup timer (CLEANUP_INTERVAL_MINUTES, 0 = off). Every
// instance may run one: the procedure's advisory lock lets one work at a time.
// A failed run is logged and retried at the next tick; close waits for a run in flight.
// Events past EVENTS_RETENTION_HOURS go in a call of their own (sp_cleanup_events).
import fp from 'fastify-plugin'
import { cleanupEvents } from '../db/procedures.ts'
import { cleanupOnce, describeCounts, type CleanupOptions } from '../ops/cleanup.ts'

export interface CleanupPluginOptions extends CleanupOptions {
  /** 0 = off. */
  intervalMs: number
  /** Outbox events older than this many hours are removed; unset: not by this timer. */
  eventsRetention?: { hours: number; unpublishedToo: boolean }
}

export default fp<CleanupPluginOptions>(
  async (app, opts) => {
    if (opts.intervalMs <= 0) return
    let running: Promise<void> | undefined
    const tick = () => {
      if (running !== undefined) return
      running = cleanupOnce(app.db, opts)
        .then(async (counts) => {
          if (counts === undefined) return app.log.debug('cleanup: another instance is running it')
          // Only by the instance whose run this tick was, so instances do not delete the same rows at once.
          const all =
            opts.eventsRetention === undefined
              ? counts
              : {
                  ...counts,
                  events: await cleanupEvents(app.db, {
                    retentionHours: opts.eventsRetention.hours,
                    unpublishedToo: opts.eventsRetention.unpublishedToo,
                  }),
                }
          app.log.info({ cleanup: all }, `cleanup: ${describeCounts(all)}`)
        })
        .catch((err: unknown) => app.log.error({ err }, 'cleanup failed'))
        .finally(() => (running = undefined))
    }
    const timer = setInterval(tick, opts.intervalMs)
    timer.unref()
    app.addHook('onClose', async () => {
      clearInterval(timer)
      await running
    })
  },
  { name: 'cleanup', dependencies: ['db'] },
)
