// README.md cannot drift: its commands are read from its code blocks and run where
// they can run here — the quick start (`npm start`, then its health check), the
// curl session (signup → verify → login → me → refresh → logout) and the psql
// role checks (against the server `npm start` runs, as README says they work) —
// and the ones that need Docker are checked against docker-compose.yml.
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import dotenv from 'dotenv'
import { parse } from 'shell-quote'
import t from 'tap'
import { PROJECT_ROOT, projectPath } from '../../src/paths.ts'
import { nodeArgs } from '../helpers/child.ts'
import { hostEnv, loadCompose, npmRunEntry, readEnvExample, service } from '../helpers/compose.ts'
import { freePort } from '../helpers/net.ts'

const README = readFileSync(projectPath('README.md'), 'utf8')
const example = readEnvExample()
const compose = loadCompose(example)

interface Block {
  lang: string
  heading: string
  text: string
}

/** README's fenced code blocks, each with the heading it sits under. */
function codeBlocks(md: string): Block[] {
  const blocks: Block[] = []
  let heading = ''
  for (const m of md.matchAll(/^#+ (.*)$|^```(\w*)\n([\s\S]*?)^```$/gm)) {
    if (m[1] !== undefined) heading = m[1]
    else blocks.push({ lang: m[2] ?? '', heading, text: m[3] ?? '' })
  }
  return blocks
}

/** The commands of shell text as argument lists, split as the shell does (shell-quote): per line and `&&`. */
function commands(text: string): string[][] {
  return text
    .replaceAll('\\\n', ' ')
    .split('\n')
    .flatMap((line) => {
      const split: string[][] = [[]]
      for (const token of parse(line)) {
        if (typeof token === 'string') split.at(-1)?.push(token)
        else if ('op' in token && token.op === '&&') split.push([])
        else if (!('comment' in token)) throw new Error(`README: shell syntax this test cannot run: ${line}`)
      }
      return split.filter((command) => command.length > 0)
    })
}

function blockUnder(heading: string, contains: string): Block {
  const found = codeBlocks(README).find((b) => b.heading === heading && b.text.includes(contains))
  if (found === undefined) throw new Error(`README: no code block under "${heading}" with "${contains}"`)
  return found
}

/** Runs a command the way the shell would after splitting it: no shell involved. */
function run([command = '', ...args]: string[], env: NodeJS.ProcessEnv) {
  const r = spawnSync(command, args, { env, encoding: 'utf8', cwd: PROJECT_ROOT })
  if (r.error) throw r.error
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

const composePorts = (name: string) => (service(compose, name).ports ?? []).map((p) => p.split(':').slice(-2))

t.test('quick start: the two commands', async (t) => {
  const block = blockUnder('Quick start', 'npm start')
  t.same(
    commands(block.text).map((c) => c.join(' ')),
    ['npm ci', 'npm start', 'npm ci', 'npm test'],
  )
  const scripts = (JSON.parse(readFileSync(projectPath('package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts
  t.equal(scripts.test, 'tap')
  t.same(npmRunEntry(['npm', 'start']), { entry: 'src/server.ts', args: [] })
})

t.test('docker commands name what docker-compose.yml defines', async (t) => {
  const quick = commands(blockUnder('With Docker', 'docker compose up').text).map((c) => c.join(' '))
  t.same(quick, ['cp .env.example .env', 'docker compose up -d', 'docker compose ps'])
  const services = Object.keys(compose.services)
  const containers = Object.values(compose.services).flatMap((s) => (s.container_name === undefined ? [] : [s.container_name]))
  const volumes = Object.keys(compose.volumes ?? {})
  const inline = [...README.matchAll(/`([^`\n]+)`/g)].map((m) => m[1] ?? '')
  const dockerBlocks = codeBlocks(README).filter((b) => b.lang === 'bash' && b.text.includes('docker '))
  const all = [...dockerBlocks.flatMap((b) => commands(b.text)).map((c) => c.join(' ')), ...inline]
  let checked = 0
  for (const c of all) {
    const dc = /^docker compose (logs|run|exec|restart|stop|start|up|down|ps|build)\b(.*)$/.exec(c)
    if (dc) {
      const operands = (dc[2] ?? '')
        .trim()
        .split(/\s+/)
        .filter((w) => w !== '' && !w.startsWith('-'))
      const target = operands[0]
      if (target !== undefined && !['logs', 'ps', 'up', 'down'].includes(target)) {
        t.ok(services.includes(target), `"${c}": service ${target} exists`)
        checked++
      }
    }
    const de = /^docker exec (?:-\w+ )*(\S+)/.exec(c)
    if (de?.[1] !== undefined) t.ok(containers.includes(de[1]), `"${c}": container ${de[1]} exists`)
  }
  t.ok(checked >= 4, 'the README names services')
  t.match(README, 'activity-postgres-db')
  t.ok(containers.includes('activity-postgres-db'))
  t.ok(volumes.includes('postgres-db-data') && README.includes('`postgres-db-data`'), 'the volume README names')
  t.same(composePorts('postgres-db'), [['5441', '5432']], 'README: host port 5441')
  t.ok(composePorts('mailpit').some(([h, c]) => h === '8025' && c === '8025') && README.includes('http://localhost:8025'), 'Mailpit UI')
  t.same(composePorts('auth-api'), [['8000', '8000']])
  t.equal(compose.networks?.['activity-network']?.name, 'activity-network')
})

t.test('connection strings (seed 003) match the stack', async (t) => {
  const block = blockUnder('With Docker', 'POSTGRES_HOST=')
  const sections = block.text.split(/\n(?=# )/)
  const read = (section: string) => dotenv.parse(section)
  const auth = read(sections.find((s) => s.startsWith('# auth-api')) ?? '')
  const write = read(sections.find((s) => s.startsWith('# write-api')) ?? '')
  const db = service(compose, 'postgres-db')
  for (const [name, conn, user] of [
    ['auth-api', auth, 'auth_api_user'],
    ['write-api', write, 'write_api_user'],
  ] as const) {
    t.equal(conn.POSTGRES_HOST, 'postgres-db', `${name}: the compose service`)
    t.ok(compose.services[conn.POSTGRES_HOST ?? ''] !== undefined)
    t.equal(conn.POSTGRES_PORT, '5432')
    t.equal(conn.POSTGRES_DB, db.environment?.POSTGRES_DB)
    t.equal(conn.POSTGRES_USER, user)
  }
  const apiUrl = new URL(service(compose, 'auth-api').environment?.DATABASE_URL ?? '')
  t.match(
    block.text,
    `DATABASE_URL=postgresql://auth_api_user:<AUTH_API_DB_PASSWORD>@${apiUrl.host}${apiUrl.pathname}`,
    'the URL auth-api gets',
  )
})

t.test('operations: every `npm run db --` command exists', async (t) => {
  const cli = readFileSync(projectPath('src/cli/db.ts'), 'utf8')
  const list = /const COMMANDS = \[([\s\S]*?)\]/.exec(cli)?.[1] ?? ''
  const known = [...list.matchAll(/'([\w-]+)'/g)].map((m) => m[1])
  t.ok(known.length > 5)
  const used = [...README.matchAll(/npm run db -- ([\w-]+)/g)].map((m) => m[1])
  t.ok(used.length > 10)
  for (const name of new Set(used)) t.ok(known.includes(name), `npm run db -- ${name ?? ''}`)
})

t.test('npm start: the health check, the curl session and the psql checks, as README writes them', async (t) => {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'activity-auth-readme-'))
  // As root the embedded server runs as `postgres`, which must traverse into it.
  await chmod(tmp, 0o711)
  const port = await freePort()
  const pgPort = await freePort()
  const env = {
    ...hostEnv(),
    DATA_DIR: tmp,
    PORT: String(port),
    EMBEDDED_PG_PORT: String(pgPort),
    LOG_LEVEL: 'info',
    NODE_ENV: 'development',
  }
  const { entry } = npmRunEntry(['npm', 'start'])
  const child = spawn(process.execPath, nodeArgs(entry), { env, cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr.on('data', (d: Buffer) => (output += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await exited
    await rm(tmp, { recursive: true, force: true })
  })
  const local = (command: string[]) => command.map((arg) => arg.replaceAll('localhost:8000', `localhost:${port}`))

  // --- "Check it: `curl .../api/health/ready` answers `{...}`"
  const check = /`(curl [^`]*\/api\/health\/ready)` answers\s+`([^`]+)`/.exec(README)
  t.ok(check, 'README has the health check')
  let ready = false
  for (const deadline = Date.now() + 90_000; !ready && Date.now() < deadline && child.exitCode === null;) {
    try {
      ready = (await fetch(`http://127.0.0.1:${port}/api/health/ready`)).status === 200
    } catch {
      // not listening yet
    }
    if (!ready) await new Promise((r) => setTimeout(r, 200))
  }
  if (!ready) {
    t.fail('npm start became ready', { output })
    return
  }
  const health = run(local(commands(check?.[1] ?? 'false')[0] ?? []), env)
  t.equal(health.code, 0)
  t.equal(health.stdout.trim(), check?.[2], 'the answer README promises')

  // --- the curl session, command by command, placeholders filled from earlier answers.
  await t.test('curl session', async (t) => {
    const block = blockUnder('A session with curl', 'curl')
    const session = commands(block.text)
    const routeOf = (command: string[]) => command.find((arg) => arg.startsWith('localhost:8000/'))?.slice('localhost:8000'.length)
    t.same(session.map(routeOf), [
      '/api/auth/signup',
      '/api/auth/verify-email',
      '/api/auth/login',
      '/api/auth/me',
      '/api/auth/refresh',
      '/api/auth/logout',
    ])
    const values: Record<string, string> = {}
    const loginShape = JSON.parse(/# → (\{"accessToken".*\})/.exec(block.text)?.[1] ?? '{}') as Record<string, unknown>
    for (const command of session) {
      const route = routeOf(command) ?? ''
      if (route === '/api/auth/verify-email') {
        // "copy the token from the link": the service log line with the link.
        for (const deadline = Date.now() + 30_000; values.token === undefined && Date.now() < deadline;) {
          const link = /"link":"[^"]*\/verify-email\?token=([^"]+)"/.exec(output)
          if (link?.[1] !== undefined) values.token = link[1]
          else await new Promise((r) => setTimeout(r, 100))
        }
        t.ok(values.token, 'the verification link is in the log', { output })
      }
      const filled = local(command).map((arg) => arg.replace(/<(\w+)>/g, (whole, name: string) => values[name] ?? whole))
      t.notMatch(filled.join(' '), /<\w+>/, `${route}: every placeholder known`)
      const r = run(filled, env)
      t.equal(r.code, 0, `${route}: curl exits 0`, { stderr: r.stderr })
      const body = r.stdout.trim()
      const json = body.startsWith('{') ? (JSON.parse(body) as Record<string, unknown>) : undefined
      switch (route) {
        case '/api/auth/signup':
          t.match(json, { message: String }, 'the 202 notice')
          break
        case '/api/auth/verify-email':
          t.same(json, { verified: true })
          break
        case '/api/auth/login':
          t.same(Object.keys(json ?? {}).sort(), Object.keys(loginShape).sort(), 'the shape README shows')
          t.match(json, { tokenType: loginShape.tokenType, expiresIn: loginShape.expiresIn })
          break
        case '/api/auth/me':
          t.match(json, { email: 'ada@example.com', isVerified: true })
          break
        case '/api/auth/refresh':
          t.match(json, { accessToken: String, refreshToken: String })
          t.not(json?.refreshToken, values.refreshToken, 'a new refresh token')
          break
        case '/api/auth/logout':
          t.equal(body, '204')
          break
      }
      for (const key of ['accessToken', 'refreshToken']) {
        if (typeof json?.[key] === 'string') values[key] = json[key]
      }
    }
  })

  // --- the psql checks, with -p 5441 (compose) → the embedded server (README: -p 5442).
  await t.test('psql checks', async (t) => {
    t.equal(example.get('EMBEDDED_PG_PORT'), '5442')
    t.match(README, 'with `-p 5442`')
    const secretPath = /password is in `\.data\/([^`]+)`/.exec(README)?.[1]
    t.equal(secretPath, 'postgres/postgres-superuser.secret')
    const superPassword = readFileSync(path.join(tmp, secretPath ?? 'missing'), 'utf8').trim()
    const passwords: Record<string, string> = {
      postgres: superPassword,
      auth_api_user: example.get('AUTH_API_DB_PASSWORD') ?? '',
      write_api_user: example.get('WRITE_API_DB_PASSWORD') ?? '',
      activity_readonly: example.get('READONLY_DB_PASSWORD') ?? '',
    }
    // README: "or put lines like localhost:5441:activitydb:<role>:<password> in ~/.pgpass".
    const pgpass = path.join(tmp, 'pgpass')
    await writeFile(
      pgpass,
      Object.entries(passwords)
        .map(([role, pw]) => `localhost:${pgPort}:activitydb:${role}:${pw}\n`)
        .join(''),
      { mode: 0o600 },
    )
    const psqlEnv = { ...hostEnv(), PGPASSFILE: pgpass }

    const block = blockUnder('Checking the database with psql', 'psql')
    const lines = commands(block.text)
    const roles = new Set<string>()
    const seed003 = [
      'sp_create_user',
      'sp_get_user_by_email',
      'sp_get_user_by_id',
      'sp_verify_user_email',
      'sp_update_last_login',
      'sp_update_password',
      'sp_deactivate_user',
      'sp_cleanup_unverified_users',
      'sp_save_refresh_token',
      'sp_revoke_refresh_token',
      'sp_get_valid_refresh_token',
    ]
    for (const command of lines) {
      const line = command.join(' ')
      const role = command[command.indexOf('-U') + 1] ?? '?'
      roles.add(role)
      t.match(line, /^psql -h localhost -p 5441 -U \w+ -d activitydb /, 'compose port and database')
      const what = command.filter((_arg, i) => command[i - 1] === '-c')
      const r = run(
        command.map((arg, i) => (command[i - 1] === '-p' ? String(pgPort) : arg)),
        psqlEnv,
      )
      const out = r.stdout
      const label = `${role}: ${what.join(' ')}`
      if (what.join() === '\\dt activity.*,\\df activity.*,\\dp activity.*') {
        t.equal(r.code, 0, `${label}: runs`, { stderr: r.stderr })
        for (const table of ['users', 'refresh_tokens', 'login_attempts', 'email_tokens', 'audit_logs']) {
          t.match(
            out,
            new RegExp(`activity \\| ${table}\\s+\\| table \\| activity_owner`),
            `${role} sees table ${table}, owned by activity_owner`,
          )
        }
        for (const sp of seed003) t.match(out, new RegExp(`activity \\| ${sp}\\s+\\|`), `${role} sees ${sp}`)
        t.notMatch(out, /auth_api_user=|write_api_user=/, `${role}: no privilege for the service roles on any relation`)
        // \dp rows: the privileges of a relation continue on lines with an empty name.
        const privileges = new Map<string, { type: string; acl: string }>()
        let current: string | undefined
        const dp = out.slice(out.lastIndexOf('Access privileges'))
        for (const row of dp.split('\n').filter((l) => l.includes('|'))) {
          const cells = row.split('|').map((c) => c.trim().replace(/\+$/, ''))
          if (cells[0] === 'activity') {
            current = cells[1] ?? ''
            privileges.set(current, { type: cells[2] ?? '', acl: cells[3] ?? '' })
          } else if (cells[0] === '' && current !== undefined) {
            const entry = privileges.get(current)
            if (entry !== undefined) entry.acl = `${entry.acl} ${cells[3] ?? ''}`.trim()
          }
        }
        const views = [...privileges]
          .filter(([, p]) => p.type === 'view')
          .map(([n]) => n)
          .sort()
        t.same(views, ['active_sessions', 'active_users', 'oauth_links', 'recent_audit_events'])
        for (const [name, p] of privileges) {
          if (p.type === 'view')
            t.equal(p.acl, 'activity_owner=arwdDxt/activity_owner activity_readonly=r/activity_owner', `${role}: view ${name}`)
          else t.equal(p.acl, '', `${role}: ${p.type} ${name} has no grant`)
        }
      } else if (what.join() === 'SELECT count(*) FROM activity.users') {
        if (role === 'postgres') {
          t.equal(r.code, 0, label)
          t.match(out, /count\s*\n-+\n\s*\d+/, `${label}: a number`)
        } else {
          t.not(r.code, 0, `${label}: refused`)
          t.match(r.stderr, 'ERROR:  permission denied for table users', label)
        }
      } else if (what.join() === 'SELECT * FROM activity.active_users LIMIT 5') {
        t.equal(r.code, 0, label, { stderr: r.stderr })
        t.match(out, 'ada@example.com', `${label}: the user of the curl session`)
        // has_password says whether there is one, never what it is.
        t.notMatch(out.split('\n')[0]?.replace('has_password', ''), /password|hash|token/, `${label}: no secret among the columns`)
      } else {
        t.fail(`README psql line with no expectation here: ${line}`)
      }
    }
    t.same([...roles].sort(), ['activity_readonly', 'auth_api_user', 'postgres', 'write_api_user'], 'as each role')
  })

  child.kill('SIGTERM')
  t.equal(await exited, 0, 'npm start stops cleanly')
})
