// The tiny pages the mail links open. Opening one changes nothing: the token is
// only spent when the person presses the button, so mail scanners that prefetch
// links cannot burn it. The script is a same-origin file (CSP 'self', no inline).
import type { FastifyInstance } from 'fastify'

const page = (title: string, body: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${title}</title><script src="/assets/auth-pages.js" defer></script>
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}
input,button{font:inherit;padding:.5rem;margin:.25rem 0;width:100%}</style></head>
<body><h1>${title}</h1>${body}<p id="result" role="status"></p></body></html>`

const VERIFY = page(
  'Confirm your email address',
  `<form id="verify-form"><button type="submit">Confirm my address</button></form>`,
)

const RESET = page(
  'Choose a new password',
  `<form id="reset-form"><label>New password <input type="password" name="newPassword" minlength="8" maxlength="128" autocomplete="new-password" required></label>
<button type="submit">Set password</button></form>`,
)

const SCRIPT = `'use strict';
(function () {
  var token = new URLSearchParams(location.search).get('token') || '';
  var result = document.getElementById('result');
  function send(path, body) {
    return fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
      .then(function (res) {
        if (res.ok) { result.textContent = 'Done. You can close this page and log in.'; return; }
        return res.json().then(function (p) { result.textContent = p.detail || 'Something went wrong.'; });
      })
      .catch(function () { result.textContent = 'Network error, try again.'; });
  }
  var verify = document.getElementById('verify-form');
  if (verify) verify.addEventListener('submit', function (e) { e.preventDefault(); send('/api/auth/verify-email', { token: token }); });
  var reset = document.getElementById('reset-form');
  if (reset) reset.addEventListener('submit', function (e) {
    e.preventDefault();
    send('/api/auth/reset-password', { token: token, newPassword: reset.elements.newPassword.value });
  });
})();
`

export default async function pageRoutes(app: FastifyInstance): Promise<void> {
  const html = { schema: { hide: true } }
  app.get('/verify-email', html, async (_request, reply) => reply.type('text/html; charset=utf-8').send(VERIFY))
  app.get('/reset-password', html, async (_request, reply) => reply.type('text/html; charset=utf-8').send(RESET))
  app.get('/assets/auth-pages.js', html, async (_request, reply) =>
    reply.type('text/javascript; charset=utf-8').header('cache-control', 'public, max-age=3600').send(SCRIPT),
  )
}
