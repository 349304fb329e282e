import { mkdir, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { BeContext } from './context.js';
import { BE_ERR, requirePool } from './context.js';
import { BeError } from '../sys/errors.js';
import { mountTable, isZfsMount, type MountEntry } from '../sys/platform.js';
import { mountBackend, restoreMountpoint, withoutAltroot, SAVED_MOUNTPOINT } from '../zfs/mount.js';
import { poolOf } from '../zfs/names.js';
import type { PropTable } from '../zfs/zfs.js';
import { shQuote } from '../sys/shell.js';

export interface MountStep {
  dataset: string;
  /** Where it goes relative to the BE's mount directory ('/' for the BE itself). */
  relative: string;
}

/**
 * The order FreeBSD's rc.d/zfsbe mounts a BE: every filesystem of the BE sorted by mountpoint,
 * skipping canmount=off and mountpoint none/legacy; each child at its path under the BE root.
 */
export function mountOrder(be: string, props: PropTable): MountStep[] {
  const rootMp = props.get(be)?.mountpoint?.value ?? '/';
  const steps: Array<MountStep & { mp: string }> = [];
  for (const [name, p] of props) {
    if (name !== be && !name.startsWith(`${be}/`)) continue;
    if (p.canmount?.value === 'off') continue;
    const mp = p.mountpoint?.value ?? '';
    if (mp === 'none' || mp === 'legacy' || mp === '' || mp === '-') continue;
    let relative: string;
    if (name === be) relative = '/';
    else if (rootMp === '/' ) relative = mp;
    else if (mp.startsWith(`${rootMp}/`)) relative = mp.slice(rootMp.length);
    else relative = `/${name.slice(be.length + 1)}`;
    steps.push({ dataset: name, relative, mp });
  }
  steps.sort((a, b) => (a.dataset === be ? -1 : b.dataset === be ? 1 : a.relative < b.relative ? -1 : a.relative > b.relative ? 1 : 0));
  return steps.map(({ dataset, relative }) => ({ dataset, relative }));
}

function joinMount(dir: string, relative: string): string {
  return relative === '/' ? dir : join(dir, relative);
}

async function beProps(ctx: BeContext, be: string): Promise<PropTable> {
  return ctx.zfs.get([be], ['mountpoint', 'canmount', 'mounted', SAVED_MOUNTPOINT], { recursive: true });
}

/** Where each dataset of the BE is mounted now (dataset → directory). */
export async function mountedDatasets(ctx: BeContext, be: string, table?: MountEntry[]): Promise<Map<string, string>> {
  const entries = table ?? (await mountTable(ctx.runner, ctx.flavour));
  const found = new Map<string, string>();
  for (const e of entries) {
    if (!isZfsMount(e)) continue;
    if (e.source === be || e.source.startsWith(`${be}/`)) found.set(e.source, e.target);
  }
  // mounts (and unmounts) a plan has made that the mount table cannot show yet
  for (const [dataset, dir] of ctx.zfs.planned.mounts) {
    if (dataset !== be && !dataset.startsWith(`${be}/`)) continue;
    if (dir === null) found.delete(dataset);
    else found.set(dataset, dir);
  }
  return found;
}

/** Mount the BE and its children in zfsbe order at DIR (or a fresh directory); returns DIR. */
export async function mountBe(ctx: BeContext, be: string, dir?: string): Promise<string> {
  const pool = await requirePool(ctx, poolOf(be));
  const altroot = pool.altroot ?? '-';
  const mounted = await mountedDatasets(ctx, be);
  if (mounted.has(be)) throw new BeError(`boot environment '${be}' is already mounted at ${mounted.get(be)}`, { libbe: BE_ERR.MOUNTED });
  const props = await beProps(ctx, be);
  // zfs-fuse shows mountpoints under the altroot; a mount in progress shows its temporary one.
  for (const [name, p] of props) {
    const saved = p[SAVED_MOUNTPOINT];
    if (saved?.source === 'local') {
      p.mountpoint = saved.value === '-' ? { value: '', source: 'inherited' } : { value: saved.value, source: 'local' };
    } else if (p.mountpoint) p.mountpoint = { ...p.mountpoint, value: withoutAltroot(p.mountpoint.value, altroot) };
    props.set(name, p);
  }
  fillInherited(be, props);
  const steps = mountOrder(be, props);
  if (steps.length === 0 || steps[0].dataset !== be) throw new BeError(`boot environment '${be}' has no mountable root (canmount=off or mountpoint=none)`);
  const target = dir ?? freshDir(ctx, altroot);
  const backend = mountBackend(ctx.flavour, ctx.runner, ctx.zfs, altroot);
  await ctx.runner.transaction(async () => {
    if (dir === undefined) {
      await ctx.runner.act(`mkdir -p ${shQuote(target)}`, () => mkdir(target, { recursive: true }), () => rmdir(target).catch(() => {}));
    } else {
      await ctx.runner.act(`mkdir -p ${shQuote(target)}`, () => mkdir(target, { recursive: true }));
    }
    for (const step of steps) {
      const at = joinMount(target, step.relative);
      if (step.dataset !== be && ctx.flavour !== 'zfs-fuse') {
        await ctx.runner.act(`mkdir -p ${shQuote(at)}`, () => mkdir(at, { recursive: true }));
      }
      await backend.mount(step.dataset, at);
    }
  });
  return target;
}

/** Inherited mountpoints follow the saved (real) mountpoint of their parent. */
function fillInherited(be: string, props: PropTable): void {
  for (const [name, p] of props) {
    if (name === be || p.mountpoint?.source === 'local') continue;
    if (p.mountpoint && p.mountpoint.value !== '') continue;
    const parent = name.slice(0, name.lastIndexOf('/'));
    const pmp = props.get(parent)?.mountpoint?.value;
    if (pmp === undefined || pmp === 'none' || pmp === 'legacy') {
      p.mountpoint = { value: pmp ?? 'none', source: 'inherited' };
    } else {
      p.mountpoint = { value: join(pmp, name.slice(parent.length + 1)), source: 'inherited' };
    }
  }
}

/** The name of a directory freshDir made. */
const MADE_DIR = /^be_mount\.[0-9a-f]{8}$/;

function freshDir(ctx: BeContext, altroot: string): string {
  const base = ctx.flavour === 'zfs-fuse' && altroot !== '-' && altroot !== '/' ? altroot : tmpdir();
  return join(base, `be_mount.${randomBytes(4).toString('hex')}`);
}

/** Unmount the BE's datasets deepest first; with zfs-fuse also put their mountpoints back. */
export async function umountBe(ctx: BeContext, be: string, force = false): Promise<string[]> {
  const pool = await requirePool(ctx, poolOf(be));
  const mounted = await mountedDatasets(ctx, be);
  const backend = mountBackend(ctx.flavour, ctx.runner, ctx.zfs, pool.altroot ?? '-');
  const order = [...mounted.entries()].sort((a, b) => (a[1] < b[1] ? 1 : a[1] > b[1] ? -1 : 0));
  for (const [dataset, dir] of order) await backend.unmount(dataset, dir, force);
  // The directory `be mount` made (be_mount.XXXXXXXX) goes with it; rmdir keeps one not empty.
  const top = mounted.get(be);
  if (top !== undefined && MADE_DIR.test(basename(top))) {
    await ctx.runner.act(`rmdir ${shQuote(top)}`, () => rmdir(top).catch(() => {}));
  }
  if (ctx.flavour === 'zfs-fuse') {
    // Repair datasets a crashed mount left pointing elsewhere.
    const props = await ctx.zfs.get([be], [SAVED_MOUNTPOINT], { recursive: true });
    for (const [name, p] of props) {
      if (!mounted.has(name) && p[SAVED_MOUNTPOINT]?.source === 'local') await restoreMountpoint(ctx.zfs, name);
    }
  }
  return order.map(([, dir]) => dir);
}
