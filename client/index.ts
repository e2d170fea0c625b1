// The typed client of activity-auth for other TypeScript services: openapi-fetch
// over the types openapi-typescript generated from the service's OpenAPI document
// (schema.d.ts; regenerate with `npm run client:generate`). Every path, method,
// request body and answer is checked by the compiler; nothing here is written by
// hand but these few names. How to use it: docs/integrating.md.
import createClient, { type Client, type ClientOptions } from 'openapi-fetch'
import type { paths } from './schema.d.ts'

export type { components, paths } from './schema.d.ts'

export type AuthClient = Client<paths>

/** openapi-fetch's options (a `fetch` of your own, default `headers`...), except the base URL. */
export type AuthClientOptions = Omit<ClientOptions, 'baseUrl'>

/**
 * A client for the service at `baseUrl` (scheme, host and port, e.g.
 * `https://auth.example.com`; the paths carry their own `/api/auth` prefix).
 * Each call resolves to `{ data }` on a 2xx or `{ error }` (a Problem) otherwise,
 * both with the `response`; it rejects only when no answer came (network, DNS).
 */
export function createAuthClient(baseUrl: string, options: AuthClientOptions = {}): AuthClient {
  return createClient<paths>({ ...options, baseUrl })
}

/** The `Authorization` header of a call to a Bearer-protected operation. */
export const bearer = (accessToken: string): { authorization: string } => ({ authorization: `Bearer ${accessToken}` })

// The body types, named after the operations that answer them. They are read
// from the paths, not from components.schemas, so they stay right whether or not
// the document names a schema as a component.
type Body<Response> = Response extends { content: infer Content } ? Content[keyof Content] : never

/** What `POST /api/auth/refresh` answers: a new access token and the next refresh token. */
export type TokenPair = Body<paths['/api/auth/refresh']['post']['responses'][200]>
/** What `POST /api/auth/login` (and `POST /api/auth/oauth/exchange`) answers: a session, or the two-factor challenge. */
export type LoginAnswer = Body<paths['/api/auth/login']['post']['responses'][200]>
/** A new session: a TokenPair plus the device token to send at the next login (a login, or `POST /api/auth/mfa/verify`). */
export type LoginResult = Body<paths['/api/auth/mfa/verify']['post']['responses'][200]>
/** The login's answer when the account has two-factor sign-in on: send `mfaToken` and a code to `POST /api/auth/mfa/verify`. */
export type MfaChallenge = Extract<LoginAnswer, { mfaRequired: true }>

/** Whether a login's answer is the two-factor challenge rather than a session. */
export function isMfaChallenge(answer: LoginAnswer): answer is MfaChallenge {
  return 'mfaRequired' in answer
}
/** What `GET /api/auth/me` answers. */
export type Me = Body<paths['/api/auth/me']['get']['responses'][200]>
/** One entry of `GET /api/auth/sessions`. */
export type Session = Body<paths['/api/auth/sessions']['get']['responses'][200]>[number]
/** The public keys of `GET /.well-known/jwks.json`. */
export type Jwks = Body<paths['/.well-known/jwks.json']['get']['responses'][200]>
/**
 * Every error answer (RFC 9457 application/problem+json). Branch on `code`, which
 * is stable; `detail` is prose for people and may change.
 */
export type Problem = Body<paths['/api/auth/login']['post']['responses'][401]>
