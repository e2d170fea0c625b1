// A real SMTP server in the bench process that accepts and drops every message:
// routes that send mail (signup, forgot-password, resend-verification) do their
// real mail work against it instead of failing on a dead port.
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { SMTPServer } from 'smtp-server'

export interface SmtpSink {
  url: string
  /** Messages accepted so far. */
  delivered: () => number
  close: () => Promise<void>
}

export async function startSmtpSink(): Promise<SmtpSink> {
  let delivered = 0
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, _session, callback) {
      stream.on('data', () => undefined)
      stream.on('end', () => {
        delivered++
        callback()
      })
    },
  })
  server.listen(0, '127.0.0.1')
  await once(server.server, 'listening')
  const { port } = server.server.address() as AddressInfo
  return {
    url: `smtp://127.0.0.1:${port}`,
    delivered: () => delivered,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
