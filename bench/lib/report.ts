// The bench's rows: each figure as a ratio against its ceiling (or only reported),
// printed as one table on stdout and written to the JSON file by bench/run.ts.
import type { Summary } from './load.ts'
import type { Section } from './options.ts'

export interface Row {
  section: Section
  figure: string
  /** Our figure (req/s, ms, MB, s, or a ratio's numerator). */
  ours: number
  /** The ceiling, the peer, or the baseline; null when the row is only reported. */
  reference: number | null
  /** ours ÷ reference (growth: large ÷ small), null when only reported. */
  ratio: number | null
  unit: string
  target: string
  /** null: reported, no target. */
  met: boolean | null
  note: string
  /** Failed requests (non-2xx, errors, timeouts) in the runs behind this row. */
  failures: number
}

/** Every row of the run, in the table's order. */
export const rows: Row[] = []

export function ratioRow(
  section: Section,
  figure: string,
  ours: number,
  reference: number,
  unit: string,
  /** within: |ratio − 1| at most this (a figure that should read 1.00). */
  target: { atLeast?: number; atMost?: number; within?: number },
  note = '',
  failures = 0,
): void {
  const computed = ours / reference
  // A figure with no successful request (a broken run) must not read as a ratio.
  const ratio = Number.isFinite(computed) && reference > 0 ? computed : null
  const met =
    ratio === null
      ? false
      : target.atLeast !== undefined
        ? ratio >= target.atLeast
        : target.atMost !== undefined
          ? ratio <= target.atMost
          : target.within !== undefined
            ? Math.abs(ratio - 1) <= target.within
            : null
  if (ratio === null) note = `no valid measurement ${note}`.trim()
  const text =
    target.atLeast !== undefined
      ? `≥ ${target.atLeast.toFixed(2)}`
      : target.atMost !== undefined
        ? `≤ ${target.atMost.toFixed(2)}`
        : target.within !== undefined
          ? `1.00 ± ${target.within.toFixed(2)}`
          : '—'
  rows.push({ section, figure, ours, reference, ratio, unit, target: text, met, note, failures })
}

export function reportRow(section: Section, figure: string, ours: number, unit: string, note = '', limit?: number, failures = 0): void {
  rows.push({
    section,
    figure,
    ours,
    reference: limit ?? null,
    ratio: null,
    unit,
    target: limit === undefined ? 'reported' : `≤ ${limit} ${unit}`,
    met: limit === undefined ? null : ours <= limit,
    note,
    failures,
  })
}

export const fmt = (n: number | null, digits = 1): string => {
  if (n === null) return '—'
  if (!Number.isFinite(n)) return String(n)
  return Math.abs(n) >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(digits)
}

/** Failed requests behind these summaries. */
export function count(...summaries: Summary[]): number {
  return summaries.reduce((sum, s) => sum + s.failures, 0)
}

export function failuresNote(...summaries: Summary[]): string {
  const failures = count(...summaries)
  return failures > 0 ? `${failures} failed requests` : ''
}

export function table(): string {
  const header = ['figure', 'ours', 'ceiling / peer / base', 'ratio', 'target', 'met', 'note']
  const lines = rows.map((r) => [
    r.figure,
    `${fmt(r.ours)} ${r.unit}`,
    r.reference === null ? '—' : `${fmt(r.reference)} ${r.unit}`,
    r.ratio === null ? '—' : r.ratio.toFixed(2),
    r.target,
    r.met === null ? '' : r.met ? 'yes' : 'NO',
    r.note,
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)))
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(line)].join('\n')
}
