// The verification link page in a real Chromium: JavaScript on and off, desktop
// and a 390 px phone, prefetch safety, double-clicks, hostile links.
import t from 'tap'
import { DESKTOP, launchBrowser, newContext, PHONE, watchedPage, type Watched } from '../helpers/browser.ts'
import { APP_NAME, login, LOGIN_URL, signup, site } from './site.ts'

const browser = await launchBrowser(t)
const h = await site(t)

let n = 0
const nextEmail = () => `verify-${String(++n)}@example.test`

const posts = (w: Watched) => w.requests.filter((r) => r.method === 'POST' && new URL(r.url).pathname === '/verify-email')

async function outcome(w: Watched): Promise<string | null> {
  return w.page.locator('[data-outcome]').first().getAttribute('data-outcome')
}

for (const javaScriptEnabled of [true, false]) {
  for (const [device, options] of [
    ['desktop', DESKTOP],
    ['phone', PHONE],
  ] as const) {
    t.test(`JavaScript ${javaScriptEnabled ? 'on' : 'off'}, ${device}: opening changes nothing, the button confirms`, async (t) => {
      const email = nextEmail()
      const token = await signup(h, email)
      const link = `${h.base}/verify-email?token=${token}`

      // What a mail scanner does: GET and HEAD the link.
      t.equal((await fetch(link)).status, 200)
      t.equal((await fetch(link, { method: 'HEAD' })).status, 200)
      t.same(await login(h, email), { status: 403, code: 'email_not_verified' }, 'a GET and a HEAD of the link verify nothing')

      const context = await newContext(t, browser, { ...options, javaScriptEnabled })
      const w = await watchedPage(context)
      const opened = await w.page.goto(link)
      t.equal(opened?.status(), 200)
      t.same(await login(h, email), { status: 403, code: 'email_not_verified' }, 'loading the page in a browser verifies nothing')

      t.equal(await w.page.locator('.brand').textContent(), APP_NAME, 'the product name is shown')
      t.match(await w.page.title(), APP_NAME)
      t.equal(await w.page.locator('footer a').getAttribute('href'), LOGIN_URL, 'a way back to the app: LOGIN_URL')
      const button = w.page.getByRole('button', { name: 'Confirm my email address' })
      const box = await button.boundingBox()
      const width = options.viewport?.width ?? 0
      t.ok(box !== null && box.x >= 0 && box.x + box.width <= width, `the button fits the ${String(width)} px viewport`)

      await Promise.all([w.page.waitForURL(`${h.base}/verify-email`), button.click()])
      t.equal(await outcome(w), 'success', 'the success page')
      t.match(await w.page.locator('h1').textContent(), /Email address confirmed/)
      t.equal(await w.page.locator('[data-outcome] .icon').textContent(), '✓', 'success has its own icon, not only a colour')
      t.match(await w.page.locator('main').textContent(), `You can now log in to ${APP_NAME}`)
      t.equal(await w.page.getByRole('link', { name: `Log in to ${APP_NAME}` }).getAttribute('href'), LOGIN_URL)
      t.equal(await w.page.locator('form').count(), 0, 'success is final: no form on the result page')
      t.equal((await login(h, email)).status, 200, 'the account is verified')
      t.equal(await h.auditCount('email_verified', email), 1, 'the token was spent once')
      t.equal(posts(w).length, 1, 'one POST')
      t.same(w.problems(), [], 'no console error, CSP violation, failed request or dialog')
    })
  }
}

t.test('double-click with JavaScript: one POST, one success, the token spent once', async (t) => {
  const email = nextEmail()
  const token = await signup(h, email)
  const w = await watchedPage(await newContext(t, browser, DESKTOP))
  await w.page.goto(`${h.base}/verify-email?token=${token}`)
  await Promise.all([w.page.waitForURL(`${h.base}/verify-email`), w.page.getByRole('button').dblclick()])
  t.equal(await outcome(w), 'success')
  t.equal(posts(w).length, 1, 'the second click sent nothing')
  t.equal(await h.auditCount('email_verified', email), 1)
  t.same(w.problems(), [])
})

t.test('without JavaScript a double-click and a second press after going back both end on the success page', async (t) => {
  const email = nextEmail()
  const token = await signup(h, email)
  const w = await watchedPage(await newContext(t, browser, { ...DESKTOP, javaScriptEnabled: false }))
  await w.page.goto(`${h.base}/verify-email?token=${token}`)
  await w.page.getByRole('button').dblclick()
  await w.page.waitForURL(`${h.base}/verify-email`)
  await w.page.locator('[data-outcome]').waitFor()
  t.equal(await outcome(w), 'success', 'the page shown (the answer to the last POST) is success')

  // The form sent again: the answer is success, not "already used".
  await w.page.goBack()
  t.equal(await w.page.locator('form').count(), 1, 'back on the form')
  await Promise.all([w.page.waitForURL(`${h.base}/verify-email`), w.page.getByRole('button').click()])
  t.equal(await outcome(w), 'success', 'a repeated press of a completed confirmation is success')
  t.ok(posts(w).length >= 2, `${String(posts(w).length)} POSTs reached the server`)
  t.equal(await h.auditCount('email_verified', email), 1, 'the token was spent once')
  t.equal((await login(h, email)).status, 200)
  t.same(w.problems(), [])
})

t.test('a link with markup and quotes in its token is refused with a clear, inert page', async (t) => {
  const hostile = `"'><script>alert(1)</script><img src=x onerror=alert(2)>`
  const w = await watchedPage(await newContext(t, browser, DESKTOP))
  const res = await w.page.goto(`${h.base}/verify-email?token=${encodeURIComponent(hostile)}`)
  t.equal(res?.status(), 400)
  t.equal(await outcome(w), 'error')
  t.match(await w.page.locator('h1').textContent(), /This link is incomplete/)
  t.equal(await w.page.locator('img').count(), 0, 'no injected element')
  t.equal(await w.page.locator('script').count(), 1, 'one script')
  t.equal(await w.page.locator('script').getAttribute('src'), '/assets/auth-pages.js', "the page's own file")
  t.notMatch(await w.page.content(), '<script>alert', 'the token is not in the page')
  // The dialog handler would have recorded an alert().
  t.same(w.problems(), [])
})

t.test('a link without its token says it is incomplete, with a next step', async (t) => {
  const w = await watchedPage(await newContext(t, browser, PHONE))
  const res = await w.page.goto(`${h.base}/verify-email`)
  t.equal(res?.status(), 400)
  t.match(res?.headers()['content-type'], /^text\/html/)
  t.equal(await outcome(w), 'error')
  t.match(await w.page.locator('main').textContent(), /Open the link from the email again/)
  t.equal(await w.page.locator('[data-outcome] .icon').textContent(), '!', 'an error has its own icon, not only a colour')
  t.match(await w.page.locator('h1').textContent(), /^!Problem: This link is incomplete$/, 'and its heading says so')
  t.equal(await w.page.getByRole('link', { name: `Go to ${APP_NAME}` }).getAttribute('href'), LOGIN_URL)
  t.same(w.problems(), [])
})
