// The OpenAPI document as a response validator: given a request's method and URL
// and the answer's status, content type and body, is that answer one the document
// promises? build() (app.ts) runs every injected answer through it, so each test
// that talks to the app also checks the document clients generate code from.
import type { FastifyInstance, InjectOptions, LightMyRequestCallback, LightMyRequestResponse } from 'fastify'
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js'
import formats from 'ajv-formats'

/** The parts of an OpenAPI 3.1 document the validator reads. */
interface MediaType {
  schema?: unknown
}
interface Response {
  content?: Record<string, MediaType>
}
interface Operation {
  operationId?: string
  responses?: Record<string, Response>
}
export interface OpenApiDocument {
  paths?: Record<string, Record<string, Operation>>
}

export interface Exchange {
  method: string
  /** Path and query, as requested. */
  url: string
  status: number
  contentType: string | undefined
  body: string
}

/** What the contract says about one exchange: skipped (not an operation of the document) or its mismatches. */
export type Verdict = { operation: undefined } | { operation: string; mismatches: string[] }

// ajv-formats is CommonJS (module.exports = the plugin); its types only describe `.default`.
const addFormats = formats as unknown as typeof formats.default

const METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'])

/** `/api/auth/sessions/{id}` → a regexp for concrete paths; a template segment is one path segment. */
function templateRegExp(template: string): RegExp {
  const source = template
    .split(/(\{[^}]+\})/)
    .map((part) => (/^\{[^}]+\}$/.test(part) ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('')
  return new RegExp(`^${source}$`)
}

