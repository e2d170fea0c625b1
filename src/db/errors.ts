// The custom SQLSTATEs the stored procedures raise, turned into a typed domain
// error, and the one place that says how the API answers each (the same table is
// in sql/CONVENTIONS.md; test/plugins/errors.test.ts holds the two together). The
// errors plugin answers every DbError from here, so none becomes a 500. Anything
// else (connection loss, a bug, a deadlock) passes through unchanged as a 5xx.

/** SQLSTATE → domain code, and the problem (status, code, detail) the API answers. */
export const DB_ERRORS = {
  AU001: { code: 'email_taken', status: 409, problem: 'email_taken', detail: 'that address is already registered' },
  // An account that is gone or deactivated under a signed-in caller: as GET /me answers it.
  AU002: { code: 'user_not_found', status: 401, problem: 'invalid_token', detail: 'session ended' },
  AU003: { code: 'user_inactive', status: 401, problem: 'invalid_token', detail: 'session ended' },
  AU004: { code: 'token_invalid', status: 400, problem: 'invalid_token', detail: 'link is invalid' },
  AU005: { code: 'token_expired', status: 400, problem: 'token_expired', detail: 'link has expired; ask for a new one' },
  AU006: { code: 'token_used', status: 400, problem: 'token_used', detail: 'link has already been used' },
  // The routes validate first, so this is a value only the procedure refuses; its message names internals.
  AU007: { code: 'invalid_argument', status: 400, problem: 'validation_failed', detail: 'a value was refused' },
  AU008: { code: 'invalid_email', status: 400, problem: 'invalid_email', detail: 'email address is not valid' },
  AU009: { code: 'already_verified', status: 409, problem: 'already_verified', detail: 'the address is already verified' },
  AU010: { code: 'username_taken', status: 409, problem: 'username_taken', detail: 'that username is taken' },
  AU011: { code: 'username_reserved', status: 400, problem: 'username_reserved', detail: 'that username is reserved' },
  AU012: {
    code: 'invalid_username',
    status: 400,
    problem: 'invalid_username',
    detail: 'a username is 3 to 32 letters, digits, underscores or dots',
  },
  AU013: { code: 'invalid_phone', status: 400, problem: 'invalid_phone', detail: 'the phone number is not valid' },
  AU014: { code: 'invalid_name', status: 400, problem: 'invalid_name', detail: 'a name is at most 100 characters' },
} as const

export type DbErrorSqlstate = keyof typeof DB_ERRORS
export type DbErrorCode = (typeof DB_ERRORS)[DbErrorSqlstate]['code']

export class DbError extends Error {
  override readonly name = 'DbError'
  /** Stable domain code, e.g. 'email_taken'. */
  readonly code: DbErrorCode
  /** The SQLSTATE the procedure raised, e.g. 'AU001': the key of its answer in DB_ERRORS. */
  readonly sqlstate: DbErrorSqlstate

  constructor(sqlstate: DbErrorSqlstate, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.sqlstate = sqlstate
    this.code = DB_ERRORS[sqlstate].code
  }
}

function isKnownSqlstate(code: unknown): code is DbErrorSqlstate {
  return typeof code === 'string' && Object.hasOwn(DB_ERRORS, code)
}

/** A DbError for a known custom SQLSTATE, otherwise the error itself. */
export function fromPgError(err: unknown): unknown {
  if (err instanceof DbError || !(err instanceof Error)) return err
  const code = (err as Error & { code?: unknown }).code
  return isKnownSqlstate(code) ? new DbError(code, err.message, { cause: err }) : err
}
