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

/**
 * POST /api/auth/refresh along the chains; the chains are made whole after each run.
 * Several urls (instances on one database): the connections are split between them, the
 * loads run at once and count as one sample (splitConnections, merged).
 */
export function refreshLoad(url: string | string[], chains: Chains, connections: number): Runner {
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
  const urls = typeof url === 'string' ? [url] : url
  return async (seconds) => {
    const samples = await Promise.all(
      splitConnections(urls, connections).map(([u, c]) => http({ url: u, connections: c, requests: [request] }, seconds)),
    )
    // Once, after every load has ended: a chain still in flight on any of them is replaced.
    await chains.endRun()
    return merged(samples)
  }
}

/** The connections spread over the urls, as evenly as they go. */
export function splitConnections(urls: string[], connections: number): [string, number][] {
  return urls.map((u, i) => [u, Math.floor(connections / urls.length) + (i < connections % urls.length ? 1 : 0)])
}

/**
 * Samples of loads that ran at the same time, as one: their rates add up; the
 * percentiles are the worst of them (conservative: the combined p99 is at most that).
 */
export function merged(samples: Sample[]): Sample {
  return {
    rps: samples.reduce((sum, s) => sum + s.rps, 0),
    p50: Math.max(...samples.map((s) => s.p50)),
    p99: Math.max(...samples.map((s) => s.p99)),
    failures: samples.reduce((sum, s) => sum + s.failures, 0),
    total: samples.reduce((sum, s) => sum + s.total, 0),
  }
}

/** Runners that run at the same time (one per instance), counted as one sample. */
export function together(runners: Runner[]): Runner {
  return async (seconds) => merged(await Promise.all(runners.map((run) => run(seconds))))
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
