// npm run client:generate: writes client/schema.d.ts, the types of the typed
// client (client/index.ts), from the service's OpenAPI document. No database,
// no network: the document comes from the app built in memory
// (scripts/openapi.ts). test/client/client.test.ts fails when the
// committed file and the document differ.
import { writeFile } from 'node:fs/promises'
import { pathToFileURL } from 'node:url'
import openapiTS, { astToString, type OpenAPI3 } from 'openapi-typescript'
import { projectPath } from '../src/paths.ts'
import { openapiDocument } from './openapi.ts'

export const CLIENT_SCHEMA_FILE = projectPath('client', 'schema.d.ts')

const HEADER = `/**
 * GENERATED from the activity-auth OpenAPI document (GET /docs/json) by
 * scripts/generate-client.ts with openapi-typescript. Do not edit by hand:
 * after changing a route or its schema, run \`npm run client:generate\` and
 * commit the result (test/client/client.test.ts fails until then).
 */

`

/** The text of client/schema.d.ts for a document, byte for byte. */
export async function renderClientSchema(document: Record<string, unknown>): Promise<string> {
  // silent: redocly's lint warnings are the OpenAPI lint's business, not the generator's.
  const ast = await openapiTS(document as unknown as OpenAPI3, { silent: true })
  return HEADER + astToString(ast)
}

async function main(): Promise<void> {
  await writeFile(CLIENT_SCHEMA_FILE, await renderClientSchema(await openapiDocument()))
  console.log(`wrote ${CLIENT_SCHEMA_FILE}`)
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main()
