// The link pages' own Content-Security-Policy, replacing helmet's default on
// their routes. Helmet's carries `upgrade-insecure-requests`: served over plain
// http under any name but localhost (APP_URL=http://box:8000, a compose host, a
// staging box), the browser would then fetch the script, the stylesheet and the
// form POST over https and fail. The upgrade is only right when the pages
// themselves are served over https, so it follows APP_URL.
// Everything else stays strict: same-origin files only (the script and the
// stylesheet are files, so no inline code and no hashes to keep in step; data:
// images only for the empty icon that spares the browser a /favicon.ico), forms
// post only to this origin, and no page may frame these.

export function pagesContentSecurityPolicy(appUrl: string): string {
  const directives = [
    "default-src 'self'",
    "script-src 'self'",
    "script-src-attr 'none'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ]
  if (isHttps(appUrl)) directives.push('upgrade-insecure-requests')
  return directives.join('; ')
}

/**
 * Helmet's headers the pages drop when they are not served over https: a browser
 * ignores Cross-Origin-Opener-Policy on an origin that is not potentially
 * trustworthy and says so as a console error on every page.
 */
export function pagesDroppedHeaders(appUrl: string): string[] {
  return isHttps(appUrl) ? [] : ['cross-origin-opener-policy']
}

function isHttps(url: string): boolean {
  try {
    return new URL(url).protocol === 'https:'
  } catch {
    return false
  }
}
