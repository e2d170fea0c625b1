// Removal of what has outlived its use: dead refresh-token families, used or
// expired email links, stale login counters, audit rows past retention and
// unverified accounts past the retention. One procedure call does it all under an
// advisory lock, so the CLI and every instance's timer may start it at once; the
// outbox's events (sp_cleanup_events) follow, by the caller that won the lock only.
import type { Queryable, CleanupItem } from '../db/procedures.ts'
import { cleanupEvents, runCleanup } from '../db/procedures.ts'

export interface CleanupOptions {
  /** Unverified accounts older than this many hours are deleted. */
  retentionHours: number
  auditRetentionDays: number
  /** Outbox events older than this are removed; unpublished ones too only where no publisher runs. */
  eventsRetention?: { hours: number; unpublishedToo: boolean }
}

export type CleanupCounts = Record<CleanupItem, number> & { events?: number }

/** The counts per item, or `undefined` when another caller is cleaning right now. */
export async function cleanupOnce(db: Queryable, options: CleanupOptions): Promise<CleanupCounts | undefined> {
  const rows = await runCleanup(db, { unverifiedHours: options.retentionHours, auditRetentionDays: options.auditRetentionDays })
  if (rows === undefined) return undefined
  const counts = Object.fromEntries(rows.map((r) => [r.item, r.deleted])) as CleanupCounts
  const events = options.eventsRetention
  if (events === undefined) return counts
  return { ...counts, events: await cleanupEvents(db, { retentionHours: events.hours, unpublishedToo: events.unpublishedToo }) }
}

export function describeCounts(counts: CleanupCounts): string {
  return Object.entries(counts)
    .map(([item, n]) => `${item} ${n}`)
    .join(', ')
}
