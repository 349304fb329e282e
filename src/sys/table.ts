/**
 * Text tables: the one column aligner behind `be list` (src/cli/table.ts, with -H) and the hunt's
 * terminal report. Every column but the last is padded to its widest cell; the last is left as
 * it is, so a long free-text column does not widen the lines before it; trailing blanks go.
 */

/** ROWS (the header first, if any) as aligned lines, columns separated by GAP. */
export function alignColumns(rows: readonly (readonly string[])[], gap = ' '): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join(gap).trimEnd()).join('\n');
}
