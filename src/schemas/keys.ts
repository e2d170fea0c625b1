// The reply of GET /.well-known/jwks.json: the public keys that verify access tokens.
import { Type } from '@sinclair/typebox'
import { closed } from './common.ts'

export const JwkSchema = closed({
  kty: Type.String(),
  crv: Type.String(),
  x: Type.String(),
  y: Type.Optional(Type.String()),
  kid: Type.String(),
  alg: Type.String(),
  use: Type.Literal('sig'),
})
export const JwksSchema = closed({ keys: Type.Array(JwkSchema) })
