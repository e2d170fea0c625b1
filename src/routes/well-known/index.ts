// GET /.well-known/jwks.json: the public keys (current and previous) so other
// services verify access tokens offline.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { SigningKeys } from '../../auth/keys.ts'
import { JwksSchema } from '../../schemas/keys.ts'
import { json, responses } from '../../schemas/responses.ts'

export interface WellKnownOptions {
  keys: SigningKeys
  /** Its own per-IP limit (other services fetch it often), or none; never the global budget. */
  rateLimit?: { max: number; timeWindow: number } | false
}

const wellKnownRoutes: FastifyPluginAsyncTypebox<WellKnownOptions> = async (app, opts) => {
  app.get(
    '/.well-known/jwks.json',
    {
      config: { rateLimit: opts.rateLimit ?? false },
      schema: {
        tags: ['keys'],
        security: [],
        operationId: 'getJwks',
        summary: 'The public keys (JWKS) that verify access tokens, current and previous',
        response: responses(
          { 200: json('The JSON Web Key Set; pick the key by the token header kid', JwksSchema) },
          // Its own per-IP limit when rate limiting is on; no database.
          { rateLimited: true },
        ),
      },
    },
    async (_request, reply) => {
      void reply.header('cache-control', 'public, max-age=300')
      return opts.keys.jwks
    },
  )
}

export default wellKnownRoutes
