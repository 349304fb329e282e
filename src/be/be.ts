import type { BeContext } from './context.js';
import { BE_ERR, requirePool, resolveBe, requireBe, resolveBeRoot } from './context.js';
import { mountTable, rootDataset } from '../sys/platform.js';
import type { Layout } from './layouts.js';
import { BeError, CommandError } from '../sys/errors.js';
import { checkComponentName, checkSnapshotName, parentOf, poolOf } from '../zfs/names.js';
import { mountedDatasets } from './access.js';
import { withoutAltroot } from '../zfs/mount.js';

/** Properties zfs will not take on create/clone, or that describe a live mount rather than the BE. */
const NOT_COPIED = new Set(['mounted', 'origin', 'be:mountpoint']);

function parseProps(pairs: string[]): Record<string, string> {
  const props: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0 || /[\n\0]/.test(pair)) throw new BeError(`invalid property '${pair}': expected PROP=VALUE`);
    props[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return props;
}

/** Make the container of the BE (mountpoint=none, canmount=off) if missing; registers its undo. */
async function ensureContainer(ctx: BeContext, be: string): Promise<void> {
  const parent = parentOf(be);
  if (!parent) throw new BeError(`invalid BE '${be}': a BE lives below a pool`);
  if (!parent.includes('/') || (await ctx.zfs.exists(parent))) return;
  await ensureContainer(ctx, parent);
  await ctx.zfs.create(parent, { mountpoint: 'none', canmount: 'off' });
}

/** Refuse a BE that exists already (libbe's BE_ERR_EXISTS); returns its pool's properties (the pool must exist). */
async function refuseExisting(ctx: BeContext, be: string, shown: string): Promise<Record<string, string>> {
  const pool = await requirePool(ctx, poolOf(be));
  if (await ctx.zfs.exists(be)) throw new BeError(`boot environment '${shown}' already exists`, { libbe: BE_ERR.EXISTS });
  return pool;
}

/** Create a BE from a layout: all datasets or none. */
export async function createFromLayout(ctx: BeContext, name: string, layout: Layout, extra: string[] = []): Promise<string> {
  const be = await resolveBe(ctx, name);
  const override = parseProps(extra);
  await refuseExisting(ctx, be, name);
  await ctx.runner.transaction(async () => {
    await ensureContainer(ctx, be);
    for (const ds of layout.datasets) {
      const props = ds.path === '' ? { ...ds.properties, ...override } : ds.properties;
      await ctx.zfs.create(ds.path === '' ? be : `${be}/${ds.path}`, props);
    }
  });
  return be;
}

/**
 * A fresh snapshot name for BE, as libbe's be_setup_snapshot_name (lib/libbe/be.c) makes one:
 * strftime("%F-%T") and the first serial (-0, -1, ...) not taken, so that `be destroy` and
 * bectl alike know it for an automatic one (be_is_auto_snapshot_name) and clean it up.
 */
export async function autoSnapshotName(ctx: BeContext, be: string, now = new Date()): Promise<string> {
  return freeSnapshotName(await takenSnapshotNames(ctx, be), now);
}

/**
 * The snapshot names (after the @) of the BEs under BE's root: a promote moves snapshots along a
 * chain of clones, and two of the same name there would stop it ("conflicting snapshot"). The
 * BEs' own snapshots are enough (-d 2): be's snapshots are recursive, a child's have its BE's
 * name; listing every child's snapshots too takes ten times as long.
 */
export async function takenSnapshotNames(ctx: BeContext, be: string): Promise<Set<string>> {
  const root = parentOf(be) ?? be;
  return snapshotSuffixes(await ctx.zfs.list(root, 'snapshot', 2));
}

/** The part after the @ of each snapshot name in NAMES. */
export function snapshotSuffixes(names: string[]): Set<string> {
  return new Set(names.filter((n) => n.includes('@')).map((n) => n.slice(n.indexOf('@') + 1)));
}

