// `tsx scripts/openapi.ts [file]`: writes the OpenAPI document of the real app
// (buildApp, the same plugins and routes as the server) to a file, default
// .data/openapi.json, for `npm run lint` (redocly) and the tests. No database and
// no network: the pg pool connects only on a first query and nothing queries while
// the app is built; keys and the refresh pepper go to a temporary DATA_DIR that
// is removed after, and the rest of the configuration is fixed here, so the
// document does not depend on the shell it is dumped from.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { buildApp } from '../src/app.ts'
import { loadConfig } from '../src/config.ts'
import { projectPath } from '../src/paths.ts'

/** Never connected to: port 1 refuses, should anything try. */
const NO_DATABASE = 'postgresql://openapi@127.0.0.1:1/none'

export const DEFAULT_OUTPUT = projectPath('.data', 'openapi.json')

/**
 * The settings that shape the document beyond the defaults: swagger on, and a
 * METRICS_TOKEN, so /metrics is documented the way production serves it (only
 * with a token: a documented 401). test/client/client.test.ts serves a running
 * app with the same settings.
 */
export const DOCUMENT_SETTINGS = {
  SWAGGER_ENABLED: 'true',
  METRICS_TOKEN: 'documented-but-never-used',
} as const

/**
 * The document GET /docs/json serves for development defaults plus
 * DOCUMENT_SETTINGS; `env` overrides any of that. The calling shell's
 * environment is not read: the document and the generated client must not depend on it.
 */
export async function openapiDocument(env: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'activity-auth-openapi-'))
  try {
    const config = loadConfig({
      NODE_ENV: 'development',
      LOG_LEVEL: 'silent',
      DATA_DIR: dataDir,
      DATABASE_URL: NO_DATABASE,
      // No idle connections to keep: the pool must not try to open any.
      DATABASE_POOL_MIN: '0',
      ...DOCUMENT_SETTINGS,
      ...env,
    })
    const app = await buildApp(config, { databaseUrl: NO_DATABASE })
    try {
      await app.ready()
      if (app.db.totalCount !== 0) throw new Error('building the app opened a database connection; the document must not need one')
      return app.swagger() as unknown as Record<string, unknown>
    } finally {
      await app.close()
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true })
  }
}

/** Writes the document as indented JSON; returns the file's path. */
export async function writeOpenapiDocument(file = DEFAULT_OUTPUT): Promise<string> {
  const document = await openapiDocument()
  await mkdir(path.dirname(file), { recursive: true })
  await writeFile(file, `${JSON.stringify(document, null, 2)}\n`)
  return file
}

const isMain = process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)
if (isMain) {
  writeOpenapiDocument(process.argv[2] === undefined ? undefined : path.resolve(process.argv[2])).then(
    (file) => console.log(`openapi: wrote ${path.relative(process.cwd(), file)}`),
    (err: unknown) => {
      console.error(`openapi: ${err instanceof Error ? err.message : String(err)}`)
      process.exit(1)
    },
  )
}
