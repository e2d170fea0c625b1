// Sign in with Google and GitHub: the flow and the linking rules (docs/security.md,
// "Sign in with a provider"). Routes parse and answer; this decides, always through
// src/db/procedures.ts. The rules that matter:
// - a state works once, for the provider it was made for, in the browser that started
//   it (binding.ts), within OAUTH_STATE_TTL_SECONDS; every instance sees it (database);
// - an identity already linked signs in as its user; an existing account with the same
//   address is linked automatically only when the provider asserts the address verified
//   AND our account's address is verified; otherwise nothing is linked and the app is told
//   `account_exists_link_required` (log in, then link from the account);
// - a new account is created only for a provider-verified address, and is verified;
// - tokens never travel in a URL: the callback hands the app a one-time code in the
//   fragment, which POST /oauth/exchange turns into the token pair.
import type { FastifyBaseLogger } from 'fastify'
import type { OAuthSettings } from '../../config.ts'
import * as sp from '../../db/procedures.ts'
import { badRequest, forbidden, HttpProblem, notFound } from '../../http/problem.ts'
import type { MfaChallengeAnswer, SecondFactorProof } from '../mfa/service.ts'
import type { Ctx, SecondFactor, TokenPair } from '../service.ts'
import { hashToken, isWellFormedToken, newEmailToken } from '../tokens.ts'
import { bindingFor, flowSecrets, newState } from './binding.ts'
import type { ProviderClient, ProviderIdentity } from './providers.ts'
import { isAllowedRedirect, withFragment } from './redirects.ts'

/** How recent the session of a passwordless account must be to link another provider. */
export const LINK_FRESH_SECONDS = 600

export interface OAuthServiceDeps {
  db: sp.Queryable
  clients: ReadonlyMap<sp.OAuthProvider, ProviderClient>
  settings: OAuthSettings
  /** The password and session parts of the AuthService. */
  accounts: {
    startSession(userId: string, ctx: Ctx, amr: readonly string[]): Promise<TokenPair>
    /** Throws the login's problems (401, 429) when the password is wrong. */
    confirmPassword(userId: string, password: string, ctx: Ctx): Promise<void>
    /** The user's links changed (GET /me shows them): the session cache forgets the account. */
    changed(userId?: string): void
  }
  log: FastifyBaseLogger
  /** Two-factor sign-in: a provider sign-in of a user with it on gets the same challenge as a login. */
  secondFactor?: SecondFactor
}

/** Where the start sends the browser, and the binding cookie to set. */
export interface FlowStart {
  authorizationUrl: string
  binding: string
}

/** The problem code the app reads from the fragment's `error`, by outcome. */
const FRAGMENT_ERRORS = {
  denied: 'oauth_denied',
  failed: 'oauth_failed',
  expired: 'oauth_state_expired',
  emailMissing: 'oauth_email_missing',
  emailUnverified: 'oauth_email_unverified',
  linkRequired: 'account_exists_link_required',
  inactive: 'account_disabled',
  identityTaken: 'oauth_identity_taken',
  providerInUse: 'oauth_provider_in_use',
  accountUnverified: 'email_not_verified',
} as const

const invalidState = () => badRequest('invalid_oauth_state', 'this sign-in link is invalid or was already used; start again')
const invalidCode = () => badRequest('invalid_oauth_code', 'the sign-in code is invalid, expired or already used')

export class OAuthService {
  constructor(private readonly deps: OAuthServiceDeps) {}

  /** The configured providers, for GET /me and the document. */
  get providers(): sp.OAuthProvider[] {
    return [...this.deps.clients.keys()]
  }

  private client(provider: string): ProviderClient {
    const found = this.deps.clients.get(provider as sp.OAuthProvider)
    if (found === undefined) throw notFound('provider_not_configured', `sign-in with ${provider} is not configured`)
    return found
  }

  private callbackUrl(provider: sp.OAuthProvider): string {
    return `${this.deps.settings.publicUrl}/api/auth/oauth/${provider}/callback`
  }

  private redirectTarget(redirect: string | undefined): string {
    const target = redirect ?? this.deps.settings.defaultRedirect
    if (!isAllowedRedirect(target, this.deps.settings.redirectUrls)) {
      throw badRequest('invalid_redirect', 'redirect is not an allowed address of the app')
    }
    return target
  }

  /** A sign-in: GET /oauth/{provider}/start. */
  async start(provider: string, redirect: string | undefined, cookie: string | undefined, ctx: Ctx): Promise<FlowStart> {
    return this.begin(this.client(provider), this.redirectTarget(redirect), null, cookie, ctx)
  }

