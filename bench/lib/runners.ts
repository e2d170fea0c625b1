// The loads the sections compare: each a Runner (bench/lib/load.ts) that drives
// one kind of request for a given number of seconds.
import { randomInt } from 'node:crypto'
import type autocannon from 'autocannon'
import type { Chains } from './chains.ts'
import { http, JSON_HEADERS, type Runner, type Sample } from './load.ts'
import { ask, type Child } from './proc.ts'
import { BENCH_PASSWORD, benchEmail } from './seed.ts'

/** autocannon's per-request context. */
export type Ctx = Record<string, unknown>

/** POST /api/auth/refresh along the chains; the chains are made whole after each run. */
export function refreshLoad(url: string, chains: Chains, connections: number): Runner {
  const request: autocannon.Request = {
    method: 'POST',
    path: '/api/auth/refresh',
    headers: JSON_HEADERS,
    setupRequest: (req, context) => {
      const chain = chains.checkout()
      ;(context as Ctx).chain = chain
      return { ...req, body: JSON.stringify({ refreshToken: chains.tokens[chain] }) }
    },
    onResponse: (status, body, context) => chains.checkin((context as Ctx).chain as number, status, body),
  }
  return async (seconds) => {
    const sample = await http({ url, connections, requests: [request] }, seconds)
    await chains.endRun()
    return sample
  }
}

/** GET path with a Bearer token, one token per connection. */
export function bearerLoad(url: string, path: string, tokens: string[], connections: number): Runner {
  let next = 0
  const request: autocannon.Request = {
    method: 'GET',
    path,
    setupRequest: (req, context) => {
      const ctx = context as Ctx
      ctx.token ??= tokens[next++ % tokens.length]
      return { ...req, headers: { authorization: `Bearer ${ctx.token as string}` } }
    },
  }
  return (seconds) => http({ url, connections, requests: [request] }, seconds)
}

export function getLoad(url: string, path: string, connections: number, overallRate?: number): Runner {
  return (seconds) =>
    http({ url, connections, requests: [{ method: 'GET', path }], ...(overallRate === undefined ? {} : { overallRate }) }, seconds)
}

/** POST path with a random seeded user's email and the bench password. */
export function loginLoad(url: string, path: string, users: number, connections: number, headers: Record<string, string> = {}): Runner {
  const body = () => JSON.stringify({ email: benchEmail(randomInt(users)), password: BENCH_PASSWORD })
  const request: autocannon.Request = {
    method: 'POST',
    path,
    headers: { ...JSON_HEADERS, ...headers },
    setupRequest: (req) => ({ ...req, body: body() }),
  }
  // One more login, answered only once the abandoned ones ahead of it in the thread pool are done.
  const settle = async () => {
    const res = await fetch(`${url}${path}`, { method: 'POST', headers: { ...JSON_HEADERS, ...headers }, body: body() })
    await res.arrayBuffer()
  }
  return (seconds) => http({ url, connections, requests: [request], settle }, seconds)
}

/** A ceiling measured by the ceiling worker (bench/servers/ceiling-worker.ts). */
export function ceiling(worker: Child, cmd: 'argon2' | 'rotate', concurrency: number): Runner {
  return (seconds) => ask<Sample>(worker, { cmd, seconds, concurrency })
}
