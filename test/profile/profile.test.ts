// PATCH /api/auth/me (issue 17): the profile fields, their rules answered with
// stable codes, null clearing a field, and one username per account under a race.
import t from 'tap'
import { bearer, build, json } from '../helpers/app.ts'
import { login, PASSWORD, signedIn, verifiedUser } from './helpers.ts'

interface Me {
  email: string
  username: string | null
  firstName: string | null
  lastName: string | null
  phone: string | null
}

t.test('PATCH /me sets, normalises and clears the profile; GET /me shows it', async (t) => {
  const h = await build(t)
  const { headers } = await signedIn(h, 'profile@example.test')
  const patch = (payload: Record<string, unknown>) => h.app.inject({ method: 'PATCH', url: '/api/auth/me', headers, payload })

  const empty = json<Me>(await h.app.inject({ method: 'GET', url: '/api/auth/me', headers }))
  t.match(empty, { email: 'profile@example.test', username: null, firstName: null, lastName: null, phone: null })

  const set = await patch({ username: 'Ann.Lee_1', firstName: '  Zoë ', lastName: 'Ångström', phone: '+1 (415) 555-2671' })
  t.equal(set.statusCode, 200)
  t.equal(set.headers['cache-control'], 'no-store')
  t.match(json<Me>(set), {
    email: 'profile@example.test',
    username: 'Ann.Lee_1',
    firstName: 'Zoë',
    lastName: 'Ångström',
    phone: '+14155552671',
  })
  t.same(json<Me>(await h.app.inject({ method: 'GET', url: '/api/auth/me', headers })), json(set), 'GET /me answers the same')

  const cleared = await patch({ phone: null, lastName: null })
  t.equal(cleared.statusCode, 200)
  t.match(json<Me>(cleared), { username: 'Ann.Lee_1', firstName: 'Zoë', lastName: null, phone: null })

  const unknown = await patch({ email: 'other@example.test' })
  t.equal(unknown.statusCode, 400)
  t.equal(json(unknown).code, 'validation_failed', 'unknown fields are refused')
  const unauthenticated = await h.app.inject({ method: 'PATCH', url: '/api/auth/me', payload: { firstName: 'X' } })
  t.equal(unauthenticated.statusCode, 401)
})

t.test('each broken rule is a 400 with its own code, and changes nothing', async (t) => {
  const h = await build(t)
  const { headers } = await signedIn(h, 'rules@example.test')
  const cases: [Record<string, unknown>, string][] = [
    [{ username: 'ab' }, 'invalid_username'],
    [{ username: 'has space' }, 'invalid_username'],
    [{ username: 'x'.repeat(33) }, 'invalid_username'],
    [{ username: 'Admin' }, 'username_reserved'],
    [{ username: 'support' }, 'username_reserved'],
    [{ phone: '555-2671' }, 'invalid_phone'],
    [{ phone: '+1 415 555 267' }, 'invalid_phone'],
    [{ phone: '+999 1234 5678' }, 'invalid_phone'],
    [{ firstName: 'Ä'.repeat(101) }, 'invalid_name'],
    [{ lastName: `${'b'.repeat(101)}   ` }, 'invalid_name'],
    [{ username: 'valid_name', phone: 'call me' }, 'invalid_phone'],
  ]
  for (const [payload, code] of cases) {
    const res = await h.app.inject({ method: 'PATCH', url: '/api/auth/me', headers, payload })
    t.equal(res.statusCode, 400, JSON.stringify(payload))
    t.equal(json(res).code, code, `${JSON.stringify(payload).slice(0, 60)}: ${code}`)
  }
  const me = json<Me>(await h.app.inject({ method: 'GET', url: '/api/auth/me', headers }))
  t.match(me, { username: null, firstName: null, lastName: null, phone: null }, 'nothing was written')
  const longest = await h.app.inject({ method: 'PATCH', url: '/api/auth/me', headers, payload: { firstName: ` ${'Ä'.repeat(100)} ` } })
  t.equal(longest.statusCode, 200, '100 characters after trimming are fine')
})

t.test('twenty users race for one username: one wins, the others get username_taken', async (t) => {
  const h = await build(t)
  const users = await Promise.all(Array.from({ length: 20 }, (_, i) => signedIn(h, `racer${String(i)}@example.test`)))
  const answers = await Promise.all(
    users.map(({ headers }, i) =>
      h.app.inject({ method: 'PATCH', url: '/api/auth/me', headers, payload: { username: i % 2 === 0 ? 'TheName' : 'thename' } }),
    ),
  )
  t.equal(answers.filter((r) => r.statusCode === 200).length, 1, 'exactly one 200')
  const refused = answers.filter((r) => r.statusCode === 409)
  t.equal(refused.length, 19, 'nineteen 409')
  t.same([...new Set(refused.map((r) => json(r).code))], ['username_taken'])

  const winner = answers.findIndex((r) => r.statusCode === 200)
  const loser = users[(winner + 1) % users.length]
  const again = await h.app.inject({ method: 'PATCH', url: '/api/auth/me', headers: loser?.headers, payload: { username: 'THENAME' } })
  t.equal(again.statusCode, 409, 'any letter case is the same name')
})

t.test('the new username signs in; a cleared one does not', async (t) => {
  const h = await build(t)
  await verifiedUser(h, 'named@example.test')
  const session = await login(h, { email: 'named@example.test', password: PASSWORD })
  const headers = bearer(session.accessToken)
  await h.app.inject({ method: 'PATCH', url: '/api/auth/me', headers, payload: { username: 'named.one' } })
  t.ok((await login(h, { identifier: 'Named.One', password: PASSWORD })).accessToken, 'any letter case')
  await h.app.inject({ method: 'PATCH', url: '/api/auth/me', headers, payload: { username: null } })
  const gone = await h.app.inject({ method: 'POST', url: '/api/auth/login', payload: { identifier: 'named.one', password: PASSWORD } })
  t.equal(gone.statusCode, 401)
})
