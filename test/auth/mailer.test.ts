import t from 'tap'
import { freePort } from '../helpers/net.ts'
import { decode, linksIn, readMail, smtpSink } from '../helpers/smtp.ts'
import { createMailer } from '../../src/auth/mailer.ts'
import { escapeHtml } from '../../src/auth/mail-templates.ts'

const FROM = 'Activity <no-reply@activity.test>'
// Characters a URL must encode, so the test notices a token pasted in raw.
const TOKEN = 'tok+/=&?en with space_ü'

function recordingLogger() {
  const calls: { obj: Record<string, unknown>; msg: string }[] = []
  return { calls, info: (obj: object, msg: string) => calls.push({ obj: obj as Record<string, unknown>, msg }) }
}

// ---

t.test('the decoder used below reads quoted-printable the way mail clients do', async (t) => {
  t.equal(decode('a=3Db=\r\nc 100% =C3=BC ?token=3Dx%2B', 'quoted-printable'), 'a=bc 100% ü ?token=x%2B')
})

t.test('verification and reset mails reach the recipient with a working, exact link', async (t) => {
  const smtp = await smtpSink(t)
  const log = recordingLogger()
  const mailer = createMailer({ smtpUrl: smtp.url, from: FROM, appUrl: 'https://app.example.test/', logger: log })
  t.teardown(() => mailer.close())

  await mailer.sendVerification('alice@example.test', TOKEN)
  await mailer.sendPasswordReset('bob@example.test', TOKEN)
  t.equal(smtp.delivered.length, 2)

  const cases = [
    { i: 0, to: 'alice@example.test', subject: 'Confirm your email address', path: '/verify-email' },
    { i: 1, to: 'bob@example.test', subject: 'Reset your password', path: '/reset-password' },
  ]
  for (const c of cases) {
    const got = smtp.delivered[c.i]
    if (!got) throw new Error(`mail ${c.i} missing`)
    t.same(got.rcptTo, [c.to], 'envelope recipient')
    t.equal(got.mailFrom, 'no-reply@activity.test', 'envelope sender')
    const mail = readMail(got.raw)
    t.equal(mail.headers.get('to'), c.to)
    t.equal(mail.headers.get('from'), FROM)
    t.equal(mail.headers.get('subject'), c.subject)

    const links = linksIn(mail.text)
    t.equal(links.length, 1, 'exactly one link in the text')
    const link = links[0] ?? ''
    t.equal(link, `https://app.example.test${c.path}?token=${encodeURIComponent(TOKEN)}`, 'no double slash, token URL-encoded')
    const url = new URL(link)
    t.equal(url.pathname, c.path)
    t.equal(url.searchParams.get('token'), TOKEN, 'the page gets back the very token')
    t.ok(mail.html.includes(`href="${escapeHtml(link)}"`), 'the HTML part links to the same place')
  }
  t.notOk(JSON.stringify(log.calls).includes(encodeURIComponent(TOKEN)), 'a sent link never goes to the log')
  t.equal(log.calls.length, 2, 'one log line per mail sent')
})

t.test('the account-exists notice goes to the owner without any token', async (t) => {
  const smtp = await smtpSink(t)
  const mailer = createMailer({ smtpUrl: smtp.url, from: FROM, appUrl: 'https://app.example.test/auth', logger: recordingLogger() })
  t.teardown(() => mailer.close())

  await mailer.sendAccountExists('carol@example.test')
  const got = smtp.delivered[0]
  if (!got) throw new Error('no mail delivered')
  t.same(got.rcptTo, ['carol@example.test'])
  const mail = readMail(got.raw)
  t.equal(mail.headers.get('from'), FROM)
  t.equal(mail.headers.get('subject'), 'Someone tried to sign up with your email address')
  t.match(mail.text, /already have (one|an account)/)
  t.match(mail.text, /Forgot password/)
  t.same(linksIn(mail.text), ['https://app.example.test/auth'])
  t.notMatch(mail.text, /token/i)
})

t.test('an SMTP failure reaches the caller (who logs it) instead of vanishing', async (t) => {
  const port = await freePort()

  const mailer = createMailer({
    smtpUrl: `smtp://127.0.0.1:${port}`,
    from: FROM,
    appUrl: 'https://app.example.test',
    logger: recordingLogger(),
  })
  t.teardown(() => mailer.close())
  await t.rejects(mailer.sendVerification('dave@example.test', TOKEN))
})

t.test('without SMTP_URL nothing is sent and the link is logged for the developer', async (t) => {
  const smtp = await smtpSink(t)
  const log = recordingLogger()
  const mailer = createMailer({ smtpUrl: undefined, from: FROM, appUrl: 'http://localhost:8000', logger: log })

  await mailer.sendVerification('erin@example.test', TOKEN)
  await mailer.sendPasswordReset('erin@example.test', 'reset-token')
  await mailer.sendAccountExists('erin@example.test')
  await mailer.close()

  t.equal(smtp.connections(), 0, 'no SMTP connection attempted')
  t.equal(log.calls.length, 3, 'one line per mail')
  t.same(
    log.calls.map((c) => c.obj),
    [
      {
        to: 'erin@example.test',
        subject: 'Confirm your email address',
        link: `http://localhost:8000/verify-email?token=${encodeURIComponent(TOKEN)}`,
      },
      { to: 'erin@example.test', subject: 'Reset your password', link: 'http://localhost:8000/reset-password?token=reset-token' },
      { to: 'erin@example.test', subject: 'Someone tried to sign up with your email address', link: 'http://localhost:8000' },
    ],
  )
})

t.test('text inserted into the HTML body is escaped', async (t) => {
  t.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;')
})

t.test('production has no log transport: without SMTP_URL the mailer refuses to exist', async (t) => {
  const log = recordingLogger()
  t.throws(
    () => createMailer({ smtpUrl: undefined, from: FROM, appUrl: 'https://app.example.test', production: true, logger: log }),
    /SMTP_URL is required in production/,
  )
  t.equal(log.calls.length, 0, 'nothing logged')

  const smtp = await smtpSink(t)
  const mailer = createMailer({ smtpUrl: smtp.url, from: FROM, appUrl: 'https://app.example.test', production: true, logger: log })
  t.teardown(() => mailer.close())
  await mailer.sendPasswordReset('frank@example.test', TOKEN)
  t.equal(smtp.delivered.length, 1, 'with SMTP the mail goes out')
  t.notOk(JSON.stringify(log.calls).includes(encodeURIComponent(TOKEN)), 'and the link stays out of the log')
})
