// One-off connections outside the app's pool (bootstrap, migrations, CLI, ops).
import pg from 'pg'

/** The same server and credentials as `url`, pointed at `database`. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url)
  u.pathname = `/${encodeURIComponent(database)}`
  return u.toString()
}

export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url })
  // A dropped connection must surface as the query's error, not crash the process.
  client.on('error', () => undefined)
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end()
  }
}
