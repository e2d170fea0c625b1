// The two providers behind one interface, both through openid-client (panva's
// certified OpenID Connect relying party, also a plain OAuth 2.0 client): it does the
// PKCE S256 exchange, checks `state` and the `iss` response parameter, and validates
// Google's id_token (signature against the discovered JWKS, iss, aud, exp, nonce).
// Google is OpenID Connect, found by discovery from its issuer URL; GitHub is plain
// OAuth 2.0 with fixed endpoints and its REST API for the identity. Every URL comes
// from the settings, so tests point the same code at local authorization servers.
import * as client from 'openid-client'
import type { OAuthSettings } from '../../config.ts'
import type { OAuthProvider } from '../../db/procedures.ts'
import type { FlowSecrets } from './binding.ts'

/** Who the provider says signed in. */
export interface ProviderIdentity {
  /** The provider's stable id of the account (Google `sub`, GitHub numeric `id`). */
  providerUserId: string
  /** Lower-cased; null when the provider asserted none. */
  email: string | null
  /** Whether the provider asserts the address verified (Google `email_verified`, GitHub `verified`). */
  emailVerified: boolean
}

export interface ProviderClient {
  readonly name: OAuthProvider
  /** The provider's authorization URL for this flow (state, S256 challenge, nonce where OIDC). */
  authorizationUrl(secrets: FlowSecrets, redirectUri: string): Promise<URL>
  /** Redeem the callback (its full public URL with the query) for the identity; throws on any failed check. */
  identity(callbackUrl: URL, secrets: FlowSecrets): Promise<ProviderIdentity>
}

/** A provider answered something the flow refuses; `reason` is for the log, never for the client. */
export class ProviderError extends Error {
  override name = 'ProviderError'
}

interface ClientOptions {
  /** Plain http endpoints: local authorization servers outside production. */
  allowInsecure: boolean
  timeoutMs: number
}

function prepare(config: client.Configuration, options: ClientOptions): client.Configuration {
  // Deprecated only as a warning sign: it is for local servers, and config.ts refuses http URLs in production.
  // eslint-disable-next-line @typescript-eslint/no-deprecated
  if (options.allowInsecure) client.allowInsecureRequests(config)
  config.timeout = Math.ceil(options.timeoutMs / 1000)
  return config
}

/**
 * Google: discovered once from the issuer and kept; a failed discovery is retried at
 * the next sign-in instead of failing the start of the service.
 */
export function googleClient(settings: NonNullable<OAuthSettings['google']>, options: ClientOptions): ProviderClient {
  let discovered: Promise<client.Configuration> | undefined
  const configuration = (): Promise<client.Configuration> => {
    discovered ??= client
      .discovery(new URL(settings.issuer), settings.clientId, settings.clientSecret, undefined, {
        // eslint-disable-next-line @typescript-eslint/no-deprecated -- see prepare()
        execute: options.allowInsecure ? [client.allowInsecureRequests] : [],
        timeout: Math.ceil(options.timeoutMs / 1000),
      })
      .then((config) => prepare(config, options))
      .catch((err: unknown) => {
        discovered = undefined
        throw err
      })
    return discovered
  }
  return {
    name: 'google',
    async authorizationUrl(secrets, redirectUri) {
      return client.buildAuthorizationUrl(await configuration(), {
        redirect_uri: redirectUri,
        scope: 'openid email',
        state: secrets.state,
        nonce: secrets.nonce,
        code_challenge: await client.calculatePKCECodeChallenge(secrets.codeVerifier),
        code_challenge_method: 'S256',
      })
    },
    async identity(callbackUrl, secrets) {
      const tokens = await client.authorizationCodeGrant(await configuration(), callbackUrl, {
        pkceCodeVerifier: secrets.codeVerifier,
        expectedState: secrets.state,
        expectedNonce: secrets.nonce,
        idTokenExpected: true,
      })
      const claims = tokens.claims()
      if (claims === undefined) throw new ProviderError('no id_token')
      const email = typeof claims.email === 'string' ? claims.email : null
      return { providerUserId: claims.sub, email: email?.trim().toLowerCase() ?? null, emailVerified: claims.email_verified === true }
    },
  }
}

interface GitHubEmail {
  email: string
  primary: boolean
  verified: boolean
}

/** GitHub: OAuth 2.0 without id_token; the identity is GET /user and its primary address from GET /user/emails. */
export function githubClient(settings: NonNullable<OAuthSettings['github']>, options: ClientOptions): ProviderClient {
  const config = prepare(
    new client.Configuration(
      // GitHub publishes no metadata; this is what its documentation states.
      { issuer: 'https://github.com', authorization_endpoint: settings.authorizationUrl, token_endpoint: settings.tokenUrl },
      settings.clientId,
      settings.clientSecret,
    ),
    options,
  )
  const api = settings.apiUrl.replace(/\/+$/, '')
  const get = async <T>(path: string, accessToken: string): Promise<T> => {
    const response = await fetch(`${api}${path}`, {
      headers: {
        accept: 'application/vnd.github+json',
        authorization: `Bearer ${accessToken}`,
        'user-agent': 'activity-auth',
        'x-github-api-version': '2022-11-28',
      },
      signal: AbortSignal.timeout(options.timeoutMs),
    })
    if (!response.ok) throw new ProviderError(`GitHub ${path} answered ${String(response.status)}`)
    return (await response.json()) as T
  }
  return {
    name: 'github',
    async authorizationUrl(secrets, redirectUri) {
      return client.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope: 'read:user user:email',
        state: secrets.state,
        code_challenge: await client.calculatePKCECodeChallenge(secrets.codeVerifier),
        code_challenge_method: 'S256',
        // Always ask: a browser already signed in to GitHub must not be linked silently to whoever started the flow.
        prompt: 'select_account',
      })
    },
    async identity(callbackUrl, secrets) {
      const tokens = await client.authorizationCodeGrant(config, callbackUrl, {
        pkceCodeVerifier: secrets.codeVerifier,
        expectedState: secrets.state,
      })
      const user = await get<{ id?: unknown }>('/user', tokens.access_token)
      if (typeof user.id !== 'number' && typeof user.id !== 'string') throw new ProviderError('GitHub /user has no id')
      const emails = await get<GitHubEmail[]>('/user/emails', tokens.access_token)
      const primary = Array.isArray(emails) ? emails.find((e) => e.primary) : undefined
      return {
        providerUserId: String(user.id),
        email: typeof primary?.email === 'string' ? primary.email.trim().toLowerCase() : null,
        emailVerified: primary?.verified === true,
      }
    },
  }
}

/** The configured providers; an unconfigured one is simply absent. */
export function providerClients(settings: OAuthSettings, options: ClientOptions): Map<OAuthProvider, ProviderClient> {
  const clients = new Map<OAuthProvider, ProviderClient>()
  if (settings.google !== undefined) clients.set('google', googleClient(settings.google, options))
  if (settings.github !== undefined) clients.set('github', githubClient(settings.github, options))
  return clients
}
