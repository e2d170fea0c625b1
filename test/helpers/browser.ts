// A real headless Chromium (Debian's `chromium`, driven by playwright-core) for the
// link-page tests: one browser per test file, a fresh context per case, closed in
// teardown. `watch(page)` records what a test must be able to assert on: console
// errors (Chromium reports CSP violations there), uncaught page errors, failed
// requests, every request made, and dialogs (an injected script's alert()).
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core'
import type { Test } from 'tap'

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/** A non-localhost name mapped to 127.0.0.1 in every browser: plain http under it is not "potentially trustworthy". */
export const BOX_HOST = 'box.test'

/** 390 × 844: a current phone in portrait. */
export const PHONE: BrowserContextOptions = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 }
export const DESKTOP: BrowserContextOptions = { viewport: { width: 1280, height: 800 } }

export async function launchBrowser(t: Pick<Test, 'teardown'>): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    // Root (CI, containers) needs --no-sandbox.
    args: ['--no-sandbox', `--host-resolver-rules=MAP ${BOX_HOST} 127.0.0.1`],
  })
  t.teardown(() => browser.close())
  return browser
}

/** A fresh context (no cookies, no cache) closed at the end of the test. */
export async function newContext(
  t: Pick<Test, 'teardown'>,
  browser: Browser,
  options: BrowserContextOptions = {},
): Promise<BrowserContext> {
  const context = await browser.newContext(options)
  t.teardown(() => context.close())
  return context
}

export interface RequestSeen {
  method: string
  url: string
  postData: string | null
}

export interface Watched {
  page: Page
  /** console messages of type error (CSP violations among them). */
  consoleErrors: string[]
  /** Uncaught exceptions in the page. */
  pageErrors: string[]
  /** Requests that got no answer (blocked, refused, upgraded to an https nobody serves). */
  failed: string[]
  requests: RequestSeen[]
  /** Messages of alert/confirm/prompt dialogs (each is dismissed). */
  dialogs: string[]
  /** Everything that went wrong, for one t.same(..., []) per case. */
  problems(): string[]
}

export async function watchedPage(context: BrowserContext): Promise<Watched> {
  const page = await context.newPage()
  const w: Watched = {
    page,
    consoleErrors: [],
    pageErrors: [],
    failed: [],
    requests: [],
    dialogs: [],
    problems: () => [
      ...w.consoleErrors.map((m) => `console: ${m}`),
      ...w.pageErrors.map((m) => `page error: ${m}`),
      ...w.failed.map((m) => `failed: ${m}`),
      ...w.dialogs.map((m) => `dialog: ${m}`),
    ],
  }
  // An error page is a document answered 4xx on purpose; Chromium logs that as a
  // console error ("Failed to load resource"). Only that line, for that document, is expected.
  const errorDocuments = new Set<string>()
  page.on('response', (res) => {
    if (res.request().isNavigationRequest() && res.status() >= 400) errorDocuments.add(res.url())
  })
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return
    const text = msg.text()
    if (text.startsWith('Failed to load resource: the server responded with a status of 4') && errorDocuments.has(msg.location().url))
      return
    w.consoleErrors.push(text)
  })
  page.on('pageerror', (err) => w.pageErrors.push(err.message))
  page.on('requestfailed', (req) => {
    const reason = req.failure()?.errorText ?? 'failed'
    // A navigation replaced by the next one (the second POST of a double-click without
    // JavaScript) is aborted by the browser itself: not a fault of the page.
    if (reason === 'net::ERR_ABORTED' && req.isNavigationRequest() && req.method() === 'POST') return
    w.failed.push(`${req.method()} ${req.url()}: ${reason}`)
  })
  page.on('request', (req) => w.requests.push({ method: req.method(), url: req.url(), postData: req.postData() }))
  page.on('dialog', (dialog) => {
    w.dialogs.push(dialog.message())
    void dialog.dismiss()
  })
  return w
}
