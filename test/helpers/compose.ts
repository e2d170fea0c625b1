// Reading the packaging files the way Docker does, without Docker: .env.example as
// compose reads a .env, docker-compose.yml with compose's ${VAR} interpolation and
// YAML merge keys, and the runtime stage of the Dockerfile (ENV, CMD).
import { readFileSync } from 'node:fs'
import YAML from 'yaml'
import { EnvSchema } from '../../src/config.ts'
import { projectPath } from '../../src/paths.ts'

/** The test runner's environment without anything the service, the CLI or libpq would read. */
export function hostEnv(): NodeJS.ProcessEnv {
  const drop = new Set([...Object.keys(EnvSchema.properties), 'TEST_DATABASE_URL'])
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !drop.has(key) && !key.startsWith('PG')))
}

/** KEY=value lines of .env.example, in order (comments and blank lines skipped). */
export function readEnvExample(file = projectPath('.env.example')): Map<string, string> {
  const vars = new Map<string, string>()
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const trimmed = line.trim()
    if (trimmed === '' || trimmed.startsWith('#')) continue
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(trimmed)
    if (match === null) throw new Error(`.env.example: not KEY=value: ${line}`)
    const [, key, value] = match as unknown as [string, string, string]
    if (vars.has(key)) throw new Error(`.env.example: ${key} appears twice`)
    vars.set(key, value)
  }
  return vars
}

export interface VariableUse {
  name: string
  /** `:-` / `-` default as written, or undefined for a bare ${VAR}. */
  fallback: string | undefined
  /** True for `:-` (default also when set but empty). */
  emptyMeansUnset: boolean
}

/**
 * compose interpolation: $$ is a literal $, ${VAR}, ${VAR:-default}, ${VAR-default},
 * ${VAR:?message}, ${VAR?message} and $VAR. Every use is reported to `seen`.
 */
export function interpolate(text: string, env: ReadonlyMap<string, string>, seen?: VariableUse[]): string {
  let out = ''
  for (let i = 0; i < text.length; i++) {
    const ch = text.charAt(i)
    if (ch !== '$') {
      out += ch
      continue
    }
    const next = text[i + 1]
    if (next === '$') {
      out += '$'
      i++
      continue
    }
    if (next === '{') {
      // Find the matching brace (defaults may hold nested ${...}).
      let depth = 0
      let end = i + 1
      for (; end < text.length; end++) {
        if (text[end] === '{') depth++
        else if (text[end] === '}' && --depth === 0) break
      }
      if (end >= text.length) throw new Error(`unterminated \${ in: ${text}`)
      const body = text.slice(i + 2, end)
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([\s\S]*))?$/.exec(body)
      if (m === null) throw new Error(`unsupported interpolation \${${body}}`)
      const [, name = '', colon, op, arg] = m
      const value = env.get(name)
      const unset = value === undefined || (colon === ':' && value === '')
      seen?.push({ name, fallback: op === '-' ? arg : undefined, emptyMeansUnset: colon === ':' })
      if (op === '-') out += unset ? interpolate(arg ?? '', env, seen) : value
      else if (op === '?') {
        if (unset) throw new Error(`required variable ${name}: ${arg ?? ''}`)
        out += value
      } else out += value ?? ''
      i = end
      continue
    }
    const bare = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i + 1))
    if (bare !== null) {
      seen?.push({ name: bare[0], fallback: undefined, emptyMeansUnset: false })
      out += env.get(bare[0]) ?? ''
      i += bare[0].length
      continue
    }
    out += ch
  }
  return out
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

export const COMPOSE_FILE = projectPath('docker-compose.yml')

/** The raw YAML text (merge keys resolved), before interpolation. */
export function readComposeRaw(): unknown {
  return YAML.parse(readFileSync(COMPOSE_FILE, 'utf8'), { merge: true }) as unknown
}

/** docker-compose.yml as compose resolves it with `env` as the .env file. */
export function loadCompose(env: ReadonlyMap<string, string> = readEnvExample(), seen?: VariableUse[]): ComposeFile {
  return mapStrings(readComposeRaw(), (s) => interpolate(s, env, seen)) as ComposeFile
}

export function service(compose: ComposeFile, name: string): ComposeService {
  const s = compose.services[name]
  if (s === undefined) throw new Error(`docker-compose.yml has no service ${name}`)
  return s
}

export interface DockerfileStage {
  name: string | undefined
  from: string
  env: Map<string, string>
  cmd: string[] | undefined
  user: string | undefined
  healthcheck: string | undefined
  lines: string[]
}

/** Dockerfile instructions per stage (line continuations joined). */
export function readDockerfile(file = projectPath('Dockerfile')): { args: Map<string, string>; stages: DockerfileStage[] } {
  const logical: string[] = []
  let current = ''
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trimEnd()
    if (current === '' && (line.trim() === '' || line.trim().startsWith('#'))) continue
    if (line.trim().startsWith('#')) continue
    if (line.endsWith('\\')) {
      current += line.slice(0, -1) + ' '
      continue
    }
    logical.push((current + line).trim())
    current = ''
  }
  const args = new Map<string, string>()
  const stages: DockerfileStage[] = []
  for (const line of logical) {
    const [instruction = '', ...restParts] = line.split(/\s+/)
    const rest = line.slice(instruction.length).trim()
    const upper = instruction.toUpperCase()
    const stage = stages.at(-1)
    if (upper === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest)
      const from = (m?.[1] ?? rest).replace(/\$\{(\w+)\}/g, (_w, n: string) => args.get(n) ?? '')
      stages.push({ name: m?.[2], from, env: new Map(), cmd: undefined, user: undefined, healthcheck: undefined, lines: [] })
      continue
    }
    if (stage === undefined) {
      if (upper === 'ARG') {
        const [k = '', v = ''] = (restParts[0] ?? '').split('=')
        args.set(k, v)
      }
      continue
    }
    stage.lines.push(line)
    if (upper === 'ENV') {
      for (const m of rest.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("([^"]*)"|\S*)/g)) {
        stage.env.set(m[1] ?? '', m[3] ?? m[2] ?? '')
      }
    } else if (upper === 'CMD') {
      stage.cmd = rest.startsWith('[') ? (JSON.parse(rest) as string[]) : ['/bin/sh', '-c', rest]
    } else if (upper === 'USER') {
      stage.user = rest
    } else if (upper === 'HEALTHCHECK') {
      stage.healthcheck = rest
    }
  }
  return { args, stages }
}

/** The stage the image runs: the last one. */
export function runtimeStage(): DockerfileStage {
  const stage = readDockerfile().stages.at(-1)
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

/** `node --import tsx <entry> args` (the image's CMD) → entry and arguments. */
export function nodeTsxEntry(command: readonly string[]): { entry: string; args: string[] } {
  const [node, flag, loader, entry, ...args] = command
  if (node !== 'node' || flag !== '--import' || loader !== 'tsx' || entry === undefined) {
    throw new Error(`not "node --import tsx <entry>": ${command.join(' ')}`)
  }
  return { entry, args }
}