/** strftime("%F-%T") of NOW (local time, as libbe's localtime) and the first serial not in TAKEN. */
export function freeSnapshotName(taken: Set<string>, now = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const stamp = `${now.getFullYear()}-${p(now.getMonth() + 1)}-${p(now.getDate())}-${p(now.getHours())}:${p(now.getMinutes())}:${p(now.getSeconds())}`;
  for (let serial = 0; ; serial++) if (!taken.has(`${stamp}-${serial}`)) return `${stamp}-${serial}`;
}

/**
 * Clone a BE: a recursive snapshot of SOURCE (or the given SOURCE@SNAP), then a clone of every
 * filesystem with its local properties kept. A failure destroys the clones and the snapshot made.
 */
export async function cloneBe(ctx: BeContext, name: string, source: string, extra: string[] = []): Promise<string> {
  const be = await resolveBe(ctx, name);
  const override = parseProps(extra);
  const at = source.indexOf('@');
  const srcName = at < 0 ? source : source.slice(0, at);
  const src = await requireBe(ctx, srcName);
  // libbe's be_root_concat: a full name outside the BE root is BE_ERR_INVALIDNAME
  if (poolOf(be) !== poolOf(src)) throw new BeError(`cannot clone '${srcName}' to '${name}': not in the same pool`, { libbe: BE_ERR.INVALIDNAME });
  const { altroot = '-' } = await refuseExisting(ctx, be, name);
  let snap = at < 0 ? '' : source.slice(at + 1);
  if (snap) checkSnapshotName(`${src}@${snap}`);
  await ctx.runner.transaction(async () => {
    if (!snap) {
      snap = await autoSnapshotName(ctx, src);
      await ctx.zfs.snapshot(`${src}@${snap}`, { recursive: true });
    }
    const listed = await ctx.zfs.listWithSnapshots(src);
    const fs = listed.filesystems;
    const snaps = new Set(listed.snapshots);
    const local = await ctx.zfs.get([src], ['all'], { recursive: true, sources: ['local'] });
    // a sibling of an existing BE needs no container made
    if (parentOf(be) !== parentOf(src)) await ensureContainer(ctx, be);
    for (const ds of fs) {
      const from = `${ds}@${snap}`;
      if (!snaps.has(from)) {
        if (ds === src) throw new BeError(`snapshot '${from}' does not exist`, { libbe: BE_ERR.NOENT });
        continue; // a child created after the snapshot: not part of it
      }
      const props: Record<string, string> = {};
      for (const [k, v] of Object.entries(local.get(ds) ?? {})) {
        if (!NOT_COPIED.has(k)) props[k] = k === 'mountpoint' ? withoutAltroot(v.value, altroot) : v.value;
      }
      if (ds === src) Object.assign(props, override);
      // be_deep_clone (lib/libbe/be.c): a clone zfs refuses is BE_ERR_ZFSCLONE
      await ctx.zfs.clone(from, be + ds.slice(src.length), props).catch((error: unknown) => {
        throw error instanceof CommandError ? new BeError(error.message, { libbe: BE_ERR.ZFSCLONE, command: error.command, cause: error }) : error;
      });
    }
  });
  return be;
}

/** `destroy` lives with libbe's clone bookkeeping (./destroy.ts); callers keep importing it from here. */
export { destroyBe } from './destroy.js';

export async function renameBe(ctx: BeContext, from: string, to: string): Promise<string> {
  // be_rename (lib/libbe/be.c) checks the new name first, then that the old BE is there
  const dst = await resolveBe(ctx, to);
  const src = await requireBe(ctx, from);
  if (poolOf(src) !== poolOf(dst)) throw new BeError(`cannot rename '${from}' to '${to}': not in the same pool`, { libbe: BE_ERR.INVALIDNAME });
  await refuseExisting(ctx, dst, to);
  const mounted = await mountedDatasets(ctx, src);
  if (mounted.size > 0) throw new BeError(`boot environment '${from}' is mounted at ${mounted.get(src)}: unmount it first`, { libbe: BE_ERR.MOUNTED });
  const pool = await requirePool(ctx, poolOf(src));
  await ctx.runner.transaction(async () => {
    await ensureContainer(ctx, dst);
    await ctx.zfs.rename(src, dst);
    // OpenZFS keeps bootfs by object (it follows the rename); zfs-fuse keeps the old name
    if (pool.bootfs === src && (await requirePool(ctx, poolOf(dst))).bootfs !== dst) {
      await ctx.zfs.setPool(poolOf(dst), 'bootfs', dst);
    }
  });
  return dst;
}

