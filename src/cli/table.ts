import { alignColumns } from '../sys/table.js';

/** Aligned columns for people, or tab-separated rows without header for scripts (-H). */
export function formatTable(header: string[], rows: string[][], scripted: boolean): string {
  if (scripted) return rows.map((r) => r.join('\t')).join('\n');
  return alignColumns([header, ...rows]);
}
