// The session cache's rules, one by one, on a controlled clock: what it keeps, what it
// never keeps, and what drops entries (docs/security.md, "Session cache").
import t from 'tap'
import { SessionCache } from '../../src/auth/session-cache.ts'

function cache(ttlMs = 1000, maxUsers = 100) {
  let now = 1_000_000
  const c = new SessionCache({ ttlMs, maxUsers, now: () => now })
  c.enable()
  let asked = 0
  const live =
    (answer = true) =>
    async () => {
      asked++
      return answer
    }
  return { c, live, asked: () => asked, tick: (ms: number) => (now += ms) }
}

t.test('a live session is asked once, then served until its TTL', async (t) => {
  const { c, live, asked, tick } = cache()
  t.equal(await c.isLive('u1', 's1', live()), true)
  t.equal(await c.isLive('u1', 's1', live()), true)
  t.equal(asked(), 1, 'the second call came from memory')
  tick(1001)
  await c.isLive('u1', 's1', live())
  t.equal(asked(), 2, 'past the TTL it asks again')
})

t.test('a session that is not live is never kept', async (t) => {
  const { c, live, asked } = cache()
  t.equal(await c.isLive('u1', 's1', live(false)), false)
  t.equal(await c.isLive('u1', 's1', live(false)), false)
  t.equal(asked(), 2)
})

t.test("changed(user) drops that user's sessions and account, no one else's; changed() drops everything", async (t) => {
  const { c, live, asked } = cache()
  await c.isLive('u1', 's1', live())
  await c.isLive('u2', 's2', live())
  await c.account('u1', async () => ({ email: 'a' }))
  c.changed('u1')
  await c.isLive('u1', 's1', live())
  await c.isLive('u2', 's2', live())
  t.equal(asked(), 3, 'u1 asked again, u2 from memory')
  let loads = 0
  await c.account('u1', async () => ({ email: String(++loads) }))
  t.equal(loads, 1, 'the account was dropped too')
  c.changed()
  await c.isLive('u2', 's2', live())
  t.equal(asked(), 4, 'everything dropped')
})

t.test('an answer read before an invalidation is not stored (a check that raced a revocation)', async (t) => {
  const { c, asked } = cache()
  let release: (live: boolean) => void = () => undefined
  let calls = 0
  const slow = () => {
    calls++
    return new Promise<boolean>((resolve) => (release = resolve))
  }
  const pending = c.isLive('u1', 's1', slow)
  c.changed('u1') // the revocation commits (and is announced) while the check is in flight
  release(true) // the check saw the session live, from a snapshot before the revocation
  t.equal(await pending, true, 'that one call answers what it read')
  const next = c.isLive('u1', 's1', async () => {
    calls++
    return false
  })
  t.equal(await next, false, 'the next call asks again and sees the revocation')
  t.equal(calls, 2)
  t.equal(asked(), 0)
})

t.test('disabled (no LISTEN connection): nothing is kept; enabling starts empty', async (t) => {
  const { c, live, asked } = cache()
  await c.isLive('u1', 's1', live())
  c.disable()
  t.equal(c.active, false)
  await c.isLive('u1', 's1', live())
  await c.isLive('u1', 's1', live())
  t.equal(asked(), 3, 'every call asked')
  c.enable()
  await c.isLive('u1', 's1', live())
  t.equal(asked(), 4, 'enabled again, empty')
  t.equal(new SessionCache({ ttlMs: 0, maxUsers: 1 }).active, false, 'ttl 0 is off even when enabled')
})

t.test('bounded: the oldest users go first', async (t) => {
  const { c, live, asked } = cache(1000, 2)
  await c.isLive('u1', 's', live())
  await c.isLive('u2', 's', live())
  await c.isLive('u3', 's', live())
  t.equal(c.size, 2)
  await c.isLive('u3', 's', live())
  await c.isLive('u1', 's', live())
  t.equal(asked(), 4, 'u3 from memory, u1 evicted and asked again')
})
