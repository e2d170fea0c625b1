// Small builders for database tests: valid-looking inputs for the procedures and
// a few shortcuts that go through the same typed wrappers the service uses.
import { randomBytes, randomUUID } from 'node:crypto'
import type pg from 'pg'
import { DbError, type DbErrorCode } from '../../src/db/errors.ts'
import { createUser, saveRefreshToken, type CreatedUser, type Queryable, type SavedRefreshToken } from '../../src/db/procedures.ts'

/** A random SHA-256 in lowercase hex: the form every token hash is stored in. */
export function hex64(): string {
  return randomBytes(32).toString('hex')
}

/** An argon2id PHC string: the procedures check the format, never the hash itself. */
export function fakeHash(): string {
  return `$argon2id$v=19$m=19456,t=2,p=1$${randomBytes(16).toString('base64url')}$${randomBytes(32).toString('base64url')}`
}

export function uniqueEmail(prefix = 'user'): string {
  return `${prefix}-${randomBytes(6).toString('hex')}@example.com`
}

export async function newUser(db: Queryable, email = uniqueEmail()): Promise<CreatedUser> {
  return createUser(db, { email, hashedPassword: fakeHash() })
}

export interface Session extends SavedRefreshToken {
  tokenHash: string
}

/** Starts a session (a new refresh token family) for the user. */
export async function newSession(
  db: Queryable,
  userId: string,
  opts: { idleTtlSeconds?: number; familyTtlSeconds?: number; ip?: string; userAgent?: string } = {},
): Promise<Session> {
  const tokenHash = hex64()
  const saved = await saveRefreshToken(db, {
    userId,
    tokenHash,
    jti: randomUUID(),
    idleTtlSeconds: opts.idleTtlSeconds ?? 900,
    familyTtlSeconds: opts.familyTtlSeconds ?? 86_400,
    ctx: { ip: opts.ip ?? null, userAgent: opts.userAgent ?? null },
  })
  return { ...saved, tokenHash }
}

/** Pattern for t.rejects: a DbError with this domain code. */
export function dbError(code: DbErrorCode): { name: string; code: DbErrorCode } {
  return { name: 'DbError', code }
}

/** Pattern for t.rejects: a raw PostgreSQL error with this SQLSTATE. */
export function pgError(code: string): { code: string } {
  return { code }
}

/** True when err is a DbError with this code (for Promise.allSettled results). */
export function isCode(err: unknown, code: DbErrorCode): boolean {
  return err instanceof DbError && err.code === code
}

/** Rows of one admin query, typed. */
export async function rows<R extends pg.QueryResultRow>(db: Queryable, sql: string, params: unknown[] = []): Promise<R[]> {
  return (await db.query<R>(sql, params)).rows
}
