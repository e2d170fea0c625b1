import t from 'tap'
import { VerifiedTokens } from '../../src/auth/verified-tokens.ts'

t.test('a token is answered from memory until its exp, then forgotten', async (t) => {
  let now = 1_000_000
  const cache = new VerifiedTokens<{ sub: string }>({ maxEntries: 10, now: () => now })
  cache.set('a.b.c', { sub: 'u1' }, 1_000_060 / 1000 + 0)
  t.same(cache.get('a.b.c'), { sub: 'u1' })
  t.equal(cache.get('a.b.x'), undefined, 'another text is another token')
  now = 1_000_059
  t.same(cache.get('a.b.c'), { sub: 'u1' }, 'just before exp')
  now = 1_000_060
  t.equal(cache.get('a.b.c'), undefined, 'at exp it is verified again')
  t.equal(cache.size, 0, 'and its entry is gone')
})

t.test('a token already expired is not kept', async (t) => {
  const cache = new VerifiedTokens<object>({ maxEntries: 10, now: () => 5_000 })
  cache.set('old', {}, 5)
  cache.set('older', {}, 4)
  t.equal(cache.size, 0)
})

t.test('bounded: the oldest entry goes first; 0 keeps nothing', async (t) => {
  const cache = new VerifiedTokens<number>({ maxEntries: 3, now: () => 0 })
  for (let i = 0; i < 5; i++) cache.set(`t${i}`, i, 100)
  t.equal(cache.size, 3)
  t.same(
    ['t0', 't1', 't2', 't3', 't4'].map((k) => cache.get(k)),
    [undefined, undefined, 2, 3, 4],
  )
  const none = new VerifiedTokens<number>({ maxEntries: 0 })
  none.set('t', 1, Date.now() / 1000 + 60)
  t.equal(none.get('t'), undefined)
})
