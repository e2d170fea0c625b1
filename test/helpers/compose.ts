// Reading the packaging files the way Docker does, without Docker: .env.example as
// compose reads a .env (dotenv), docker-compose.yml (yaml, merge keys) with compose's
// ${VAR:-default} interpolation, and the Dockerfile's stages (dockerfile-ast).
import { readFileSync } from 'node:fs'
import { DockerfileParser } from 'dockerfile-ast'
import dotenv from 'dotenv'
import YAML from 'yaml'
import { EnvSchema } from '../../src/config.ts'
import { projectPath } from '../../src/paths.ts'

/** The test runner's environment without anything the service, the CLI or libpq would read. */
export function hostEnv(): NodeJS.ProcessEnv {
  const drop = new Set([...Object.keys(EnvSchema.properties), 'TEST_DATABASE_URL'])
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !drop.has(key) && !key.startsWith('PG')))
}

/** .env.example's variables, in order. */
export function readEnvExample(file = projectPath('.env.example')): Map<string, string> {
  const text = readFileSync(file, 'utf8')
  const vars = new Map(Object.entries(dotenv.parse(text)))
  // dotenv skips a line it cannot read and keeps the last of two: either would hide a setting.
  const assignments = text.split('\n').filter((line) => line.trim() !== '' && !line.trim().startsWith('#'))
  if (assignments.length !== vars.size) throw new Error(`.env.example: ${assignments.length} lines but ${vars.size} distinct KEY=value`)
  return vars
}

export interface VariableUse {
  name: string
  fallback: string
}

// The compose forms docker-compose.yml uses; any other `$` (${VAR}, ${VAR:?msg}, $VAR, a
// nested default) throws here, so a new form is noticed instead of read wrongly.
const INTERPOLATION = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*):-([^${}]*)\}|\$/g

/** compose interpolation of `$$` (a literal $) and `${VAR:-default}` (default also when empty). */
export function interpolate(text: string, env: ReadonlyMap<string, string>, seen?: VariableUse[]): string {
  return text.replace(INTERPOLATION, (whole, name: string | undefined, fallback: string | undefined) => {
    if (whole === '$$') return '$'
    if (name === undefined || fallback === undefined) throw new Error(`only $$ and \${VAR:-default} are expected: ${text}`)
    seen?.push({ name, fallback })
    const value = env.get(name)
    return value === undefined || value === '' ? fallback : value
  })
}

function mapStrings(value: unknown, fn: (s: string) => string): unknown {
  if (typeof value === 'string') return fn(value)
  if (Array.isArray(value)) return value.map((v) => mapStrings(v, fn))
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mapStrings(v, fn)]))
  }
  return value
}

export interface ComposeService {
  image?: string
  build?: { context: string; dockerfile?: string }
  container_name?: string
  command?: string[] | string
  environment?: Record<string, string>
  ports?: string[]
  volumes?: string[]
  depends_on?: Record<string, { condition: string }>
  healthcheck?: { test: string[]; interval?: string; timeout?: string; retries?: number; start_period?: string }
  deploy?: { resources?: { limits?: { cpus?: string; memory?: string } } }
  networks?: string[]
  restart?: string
  shm_size?: string
  init?: boolean
  /** Only started with `--profile <name>`. */
  profiles?: string[]
}

export interface ComposeFile {
  name?: string
  services: Record<string, ComposeService>
  volumes?: Record<string, unknown>
  networks?: Record<string, { name?: string; driver?: string } | null>
}

/** docker-compose.yml as compose resolves it with `env` as the .env file. */
export function loadCompose(env: ReadonlyMap<string, string> = readEnvExample(), seen?: VariableUse[]): ComposeFile {
  const raw = YAML.parse(readFileSync(projectPath('docker-compose.yml'), 'utf8'), { merge: true }) as unknown
  return mapStrings(raw, (s) => interpolate(s, env, seen)) as ComposeFile
}

export function service(compose: ComposeFile, name: string): ComposeService {
  const s = compose.services[name]
  if (s === undefined) throw new Error(`docker-compose.yml has no service ${name}`)
  return s
}

