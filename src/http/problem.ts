// RFC 9457 problem details. Routes throw an HttpProblem; the errors plugin
// turns it (and every other error) into an application/problem+json body with
// a stable `code` that clients may branch on — never on `detail`, which is prose.
import { STATUS_CODES } from 'node:http'
import { Type, type Static } from '@sinclair/typebox'
import { DB_ERRORS, type DbErrorSqlstate } from '../db/errors.ts'

/** The media type of every error answer (RFC 9457 §3). */
export const PROBLEM_MEDIA_TYPE = 'application/problem+json'

export const PROBLEM_CONTENT_TYPE = `${PROBLEM_MEDIA_TYPE}; charset=utf-8`

const PROBLEM_TYPE_BASE = 'https://activity-auth.dev/problems/'

/**
 * The id ProblemSchema is registered under (errors plugin, app.addSchema): routes
 * refer to it (`{ $ref: 'Problem#' }`, src/schemas/responses.ts), so the OpenAPI
 * document has exactly one `components.schemas.Problem` and generated clients one type.
 */
export const PROBLEM_SCHEMA_ID = 'Problem'

/** The body of every 4xx/5xx answer. */
export const ProblemSchema = Type.Object(
  {
    type: Type.String({ format: 'uri', description: 'Stable URI of the code' }),
    title: Type.String({ description: 'The reason phrase of the status' }),
    status: Type.Integer({ minimum: 400, maximum: 599 }),
    detail: Type.Optional(Type.String({ description: 'For people; never branch on it' })),
    code: Type.String({ description: 'Stable machine-readable code; branch on this' }),
    requestId: Type.String({ description: "The service's id of the request, also in x-request-id" }),
  },
  { additionalProperties: false, title: 'Problem', description: 'RFC 9457 problem details with a stable `code`' },
)

export type Problem = Static<typeof ProblemSchema>

/** The stable `type` URI of a code. */
export function problemType(code: string): string {
  return PROBLEM_TYPE_BASE + code
}

/** The reason phrase of a status ("Too Many Requests"). */
export function statusTitle(status: number): string {
  return STATUS_CODES[status] ?? 'Error'
}

export interface HttpProblemOptions {
  /** Response headers that belong to the answer (Retry-After, Allow). */
  headers?: Record<string, string>
  /** Extra members of the body; kept only where the response schema names them (the shared Problem names none). */
  extra?: Record<string, unknown>
}

export class HttpProblem extends Error {
  override name = 'HttpProblem'
  readonly status: number
  readonly code: string
  readonly title: string
  readonly detail: string
  readonly headers?: Record<string, string>
  readonly extra?: Record<string, unknown>

  constructor(status: number, code: string, detail: string, options: HttpProblemOptions = {}) {
    super(detail)
    this.status = status
    this.code = code
    this.title = statusTitle(status)
    this.detail = detail
    if (options.headers !== undefined) this.headers = options.headers
    if (options.extra !== undefined) this.extra = options.extra
  }

  /** The response body; the standard members win over `extra`. */
  toBody(requestId: string): Problem & Record<string, unknown> {
    return {
      ...this.extra,
      type: problemType(this.code),
      title: this.title,
      status: this.status,
      detail: this.detail,
      code: this.code,
      requestId,
    }
  }
}

export const badRequest = (code: string, detail: string): HttpProblem => new HttpProblem(400, code, detail)

export const unauthorized = (code: string, detail: string): HttpProblem => new HttpProblem(401, code, detail)

export const forbidden = (code: string, detail: string): HttpProblem => new HttpProblem(403, code, detail)

export const notFound = (code: string, detail: string): HttpProblem => new HttpProblem(404, code, detail)

export const tooManyRequests = (code: string, detail: string, retryAfterSeconds: number): HttpProblem =>
  new HttpProblem(429, code, detail, {
    // Retry-After is whole seconds (RFC 9110); never 0, or clients retry at once.
    headers: { 'retry-after': String(Math.max(1, Math.ceil(retryAfterSeconds))) },
  })

export const unsupportedMediaType = (detail = 'unsupported media type'): HttpProblem =>
  new HttpProblem(415, 'unsupported_media_type', detail)

/** The answer to a procedure's custom error: its row in DB_ERRORS (src/db/errors.ts). */
export function dbProblem(sqlstate: DbErrorSqlstate): HttpProblem {
  const { status, problem, detail } = DB_ERRORS[sqlstate]
  return new HttpProblem(status, problem, detail)
}
