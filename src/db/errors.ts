// The custom SQLSTATEs the stored procedures raise (table in sql/CONVENTIONS.md),
// turned into a typed domain error. Anything else (connection loss, a bug, a
// deadlock) passes through unchanged and ends up as a 5xx.

export const ERRCODES = {
  AU001: 'email_taken',
  AU002: 'user_not_found',
  AU003: 'user_inactive',
  AU004: 'token_invalid',
  AU005: 'token_expired',
  AU006: 'token_used',
  AU007: 'invalid_argument',
  AU008: 'invalid_email',
  AU009: 'already_verified',
} as const

export type DbErrorSqlstate = keyof typeof ERRCODES
export type DbErrorCode = (typeof ERRCODES)[DbErrorSqlstate]

export class DbError extends Error {
  override readonly name = 'DbError'
  /** Stable domain code, e.g. 'email_taken'. */
  readonly code: DbErrorCode
  /** The SQLSTATE the procedure raised, e.g. 'AU001'. */
  readonly sqlstate: DbErrorSqlstate

  constructor(sqlstate: DbErrorSqlstate, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.sqlstate = sqlstate
    this.code = ERRCODES[sqlstate]
  }
}

function isKnownSqlstate(code: unknown): code is DbErrorSqlstate {
  return typeof code === 'string' && Object.hasOwn(ERRCODES, code)
}

/** A DbError for a known custom SQLSTATE, otherwise the error itself. */
export function fromPgError(err: unknown): unknown {
  if (err instanceof DbError || !(err instanceof Error)) return err
  const code = (err as Error & { code?: unknown }).code
  return isKnownSqlstate(code) ? new DbError(code, err.message, { cause: err }) : err
}

/** True when err is a DbError, with the given domain code when one is passed. */
export function isDbError(err: unknown, code?: DbErrorCode): err is DbError {
  return err instanceof DbError && (code === undefined || err.code === code)
}
