// The password reset link page in a real Chromium: JavaScript on and off, desktop
// and a 390 px phone, the rules before typing, refused passwords, double-clicks,
// and the new password never in a URL.
import t from 'tap'
import { DESKTOP, launchBrowser, newContext, PHONE, watchedPage, type Watched } from '../helpers/browser.ts'
import { APP_NAME, login, LOGIN_URL, PASSWORD, resetLinkFor, site } from './site.ts'

const browser = await launchBrowser(t)
const h = await site(t, { PASSWORD_MIN_LENGTH: '10' })

let n = 0
const nextEmail = () => `reset-${String(++n)}@example.test`
const NEW_PASSWORD = 'plum orchard lantern 42'

const posts = (w: Watched) => w.requests.filter((r) => r.method === 'POST' && new URL(r.url).pathname === '/reset-password')

async function outcome(w: Watched): Promise<string | null> {
  return (await w.page.locator('[data-outcome]').count()) === 0 ? null : w.page.locator('[data-outcome]').getAttribute('data-outcome')
}

/** No request the browser made carried the password in its URL (query, path or fragment). */
function passwordInUrls(w: Watched, ...passwords: string[]): string[] {
  return w.requests
    .map((r) => r.url)
    .filter((url) => passwords.some((p) => url.includes(p) || url.includes(encodeURIComponent(p)) || url.includes(p.replace(/ /g, '+'))))
}

for (const javaScriptEnabled of [true, false]) {
  for (const [device, options] of [
    ['desktop', DESKTOP],
    ['phone', PHONE],
  ] as const) {
    t.test(`JavaScript ${javaScriptEnabled ? 'on' : 'off'}, ${device}: rules up front, the form resets the password`, async (t) => {
      const email = nextEmail()
      const token = await resetLinkFor(h, email)
      const link = `${h.base}/reset-password?token=${token}`
      t.equal((await fetch(link)).status, 200)
      t.equal((await fetch(link, { method: 'HEAD' })).status, 200)

      const w = await watchedPage(await newContext(t, browser, { ...options, javaScriptEnabled }))
      t.equal((await w.page.goto(link))?.status(), 200)
      t.equal(await h.auditCount('password_reset', email), 0, 'GET, HEAD and loading the page spent nothing')
      t.equal((await login(h, email)).status, 200, 'the old password still works')

      t.equal(await w.page.locator('.brand').textContent(), APP_NAME)
      t.equal(await w.page.locator('footer a').getAttribute('href'), LOGIN_URL)
      const rules = (await w.page.locator('#password-rules').textContent()) ?? ''
      t.match(rules, 'at least 10 characters', 'the minimum from PASSWORD_MIN_LENGTH, before typing')
      t.match(rules, 'at most 128 characters')
      t.match(rules, /not be a common, easy-to-guess password/)
      const input = w.page.getByLabel('New password')
      t.equal(await input.getAttribute('aria-describedby'), 'password-rules', "the rules are the field's description")
      const width = options.viewport?.width ?? 0
      for (const [what, locator] of [
        ['password field', input],
        ['button', w.page.getByRole('button', { name: 'Set new password' })],
      ] as const) {
        const box = await locator.boundingBox()
        t.ok(
          box !== null && box.x >= 0 && box.x + box.width <= width,
          `the ${what} fits the ${String(width)} px viewport (right edge ${String(box === null ? '?' : box.x + box.width)})`,
        )
      }

      await input.fill(NEW_PASSWORD)
      await Promise.all([w.page.waitForURL(`${h.base}/reset-password`), w.page.getByRole('button', { name: 'Set new password' }).click()])
      t.equal(await outcome(w), 'success')
      t.match(await w.page.locator('h1').textContent(), /Password changed/)
      t.match(await w.page.locator('main').textContent(), /Log in with your new password/)
      t.equal(await w.page.getByRole('link', { name: `Log in to ${APP_NAME}` }).getAttribute('href'), LOGIN_URL)
      t.equal(await w.page.locator('form').count(), 0, 'success is final: no form')

      t.equal((await login(h, email, NEW_PASSWORD)).status, 200, 'the new password logs in')
      t.same(await login(h, email, PASSWORD), { status: 401, code: 'invalid_credentials' }, 'the old one does not')
      t.equal(posts(w).length, 1)
      t.ok(posts(w)[0]?.postData?.includes('newPassword='), 'the password went in the POST body')
      t.same(passwordInUrls(w, NEW_PASSWORD), [], 'the password is in no URL the browser requested')
      t.same(w.problems(), [], 'no console error, CSP violation, failed request or dialog')
    })
  }
}

