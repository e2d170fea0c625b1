// Child processes of the bench: each server (ours, the bare ceiling, the peer)
// and the ceiling worker runs pinned to the server core, the load generator
// (this process) to the other one, so the two never steal each other's CPU.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import os from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { projectPath } from '../../src/paths.ts'

export const LOAD_CORE = '0'
export const SERVER_CORE = '1'

let pinning: boolean | undefined

/** taskset present and at least two cores: pin; otherwise run unpinned and say so. */
export function canPin(): boolean {
  if (pinning === undefined) {
    const probe = spawnSync('taskset', ['-c', SERVER_CORE, 'true'])
    pinning = probe.status === 0 && (process.env.BENCH_NO_PIN ?? '') === ''
  }
  return pinning
}

/** Pin this process (all its threads) to the load generator's core. */
export function pinSelf(): void {
  if (!canPin()) return
  spawnSync('taskset', ['-a', '-p', '-c', LOAD_CORE, String(process.pid)])
}

/**
 * BENCH_PG_CORE=load: the bench's own database server shares the load generator's
 * core, so the server core is the measured process's alone (as in a deployment where
 * PostgreSQL has a host of its own). Default: PostgreSQL runs where the kernel puts it.
 */
export function pinPostgresToLoadCore(): boolean {
  return canPin() && process.env.BENCH_PG_CORE === 'load'
}

/** Pin processes (a postmaster and its children so far; later backends inherit it) to the load core. */
export function pinToLoadCore(pids: number[]): void {
  for (const pid of pids) spawnSync('taskset', ['-p', '-c', LOAD_CORE, String(pid)])
}

/** Node arguments to run a TypeScript entry the way this process runs (tsx, or tap's loader). */
export function nodeArgs(entry: string, ...args: string[]): string[] {
  return [...process.execArgv, entry.startsWith('/') ? entry : projectPath(entry), ...args]
}

export interface Child {
  proc: ChildProcess
  pid: number
  /** Last lines of stderr (and stdout when captured), for error messages. */
  tail(): string
  stop(): Promise<void>
}

export interface SpawnOptions {
  env: Record<string, string | undefined>
  /** 'server' pins to the server core, 'all' gives back every core (children inherit this process's pinning). */
  core?: 'server' | 'all'
  ipc?: boolean
  /** Keep stdout (default: discarded, as a service's request log would be shipped away). */
  captureStdout?: boolean
  cwd?: string
  command?: string
}

export function startChild(args: string[], opts: SpawnOptions): Child {
  const command = opts.command ?? process.execPath
  const cores = (opts.core ?? 'server') === 'server' ? SERVER_CORE : `0-${os.cpus().length - 1}`
  const [file, argv] = canPin() ? ['taskset', ['-c', cores, command, ...args]] : [command, args]
  const proc = spawn(file, argv, {
    env: opts.env,
    cwd: opts.cwd ?? projectPath(),
    stdio: ['ignore', opts.captureStdout === true ? 'pipe' : 'ignore', 'pipe', ...(opts.ipc === true ? (['ipc'] as const) : [])],
  })
  let tail = ''
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-4000)
  }
  proc.stderr?.on('data', keep)
  proc.stdout?.on('data', keep)
  const exited = once(proc, 'exit')
  return {
    proc,
    pid: proc.pid ?? -1,
    tail: () => tail,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return
      proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000)
      await exited
      clearTimeout(timer)
    },
  }
}

/** Poll url until it answers 200; throws with the child's output when it exits or times out. */
export async function waitForHttp(child: Child, url: string, timeoutMs = 60_000): Promise<number> {
  const started = performance.now()
  for (;;) {
    if (child.proc.exitCode !== null) throw new Error(`child exited (${child.proc.exitCode}) before ${url} answered:\n${child.tail()}`)
    try {
      const res = await fetch(url)
      await res.arrayBuffer()
      if (res.status === 200) return (performance.now() - started) / 1000
    } catch {
      // not listening yet
    }
    if (performance.now() - started > timeoutMs) throw new Error(`${url} did not answer within ${timeoutMs} ms:\n${child.tail()}`)
    await sleep(25)
  }
}

/** Resident set size and its peak, in MB, from /proc. */
export function memoryOf(pid: number): { rssMb: number; peakMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN)
  return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 }
}

/** One request/response over the IPC channel of a child started with ipc: true. */
export async function ask<T>(child: Child, message: Record<string, unknown>): Promise<T> {
  const proc = child.proc
  return new Promise((resolve, reject) => {
    const onMessage = (reply: { ok: boolean; value?: T; error?: string }) => {
      cleanup()
      if (reply.ok) resolve(reply.value as T)
      else reject(new Error(reply.error ?? 'child failed'))
    }
    const onExit = () => {
      cleanup()
      reject(new Error(`child exited:\n${child.tail()}`))
    }
    const cleanup = () => {
      proc.off('message', onMessage)
      proc.off('exit', onExit)
    }
    proc.on('message', onMessage)
    proc.on('exit', onExit)
    proc.send(message)
  })
}
