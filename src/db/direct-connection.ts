// Migrations and the CLI need a session: SET ROLE must still hold on the next
// statement, node-pg-migrate's advisory lock must be held by the connection that
// migrates. Through a transaction pooler (PgBouncer in transaction or statement
// mode) every statement may run on another server connection, so they must be
// given a direct connection (or a session-mode pooler). This probe tells them apart.
//
// Two client connections, A and B. A runs a statement (backend pid a1) and, being
// outside a transaction, leaves its server connection free for a transaction pooler
// to hand to someone else. B then opens a transaction and reads its backend pid
// (b1), pinning that server connection; A reads its pid again (a2). Directly (or
// through a session pooler) each client owns its backend: a1 = a2 and b1 ≠ a1.
// Through a transaction pooler B is given the idle server connection A just
// released (PgBouncer reuses the most recent one first, and with one idle
// connection there is no other), so b1 = a1 — or, should B get another, A lands
// elsewhere (a2 ≠ a1) as soon as its server is busy. Statement mode refuses B's
// BEGIN outright. Either sign is a pooler.
import pg from 'pg'

export class PooledConnectionError extends Error {
  override name = 'PooledConnectionError'
}

function message(variable: string, why: string): string {
  return (
    `${variable} must be a direct connection to PostgreSQL (migrations and the CLI need a session: SET ROLE, advisory lock), ` +
    `but it goes through a transaction pooler such as PgBouncer in transaction mode (${why}): point it at the PostgreSQL server itself`
  )
}

async function open(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: 'activity-auth-session-check' })
  client.on('error', () => undefined)
  await client.connect()
  return client
}

const pid = async (c: pg.Client): Promise<number> => (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid ?? -1

/**
 * Throws PooledConnectionError (one line naming `variable`) when statements on `url`
 * do not stay on one server session. Costs one extra connection and five round trips.
 */
export async function assertDirectConnection(url: string, variable = 'DATABASE_ADMIN_URL'): Promise<void> {
  const a = await open(url)
  let b: pg.Client | undefined
  try {
    b = await open(url)
    const a1 = await pid(a)
    try {
      await b.query('BEGIN')
    } catch (err) {
      // PgBouncer in statement mode: "transaction blocks not allowed in statement pooling mode".
      if (/statement pool/i.test((err as Error).message)) throw new PooledConnectionError(message(variable, 'statement pooling'))
      throw err
    }
    const b1 = await pid(b)
    const a2 = await pid(a)
    await b.query('COMMIT')
    if (b1 === a1) throw new PooledConnectionError(message(variable, `two clients shared backend ${String(a1)}`))
    if (a2 !== a1) throw new PooledConnectionError(message(variable, `one client moved from backend ${String(a1)} to ${String(a2)}`))
  } finally {
    await Promise.all([a.end().catch(() => undefined), b?.end().catch(() => undefined)])
  }
}