export interface DockerfileStage {
  name: string | undefined
  /** The base image, build arguments resolved. */
  from: string
  env: Map<string, string>
  /** The exec-form CMD. */
  cmd: string[] | undefined
  user: string | undefined
  /** HEALTHCHECK's exec-form command. */
  healthcheck: string[] | undefined
  /** What each RUN runs. */
  runs: string[]
  copies: { from: string | undefined; sources: string[]; dest: string }[]
}

const execForm = (content: string | null | undefined): string[] | undefined =>
  content === null || content === undefined ? undefined : (JSON.parse(content.replace(/^CMD\s+/, '')) as string[])

/** The Dockerfile's stages, in order. */
export function readDockerfile(file = projectPath('Dockerfile')): DockerfileStage[] {
  const dockerfile = DockerfileParser.parse(readFileSync(file, 'utf8'))
  return dockerfile.getFROMs().map((from) => {
    const line = from.getRange().start.line
    const stage = dockerfile.getContainingImage(from.getRange().start)
    if (stage === null) throw new Error(`Dockerfile: no stage at line ${line + 1}`)
    const instructions = stage.getInstructions()
    const last = (keyword: string) => instructions.filter((i) => i.getKeyword() === keyword).at(-1)
    return {
      name: from.getBuildStage() ?? undefined,
      from: (from.getImage() ?? '').replace(/\$\{(\w+)\}/g, (_whole, name: string) => dockerfile.resolveVariable(name, line) ?? ''),
      env: new Map(
        stage
          .getENVs()
          .flatMap((e) => e.getProperties())
          .map((p) => [p.getName(), p.getValue() ?? '']),
      ),
      cmd: execForm(stage.getCMDs().at(-1)?.getArgumentsContent()),
      user: last('USER')?.getArgumentsContent() ?? undefined,
      healthcheck: execForm(stage.getHEALTHCHECKs().at(-1)?.getArgumentsContent()),
      runs: instructions.filter((i) => i.getKeyword() === 'RUN').map((i) => i.getArgumentsContent() ?? ''),
      copies: stage.getCOPYs().map((c) => {
        const args = c.getArguments().map((a) => a.getValue())
        const from =
          c
            .getFlags()
            .find((f) => f.getName() === 'from')
            ?.getValue() ?? undefined
        return { from, sources: args.slice(0, -1), dest: args.at(-1) ?? '' }
      }),
    }
  })
}

/** The stage the image runs: the last one. */
export function runtimeStage(): DockerfileStage {
  const stage = readDockerfile().at(-1)
  if (stage === undefined) throw new Error('Dockerfile has no stage')
  return stage
}

/** `npm run <script> -- args` → the TypeScript entry and arguments it runs (`tsx <entry>` scripts only). */
export function npmRunEntry(command: readonly string[]): { entry: string; args: string[] } {
  // `npm start` is `npm run start`.
  const [npm, run, script, ...rest] = command[1] === 'start' ? ['npm', 'run', ...command.slice(1)] : command
  if (npm !== 'npm' || run !== 'run' || script === undefined) {
    throw new Error(`not an npm run command: ${command.join(' ')}`)
  }
  const scripts = (JSON.parse(readFileSync(projectPath('package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts
  const text = scripts[script]
  const m = text === undefined ? null : /^tsx (\S+\.ts)$/.exec(text)
  if (m?.[1] === undefined) throw new Error(`package.json script ${script} is not "tsx <file>.ts": ${String(text)}`)
  const args = rest[0] === '--' ? rest.slice(1) : rest
  return { entry: m[1], args }
}

/** `node --enable-source-maps dist/<entry>.js args` (the image's CMD) → entry and arguments. */
export function nodeEntry(command: readonly string[]): { entry: string; args: string[] } {
  const [node, flag, entry, ...args] = command
  if (node !== 'node' || flag !== '--enable-source-maps' || entry === undefined || !entry.startsWith('dist/')) {
    throw new Error(`not "node --enable-source-maps dist/<entry>.js": ${command.join(' ')}`)
  }
  return { entry, args }
}

/** The source file npm run build compiles to a dist/ entry (tsconfig.build.json: src/ → dist/). */
export function sourceOf(distEntry: string): string {
  return distEntry.replace(/^dist\//, 'src/').replace(/\.js$/, '.ts')
}
