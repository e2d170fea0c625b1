import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Ctx } from '../../auth/service.ts'
import type { AuthContext } from '../../plugins/jwt.ts'

/** Who asked, from where: what the procedures write into the audit trail. */
export function requestContext(request: FastifyRequest): Ctx {
  const ua = request.headers['user-agent']
  return { ip: request.ip, userAgent: typeof ua === 'string' ? ua.slice(0, 512) : null, requestId: request.id }
}

/** The session of a protected route; app.authenticate (preHandler) sets it on every one. */
export function authOf(request: FastifyRequest): AuthContext {
  const auth = request.auth
  if (auth === undefined) throw new Error('authenticate preHandler missing')
  return auth
}

/** Answers that carry tokens, secrets or personal data must not be kept by a browser or proxy cache. */
export async function noStore(_request: FastifyRequest, reply: FastifyReply): Promise<void> {
  void reply.header('cache-control', 'no-store')
}
