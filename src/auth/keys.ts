// Signing keys for access tokens. One current private key (Ed25519 → EdDSA, or
// P-256 → ES256) from JWT_PRIVATE_KEY, or — in development only — generated once
// and kept under DATA_DIR. Earlier public keys (JWT_PREVIOUS_PUBLIC_KEYS) stay
// published and accepted, so rotating the key logs nobody out.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'

export type JwtAlgorithm = 'EdDSA' | 'ES256'

export interface KeyOptions {
  privateKeyPem?: string | undefined
  previousPublicKeysPem?: string | undefined
  dataDir: string
  production: boolean
}

/** A public key as the JWKS publishes it (src/schemas/keys.ts): OKP (Ed25519) or EC (P-256). */
export interface PublicJwk {
  kty: string
  crv: string
  x: string
  y?: string
  kid: string
  alg: JwtAlgorithm
  use: 'sig'
}

export interface PublicKeyEntry {
  kid: string
  alg: JwtAlgorithm
  pem: string
  jwk: PublicJwk
}

export interface SigningKeys {
  kid: string
  alg: JwtAlgorithm
  privateKeyPem: string
  /** Current key first, then the previous ones. */
  jwks: { keys: PublicJwk[] }
  /** Public key PEM and algorithm for a kid we issued, current or previous. */
  publicKeyFor(kid: string): PublicKeyEntry | undefined
  algorithms: JwtAlgorithm[]
}

function algorithmOf(key: KeyObject): JwtAlgorithm {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA'
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256'
  throw new Error(`unsupported JWT key type ${key.asymmetricKeyType ?? '?'} (use Ed25519 or P-256)`)
}

function publicEntry(key: KeyObject): PublicKeyEntry {
  const alg = algorithmOf(key)
  const { kty, crv, x, y } = key.export({ format: 'jwk' })
  if (kty === undefined || crv === undefined || x === undefined) throw new Error('a public key exported without kty, crv or x')
  // The required members in lexical order: the RFC 7638 thumbprint input, and all the JWK needs.
  const members = kty === 'OKP' || y === undefined ? { crv, kty, x } : { crv, kty, x, y }
  const kid = createHash('sha256').update(JSON.stringify(members)).digest('base64url')
  return { kid, alg, pem: key.export({ format: 'pem', type: 'spki' }).toString(), jwk: { ...members, kid, alg, use: 'sig' } }
}

function splitPems(text: string | undefined): string[] {
  return text?.match(/-----BEGIN [A-Z ]+-----[\s\S]+?-----END [A-Z ]+-----/g) ?? []
}

async function developmentKey(dataDir: string): Promise<string> {
  const dir = path.join(dataDir, 'jwt')
  const file = path.join(dir, 'signing-key.pem')
  try {
    return await readFile(file, 'utf8')
  } catch {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    await chmod(dir, 0o700)
    const { privateKey } = generateKeyPairSync('ed25519')
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
    // 'wx': two instances starting at once must not overwrite each other's key.
    try {
      await writeFile(file, pem, { mode: 0o600, flag: 'wx' })
      return pem
    } catch {
      return await readFile(file, 'utf8')
    }
  }
}

export async function loadSigningKeys(opts: KeyOptions): Promise<SigningKeys> {
  let privatePem: string
  if (opts.privateKeyPem !== undefined && opts.privateKeyPem.trim() !== '') {
    // Environments often carry PEMs with literal "\n".
    privatePem = opts.privateKeyPem.replace(/\\n/g, '\n')
  } else if (opts.production) {
    throw new Error('JWT_PRIVATE_KEY is required in production')
  } else {
    privatePem = await developmentKey(opts.dataDir)
  }
  const privateKey = createPrivateKey(privatePem)
  const current = publicEntry(createPublicKey(privateKey))
  const previous = splitPems(opts.previousPublicKeysPem?.replace(/\\n/g, '\n'))
    .map((pem) => publicEntry(createPublicKey(pem)))
    .filter((entry) => entry.kid !== current.kid)
  const all = [current, ...previous]
  const byKid = new Map(all.map((entry) => [entry.kid, entry]))
  return {
    kid: current.kid,
    alg: current.alg,
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    jwks: { keys: all.map((entry) => entry.jwk) },
    publicKeyFor: (kid) => byKid.get(kid),
    algorithms: [...new Set(all.map((entry) => entry.alg))],
  }
}
