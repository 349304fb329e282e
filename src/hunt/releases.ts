import { BeError } from '../sys/errors.js';

/** What range expansion needs from the install layer's release table. */
export interface ReleaseTable {
  known: string[];
  compare(a: string, b: string): number;
}

const NAME = /^[A-Za-z0-9_.:-]+$/;

/** Numbers compare as numbers, text as text; "14.0-BETA1" < "14.0-RC1" < "14.0" < "14.0-p1"... close enough for sorting when no table is given. */
export function naturalCompare(a: string, b: string): number {
  const split = (s: string) => s.split(/(\d+)/).filter((x) => x !== '');
  const [pa, pb] = [split(a), split(b)];
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const [x, y] = [pa[i], pb[i]];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const [nx, ny] = [/^\d+$/.test(x), /^\d+$/.test(y)];
    if (nx && ny) {
      const d = Number(x) - Number(y);
      if (d !== 0) return d;
    } else if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

function checkRelease(name: string): string {
  if (!NAME.test(name)) throw new BeError(`invalid release '${name}': use letters, digits and . _ : -`);
  if (!/\d/.test(name)) throw new BeError(`invalid release '${name}': a release has a version number (or give an existing file)`);
  return name;
}

/** One item: a release or a range A..B expanded from the table (both ends included). */
function expandItem(item: string, table: ReleaseTable): string[] {
  const dots = item.indexOf('..');
  if (dots < 0) return [checkRelease(item)];
  const from = checkRelease(item.slice(0, dots).trim());
  const to = checkRelease(item.slice(dots + 2).trim());
  if (table.compare(from, to) > 0) throw new BeError(`invalid release range '${item}': ${from} comes after ${to}`);
  const inside = table.known.filter((r) => table.compare(from, r) <= 0 && table.compare(r, to) <= 0);
  if (inside.length === 0) throw new BeError(`release range '${item}' matches no known release`);
  return inside;
}

/**
 * Releases from text: items separated by commas or newlines, `#` starts a comment, ranges `A..B`
 * come from the release table. Result is deduplicated and in release order.
 */
export function parseReleaseText(text: string, table: ReleaseTable): string[] {
  const items = text
    .split('\n')
    .map((line) => line.replace(/#.*/, ''))
    .flatMap((line) => line.split(/[,\s]+/))
    .map((s) => s.trim())
    .filter(Boolean);
  const all = new Set(items.flatMap((item) => expandItem(item, table)));
  if (all.size === 0) throw new BeError('no releases given');
  return [...all].sort((a, b) => table.compare(a, b));
}

/**
 * `--releases` value: `-` reads standard input, an existing file is read (one release or range a
 * line, # comments), anything else is a comma list such as `13.2,14.0` or `9.0..14.1`.
 */
export async function resolveReleaseSpec(spec: string, table: ReleaseTable, io: { readFile(path: string): Promise<string | undefined>; readStdin(): Promise<string> }): Promise<string[]> {
  if (spec === '-') return parseReleaseText(await io.readStdin(), table);
  const looksLikeList = /^[A-Za-z0-9_.:,\s-]+$/.test(spec) && !spec.includes('/');
  const file = await io.readFile(spec);
  if (file !== undefined) return parseReleaseText(file, table);
  if (!looksLikeList) throw new BeError(`release file '${spec}' does not exist`);
  return parseReleaseText(spec, table);
}
