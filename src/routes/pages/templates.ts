// The link pages' markup. Every value goes through `html` (escaped); the only
// files loaded are same-origin (/assets/...), as the pages' CSP requires.
// A result page (success or error) has no form: success is final, and a form left
// on it could only send the used token again.
import { html, type Html } from './html.ts'
import { successNotice, type LinkKind, type Notice, type PasswordRules } from './messages.ts'

export interface PageContext {
  /** APP_NAME. */
  appName: string
  /** Where "back to the app" goes: LOGIN_URL, else APP_URL. */
  backUrl: string
  rules: PasswordRules
}

export const SCRIPT_PATH = '/assets/auth-pages.js'
export const STYLES_PATH = '/assets/auth-pages.css'

function layout(ctx: PageContext, title: string, main: Html): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex,nofollow">
<title>${title} · ${ctx.appName}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${STYLES_PATH}">
<script src="${SCRIPT_PATH}" defer></script>
</head>
<body>
<a class="brand" href="${ctx.backUrl}">${ctx.appName}</a>
<main>
${main}
</main>
<footer><a href="${ctx.backUrl}">Back to ${ctx.appName}</a></footer>
</body>
</html>
`.text
}

function notice(kind: 'success' | 'error', n: Notice, heading: 'h1' | 'h2', action?: Html): Html {
  // Not colour alone: an icon of its own shape and a word for screen readers, then the heading.
  const icon = kind === 'success' ? '✓' : '!'
  const label = kind === 'success' ? 'Done:' : 'Problem:'
  const title = html`<span class="icon" aria-hidden="true">${icon}</span><span><span class="visually-hidden">${label} </span>${n.title}</span>`
  // data-outcome marks a result page (the tests read it); a notice above a form is data-notice.
  const marker = heading === 'h1' ? html`data-outcome="${kind}"` : html`data-notice="${kind}"`
  return html`<section class="notice notice-${kind}" role="${kind === 'success' ? 'status' : 'alert'}" ${marker}>
${heading === 'h1' ? html`<h1>${title}</h1>` : html`<h2>${title}</h2>`}
${n.lines.map((line) => html`<p>${line}</p>`)}
</section>
${action}`
}

export function verifyFormPage(ctx: PageContext, token: string): string {
  return layout(
    ctx,
    'Confirm your email address',
    html`<h1>Confirm your email address</h1>
<p>Press the button to confirm that this email address belongs to your ${ctx.appName} account.</p>
<form method="post" action="/verify-email" data-send-once>
<input type="hidden" name="token" value="${token}">
<button type="submit" data-sending-label="Confirming…">Confirm my email address</button>
</form>`,
  )
}

export function emailChangeFormPage(ctx: PageContext, token: string): string {
  return layout(
    ctx,
    'Confirm your new email address',
    html`<h1>Confirm your new email address</h1>
<p>Press the button to move your ${ctx.appName} account to this email address. Every device that is logged in will be logged out.</p>
<form method="post" action="/confirm-email-change" data-send-once>
<input type="hidden" name="token" value="${token}">
<button type="submit" data-sending-label="Confirming…">Confirm my new email address</button>
</form>`,
  )
}

function rulesList(rules: PasswordRules): Html {
  return html`<div class="rules" id="password-rules">
<p>Your new password must:</p>
<ul>
<li>be at least ${rules.minLength} characters long</li>
<li>be at most ${rules.maxLength} characters long</li>
<li>not be a common, easy-to-guess password${rules.breachCheck ? ' or one that has appeared in a data breach' : ''}</li>
</ul>
<p class="hint">Spaces are allowed: a few unrelated words make a good password.</p>
</div>`
}

/** The reset form; `problem` is the sentence of a refused attempt, shown above it. */
export function resetFormPage(ctx: PageContext, token: string, problem?: string): string {
  // minlength only: the browser counts UTF-16 units and the server code points, so a
  // maxlength here could refuse a valid password of emoji; the server says so instead.
  return layout(
    ctx,
    'Choose a new password',
    html`<h1>Choose a new password</h1>
${problem === undefined ? '' : notice('error', { title: 'Password not changed', lines: [problem] }, 'h2')}
<p>Choose a new password for your ${ctx.appName} account. Afterwards every device that is logged in will be logged out.</p>
${rulesList(ctx.rules)}
<form method="post" action="/reset-password" data-send-once>
<input type="hidden" name="token" value="${token}">
<label for="new-password">New password</label>
<input id="new-password" type="password" name="newPassword" minlength="${ctx.rules.minLength}" autocomplete="new-password" required aria-describedby="password-rules">
<button type="submit" data-sending-label="Saving…">Set new password</button>
</form>`,
  )
}

export function successPage(ctx: PageContext, kind: LinkKind): string {
  const n = successNotice(kind, ctx.appName)
  return layout(ctx, n.title, notice('success', n, 'h1', html`<a class="button" href="${ctx.backUrl}">Log in to ${ctx.appName}</a>`))
}

export function errorPage(ctx: PageContext, n: Notice): string {
  return layout(ctx, n.title, notice('error', n, 'h1', html`<a class="button" href="${ctx.backUrl}">Go to ${ctx.appName}</a>`))
}
