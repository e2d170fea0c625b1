// A real SMTP server in-process (smtp-server) and a small MIME reader, for tests
// that check what mail the service really sends.
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'
import { SMTPServer } from 'smtp-server'

export interface Delivered {
  mailFrom: string
  rcptTo: string[]
  raw: string
}

/** A real SMTP server in-process, collecting what it receives. */
export async function smtpSink(t: Test) {
  const delivered: Delivered[] = []
  let connections = 0
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onConnect(_session, callback) {
      connections++
      callback()
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = []
      stream.on('data', (chunk: Buffer) => chunks.push(chunk))
      stream.on('end', () => {
        const mailFrom = session.envelope.mailFrom
        delivered.push({
          mailFrom: mailFrom === false ? '' : mailFrom.address,
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks).toString('utf8'),
        })
        callback()
      })
    },
  })
  server.listen(0, '127.0.0.1')
  await once(server.server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const { port } = server.server.address() as AddressInfo
  return { url: `smtp://127.0.0.1:${port}`, delivered, connections: () => connections }
}

// --- a minimal MIME reader: enough for what nodemailer writes (multipart/alternative, QP or base64) ---

function splitHead(raw: string): { headers: Map<string, string>; body: string } {
  const at = raw.indexOf('\r\n\r\n')
  const head = raw.slice(0, at).replace(/\r\n[ \t]+/g, ' ')
  const headers = new Map<string, string>()
  for (const line of head.split('\r\n')) {
    const colon = line.indexOf(':')
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
  }
  return { headers, body: raw.slice(at + 4) }
}

export function decode(body: string, encoding: string | undefined): string {
  switch (encoding?.toLowerCase()) {
    case 'quoted-printable': {
      // Escape literal % first so only the =XX escapes turn into bytes.
      const bytes = body
        .replace(/=\r\n/g, '')
        .replace(/%/g, '%25')
        .replace(/=([0-9A-F]{2})/gi, (_m, hex: string) => `%${hex}`)
      return decodeURIComponent(bytes)
    }
    case 'base64':
      return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8')
    default:
      return body
  }
}

export function readMail(raw: string) {
  const { headers, body } = splitHead(raw)
  const parts = new Map<string, string>()
  const boundary = /boundary="?([^";]+)"?/.exec(headers.get('content-type') ?? '')?.[1]
  const bodies = boundary === undefined ? [raw] : body.split(`--${boundary}`).slice(1, -1)
  for (const part of bodies) {
    const p = boundary === undefined ? { headers, body } : splitHead(part.replace(/^\r\n/, ''))
    const type = (p.headers.get('content-type') ?? '').split(';')[0] ?? ''
    parts.set(type, decode(p.body.replace(/\r\n$/, ''), p.headers.get('content-transfer-encoding')))
  }
  return { headers, text: parts.get('text/plain') ?? '', html: parts.get('text/html') ?? '' }
}

export const linksIn = (text: string) => text.match(/https?:\/\/\S+/g) ?? []
