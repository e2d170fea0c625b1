// Response maps for route schemas. A route names its success answers and says what
// it does (takes a body, needs a token, touches the database, is rate limited);
// `responses()` adds every problem answer that follows from that, so the OpenAPI
// document lists each status an operation can really answer, the same way on every
// route. Problems are application/problem+json with the one shared Problem schema
// (registered by the errors plugin), which is also what Fastify serializes them with.
import type { TSchema } from '@sinclair/typebox'
import { PROBLEM_MEDIA_TYPE, PROBLEM_SCHEMA_ID } from '../http/problem.ts'

/** What an operation does, which decides the problems it can answer. */
export interface Exposure {
  /** Fastify parses a request body (POST, PUT, PATCH, DELETE): 400 invalid, 413 too large, 415 another media type. */
  body?: boolean
  /** Validated path parameters or querystring: 400. */
  params?: boolean
  /** A Bearer access token is required: 401. */
  bearer?: boolean
  /** Under a per-IP limit (all routes but the probes) or the login lockout: 429. */
  rateLimited?: boolean
  /** Reaches the database: 503 when it cannot be reached. */
  database?: boolean
  /** Further statuses (403, 404...), or the route's own codes of one above: appended to its description. */
  errors?: Record<number, string>
}

/**
 * A documented response header: its JSON schema with a description, which
 * @fastify/swagger turns into an OpenAPI Header Object; Fastify ignores it.
 */
interface Header {
  description: string
  type: string
  minimum?: number
}

export interface ProblemResponse {
  description: string
  headers?: Record<string, Header>
  content: Record<string, { schema: Record<string, unknown> }>
}

const RETRY_AFTER: Record<string, Header> = {
  'retry-after': { description: 'Seconds to wait before trying again', type: 'integer', minimum: 1 },
}
const WWW_AUTHENTICATE: Record<string, Header> = {
  'www-authenticate': { description: 'The Bearer challenge (RFC 6750), on a missing or bad token', type: 'string' },
}

type Flag = Exclude<keyof Exposure, 'errors'>

/** The problems each flag implies, whichever route has it; a route's `errors` add its own codes. */
const IMPLIED: readonly { flag: Flag; status: number; description: string }[] = [
  { flag: 'body', status: 400, description: 'the body is not valid JSON (`malformed_json`) or fails its schema (`validation_failed`)' },
  { flag: 'params', status: 400, description: 'a path parameter fails its schema (`validation_failed`)' },
  {
    flag: 'bearer',
    status: 401,
    description: 'no valid access token (`invalid_token`: missing, invalid, expired, or its session has ended)',
  },
  { flag: 'body', status: 413, description: 'the request body is too large (`payload_too_large`)' },
  { flag: 'body', status: 415, description: 'the request body is not of a media type the operation takes (`unsupported_media_type`)' },
  { flag: 'rateLimited', status: 429, description: 'too many requests from this address (`rate_limited`)' },
  { flag: 'database', status: 503, description: 'the database cannot be reached (`service_unavailable`)' },
]

const INTERNAL = 'an internal error (`internal_error`); the body carries no details: quote its requestId'

/** Response headers worth a client's attention, by status. */
function headersFor(status: number, exposure: Exposure): Record<string, Header> | undefined {
  if (status === 429 || status === 503) return RETRY_AFTER
  if (status === 401 && exposure.bearer === true) return WWW_AUTHENTICATE
  return undefined
}

/** A fresh object each time: Fastify and @fastify/swagger get route schemas they may annotate. */
const problemContent = () => ({ [PROBLEM_MEDIA_TYPE]: { schema: { $ref: `${PROBLEM_SCHEMA_ID}#` } } })

const capitalized = (text: string): string => text.charAt(0).toUpperCase() + text.slice(1)

/** The problem answers an operation with this exposure can give; 500 on every one. */
export function problemResponses(exposure: Exposure): Record<number, ProblemResponse> {
  const why = new Map<number, string[]>([[500, [INTERNAL]]])
  const add = (status: number, description: string) => why.set(status, [...(why.get(status) ?? []), description])
  for (const implied of IMPLIED) if (exposure[implied.flag] === true) add(implied.status, implied.description)
  for (const [status, description] of Object.entries(exposure.errors ?? {})) add(Number(status), description)
  return Object.fromEntries(
    [...why.entries()]
      .sort(([a], [b]) => a - b)
      .map(([status, parts]) => {
        const headers = headersFor(status, exposure)
        const answer: ProblemResponse = { description: capitalized(parts.join('; or ')), content: problemContent() }
        if (headers !== undefined) answer.headers = headers
        return [status, answer]
      }),
  )
}

/**
 * A route's `schema.response`: its success answers plus the problems its exposure implies.
 * Typed as the success answers alone: the error handler sends the problems, never a
 * handler, so the type provider types what a handler returns from these only.
 */
export function responses<S extends Record<number, unknown>>(success: S, exposure: Exposure): S {
  return { ...problemResponses(exposure), ...success }
}

/** A JSON success answer: the schema, with the description the document shows for the status. */
export function json<T extends TSchema>(description: string, schema: T): T {
  return { ...schema, description }
}

/** A success answer without a body (204). */
export function noContent(description: string): { type: 'null'; description: string } {
  return { type: 'null', description }
}

/**
 * A success answer whose body is text in `mediaType` (the Prometheus exposition,
 * an HTML page, a script). Fastify sends strings as they are, so the schema only documents.
 */
export function text(
  mediaType: string,
  description: string,
): { description: string; content: Record<string, { schema: { type: 'string' } }> } {
  return { description, content: { [mediaType]: { schema: { type: 'string' } } } }
}

/**
 * For the operations that answer text/html (the mail-link pages): 200 is the page;
 * each status in `pages` is answered with a page too (a policy error as a sentence,
 * in the status the API gives it); everything else the exposure implies stays a
 * problem (the rate limit, a body Fastify refuses). A status in both has both media types.
 *   schema: { response: htmlResponses('The page', { body: true, rateLimited: true, database: true, pages: { 400: 'the link is invalid, expired or used' } }) }
 */
export function htmlResponses(
  description: string,
  exposure: Exposure & { pages?: Record<number, string> } = {},
): Record<number, ProblemResponse> {
  const { pages = {}, ...rest } = exposure
  const answers: Record<number, ProblemResponse> = problemResponses(rest)
  const page = { schema: { type: 'string' } }
  for (const [key, why] of Object.entries(pages)) {
    const status = Number(key)
    const problem = answers[status]
    answers[status] =
      problem === undefined
        ? { description: capitalized(why), content: { 'text/html': page } }
        : { ...problem, description: `${problem.description}; or a page: ${why}`, content: { 'text/html': page, ...problem.content } }
  }
  answers[200] = text('text/html', description)
  return answers
}
