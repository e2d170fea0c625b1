// build(t): the real app (same constructor options as the server) on this test
// file's own database, with mail going to a real in-process SMTP server. Every
// answer of h.app.inject() is checked against the app's own OpenAPI document
// (helpers/contract.ts): an answer the document does not promise fails the test.
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import type { Test } from 'tap'
import { buildApp } from '../../src/app.ts'
import { loadConfig, type Config } from '../../src/config.ts'
import { checkInjectedResponses, Contract, type ContractCounts, type OpenApiDocument } from './contract.ts'
import { createTestDatabase, type TestDatabase } from './db.ts'
import { linksIn, readMail, smtpSink } from './smtp.ts'

export interface TestApp {
  app: FastifyInstance
  config: Config
  db: TestDatabase
  /** Mail received so far, parsed. */
  mail: () => { to: string[]; subject: string; text: string }[]
  /** Wait until the mail to `to` whose subject matches arrives; returns the token of its link. */
  tokenFor: (to: string, subject: RegExp) => Promise<string>
  dataDir: string
  /**
   * Answers checked against the OpenAPI document so far; undefined when the app
   * serves no document (SWAGGER_ENABLED=false, production defaults).
   */
  contract: ContractCounts | undefined
}

export async function build(t: Test, env: Record<string, string> = {}, db?: TestDatabase): Promise<TestApp> {
  const database = db ?? (await createTestDatabase(t))
  const smtp = await smtpSink(t)
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'activity-auth-app-'))
  await chmod(dataDir, 0o700)
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const config = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    DATA_DIR: dataDir,
    DATABASE_URL: database.url,
    SMTP_URL: smtp.url,
    APP_URL: 'http://app.test',
    RATE_LIMIT_ENABLED: 'false',
    // Tests that set REDIS_URL (the machine's shared Redis) must not publish to its default stream.
    EVENTS_ENABLED: 'false',
    // Cheap hashing keeps the suite fast; the parameters' effect is tested in passwords.test.ts.
    ARGON2_MEMORY_KIB: '1024',
    ARGON2_TIME_COST: '1',
    ...env,
  })
  const app = await buildApp(config, { databaseUrl: database.url })
  t.teardown(() => app.close())
  await app.ready()
  // swagger is on outside production unless a test turns it off (it is what production.test.ts checks).
  const contract = app.hasDecorator('swagger')
    ? checkInjectedResponses(app, new Contract(app.swagger() as OpenApiDocument), (message) => t.fail(message))
    : undefined
  // How much of the suite the contract covers: `npx tap -R tap` shows these lines.
  if (contract !== undefined)
    t.teardown(() => t.comment(`OpenAPI contract: ${contract.validated} answers validated, ${contract.skipped} not operations`))

  const mail = () =>
    smtp.delivered.map((d) => {
      const m = readMail(d.raw)
      return { to: d.rcptTo, subject: m.headers.get('subject') ?? '', text: m.text }
    })
  const tokenFor = async (to: string, subject: RegExp): Promise<string> => {
    const deadline = Date.now() + 10_000
    for (;;) {
      await app.auth.drain()
      const found = mail()
        .filter((m) => m.to.includes(to) && subject.test(m.subject))
        .at(-1)
      const link = found === undefined ? undefined : linksIn(found.text).find((l) => l.includes('token='))
      if (link !== undefined) return new URL(link).searchParams.get('token') ?? ''
      if (Date.now() > deadline) throw new Error(`no mail to ${to} matching ${String(subject)}`)
      await new Promise((r) => setTimeout(r, 25))
    }
  }
  return { app, config, db: database, mail, tokenFor, dataDir, contract }
}

export function json<T = Record<string, unknown>>(res: LightMyRequestResponse): T {
  return JSON.parse(res.body) as T
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

export interface LoggedApp {
  app: FastifyInstance
  /** Every log line, parsed. */
  logs: Record<string, unknown>[]
}

/**
 * An app on `db` whose log lines a test reads (no SMTP, no contract check): for tests
 * that run several instances on one database and watch what each one logs.
 */
export async function loggedApp(t: Test, db: TestDatabase, env: Record<string, string>): Promise<LoggedApp> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'activity-auth-logged-'))
  await chmod(dataDir, 0o700)
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const config = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'info',
    DATA_DIR: dataDir,
    DATABASE_URL: db.url,
    APP_URL: 'http://app.test',
    ARGON2_MEMORY_KIB: '1024',
    ARGON2_TIME_COST: '1',
    ...env,
  })
  const logs: Record<string, unknown>[] = []
  const app = await buildApp(config, {
    databaseUrl: db.url,
    logStream: { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) },
  })
  t.teardown(() => app.close())
  await app.ready()
  return { app, logs }
}