export async function snapshotBe(ctx: BeContext, spec: string): Promise<string> {
  const at = spec.indexOf('@');
  const be = await requireBe(ctx, at < 0 ? spec : spec.slice(0, at));
  const snap = at < 0 ? await autoSnapshotName(ctx, be) : checkComponentName(spec.slice(at + 1), 'snapshot');
  const full = `${be}@${snap}`;
  // zfs_snapshot's EZFS_EXISTS, which be_snapshot (lib/libbe/be.c) gives as BE_ERR_UNKNOWN
  if ((await ctx.zfs.list(be, 'snapshot', 1)).includes(full)) throw new BeError(`snapshot '${full}' already exists`, { libbe: BE_ERR.UNKNOWN });
  await ctx.zfs.snapshot(full, { recursive: true });
  return full;
}

/** Roll the BE and each child back to @SNAP (snapshots taken by `be snapshot` are recursive). */
export async function rollbackBe(ctx: BeContext, spec: string, destroyLater = false): Promise<void> {
  const at = spec.indexOf('@');
  if (at < 0) throw new BeError(`invalid snapshot '${spec}': expected BE@SNAPSHOT`);
  const be = await requireBe(ctx, spec.slice(0, at));
  const snap = checkComponentName(spec.slice(at + 1), 'snapshot');
  const snaps = new Set(await ctx.zfs.list(be, 'snapshot'));
  if (!snaps.has(`${be}@${snap}`)) throw new BeError(`snapshot '${be}@${snap}' does not exist`);
  for (const ds of await ctx.zfs.list(be, 'filesystem')) {
    if (snaps.has(`${ds}@${snap}`)) await ctx.zfs.rollback(`${ds}@${snap}`, { destroyLater });
  }
}

/**
 * zfsbootcfg(8) for a one-time boot of BE, as sbin/zfsbootcfg/zfsbootcfg.c reads its arguments:
 * `-z POOL` names the pool whose label gets it (without -z it takes the pool of the running
 * root from kenv vfs.root.mountfrom), and the one operand goes to libzfsbootenv's
 * lzbe_set_boot_device (lib/libzfsbootenv/lzbe_device.c), which stores a value starting with
 * "zfs:" as it is, "zfs:pool/filesystem:", for the loader to boot once and then delete.
 */
export function zfsbootcfgArgv(be: string): string[] {
  return ['zfsbootcfg', '-z', poolOf(be), `zfs:${be}:`];
}

/** Datasets of BE (itself first) whose origin lies outside BE: the ones `zfs promote` can take over. */
function clonesOf(be: string, props: Map<string, Record<string, { value: string }>>): Array<{ ds: string; origin: string }> {
  const out: Array<{ ds: string; origin: string }> = [];
  for (const [ds, p] of props) {
    const origin = p.origin?.value;
    // An origin inside the BE itself would have zfs promote swap the two back and forth.
    if (origin && origin !== '-' && !origin.startsWith(`${be}/`) && !origin.startsWith(`${be}@`)) out.push({ ds, origin });
  }
  return out;
}

/**
 * Make the BE the pool's boot file system, as libbe's be_activate (lib/libbe/be.c) does:
 *  1. be_deactivate: the pool's current bootfs gets canmount=noauto (its root only), so a later
 *     `zfs mount -a` cannot mount the old BE over /;
 *  2. zpool set bootfs=BE;
 *  3. be_zfs_promote: every file system of the BE that has an origin is promoted, over and over
 *     until none has (a clone of a clone needs one promote per generation), so the old BE and
 *     its snapshots can be destroyed later.
 * `temporary` (-t) is libbe's lzbe_set_boot_device: only a one-time boot entry in the pool's
 * label (zfsbootcfg), no canmount, bootfs or promote. A failure half-way undoes what was done.
 */