  /**
   * Linking from a signed-in session: POST /oauth/{provider}/link. A stolen access token
   * must not be enough to attach the thief's provider account, so the caller proves the
   * password again, or (an account without one) signed in within LINK_FRESH_SECONDS.
   */
  async startLink(
    who: { userId: string; sessionId: string },
    provider: string,
    body: { password?: string | undefined; redirect?: string | undefined },
    cookie: string | undefined,
    ctx: Ctx,
  ): Promise<FlowStart> {
    const providerClient = this.client(provider)
    const target = this.redirectTarget(body.redirect)
    const user = await sp.getUserById(this.deps.db, { userId: who.userId })
    if (user?.isActive !== true) throw new HttpProblem(401, 'invalid_token', 'session ended')
    if (user.hashedPassword !== null) {
      if (body.password === undefined) throw badRequest('password_required', 'confirm your password to link an account')
      await this.deps.accounts.confirmPassword(who.userId, body.password, ctx)
    } else {
      const sessions = await sp.listUserSessions(this.deps.db, { userId: who.userId })
      const current = sessions.find((s) => s.familyId === who.sessionId)
      if (current === undefined || Date.now() - current.createdAt.getTime() > LINK_FRESH_SECONDS * 1000) {
        throw forbidden('reauthentication_required', 'sign in again, then link the account within a few minutes')
      }
    }
    return this.begin(providerClient, target, who.userId, cookie, ctx)
  }

  private async begin(
    providerClient: ProviderClient,
    redirectTo: string,
    linkUserId: string | null,
    cookie: string | undefined,
    ctx: Ctx,
  ): Promise<FlowStart> {
    const binding = bindingFor(cookie)
    const state = newState()
    const secrets = flowSecrets(binding.binding, state)
    const authorizationUrl = await providerClient.authorizationUrl(secrets, this.callbackUrl(providerClient.name))
    await sp.createOAuthState(this.deps.db, {
      stateHash: hashToken(state),
      bindingHash: binding.hash,
      provider: providerClient.name,
      redirectTo,
      linkUserId,
      ttlSeconds: this.deps.settings.stateTtlSeconds,
      ctx,
    })
    return { authorizationUrl: authorizationUrl.toString(), binding: binding.binding }
  }

  /**
   * The provider sent the browser back: GET /oauth/{provider}/callback. Returns where to
   * send it (the app, with `code`, `linked` or `error` in the fragment). A state that is
   * not this browser's live one is answered 400 (there is no trusted place to go).
   */
  async callback(provider: string, query: string, cookie: string | undefined, ctx: Ctx): Promise<string> {
    const providerClient = this.client(provider)
    const params = new URLSearchParams(query)
    const state = params.get('state') ?? ''
    if (!isWellFormedToken(state)) throw invalidState()
    // A missing cookie still consumes the state (a presented state never works twice).
    const bindingHash = cookie !== undefined && isWellFormedToken(cookie) ? hashToken(cookie) : '0'.repeat(64)
    const found = await sp.consumeOAuthState(this.deps.db, { stateHash: hashToken(state), bindingHash, provider: providerClient.name })
    if (found.status === 'invalid' || found.status === 'mismatch' || found.redirectTo === null || cookie === undefined) {
      this.deps.log.warn({ event: 'oauth_state_refused', provider, status: found.status, requestId: ctx.requestId }, 'oauth state refused')
      throw invalidState()
    }
    const back = (values: Record<string, string>) => withFragment(found.redirectTo as string, values)
    if (found.status === 'expired') return back({ error: FRAGMENT_ERRORS.expired })
    if (params.has('error')) {
      return back({ error: params.get('error') === 'access_denied' ? FRAGMENT_ERRORS.denied : FRAGMENT_ERRORS.failed })
    }
    let identity: ProviderIdentity
    try {
      const callbackUrl = new URL(this.callbackUrl(providerClient.name))
      callbackUrl.search = params.toString()
      identity = await providerClient.identity(callbackUrl, flowSecrets(cookie, state))
    } catch (err) {
      // The provider refused the code or verifier, or its id_token failed a check: the
      // reason is for the operator, the app only learns that this sign-in failed.
      this.deps.log.warn({ event: 'oauth_failed', provider, requestId: ctx.requestId, reason: describe(err) }, 'oauth sign-in failed')
      return back({ error: FRAGMENT_ERRORS.failed })
    }
    const outcome =
      found.linkUserId === null
        ? await this.signIn(providerClient.name, identity, ctx)
        : await this.link(found.linkUserId, providerClient.name, identity, ctx)
    return back(outcome)
  }

