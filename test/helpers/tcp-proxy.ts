// A TCP proxy a test puts between the app and PostgreSQL, to fail the database
// connection on purpose: cut every proxied connection (both sides closed), refuse
// new ones for a while (the listener is closed: ECONNREFUSED), or accept them and
// never forward a byte (the connect times out). Loopback only; the test stops it.
import net from 'node:net'
import type { TestDatabase } from './db.ts'
import { freePort } from './net.ts'

interface Teardown {
  teardown(fn: () => unknown): void
}

export type ProxyMode = 'forward' | 'refuse' | 'hang'

export class TcpProxy {
  readonly port: number
  private readonly target: { host: string; port: number }
  private readonly sockets = new Set<net.Socket>()
  private server: net.Server | undefined
  private mode: ProxyMode = 'forward'
  /** Connections accepted so far (whether forwarded or not). */
  accepted = 0
  /** Connections cut so far. */
  cut = 0

  private constructor(port: number, target: { host: string; port: number }) {
    this.port = port
    this.target = target
  }

  static async start(t: Teardown, target: { host: string; port: number }): Promise<TcpProxy> {
    const proxy = new TcpProxy(await freePort(), target)
    await proxy.listen()
    t.teardown(() => proxy.close())
    return proxy
  }

  /** A copy of db whose service connection (`url`) goes through this proxy; the superuser URL stays direct. */
  route(db: TestDatabase): TestDatabase {
    const url = new URL(db.url)
    url.hostname = '127.0.0.1'
    url.port = String(this.port)
    url.searchParams.delete('host')
    return { ...db, url: url.toString() }
  }

  /** Destroys every open proxied connection, both sides. Returns how many sockets. */
  cutAll(): number {
    const open = [...this.sockets]
    for (const socket of open) destroyHard(socket)
    this.sockets.clear()
    this.cut += open.length
    return open.length
  }

  /** forward (normal), refuse (nothing listens on the port), hang (accepted, never answered). */
  async setMode(mode: ProxyMode): Promise<void> {
    if (mode === this.mode) return
    const wasListening = this.mode !== 'refuse'
    this.mode = mode
    if (mode === 'refuse' && wasListening) await this.unlisten()
    else if (mode !== 'refuse' && !wasListening) await this.listen()
  }

  async close(): Promise<void> {
    this.cutAll()
    await this.unlisten()
  }

  private listen(): Promise<void> {
    const server = net.createServer((client) => {
      this.onConnection(client)
    })
    this.server = server
    return new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.port, '127.0.0.1', () => {
        server.removeListener('error', reject)
        resolve()
      })
    })
  }

  private unlisten(): Promise<void> {
    const server = this.server
    this.server = undefined
    if (server === undefined) return Promise.resolve()
    // close() releases the port at once; its callback waits for the open connections, which stay.
    server.close()
    return new Promise((resolve) => setImmediate(resolve))
  }

  private onConnection(client: net.Socket): void {
    this.accepted++
    this.track(client)
    client.on('error', () => undefined)
    if (this.mode === 'hang') return
    const upstream = net.connect(this.target.port, this.target.host)
    this.track(upstream)
    upstream.on('error', () => destroyHard(client))
    client.on('error', () => destroyHard(upstream))
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
    client.pipe(upstream)
    upstream.pipe(client)
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket)
    socket.on('close', () => this.sockets.delete(socket))
  }
}

function destroyHard(socket: net.Socket): void {
  // destroy(), not resetAndDestroy(): on Node 20 a reset socket now and then left the
  // event loop spinning after the test (100% CPU, the process never exits). The app's
  // side sees its connection end under a query ("Connection terminated unexpectedly").
  socket.destroy()
}

/** Host and port of a database URL (TCP only; the harness always gives 127.0.0.1 or localhost). */
export function tcpTarget(url: string): { host: string; port: number } {
  const u = new URL(url)
  const host = u.searchParams.get('host') ?? u.hostname
  if (host.startsWith('/')) throw new Error(`${url}: a Unix socket cannot be proxied`)
  return { host: host === 'localhost' || host === '' ? '127.0.0.1' : host.replace(/^\[|\]$/g, ''), port: Number(u.port || '5432') }
}
