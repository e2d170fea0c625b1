// Start a TypeScript entry point (the server, the CLI) as a child process under
// the same loader as the test itself. tap follows children for coverage; under
// another transform (tsx) their coverage would merge into the report with
// shifted lines.
import { projectPath } from '../../src/paths.ts'

export function nodeArgs(entry: string, ...args: string[]): string[] {
  return [...process.execArgv, projectPath(entry), ...args]
}
