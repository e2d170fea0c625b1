// A failure the operator can fix (wrong URL, missing file, refused in production,
// a corrupt backup): the CLI prints its message as one line and exits 1, never a
// stack trace.
export class OperatorError extends Error {
  override name = 'OperatorError'
}
