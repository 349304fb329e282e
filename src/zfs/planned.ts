import type { PropTable, PropValue } from './props.js';

interface Made {
  /** Properties set on it (source local). */
  props: Record<string, string>;
  origin?: string;
}

/**
 * What a plan has made that is not on the host yet: the datasets, snapshots, properties and
 * mounts of zfs changes a host recorded without carrying them out (a script host's). Queries
 * merge it with what zfs reports, so a later step of the same plan sees an earlier one: the clone
 * of a snapshot the plan took, the mounts of a BE the plan mounted. Changes a host carries out
 * are never put here (zfs itself answers for them).
 */
export class PlannedZfs {
  /** Filesystems and snapshots the plan made. */
  private readonly made = new Map<string, Made>();
  /** Datasets of the host the plan destroyed. */
  private readonly gone = new Set<string>();
  /** Properties the plan set (a value) or inherited (null) on datasets of the host. */
  private readonly changed = new Map<string, Record<string, string | null>>();
  /** dataset → directory the plan mounted it at; null: a mount of the host the plan unmounted. */
  readonly mounts = new Map<string, string | null>();

  get empty(): boolean {
    return this.made.size === 0 && this.gone.size === 0 && this.changed.size === 0 && this.mounts.size === 0;
  }

  create(name: string, props: Record<string, string>, origin?: string): void {
    this.gone.delete(name);
    this.made.set(name, { props: { ...props }, origin });
  }

  /** NAMES are the dataset and what a recursive destroy takes with it. */
  destroy(names: string[]): void {
    for (const n of names) {
      if (!this.made.delete(n)) this.gone.add(n);
      this.changed.delete(n);
    }
  }

  set(name: string, prop: string, value: string | null): void {
    const made = this.made.get(name);
    if (made) {
      if (value === null) delete made.props[prop];
      else made.props[prop] = value;
      return;
    }
    const row = this.changed.get(name) ?? {};
    row[prop] = value;
    this.changed.set(name, row);
  }

  /** A rename of FROM to TO and of what is below it (NAMES: FROM and its descendants, snapshots included). */
  rename(from: string, to: string, names: string[]): void {
    for (const n of names) {
      const renamed = to + n.slice(from.length);
      const made = this.made.get(n);
      if (made) {
        this.made.delete(n);
        this.made.set(renamed, made);
      } else {
        this.gone.add(n);
        this.made.set(renamed, { props: {} });
      }
    }
  }

  mounted(dataset: string, dir: string): void {
    this.mounts.set(dataset, dir);
  }

  unmounted(dataset: string): void {
    this.mounts.set(dataset, null);
  }

  exists(name: string, onHost: boolean): boolean {
    return this.made.has(name) || (onHost && !this.gone.has(name));
  }

  /** The host's names under ROOT merged with the plan's, in `zfs list -r` order (parents first, a dataset's snapshots before its children). */
  list(root: string, real: string[], types: { filesystems: boolean; snapshots: boolean }, depth?: number): string[] {
    const rootDepth = root.split('/').length;
    const within = (n: string) => {
      const fs = n.split('@')[0];
      if (fs !== root && !fs.startsWith(`${root}/`)) return false;
      if (n.includes('@') ? !types.snapshots : !types.filesystems) return false;
      if (depth === undefined) return true;
      return fs.split('/').length - rootDepth + (n.includes('@') ? 1 : 0) <= depth;
    };
    const names = new Set(real.filter((n) => !this.gone.has(n)));
    for (const n of this.made.keys()) if (within(n)) names.add(n);
    return [...names].sort(treeOrder);
  }

  /** zfs get rows for NAMES (and below, with recursive) with the plan's datasets and properties merged in. */
  get(table: PropTable, names: string[], props: string[], opts: { recursive?: boolean; snapshots?: boolean; sources?: string[] }): PropTable {
    if (this.empty) return table;
    const out: PropTable = new Map();
    const keep = (v: PropValue) => !opts.sources || opts.sources.includes(v.source);
    for (const [name, row] of table) {
      if (this.gone.has(name)) continue;
      const changed = this.changed.get(name);
      if (changed) {
        for (const [k, v] of Object.entries(changed)) {
          if (!props.includes(k) && !props.includes('all')) continue;
          if (v === null) delete row[k];
          else row[k] = { value: v, source: 'local' };
        }
      }
      this.mountedColumn(name, row, props);
      const kept = Object.fromEntries(Object.entries(row).filter(([, v]) => keep(v)));
      if (Object.keys(kept).length) out.set(name, kept);
    }
    for (const [name, made] of this.made) {
      if (!opts.snapshots && name.includes('@')) continue;
      const fs = name.split('@')[0];
      if (!names.some((n) => name === n || (opts.recursive && (fs === n || fs.startsWith(`${n}/`))))) continue;
      const row: Record<string, PropValue> = {};
      for (const p of props.includes('all') ? Object.keys(made.props) : props) {
        if (p in made.props) row[p] = { value: made.props[p], source: 'local' };
        else if (p === 'origin') row[p] = { value: made.origin ?? '-', source: '-' };
        else if (p === 'canmount') row[p] = { value: 'on', source: 'default' };
        else if (p === 'mountpoint') row[p] = { value: '', source: 'inherited' };
        else if (p === 'type') row[p] = { value: name.includes('@') ? 'snapshot' : 'filesystem', source: '-' };
        else if (!p.includes(':')) row[p] = { value: '-', source: '-' };
      }
      this.mountedColumn(name, row, props);
      const kept = Object.fromEntries(Object.entries(row).filter(([, v]) => keep(v)));
      if (Object.keys(kept).length || !opts.sources) out.set(name, kept);
    }
    return new Map([...out].sort((a, b) => treeOrder(a[0], b[0])));
  }

  private mountedColumn(name: string, row: Record<string, PropValue>, props: string[]): void {
    if (!props.includes('mounted') || !this.mounts.has(name)) return;
    row.mounted = { value: this.mounts.get(name) === null ? 'no' : 'yes', source: '-' };
  }
}

/** `zfs list -r` order: component by component, a dataset's snapshots right after it. */
export function treeOrder(a: string, b: string): number {
  const [fa, sa = ''] = a.split('@');
  const [fb, sb = ''] = b.split('@');
  if (fa === fb) return sa === sb ? 0 : sa === '' ? -1 : sb === '' ? 1 : sa < sb ? -1 : 1;
  const pa = fa.split('/');
  const pb = fb.split('/');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] !== pb[i]) {
      // a snapshot of the common parent comes before its children
      return pa[i] < pb[i] ? -1 : 1;
    }
  }
  if (pa.length !== pb.length) {
    const shorter = pa.length < pb.length ? a : b;
    // the parent (and its snapshots) before the child
    return shorter === a ? -1 : 1;
  }
  return 0;
}
