// src/sys/table.ts: the one column aligner (be list through src/cli/table.ts, the hunt report).
import { describe, expect, it } from 'vitest';
import { alignColumns } from '../../src/sys/table.js';
import { formatTable } from '../../src/cli/table.js';

describe('text tables', () => {
  it('pads every column but the last to its widest cell and trims trailing blanks', () => {
    const text = alignColumns([['BE', 'Active', 'Mountpoint'], ['default', 'NR', '/'], ['b', '-', '-'], ['long-name', '', '']]);
    expect(text.split('\n')).toEqual([
      'BE        Active Mountpoint',
      'default   NR     /',
      'b         -      -',
      'long-name',
    ]);
  });

  it('takes the gap between columns (the hunt report uses two spaces)', () => {
    expect(alignColumns([['RELEASE', 'VERDICT'], ['14.1', 'pass']], '  ')).toBe('RELEASE  VERDICT\n14.1     pass');
  });

  it('be list: aligned with a header for people, tab-separated without it for scripts (-H)', () => {
    const rows = [['default', 'NR', '/', '1.2G', '2026-01-01 10:00'], ['new', '-', '-', '8K', '2026-01-02 11:00']];
    expect(formatTable(['BE', 'Active', 'Mountpoint', 'Space', 'Created'], rows, false)).toBe(
      'BE      Active Mountpoint Space Created\ndefault NR     /          1.2G  2026-01-01 10:00\nnew     -      -          8K    2026-01-02 11:00');
    expect(formatTable(['BE'], rows, true)).toBe('default\tNR\t/\t1.2G\t2026-01-01 10:00\nnew\t-\t-\t8K\t2026-01-02 11:00');
  });
});
