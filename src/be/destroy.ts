import type { BeContext } from './context.js';
import { BE_ERR, requirePool, resolveBe } from './context.js';
import { BeError } from '../sys/errors.js';
import { checkComponentName, parentOf, poolOf } from '../zfs/names.js';
import { mountTable, rootDataset } from '../sys/platform.js';
import { mountedDatasets, umountBe } from './access.js';


/**
 * The datasets of a pool as far as clones go: each filesystem's origin, each snapshot's txg.
 * `promote` does to it what `zfs promote` does to the pool (dsl_dataset_promote): the origin's
 * snapshots up to the clone's move to the clone, clones of them follow, the two swap origins.
 */
export class CloneGraph {
  private readonly origin = new Map<string, string | null>();
  private readonly txg = new Map<string, number>();

  static async load(ctx: BeContext, pool: string): Promise<CloneGraph> {
    const g = new CloneGraph();
    const table = await ctx.zfs.get([pool], ['origin', 'createtxg'], { recursive: true, snapshots: true });
    for (const [name, p] of table) {
      if (name.includes('@')) g.txg.set(name, Number(p.createtxg?.value ?? 0));
      else g.origin.set(name, p.origin?.value && p.origin.value !== '-' ? p.origin.value : null);
    }
    return g;
  }

  hasFilesystem(fs: string): boolean {
    return this.origin.has(fs);
  }
  hasSnapshot(snap: string): boolean {
    return this.txg.has(snap);
  }
  originOf(fs: string): string | null {
    return this.origin.get(fs) ?? null;
  }
  children(fs: string): string[] {
    return [...this.origin.keys()].filter((n) => parentOf(n) === fs).sort();
  }
  /** FS's snapshots, oldest first. */
  snapshots(fs: string): string[] {
    return [...this.txg.keys()].filter((s) => s.slice(0, s.indexOf('@')) === fs).sort((a, b) => this.txg.get(a)! - this.txg.get(b)!);
  }
  clones(snap: string): string[] {
    return [...this.origin].filter(([, o]) => o === snap).map(([fs]) => fs).sort();
  }

  promote(clone: string): void {
    const from = this.origin.get(clone);
    if (!from) return;
    const parent = from.slice(0, from.indexOf('@'));
    const limit = this.txg.get(from)!;
    for (const snap of this.snapshots(parent)) {
      if (this.txg.get(snap)! > limit) continue;
      const moved = clone + snap.slice(parent.length);
      this.txg.set(moved, this.txg.get(snap)!);
      this.txg.delete(snap);
      for (const fs of this.clones(snap)) this.origin.set(fs, moved);
    }
    this.origin.set(clone, this.origin.get(parent) ?? null);
    this.origin.set(parent, clone + from.slice(parent.length));
  }

  /** A recursive destroy of FS (or of FS@SNAP and the same snapshot of every child). */
  remove(fs: string, snap?: string): void {
    const under = (n: string) => n === fs || n.startsWith(`${fs}/`);
    if (snap !== undefined) {
      for (const s of [...this.txg.keys()]) if (under(s.slice(0, s.indexOf('@'))) && s.endsWith(`@${snap}`)) this.txg.delete(s);
      return;
    }
    for (const n of [...this.origin.keys()]) if (under(n)) this.origin.delete(n);
    for (const s of [...this.txg.keys()]) if (under(s.slice(0, s.indexOf('@')))) this.txg.delete(s);
  }
}

/**
 * The clones libbe's be_promote_dependent_clones (lib/libbe/be.c) promotes before destroying
 * TARGET (or, with SNAP, TARGET@SNAP): zfs_iter_dependents walks the target's children, their
 * snapshots and the clones of those, depth first, and each snapshot visited (only those named
 * SNAP when a snapshot is destroyed) adds its clones that are not inside the target to the head
 * of the list; the list is promoted from its head.
 */
export function dependentClones(g: CloneGraph, target: string, snap?: string): string[] {
  const list: string[] = [];
  const inside = `${target}/`;
  const path = new Set<string>();
  const visit = (ds: string, first: boolean): void => {
    const isSnap = ds.includes('@');
    if (isSnap) {
      for (const c of g.clones(ds)) visit(c, false);
    } else {
      if (path.has(ds)) return; // a cycle through clones: libzfs's stack check
      path.add(ds);
      for (const child of g.children(ds)) visit(child, false);
      for (const s of g.snapshots(ds)) visit(s, false);
      path.delete(ds);
    }
    if (first || !isSnap || (snap !== undefined && !ds.endsWith(`@${snap}`))) return;
    for (const c of g.clones(ds)) if (!c.startsWith(inside) && !list.includes(c)) list.unshift(c);
  };
  visit(target, true);
  return list;
}

/** libbe's automatic snapshot names (be_is_auto_snapshot_name): strftime("%F-%T") and a serial. */
export function isAutoSnapshotName(name: string): boolean {
  const m = /@(\d+)-(\d+)-(\d+)-(\d+):(\d+):(\d+)-(\d+)/.exec(name);
  if (!m) return false;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  return year >= 1970 && month >= 1 && month <= 12 && day >= 1 && day <= 31 && hour <= 23 && minute <= 59 && second <= 60;
}

