// Which TCP port the embedded server listens on. An explicit port is taken as
// given (and refused when taken); otherwise 5442 when free, else any free port,
// remembered beside the cluster so restarts, `npm run db` and psql keep finding it,
// and a second checkout on the same machine does not collide with the first.
import { readFile, writeFile } from 'node:fs/promises'
import net from 'node:net'

export const EMBEDDED_HOST = '127.0.0.1'
export const DEFAULT_EMBEDDED_PORT = 5442

/** An explicitly requested port that another program already listens on. */
export class PortInUseError extends Error {
  override name = 'PortInUseError'
  constructor(readonly port: number) {
    super(`port ${port} on ${EMBEDDED_HOST} is already in use`)
  }
}

/** Whether we could listen on host:port now (any failure to bind counts as "not free"). */
export async function portIsFree(port: number, host = EMBEDDED_HOST): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer()
    server.once('error', () => resolve(false))
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)))
  })
}

async function anyFreePort(host = EMBEDDED_HOST): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen({ port: 0, host, exclusive: true }, () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

async function rememberedPort(file: string): Promise<number | undefined> {
  const text = await readFile(file, 'utf8').catch(() => '')
  const port = Number.parseInt(text.trim(), 10)
  return Number.isInteger(port) && port > 0 && port <= 65535 ? port : undefined
}

export async function rememberPort(file: string, port: number): Promise<void> {
  await writeFile(file, `${port}\n`, { mode: 0o644 })
}

export interface PortChoice {
  port: number
  /** Why the port is not the expected one, for the start log. */
  note?: string
}

export interface PortRequest {
  /** Set explicitly (EMBEDDED_PG_PORT): this port or an error. */
  explicit?: number | undefined
  /** Where the port of an earlier start is remembered. */
  file: string
  /** Ports just found taken (a start that lost a race for its port). */
  avoid?: number[]
}

export async function choosePort(request: PortRequest): Promise<PortChoice> {
  const avoid = new Set(request.avoid ?? [])
  if (request.explicit !== undefined) {
    if (avoid.has(request.explicit) || !(await portIsFree(request.explicit))) throw new PortInUseError(request.explicit)
    return { port: request.explicit }
  }
  const usable = async (port: number) => !avoid.has(port) && (await portIsFree(port))
  const remembered = await rememberedPort(request.file)
  if (remembered !== undefined) {
    if (await usable(remembered)) return { port: remembered }
    const port = (await usable(DEFAULT_EMBEDDED_PORT)) ? DEFAULT_EMBEDDED_PORT : await anyFreePort()
    return { port, note: `port ${remembered} (remembered in ${request.file}) is in use by another program: using ${port} instead` }
  }
  if (await usable(DEFAULT_EMBEDDED_PORT)) return { port: DEFAULT_EMBEDDED_PORT }
  const port = await anyFreePort()
  return { port, note: `port ${DEFAULT_EMBEDDED_PORT} is in use by another program: using ${port} (remembered in ${request.file})` }
}
