import type { BeContext } from './context.js';
import { BE_ERR, resolveBeRoot } from './context.js';
import { BeError, UsageError } from '../sys/errors.js';
import { mountTable, isZfsMount, rootDataset } from '../sys/platform.js';
import { poolOf } from '../zfs/names.js';
import { humanSize, formatCreated } from './info.js';
import type { PropTable } from '../zfs/zfs.js';

/** bectl list's sort keys (bectl_list.c prop_list_sort), long names as zfsprops(7) spells them. */
const SORT_KEYS: Record<string, string> = {
  name: 'name',
  creation: 'creation',
  origin: 'origin',
  used: 'used',
  usedds: 'usedbydataset',
  usedbydataset: 'usedbydataset',
  usedsnap: 'usedbysnapshots',
  usedbysnapshots: 'usedbysnapshots',
  usedrefreserv: 'usedbyrefreservation',
  usedbyrefreservation: 'usedbyrefreservation',
};
const NUMERIC = new Set(['creation', 'used', 'usedbydataset', 'usedbysnapshots', 'usedbyrefreservation']);
const PROPS = ['used', 'usedbydataset', 'usedbysnapshots', 'usedbyrefreservation', 'creation', 'origin'];

export interface ListOptions {
  /** -a: every dataset of each BE (its root, its children, the origin). */
  all?: boolean;
  /** -D: space as if every other BE were destroyed (adds the origin file system's used). */
  space?: boolean;
  /** -s: the snapshots too. */
  snapshots?: boolean;
  /** -c PROP / -C PROP: the sort key and whether descending. */
  sort?: { prop: string; descending: boolean };
}

/** One printed line: the name (indented under its BE in -a/-s blocks) and bectl's columns. */
export interface ListLine {
  name: string;
  indent: number;
  /** N (running), R (bootfs), T (boots next, once), '-' none; empty for a BE's title line. */
  active: string;
  mountpoint: string;
  space: number | undefined;
  created: Date | undefined;
  /** A BE's title line in -a/-s output (its name alone). */
  title?: boolean;
}

export interface ListedBe {
  name: string;
  dataset: string;
  lines: ListLine[];
}

/** The check a sort key gets before anything is read: a one-line error naming it. */
export function sortKey(prop: string): string {
  const key = SORT_KEYS[prop];
  if (!key) throw new UsageError(`list: cannot sort by '${prop}' (known: ${Object.keys(SORT_KEYS).join(', ')})`);
  return key;
}

/**
 * `list [-aDHs] [-c|-C PROP]` as bectl_list.c prints it: per BE its Active flags (N now, R on
 * reboot, T next boot once), where it is mounted, Space and Created. Space is the BE's used plus
 * its origin snapshot's used, and with -D the origin file system's used too (ignored with -a or
 * -s, as bectl ignores it). -a and -s print a block per BE: its name, then its datasets indented
 * (bectl shows the root dataset and its origin; be's BEs are recursive, so every child too), and
 * with -s each dataset's snapshots. BEs are sorted by name unless -c/-C names a property.
 */
