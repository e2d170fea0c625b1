// A person signs in with each provider in a real browser (headless Chromium): the
// service listening on a port, the local Google-like and GitHub-like servers, and a
// small app page on another origin that reads the fragment and calls the exchange,
// as a single-page app would. Nothing here is injected: cookies, redirects and CORS
// are what Chromium does with them.
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { build } from '../helpers/app.ts'
import { launchBrowser, newContext, watchedPage } from '../helpers/browser.ts'
import { freePort } from '../helpers/net.ts'
import { providerEnv } from '../helpers/oauth-flow.ts'
import { startGitHubLike, startGoogleLike } from '../helpers/oauth-servers.ts'

/** The app's landing page: take the one-time code from the fragment, exchange it, show who signed in. */
const APP_PAGE = `<!doctype html><meta charset="utf-8"><title>app</title><p id="out">working</p>
<script>
const values = new URLSearchParams(location.hash.slice(1))
history.replaceState(null, '', location.pathname)
const out = document.getElementById('out')
if (values.has('error')) out.textContent = 'error:' + values.get('error')
else fetch(API + '/api/auth/oauth/exchange', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code: values.get('code') }) })
  .then((r) => r.json())
  .then((pair) => fetch(API + '/api/auth/me', { headers: { authorization: 'Bearer ' + pair.accessToken } }))
  .then((r) => r.json())
  .then((me) => { out.textContent = 'signed-in:' + me.email + ':' + me.providers.map((p) => p.provider).join(',') })
  .catch((err) => { out.textContent = 'failed:' + err })
</script>`

/** Evaluated in the page: the app page has shown its outcome. */
const DONE = "document.getElementById('out').textContent !== 'working'"

async function appServer(t: Test, api: string): Promise<string> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
    res.end(APP_PAGE.replace('<script>', `<script>const API = ${JSON.stringify(api)};`))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`
}

t.test('sign in with Google, then with GitHub, through the browser-facing routes', async (t) => {
  const google = await startGoogleLike(t)
  const github = await startGitHubLike(t)
  const port = await freePort()
  // The API on localhost, the app on 127.0.0.1: two origins, as an app and its API usually are.
  const api = `http://localhost:${String(port)}`
  const app = await appServer(t, api)
  const h = await build(t, {
    APP_URL: api,
    CORS_ORIGINS: app,
    OAUTH_REDIRECT_URLS: `${app}/`,
    ...providerEnv(google, github),
  })
  await h.app.listen({ port, host: '127.0.0.1' })
  google.state.user = { sub: '9001', email: 'browser@example.com', email_verified: true, name: 'B' }
  github.state.user = { id: 9002, login: 'browser', name: 'B', emails: [{ email: 'browser@example.com', primary: true, verified: true }] }

  const browser = await launchBrowser(t)
  const context = await newContext(t, browser)
  const watched = await watchedPage(context)
  const { page } = watched

  await page.goto(`${api}/api/auth/oauth/google/start?redirect=${encodeURIComponent(`${app}/welcome`)}`)
  await page.waitForFunction(DONE)
  t.equal(await page.textContent('#out'), 'signed-in:browser@example.com:google', 'a new account through Google')
  t.equal(new URL(page.url()).hash, '', 'the app took the code out of the address bar')

  // The same browser, now GitHub with the same verified address: linked automatically (both verified).
  await page.goto(`${api}/api/auth/oauth/github/start?redirect=${encodeURIComponent(`${app}/welcome`)}`)
  await page.waitForFunction(DONE)
  t.equal(await page.textContent('#out'), 'signed-in:browser@example.com:google,github', 'GitHub joins the same account')

  const cookies = await context.cookies()
  const binding = cookies.find((c) => c.name === 'oauth_binding')
  t.ok(binding?.httpOnly, 'the binding cookie is HttpOnly')
  t.equal(binding?.path, '/api/auth/oauth/', 'and sent only to the sign-in routes')
  const urls = watched.requests.map((r) => r.url)
  t.notOk(
    urls.some((u) => /access_token|refresh|eyJ/.test(u)),
    'no token in any requested URL',
  )
  t.same(watched.problems(), [], 'no console errors, failed requests or dialogs')
})
