// The external layer: security headers, CORS and the OpenAPI document, mostly
// from the Fastify ecosystem. Register before the routes: swagger documents
// only routes added after it.
import { readFileSync } from 'node:fs'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import helmet from '@fastify/helmet'
import cors from '@fastify/cors'
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

/**
 * The headers every answer carries: nosniff (a JSON body is never sniffed into a script
 * or a page) and HSTS. The rest of helmet's set (CSP, frame options, COOP, CORP, referrer
 * policy, ...) governs documents a browser renders; the link pages and the docs register
 * helmet in their own scope. One precomputed object, set by the errors plugin's
 * request-id hook (app.ts): helmet's per-request work on every JSON answer cost the bare
 * server about 40 % of its requests per second (docs/performance.md).
 */
export const API_SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'x-content-type-options': 'nosniff',
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
})

async function externalPlugin(app: FastifyInstance, opts: ExternalPluginOptions): Promise<void> {
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
    // Loaded only when served (off in production by default): the UI's assets and the
    // document generator stay out of the process otherwise (issue 18).
    const [{ default: swagger }, { default: swaggerUi }] = await Promise.all([import('@fastify/swagger'), import('@fastify/swagger-ui')])
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'activity-auth',
          version,
          description: 'Authentication service for the Activity App',
          // package.json is private and names no license: the code is proprietary. SPDX
          // has no identifier for that; LicenseRef- is its form for a license of one's own.
          license: { name: 'Proprietary', identifier: 'LicenseRef-Proprietary' },
        },
        // Relative: calls go to the host the document was fetched from. APP_URL is where
        // mail links point, which need not be how another service reaches this one (a
        // compose network name, the balancer of the scale profile), and a generated client
        // takes its base URL at run time anyway; the document stays the same everywhere.
        servers: [{ url: '/', description: 'The host that serves this document' }],
        tags: [
          { name: 'auth', description: 'Sign up, verify, log in, refresh, log out; the account and its sessions' },
          { name: 'oauth', description: 'Sign in with Google and GitHub; link and unlink them (docs/security.md)' },
          { name: 'mfa', description: "Two-factor sign-in: TOTP enrolment, the login's second step, recovery codes (docs/security.md)" },
          { name: 'keys', description: 'Public keys to verify access tokens offline' },
          { name: 'health', description: 'Probes for balancers, orchestrators and operators (outside the rate limit)' },
          { name: 'metrics', description: 'Prometheus metrics for scrapers' },
          { name: 'pages', description: 'The HTML pages that mail links open' },
        ],
        components: {
          securitySchemes: {
            bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'An access token from login or refresh' },
            metricsToken: { type: 'http', scheme: 'bearer', description: 'METRICS_TOKEN, when the deployment sets one' },
          },
        },
      },
      // Shared schemas (app.addSchema, e.g. Problem) become components named by their $id,
      // not def-0, def-1: the name is what generated clients call the type.
      refResolver: {
        buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${String(i)}`),
      },
    })
    // An HTML page: helmet's headers, in a scope of their own.
    await app.register(async (docs) => {
      await docs.register(helmet)
      await docs.register(swaggerUi, {
        routePrefix: '/docs',
        staticCSP: true,
        transformStaticCSP: withoutUpgrade,
        uiConfig: { validatorUrl: null },
      })
    })
  }
}

export default fp(externalPlugin, { name: 'external', fastify: '5.x' })