  private async signIn(provider: sp.OAuthProvider, identity: ProviderIdentity, ctx: Ctx): Promise<Record<string, string>> {
    if (identity.email === null) return { error: FRAGMENT_ERRORS.emailMissing }
    const code = newEmailToken()
    const result = await sp.oauthSignIn(this.deps.db, {
      provider,
      providerUserId: identity.providerUserId,
      email: identity.email,
      emailVerified: identity.emailVerified,
      codeHash: code.hash,
      codeTtlSeconds: this.deps.settings.codeTtlSeconds,
      ctx,
    })
    this.deps.log.info(
      { event: 'oauth_sign_in', provider, status: result.status, userId: result.userId, requestId: ctx.requestId },
      'oauth sign-in',
    )
    if (result.userId !== null) this.deps.accounts.changed(result.userId)
    switch (result.status) {
      case 'signed_in':
      case 'linked':
      case 'created':
        return { code: code.token }
      case 'link_required':
        // An unverified provider address gets the same answer whether or not an account
        // has it: the refusal must not tell such an address's accounts apart.
        return { error: identity.emailVerified ? FRAGMENT_ERRORS.linkRequired : FRAGMENT_ERRORS.emailUnverified }
      case 'unverified_email':
        return { error: FRAGMENT_ERRORS.emailUnverified }
      case 'inactive':
        return { error: FRAGMENT_ERRORS.inactive }
    }
  }

  private async link(userId: string, provider: sp.OAuthProvider, identity: ProviderIdentity, ctx: Ctx): Promise<Record<string, string>> {
    const status = await sp.linkOAuthProvider(this.deps.db, {
      userId,
      provider,
      providerUserId: identity.providerUserId,
      email: identity.email,
      emailVerified: identity.emailVerified,
      ctx,
    })
    this.deps.log.info({ event: 'oauth_link', provider, status, userId, requestId: ctx.requestId }, 'oauth link')
    this.deps.accounts.changed(userId)
    switch (status) {
      case 'linked':
      case 'already_linked':
        return { linked: provider }
      case 'identity_taken':
        return { error: FRAGMENT_ERRORS.identityTaken }
      case 'provider_in_use':
        return { error: FRAGMENT_ERRORS.providerInUse }
      case 'unverified_account':
        return { error: FRAGMENT_ERRORS.accountUnverified }
    }
  }

  /**
   * POST /oauth/exchange: the one-time code of the callback for a new session, or (the
   * user has two-factor on) for the challenge POST /mfa/verify completes.
   */
  async exchange(code: string, ctx: Ctx): Promise<TokenPair | MfaChallengeAnswer> {
    if (!isWellFormedToken(code)) throw invalidCode()
    const redeemed = await sp.consumeOAuthCode(this.deps.db, { codeHash: hashToken(code), ctx })
    if (redeemed === undefined) throw invalidCode()
    const challenge = await this.deps.secondFactor?.challenge(redeemed.userId, 'fed', null, ctx)
    return challenge ?? this.deps.accounts.startSession(redeemed.userId, ctx, ['fed'])
  }

  /** DELETE /oauth/{provider}: never the last way in; a fresh second factor when two-factor is on. */
  async unlink(userId: string, provider: string, proof: SecondFactorProof, ctx: Ctx): Promise<void> {
    if (!(sp.OAUTH_PROVIDERS as readonly string[]).includes(provider)) throw notFound('provider_not_linked', 'no such provider is linked')
    await this.deps.secondFactor?.requireFresh(userId, proof, ctx)
    const status = await sp.unlinkOAuthProvider(this.deps.db, { userId, provider: provider as sp.OAuthProvider, ctx })
    this.deps.accounts.changed(userId)
    if (status === 'not_linked') throw notFound('provider_not_linked', 'no such provider is linked')
    if (status === 'last_way_in') {
      throw new HttpProblem(409, 'last_way_in', 'this is the only way into the account: set a password or link another provider first')
    }
  }

  async links(userId: string): Promise<sp.OAuthLinkRow[]> {
    return sp.listOAuthProviders(this.deps.db, { userId })
  }
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  const code = (err as Error & { code?: unknown }).code
  return typeof code === 'string' ? `${code}: ${err.message}` : err.message
}
