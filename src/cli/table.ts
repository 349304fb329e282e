/** Aligned columns for people, or tab-separated rows without header for scripts (-H). */
export function formatTable(header: string[], rows: string[][], scripted: boolean): string {
  if (scripted) return rows.map((r) => r.join('\t')).join('\n');
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join(' ').trimEnd()).join('\n');
}