/** JSON Pointer escaping (RFC 6901) of one reference token. */
const pointer = (token: string): string => token.replace(/~/g, '~0').replace(/\//g, '~1')

const mediaTypeOf = (contentType: string | undefined): string | undefined =>
  contentType === undefined ? undefined : contentType.split(';', 1)[0]?.trim().toLowerCase()

const isJson = (mediaType: string): boolean => mediaType === 'application/json' || mediaType.endsWith('+json')

/** The documented media type that covers an actual one: exact, `type/*` or `*\/*`. */
function documentedMediaType(content: Record<string, MediaType>, mediaType: string): string | undefined {
  if (content[mediaType] !== undefined) return mediaType
  const range = `${mediaType.split('/', 1)[0] ?? ''}/*`
  if (content[range] !== undefined) return range
  return content['*/*'] === undefined ? undefined : '*/*'
}

export class Contract {
  readonly document: OpenApiDocument
  private readonly ajv: Ajv2020
  private readonly validators = new Map<string, ValidateFunction>()
  /** Literal paths first: `/api/auth/sessions` must not be taken for a template. */
  private readonly paths: { template: string; pattern: RegExp; literal: boolean }[]

  constructor(document: OpenApiDocument) {
    this.document = document
    // OpenAPI 3.1 schemas are JSON Schema 2020-12; strict off for the document's own
    // keywords (openapi, paths, example...). The document is one schema resource, so a
    // response schema's `#/components/schemas/Problem` resolves inside it.
    this.ajv = new Ajv2020({ strict: false, allErrors: true })
    addFormats(this.ajv)
    this.ajv.addSchema(document, 'openapi')
    this.paths = Object.keys(document.paths ?? {})
      .map((template) => ({ template, pattern: templateRegExp(template), literal: !template.includes('{') }))
      .sort((a, b) => Number(b.literal) - Number(a.literal))
  }

  /** The document's path and operation for a request, if it is one. */
  operation(method: string, url: string): { template: string; method: string; operation: Operation } | undefined {
    const lower = method.toLowerCase()
    if (!METHODS.has(lower)) return undefined
    const path = url.split('?', 1)[0] ?? url
    for (const { template, pattern } of this.paths) {
      if (!pattern.test(path)) continue
      const operation = this.document.paths?.[template]?.[lower]
      // A path of the document with another method: a 405 or 404, not an operation.
      return operation === undefined ? undefined : { template, method: lower, operation }
    }
    return undefined
  }

  check(exchange: Exchange): Verdict {
    const found = this.operation(exchange.method, exchange.url)
    if (found === undefined) return { operation: undefined }
    const { template, method, operation } = found
    const name = operation.operationId ?? `${method} ${template}`
    const responses = operation.responses ?? {}
    const statusKey = [String(exchange.status), `${String(exchange.status).charAt(0)}XX`, 'default'].find(
      (key) => responses[key] !== undefined,
    )
    if (statusKey === undefined) {
      return {
        operation: name,
        mismatches: [`status ${String(exchange.status)} is not documented (documented: ${Object.keys(responses).join(', ')})`],
      }
    }
    const content = responses[statusKey]?.content
    const mediaType = mediaTypeOf(exchange.contentType)
    if (content === undefined || Object.keys(content).length === 0) {
      const mismatches =
        exchange.body === '' ? [] : [`status ${statusKey} documents no body, got ${String(mediaType)}: ${exchange.body.slice(0, 200)}`]
      return { operation: name, mismatches }
    }
    if (mediaType === undefined)
      return { operation: name, mismatches: [`status ${statusKey} documents ${Object.keys(content).join(', ')}, got no content type`] }
    const documented = documentedMediaType(content, mediaType)
    if (documented === undefined) {
      return {
        operation: name,
        mismatches: [`content type ${mediaType} is not documented for ${statusKey} (documented: ${Object.keys(content).join(', ')})`],
      }
    }
    if (content[documented]?.schema === undefined) return { operation: name, mismatches: [] }
    let body: unknown = exchange.body
    if (isJson(mediaType)) {
      try {
        body = JSON.parse(exchange.body) as unknown
      } catch {
        return { operation: name, mismatches: [`the ${mediaType} body is not JSON: ${exchange.body.slice(0, 200)}`] }
      }
    }
    const validate = this.validator(['paths', template, method, 'responses', statusKey, 'content', documented, 'schema'])
    if (validate(body)) return { operation: name, mismatches: [] }
    const errors = (validate.errors ?? []).map((e) => `${e.instancePath || '(body)'} ${e.message ?? e.keyword} ${JSON.stringify(e.params)}`)
    return { operation: name, mismatches: [`the body does not match the ${statusKey} ${documented} schema: ${errors.join('; ')}`] }
  }

  private validator(tokens: string[]): ValidateFunction {
    const ref = `openapi#/${tokens.map(pointer).join('/')}`
    let validate = this.validators.get(ref)
    if (validate === undefined) {
      validate = this.ajv.compile({ $ref: ref })
      this.validators.set(ref, validate)
    }
    return validate
  }
}

/** The exchange of an injected request and its answer. */
export function exchangeOf(res: LightMyRequestResponse): Exchange {
  const header = res.headers['content-type']
  return {
    method: res.raw.req.method ?? 'GET',
    url: res.raw.req.url ?? '/',
    status: res.statusCode,
    contentType: typeof header === 'string' ? header : undefined,
    body: res.body,
  }
}

export interface ContractCounts {
  /** Answers to operations of the document, checked. */
  validated: number
  /** Answers to anything else (unknown paths, /docs, a method the path does not have). */
  skipped: number
}

/**
 * Replaces app.inject so every answer of the promise form (the one the tests use)
 * is checked; a mismatch goes to `onMismatch`. The callback and chain forms pass through.
 */
export function checkInjectedResponses(app: FastifyInstance, contract: Contract, onMismatch: (message: string) => void): ContractCounts {
  const counts: ContractCounts = { validated: 0, skipped: 0 }
  const inject = app.inject.bind(app)
  function checked(opts?: InjectOptions | string, cb?: LightMyRequestCallback): unknown {
    if (opts === undefined) return inject()
    if (cb !== undefined) return inject(opts, cb)
    return inject(opts).then((res) => {
      const exchange = exchangeOf(res)
      const verdict = contract.check(exchange)
      if (verdict.operation === undefined) {
        counts.skipped++
        return res
      }
      counts.validated++
      if (verdict.mismatches.length > 0) {
        onMismatch(
          `OpenAPI contract (${verdict.operation}): ${exchange.method} ${exchange.url} → ${String(exchange.status)} ` +
            `${exchange.contentType ?? '(no content type)'}: ${verdict.mismatches.join('; ')}`,
        )
      }
      return res
    })
  }
  app.inject = checked as FastifyInstance['inject']
  return counts
}
