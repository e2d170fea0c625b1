// OpenAPI descriptions of the link pages (src/routes/pages), built with the shared
// response helpers, so problems refer to the one Problem schema. The query and body
// schemas only document: the routes take whatever a browser sends (attachValidation)
// and answer a missing or odd token with a page, never with a JSON 400. So they stay
// plain JSON Schema, not TypeBox: no handler may trust a type derived from them.
import { htmlResponses, responses, text } from './responses.ts'

const tags = ['pages']
const security: never[] = []

const TokenQuery = {
  type: 'object',
  properties: { token: { type: 'string', description: 'the one-time token of the mail link' } },
} as const

const FORM = ['application/x-www-form-urlencoded']

// The GET pages never reach the database (prefetch-safe); the forms do.
const pageExposure = { rateLimited: true, pages: { 400: 'the link is incomplete or damaged' } }
const formExposure = { body: true, rateLimited: true, database: true }

export const verifyPageSchema = {
  summary: 'The page a verification mail link opens',
  description:
    'A page with one button that posts the token to POST /verify-email. Opening it changes nothing (mail scanners prefetch links).',
  operationId: 'getVerifyEmailPage',
  tags,
  security,
  querystring: TokenQuery,
  response: htmlResponses('The page with the confirm button', pageExposure),
}

export const verifyFormSchema = {
  summary: "Confirm an email address (the verification page's form)",
  description: 'Spends the verification token and answers with a result page. Pressing again after success is success.',
  operationId: 'confirmEmailForm',
  tags,
  security,
  consumes: FORM,
  body: { type: 'object', properties: { token: { type: 'string' } }, required: ['token'] },
  response: htmlResponses('Success page: the address is confirmed', {
    ...formExposure,
    pages: { 400: 'the link is incomplete, invalid, expired or used, with what to do next' },
  }),
}

export const emailChangePageSchema = {
  summary: 'The page a change-of-email mail link opens',
  description:
    'A page with one button that posts the token to POST /confirm-email-change. Opening it changes nothing (mail scanners prefetch links).',
  operationId: 'getConfirmEmailChangePage',
  tags,
  security,
  querystring: TokenQuery,
  response: htmlResponses('The page with the confirm button', pageExposure),
}

export const emailChangeFormSchema = {
  summary: "Confirm a change of email (the change page's form)",
  description: 'Spends the change-of-email token, moves the account to the new address and ends every session; answers with a result page.',
  operationId: 'confirmEmailChangeForm',
  tags,
  security,
  consumes: FORM,
  body: { type: 'object', properties: { token: { type: 'string' } }, required: ['token'] },
  response: htmlResponses('Success page: the account has the new address', {
    ...formExposure,
    pages: {
      400: 'the link is incomplete, invalid, expired or used, with what to do next',
      409: 'another account took the address meanwhile',
    },
  }),
}

export const resetPageSchema = {
  summary: 'The page a password reset mail link opens',
  description: 'A form for the new password (the rules shown up front) that posts to POST /reset-password. Opening it changes nothing.',
  operationId: 'getResetPasswordPage',
  tags,
  security,
  querystring: TokenQuery,
  response: htmlResponses('The page with the new-password form', pageExposure),
}

export const resetFormSchema = {
  summary: "Set a new password (the reset page's form)",
  description:
    'Spends the reset token, sets the password and ends every session; answers with a result page. The same password sent again ' +
    'with the same token minutes later is success; another one is an error.',
  operationId: 'resetPasswordForm',
  tags,
  security,
  consumes: FORM,
  body: {
    type: 'object',
    properties: { token: { type: 'string' }, newPassword: { type: 'string' } },
    required: ['token', 'newPassword'],
  },
  response: htmlResponses('Success page: the password is changed', {
    ...formExposure,
    pages: {
      400: 'the form again with why the password was refused, or an error page for an unusable link',
      503: 'the form again: the breached-password check could not answer',
    },
  }),
}

export const scriptSchema = {
  summary: "The link pages' script",
  description: 'Progressive enhancement: sends each form once (the pages work without it).',
  operationId: 'getAuthPagesScript',
  tags,
  security,
  response: responses({ 200: text('text/javascript', 'JavaScript') }, { rateLimited: true }),
}

export const stylesSchema = {
  summary: "The link pages' stylesheet",
  operationId: 'getAuthPagesStylesheet',
  tags,
  security,
  response: responses({ 200: text('text/css', 'CSS') }, { rateLimited: true }),
}
