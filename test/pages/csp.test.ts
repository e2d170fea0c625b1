// The link pages' Content-Security-Policy. Served over plain http under a name
// other than localhost (APP_URL=http://box.test:PORT, mapped to 127.0.0.1 in the
// browser), helmet's upgrade-insecure-requests would send the script and the
// stylesheet to https and break the page; the pages' own policy has no upgrade
// unless APP_URL is https, and stays strict otherwise.
import t from 'tap'
import { BOX_HOST, DESKTOP, launchBrowser, newContext, watchedPage } from '../helpers/browser.ts'
import { build } from '../helpers/app.ts'
import { pagesContentSecurityPolicy } from '../../src/routes/pages/csp.ts'
import { signup, site } from './site.ts'

const directives = (header: string | undefined) =>
  new Map(
    (header ?? '')
      .split(';')
      .map((d) => d.trim())
      .filter((d) => d !== '')
      .map((d) => [d.split(/\s+/)[0] ?? '', d]),
  )

t.test('plain http on a non-localhost name: no upgrade, the script and the stylesheet load and work', async (t) => {
  const browser = await launchBrowser(t)
  const h = await site(t, {}, BOX_HOST)
  t.match(h.base, /^http:\/\/box\.test:\d+$/)
  const email = 'box@example.test'
  const token = await signup(h, email)
  const w = await watchedPage(await newContext(t, browser, DESKTOP))
  const assets: Record<string, number> = {}
  w.page.on('response', (res) => {
    if (res.url().includes('/assets/')) assets[res.url()] = res.status()
  })

  const res = await w.page.goto(`${h.base}/verify-email?token=${token}`)
  const csp = directives(res?.headers()['content-security-policy'])
  t.notOk(csp.has('upgrade-insecure-requests'), 'no upgrade for an http APP_URL')
  t.equal(res?.headers()['cross-origin-opener-policy'], undefined, 'no COOP either: ignored (with a console error) on a plain-http origin')
  t.same(assets, { [`${h.base}/assets/auth-pages.css`]: 200, [`${h.base}/assets/auth-pages.js`]: 200 }, 'both files came over plain http')
  // A string: the test is compiled without the DOM library.
  const background = await w.page.evaluate<string>('getComputedStyle(document.querySelector("button")).backgroundColor')
  t.equal(background, 'rgb(36, 87, 197)', 'the stylesheet applies')

  // The script works: a double-click sends one POST (without it, the browser sends two).
  await Promise.all([w.page.waitForURL(`${h.base}/verify-email`), w.page.getByRole('button').dblclick()])
  t.equal(w.requests.filter((r) => r.method === 'POST').length, 1, 'the script ran')
  t.equal(await w.page.locator('[data-outcome]').getAttribute('data-outcome'), 'success')
  t.same(w.problems(), [], 'no CSP violation, no failed request')
})

t.test('the policy: strict, no inline code, the upgrade only for an https APP_URL, only on the pages', async (t) => {
  const plain = directives(pagesContentSecurityPolicy('http://box.test:8000'))
  t.equal(plain.get('default-src'), "default-src 'self'")
  t.equal(plain.get('script-src'), "script-src 'self'")
  t.equal(plain.get('style-src'), "style-src 'self'")
  t.equal(plain.get('form-action'), "form-action 'self'")
  t.equal(plain.get('frame-ancestors'), "frame-ancestors 'none'")
  t.equal(plain.get('object-src'), "object-src 'none'")
  t.notMatch([...plain.values()].join(';'), /unsafe-inline|unsafe-eval|https:/, 'nothing inline, no other origin')
  t.notOk(plain.has('upgrade-insecure-requests'))
  t.ok(directives(pagesContentSecurityPolicy('https://auth.example.com')).has('upgrade-insecure-requests'), 'https: upgrade')

  const h = await build(t, { APP_URL: 'https://auth.example.test' })
  for (const url of ['/verify-email?token=x', '/reset-password', '/assets/auth-pages.js']) {
    const res = await h.app.inject({ method: 'GET', url })
    const csp = directives(res.headers['content-security-policy'])
    t.ok(
      csp.has('upgrade-insecure-requests') && csp.get('frame-ancestors') === "frame-ancestors 'none'",
      `${url}: the pages' policy, with upgrade`,
    )
    t.equal(res.headers['cross-origin-opener-policy'], 'same-origin', `${url}: helmet's COOP kept over https`)
  }
  const api = await build(t, { APP_URL: 'http://box.test:8000' })
  const page = await api.app.inject({ method: 'GET', url: '/reset-password' })
  t.notOk(directives(page.headers['content-security-policy']).has('upgrade-insecure-requests'), 'http: the page has no upgrade')
  const health = await api.app.inject({ method: 'GET', url: '/api/health' })
  t.notOk(health.headers['content-security-policy'], 'the API answers (JSON) carry no document policy')
  t.equal(health.headers['x-content-type-options'], 'nosniff')
  t.notOk(health.headers['cross-origin-opener-policy'], "and no helmet headers (they are the pages' and the docs')")
})
