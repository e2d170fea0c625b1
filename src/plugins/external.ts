// The external layer: security headers, CORS and the OpenAPI document, all
// from the Fastify ecosystem. Register before the routes: swagger documents
// only routes added after it.
import { readFileSync } from 'node:fs'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import helmet from '@fastify/helmet'
import cors from '@fastify/cors'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { projectPath } from '../paths.ts'

export interface ExternalPluginOptions {
  /** Origins allowed to call the API from a browser; empty: no CORS headers at all. */
  corsOrigins: string[]
  /** Serve the OpenAPI document (GET /docs/json) and Swagger UI (GET /docs). */
  swagger: boolean
}

const { version } = JSON.parse(readFileSync(projectPath('package.json'), 'utf8')) as { version: string }

/**
 * Swagger UI's own CSP (hashes of its inline parts) replaces helmet's on /docs,
 * minus upgrade-insecure-requests, which would break the page when it is served
 * over plain http on anything but localhost (a compose host, say).
 */
const withoutUpgrade = (header: string): string =>
  header
    .split(';')
    .map((part) => part.trim())
    .filter((part) => part !== '' && part !== 'upgrade-insecure-requests')
    .join('; ')

async function externalPlugin(app: FastifyInstance, opts: ExternalPluginOptions): Promise<void> {
  await app.register(helmet)

  if (opts.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: opts.corsOrigins,
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
      // Clients read these: the id to quote in a bug report, the wait when throttled.
      exposedHeaders: ['x-request-id', 'retry-after'],
      // Bearer tokens in headers, no cookies: credentials stay off.
      credentials: false,
      maxAge: 600,
    })
  }

  if (opts.swagger) {
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: { title: 'activity-auth', version, description: 'Authentication service for the Activity App' },
        components: {
          securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
        },
      },
    })
    await app.register(swaggerUi, {
      routePrefix: '/docs',
      staticCSP: true,
      transformStaticCSP: withoutUpgrade,
      uiConfig: { validatorUrl: null },
    })
  }
}

export default fp(externalPlugin, { name: 'external', fastify: '5.x' })
