// Files the service reads at run time (db-init/, sql/) are found relative to the
// project root, not the working directory, so `npm start`, the CLI, the tests and
// the container all agree.
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

export function projectPath(...parts: string[]): string {
  return path.join(PROJECT_ROOT, ...parts)
}