t.test('a refused password: a clear sentence above the form, which still works', async (t) => {
  const email = nextEmail()
  const token = await resetLinkFor(h, email)
  const w = await watchedPage(await newContext(t, browser, PHONE))
  await w.page.goto(`${h.base}/reset-password?token=${token}`)
  const common = 'password123'
  await w.page.getByLabel('New password').fill(common)
  const [res] = await Promise.all([
    w.page.waitForResponse((r) => r.request().method() === 'POST'),
    w.page.getByRole('button', { name: 'Set new password' }).click(),
  ])
  t.equal(res.status(), 400)
  await w.page.waitForURL(`${h.base}/reset-password`)
  t.equal(await outcome(w), null, 'no result page: the form again')
  t.match(await w.page.locator('[data-notice="error"]').textContent(), /too common and easy to guess\. Choose another one\./)
  t.equal(await w.page.getByLabel('New password').inputValue(), '', 'the refused password is not put back into the page')
  t.notMatch(await w.page.content(), common)

  await w.page.getByLabel('New password').fill(NEW_PASSWORD)
  await Promise.all([w.page.waitForURL(`${h.base}/reset-password`), w.page.getByRole('button', { name: 'Set new password' }).click()])
  t.equal(await outcome(w), 'success')
  t.equal((await login(h, email, NEW_PASSWORD)).status, 200)
  t.same(passwordInUrls(w, NEW_PASSWORD, common), [])
  t.same(w.problems(), [])
})

t.test('double-click with JavaScript: one POST, one reset', async (t) => {
  const email = nextEmail()
  const token = await resetLinkFor(h, email)
  const w = await watchedPage(await newContext(t, browser, DESKTOP))
  await w.page.goto(`${h.base}/reset-password?token=${token}`)
  await w.page.getByLabel('New password').fill(NEW_PASSWORD)
  await Promise.all([w.page.waitForURL(`${h.base}/reset-password`), w.page.getByRole('button', { name: 'Set new password' }).dblclick()])
  t.equal(await outcome(w), 'success')
  t.equal(posts(w).length, 1, 'the second click sent nothing')
  t.equal(await h.auditCount('password_reset', email), 1)
  t.same(w.problems(), [])
})

t.test('without JavaScript: double-click and pressing again show success; another password on the used link does not', async (t) => {
  const email = nextEmail()
  const token = await resetLinkFor(h, email)
  const w = await watchedPage(await newContext(t, browser, { ...DESKTOP, javaScriptEnabled: false }))
  await w.page.goto(`${h.base}/reset-password?token=${token}`)
  await w.page.getByLabel('New password').fill(NEW_PASSWORD)
  await w.page.getByRole('button', { name: 'Set new password' }).dblclick()
  await w.page.waitForURL(`${h.base}/reset-password`)
  await w.page.locator('[data-outcome]').waitFor()
  t.equal(await outcome(w), 'success', 'the page shown (the answer to the last POST) is success')

  await w.page.goBack()
  await w.page.getByLabel('New password').fill(NEW_PASSWORD)
  await Promise.all([w.page.waitForURL(`${h.base}/reset-password`), w.page.getByRole('button', { name: 'Set new password' }).click()])
  t.equal(await outcome(w), 'success', 'the same password again on the same link: success')
  t.ok(posts(w).length >= 2, `${String(posts(w).length)} POSTs reached the server`)

  await w.page.goBack()
  const other = 'a different password entirely'
  await w.page.getByLabel('New password').fill(other)
  await Promise.all([w.page.waitForURL(`${h.base}/reset-password`), w.page.getByRole('button', { name: 'Set new password' }).click()])
  t.equal(await outcome(w), 'error', 'another password on the used link: an error')
  t.match(await w.page.locator('h1').textContent(), /This link was already used/)
  t.match(await w.page.locator('main').textContent(), /If you just chose a new password, log in with it\./)

  t.equal(await h.auditCount('password_reset', email), 1, 'one reset')
  t.equal((await login(h, email, NEW_PASSWORD)).status, 200, 'the first password stands')
  t.equal((await login(h, email, other)).status, 401)
  t.same(passwordInUrls(w, NEW_PASSWORD, other), [])
  t.same(w.problems(), [])
})

t.test('a link with markup and quotes in its token is refused with a clear, inert page', async (t) => {
  const hostile = `x" autofocus onfocus="alert(1)" '><script>alert(2)</script>`
  const w = await watchedPage(await newContext(t, browser, { ...PHONE }))
  const res = await w.page.goto(`${h.base}/reset-password?token=${encodeURIComponent(hostile)}`)
  t.equal(res?.status(), 400)
  t.equal(await outcome(w), 'error')
  t.match(await w.page.locator('h1').textContent(), /This link is incomplete/)
  t.equal(await w.page.locator('[onfocus], input').count(), 0, 'no injected element, and no form for a broken link')
  t.equal(await w.page.locator('script').count(), 1)
  t.same(w.problems(), [], 'no dialog, no error')
})
