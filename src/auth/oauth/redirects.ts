// Where a provider sign-in may send the browser back to. The `redirect` a start names
// is checked here against OAUTH_REDIRECT_URLS before anything is stored, so the
// callback can never be turned into an open redirect (docs/security.md).

/**
 * Whether `candidate` is an absolute http(s) URL under one of the allowed prefixes:
 * the same origin (scheme, host, port, compared after URL parsing, so `//evil`,
 * `https://app@evil` and `https://app.evil` do not pass) and a path that starts with
 * the prefix's path. No credentials, no fragment (the callback writes its own).
 */
export function isAllowedRedirect(candidate: string, allowed: readonly string[]): boolean {
  if (!URL.canParse(candidate)) return false
  const url = new URL(candidate)
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return false
  if (url.username !== '' || url.password !== '' || url.hash !== '') return false
  return allowed.some((entry) => {
    const prefix = new URL(entry)
    if (prefix.origin !== url.origin) return false
    const path = prefix.pathname.endsWith('/') ? prefix.pathname : `${prefix.pathname}/`
    return url.pathname === prefix.pathname || url.pathname.startsWith(path)
  })
}

/** The app URL with the callback's answer in the fragment: never sent to a server, so never in a log. */
export function withFragment(redirect: string, values: Record<string, string>): string {
  return `${redirect}#${new URLSearchParams(values).toString()}`
}
