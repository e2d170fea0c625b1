// The service's own cleanup timer (CLEANUP_INTERVAL_MINUTES, 0 = off). Every
// instance may run one: the procedure's advisory lock lets one work at a time.
// A failed run is logged and retried at the next tick; close waits for a run in flight.
import fp from 'fastify-plugin'
import { cleanupOnce, describeCounts, type CleanupOptions } from '../ops/cleanup.ts'

export interface CleanupPluginOptions extends CleanupOptions {
  /** 0 = off. */
  intervalMs: number
}

export default fp<CleanupPluginOptions>(
  async (app, opts) => {
    if (opts.intervalMs <= 0) return
    let running: Promise<void> | undefined
    const tick = () => {
      if (running !== undefined) return
      running = cleanupOnce(app.db, opts)
        .then((counts) => {
          if (counts === undefined) app.log.debug('cleanup: another instance is running it')
          else app.log.info({ cleanup: counts }, `cleanup: ${describeCounts(counts)}`)
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
