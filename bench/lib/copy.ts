// COPY ... FROM STDIN through pg-copy-streams: the rows stream to the server
// with back-pressure, so a million-row load never sits in memory.
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type pg from 'pg'
import { from as copyFromStdin } from 'pg-copy-streams'

/** Streams text-format rows (tab-separated, \N for null, newline-terminated) into `COPY <target> FROM STDIN`. */
export async function copyFrom(client: pg.ClientBase, target: string, rows: AsyncIterable<string>): Promise<number> {
  const sink = client.query(copyFromStdin(`COPY ${target} FROM STDIN`))
  await pipeline(Readable.from(rows), sink)
  return sink.rowCount
}

/** Batches rows produced one at a time into chunks of about 256 KiB. */
export async function* chunked(rows: Iterable<string>): AsyncGenerator<string> {
  let parts: string[] = []
  let size = 0
  for (const row of rows) {
    parts.push(row)
    size += row.length
    if (size >= 262_144) {
      yield parts.join('')
      parts = []
      size = 0
    }
  }
  if (parts.length > 0) yield parts.join('')
}