export async function activateBe(ctx: BeContext, name: string, temporary = false): Promise<string> {
  // Said before anything is looked up: no BE makes -t work here.
  if (temporary && ctx.flavour !== 'freebsd') throw new BeError('activate -t needs zfsbootcfg(8), which only FreeBSD has');
  const be = await requireBe(ctx, name);
  const pool = poolOf(be);
  const props = await ctx.zfs.get([be], ['origin', 'canmount', 'mountpoint'], { recursive: true });
  if (props.get(be)?.canmount?.value === 'off') throw new BeError(`boot environment '${name}' has canmount=off and cannot boot`);
  if (temporary) {
    await ctx.runner.change(zfsbootcfgArgv(be));
    return be;
  }
  const { bootfs = '-' } = await requirePool(ctx, pool);
  await ctx.runner.transaction(async () => {
    if (bootfs !== '-' && bootfs !== '' && (await ctx.zfs.exists(bootfs))) {
      const old = (await ctx.zfs.get([bootfs], ['canmount'])).get(bootfs)?.canmount;
      const undo = old ? { value: old.value, inherit: old.source !== 'local' } : undefined;
      if (old?.value !== 'noauto' || old.source !== 'local') await ctx.zfs.set(bootfs, 'canmount', 'noauto', undo);
    }
    await ctx.runner.change(['zpool', 'set', `bootfs=${be}`, pool], { undo: ['zpool', 'set', `bootfs=${bootfs === '-' ? '' : bootfs}`, pool] });
    let clones = clonesOf(be, props);
    for (let round = 0; clones.length > 0; round++) {
      if (round === 64) throw new BeError(`boot environment '${name}' still has clones after ${round} rounds of zfs promote`);
      let recorded = false;
      for (const { ds, origin } of clones) {
        recorded = !!(await ctx.runner.change(['zfs', 'promote', ds], { undo: ['zfs', 'promote', origin.slice(0, origin.indexOf('@'))] })).pending || recorded;
      }
      // promotes recorded into a plan, not made: what they change cannot be read back, so one round is planned
      if (recorded) break;
      clones = clonesOf(be, await ctx.zfs.get([be], ['origin'], { recursive: true }));
    }
  });
  return be;
}

/**
 * `activate -T`: forget a one-time activation (-t). libbe's be_deactivate with temporary set
 * calls lzbe_set_boot_device(pool, lzbe_add, NULL), which removes the label's boot-once entry;
 * zfsbootcfg(8) does the same when given an empty value (zfsbootcfg.c: a value, no key, is
 * lzbe_set_boot_device). The pool is the BE's when one is named, else the BE root's.
 */
export async function removeTemporaryActivation(ctx: BeContext, name?: string): Promise<void> {
  if (ctx.flavour !== 'freebsd') throw new BeError('activate -T needs zfsbootcfg(8), which only FreeBSD has');
  const pool = poolOf(name === undefined ? await resolveBeRoot(ctx) : await requireBe(ctx, name));
  await requirePool(ctx, pool);
  await ctx.runner.change(['zfsbootcfg', '-z', pool, '']);
}

/**
 * `check`, as bectl's: it succeeds when libbe_init (lib/libbe/be.c) does. With a BE root (-R,
 * BE_ROOT) that is a dataset below a pool that exists; without one, / must be a ZFS file system
 * below a pool's root (be_locate_rootfs; the BE root is its parent).
 */
export async function beSupported(ctx: BeContext): Promise<boolean> {
  let root = ctx.beRoot;
  if (root === undefined) {
    const running = rootDataset(await mountTable(ctx.runner, ctx.flavour));
    if (!running) return false;
    root = parentOf(running);
  }
  if (!root || !root.includes('/')) return false;
  return (await ctx.zfs.poolProps(poolOf(root), ['bootfs'])) !== undefined;
}