export interface DestroyOptions {
  /** -F: unmount a mounted BE first. */
  force?: boolean;
  /** -o: destroy the BE's origin snapshot too (an error when that cannot be done). */
  origin?: boolean;
  /** Where warnings go (bectl's "leaving origin ... intact"). */
  warn?: (line: string) => void;
}

/**
 * `destroy [-Fo] BE[@snap]` as libbe's be_destroy (lib/libbe/be.c) and bectl_cmd_destroy
 * (sbin/bectl/bectl.c) do it:
 * - a BE: refused when it is the running or the active (bootfs) one, or mounted without -F.
 *   Clones of its snapshots outside it are promoted first (dependentClones), so they keep
 *   working and their origins move to the promoted clone; then the BE goes with its children.
 *   Its origin (read after the promotes) goes too with -o, or without -o when it has an
 *   automatic name (BE_DESTROY_AUTOORIGIN) and no other clone; otherwise bectl's warning that it
 *   is left intact. -o on a BE that is no clone is refused (BE_ERR_NOORIGIN).
 * - a snapshot: refused, naming a clone, when it (or the same snapshot of a child) has clones
 *   (BE_ERR_HASCLONES); otherwise destroyed in the BE and every child. It promotes nothing.
 * Every refusal is decided on a model of the pool (CloneGraph) before anything changes.
 */
export async function destroyBe(ctx: BeContext, name: string, opts: DestroyOptions = {}): Promise<void> {
  const at = name.indexOf('@');
  const be = await resolveBe(ctx, at < 0 ? name : name.slice(0, at));
  const snap = at < 0 ? undefined : checkComponentName(name.slice(at + 1), 'snapshot');
  const pool = await requirePool(ctx, poolOf(be));
  const g = await CloneGraph.load(ctx, poolOf(be));
  if (snap !== undefined) return destroySnapshot(ctx, g, be, snap, name);
  if (!g.hasFilesystem(be)) throw new BeError(`boot environment '${name}' does not exist`, { libbe: BE_ERR.NOENT });
  if (pool.bootfs === be) throw new BeError(`cannot destroy the active boot environment '${name}'`, { libbe: BE_ERR.DESTROYACT });
  const table = await mountTable(ctx.runner, ctx.flavour);
  if (rootDataset(table) === be) throw new BeError(`cannot destroy the running boot environment '${name}'`, { libbe: BE_ERR.DESTROYACT });
  const mounted = await mountedDatasets(ctx, be, table);
  if (mounted.size > 0 && !opts.force) {
    throw new BeError(`boot environment '${name}' is mounted at ${mounted.get(be) ?? [...mounted.values()][0]} (use -F)`, { libbe: BE_ERR.DESTROYMNT });
  }
  const before = g.originOf(be);
  const promote = dependentClones(g, be);
  for (const c of promote) g.promote(c);
  const origin = g.originOf(be);
  if (opts.origin && !origin) throw new BeError(`boot environment '${name}' is not a clone: it has no origin to destroy (-o)`, { libbe: BE_ERR.NOORIGIN });
  // libbe destroys an origin only inside the BE root; be's root for a BE is its parent
  const root = parentOf(be)!;
  let dropOrigin = !!origin && origin.startsWith(`${root}/`) && (opts.origin || isAutoSnapshotName(origin));
  g.remove(be);
  if (dropOrigin && origin) {
    const [fs, s] = origin.split('@');
    const still = dependentClones(g, fs, s);
    if (still.length > 0) {
      if (opts.origin) throw new BeError(`cannot destroy origin '${origin}' of '${name}': it has clones ('${still[0]}')`, { libbe: BE_ERR.HASCLONES });
      dropOrigin = false; // BE_DESTROY_AUTOORIGIN: an origin others still use stays, quietly
    }
  }
  if (!opts.origin && before && !isAutoSnapshotName(before)) opts.warn?.(`be: leaving origin '${before}' intact`);
  if (mounted.size > 0) await umountBe(ctx, be, true);
  await ctx.runner.transaction(async () => {
    for (const c of promote) await ctx.zfs.promote(c);
    await ctx.zfs.destroy(be, { recursive: true });
  });
  if (dropOrigin && origin) await ctx.zfs.destroy(origin, { recursive: true });
}

async function destroySnapshot(ctx: BeContext, g: CloneGraph, be: string, snap: string, shown: string): Promise<void> {
  const full = `${be}@${snap}`;
  if (!g.hasSnapshot(full)) throw new BeError(`snapshot '${shown}' does not exist`, { libbe: BE_ERR.NOENT });
  const clones = dependentClones(g, be, snap);
  if (clones.length > 0) {
    throw new BeError(`cannot destroy snapshot '${shown}': it has clones ('${clones[0]}'${clones.length > 1 ? ` and ${clones.length - 1} more` : ''})`, { libbe: BE_ERR.HASCLONES });
  }
  await ctx.zfs.destroy(full, { recursive: true });
}