export async function listBectl(ctx: BeContext, opts: ListOptions = {}): Promise<ListedBe[]> {
  const key = opts.sort ? sortKey(opts.sort.prop) : 'name';
  const root = await resolveBeRoot(ctx);
  const [pools, props, table] = await Promise.all([
    ctx.zfs.pools(['bootfs'], []),
    ctx.zfs.get([root], PROPS, { recursive: true, snapshots: true, missingOk: true }),
    mountTable(ctx.runner, ctx.flavour),
  ]);
  const pool = poolOf(root);
  if (!pools.has(pool)) throw new BeError(`pool '${pool}' does not exist`, { libbe: BE_ERR.INIT });
  const bootfs = pools.get(pool)?.bootfs;
  const once = await bootOnce(ctx, pool);
  const running = rootDataset(table);
  const mountedAt = new Map<string, string>();
  for (const e of table) if (isZfsMount(e)) mountedAt.set(e.source, e.target);
  // origins outside the BE root (and their file systems, for -D) are asked for in one more call
  const outside = new Set<string>();
  for (const [, p] of props) {
    const o = p.origin?.value;
    if (o && o !== '-') for (const n of [o, o.split('@')[0]]) if (!props.has(n)) outside.add(n);
  }
  const extra: PropTable = outside.size ? await ctx.zfs.get([...outside], ['used', 'creation'], { snapshots: true, missingOk: true }) : new Map();
  const propsOf = (n: string) => props.get(n) ?? extra.get(n);
  const num = (n: string, p: string) => {
    const v = propsOf(n)?.[p]?.value;
    return v === undefined || v === '-' ? undefined : Number(v);
  };
  const depth = root.split('/').length + 1;
  const bes = [...props.keys()].filter((n) => !n.includes('@') && n.split('/').length === depth);
  const detail = opts.all || opts.snapshots;
  const line = (name: string, dataset: string, indent: number, isBe: boolean): ListLine => {
    const origin = propsOf(dataset)?.origin?.value;
    let space = num(dataset, 'used');
    if (space !== undefined && origin && origin !== '-') {
      if (!detail) space += num(origin, 'used') ?? 0;
      if (opts.space && !detail) space += num(origin.split('@')[0], 'used') ?? 0;
    }
    const flags = isBe ? `${running === dataset ? 'N' : ''}${bootfs === dataset ? 'R' : ''}${once === dataset ? 'T' : ''}` : '';
    const created = num(dataset, 'creation');
    return { name, indent, active: flags || '-', mountpoint: mountedAt.get(dataset) ?? '-', space, created: created === undefined ? undefined : new Date(created * 1000) };
  };
  const listed = bes.map((be): ListedBe & { sortValue: string } => {
    const short = be.slice(root.length + 1);
    const sortValue = key === 'name' ? short : (propsOf(be)?.[key]?.value ?? '');
    if (!detail) return { name: short, dataset: be, sortValue, lines: [line(short, be, 0, true)] };
    const lines: ListLine[] = [{ name: short, indent: 0, active: '', mountpoint: '', space: undefined, created: undefined, title: true }];
    const datasets = opts.all ? [...props.keys()].filter((n) => !n.includes('@') && (n === be || n.startsWith(`${be}/`))) : [be];
    for (const ds of datasets) {
      lines.push(line(ds, ds, 2, ds === be));
      const origin = propsOf(ds)?.origin?.value;
      if (origin && origin !== '-' && propsOf(origin)) lines.push(line(origin, origin, 4, false));
      if (opts.snapshots) for (const s of [...props.keys()].filter((n) => n.startsWith(`${ds}@`))) lines.push(line(s, s, 2, false));
    }
    return { name: short, dataset: be, sortValue, lines };
  });
  const numeric = NUMERIC.has(key);
  listed.sort((a, b) => {
    const c = numeric ? Number(a.sortValue) - Number(b.sortValue) : a.sortValue < b.sortValue ? -1 : a.sortValue > b.sortValue ? 1 : 0;
    return opts.sort?.descending ? -c : c;
  });
  return listed.map(({ name, dataset, lines }) => ({ name, dataset, lines }));
}

/**
 * The BE the next boot takes once (bectl's T): the pool label's one-time entry, which
 * zfsbootcfg(8) prints when given no value (lzbe_get_boot_device); FreeBSD only.
 */
async function bootOnce(ctx: BeContext, pool: string): Promise<string | undefined> {
  if (ctx.flavour !== 'freebsd') return undefined;
  const r = await ctx.runner.query(['zfsbootcfg', '-z', pool], { allowFailure: true });
  const m = /^zfs:([^:]+):?$/m.exec(r.stdout.trim());
  return r.status === 0 && m ? m[1] : undefined;
}

/** bectl's table: header (BE or BE/Dataset/Snapshot, and a blank line after the latter), blocks between blank lines; -H: tabs, no header. */
export function formatBectlList(bes: ListedBe[], opts: { scripted?: boolean; detail?: boolean }): string {
  const rows: string[][] = [];
  const out: string[] = [];
  for (const [i, be] of bes.entries()) {
    if (i > 0 && opts.detail) rows.push([]);
    for (const l of be.lines) {
      const name = ' '.repeat(l.indent) + l.name;
      if (l.title) rows.push([name]);
      else rows.push([name, l.active, l.mountpoint, l.space === undefined ? '-' : humanSize(l.space), l.created ? formatCreated(l.created) : '']);
    }
  }
  if (opts.scripted) return rows.map((r) => (r.length <= 1 ? r.join('') : r.join('\t'))).join('\n');
  const header = [opts.detail ? 'BE/Dataset/Snapshot' : 'BE', 'Active', 'Mountpoint', 'Space', 'Created'];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.filter((r) => r.length > 1).map((r) => (r[c] ?? '').length)));
  const fmt = (r: string[]) => (r.length <= 1 ? r.join('') : r.map((v, c) => (c === r.length - 1 ? v : v.padEnd(widths[c]))).join(' ').trimEnd());
  out.push(fmt(header));
  if (opts.detail) out.push('');
  for (const r of rows) out.push(fmt(r));
  return out.join('\n');
}
