// The browser binding of a provider sign-in. The start sets a random value in an
// HttpOnly cookie; the state row stores only its hash, and the PKCE verifier and the
// OIDC nonce are derived from it and the state. So the callback works only in the
// browser that started the flow (a state sent to someone else is useless), and the
// database holds nothing that completes a flow (no verifier, no nonce).
import { createHmac, randomBytes } from 'node:crypto'
import { hashToken, isWellFormedToken, newEmailToken } from '../tokens.ts'

export const BINDING_COOKIE = 'oauth_binding'

export interface FlowSecrets {
  /** Sent to the provider as `state`; stored as its hash. */
  state: string
  /** RFC 7636 code_verifier: 43 base64url characters. */
  codeVerifier: string
  nonce: string
}

/** A new binding value, or the browser's own when it already has a well-formed one (parallel tabs keep working). */
export function bindingFor(existing: string | undefined): { binding: string; hash: string; isNew: boolean } {
  if (existing !== undefined && isWellFormedToken(existing)) return { binding: existing, hash: hashToken(existing), isNew: false }
  const fresh = newEmailToken()
  return { binding: fresh.token, hash: fresh.hash, isNew: true }
}

function derive(binding: string, state: string, purpose: string): string {
  return createHmac('sha256', binding).update(`${purpose}:${state}`).digest('base64url')
}

/** The verifier and nonce of a state under a binding: the same at the start and at the callback. */
export function flowSecrets(binding: string, state: string): FlowSecrets {
  return { state, codeVerifier: derive(binding, state, 'pkce'), nonce: derive(binding, state, 'nonce') }
}

export function newState(): string {
  return randomBytes(32).toString('base64url')
}
