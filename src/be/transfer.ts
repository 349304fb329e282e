import type { BeContext } from './context.js';
import { BE_ERR, requireBe, requirePool, resolveBe } from './context.js';
import { freeSnapshotName, snapshotSuffixes, takenSnapshotNames } from './be.js';
import { mountedDatasets } from './access.js';
import { BeError } from '../sys/errors.js';
import { parentOf, poolOf } from '../zfs/names.js';

/** Where a stream comes from or goes to: an open descriptor (handed over as it is) or a Node stream (copied, counted). */
export interface StreamEnd {
  end: number | NodeJS.ReadableStream | NodeJS.WritableStream;
  /** How a script names it (a file; none for the script's own stdin/stdout). */
  shell?: string;
  /** Told the bytes carried so far (only for a Node stream). */
  onBytes?: (total: number) => void;
}

/**
 * `export BE`: a replication stream of the whole BE. libbe's be_export (lib/libbe/be.c) takes a
 * fresh recursive snapshot with an automatic name (be_snapshot) and sends it, and so does this;
 * it sends with -R, children, snapshots and properties included, where be_export's
 * zfs_send_one sends the BE's root alone (be's BEs are always recursive). The snapshot stays,
 * as libbe leaves it; a send that fails removes it. Returns the snapshot sent.
 * One `zfs list` of the BE root tells both that the BE is there and which snapshot names are
 * taken, so the stream starts after three programs: list, snapshot, send.
 */
export async function exportBe(ctx: BeContext, name: string, to: StreamEnd): Promise<string> {
  const be = await resolveBe(ctx, name);
  const root = parentOf(be) ?? be;
  // the BEs under the root and their own snapshots (what takenSnapshotNames reads), in one list
  const look = await ctx.runner.query(['zfs', 'list', '-H', '-o', 'name', '-t', 'filesystem,snapshot', '-r', '-d', '2', root], { allowFailure: true });
  const names = look.status === 0 ? look.stdout.split('\n').filter(Boolean) : [];
  // not there: say what is missing (the pool, the BE), as everywhere else
  if (!names.includes(be)) await requireBe(ctx, name);
  const snap = `${be}@${freeSnapshotName(names.length > 0 ? snapshotSuffixes(names) : await takenSnapshotNames(ctx, be))}`;
  await ctx.runner.transaction(async () => {
    await ctx.runner.change(['zfs', 'snapshot', '-r', snap], { undo: ['zfs', 'destroy', '-r', snap] });
    await ctx.runner.carry(['zfs', 'send', '-R', snap], { to: to.end as number | NodeJS.WritableStream, onBytes: to.onBytes, shellTo: to.shell });
  });
  return snap;
}

/**
 * `import NAME`: a stream `be export` (or `zfs send`) wrote becomes a new BE under the BE root,
 * never over an existing one. As libbe's be_import (lib/libbe/be.c) does, zfs receives it
 * straight into NAME without mounting it (-u, libbe's recvflags nomount) and NAME's root then
 * gets canmount=noauto; the BE keeps the mountpoints it was sent with (its children mount under
 * it, as rc.d/zfsbe mounts them). zfs recv itself refuses a full stream into a file system that
 * exists (libzfs_sendrecv.c: "destination exists"); what a cut or corrupt stream left of NAME is
 * destroyed, so NAME appears whole or not at all. libbe returns whatever zfs_receive does, and
 * zfs_receive_one gives -1 for every failure, which be_import turns into BE_ERR_UNKNOWN.
 * zfs-fuse's recv has no -u and mounts what it received: there canmount is set while it is
 * mounted (noauto unmounts nothing) and the mounts go last, in one umount(8), deepest first, so
 * no zfs command meets the "dataset is busy" FUSE answers for a while after an unmount.
 */
export async function importBe(ctx: BeContext, name: string, from: StreamEnd): Promise<string> {
  const be = await resolveBe(ctx, name);
  const root = parentOf(be)!;
  // one look at the BE root: it must be there, NAME must not
  const siblings = await ctx.zfs.list(root, 'filesystem', 1).catch(() => undefined);
  if (!siblings) {
    await requirePool(ctx, poolOf(be));
    throw new BeError(`BE root '${root}' does not exist`, { libbe: BE_ERR.UNKNOWN });
  }
  if (siblings.includes(be)) throw new BeError(`boot environment '${name}' already exists`, { libbe: BE_ERR.UNKNOWN });
  const fuse = ctx.flavour === 'zfs-fuse';
  await ctx.runner.transaction(async () => {
    let ours = true;
    // Whatever part of the stream zfs received goes when a later step (or the stream) fails.
    ctx.runner.onUndo(async () => {
      if (!ours) return;
      if (fuse) await unmountAll(ctx, be).catch(() => {});
      if (await ctx.zfs.exists(be)) await whileBusy(fuse, () => ctx.zfs.destroy(be, { recursive: true }));
    });
    try {
      await ctx.runner.carry(['zfs', 'receive', ...(fuse ? [] : ['-u']), be], { from: from.end as number | NodeJS.ReadableStream, onBytes: from.onBytes, shellFrom: from.shell });
    } catch (error) {
      const lines = ((error as { stderr?: string }).stderr ?? '').trim().split('\n').filter(Boolean);
      // made meanwhile by someone else: zfs received nothing into it, and it is not ours to remove
      if (lines.some((l) => /destination .* exists/.test(l))) {
        ours = false;
        throw new BeError(`boot environment '${name}' already exists`, { libbe: BE_ERR.UNKNOWN, command: (error as BeError).command });
      }
      // zfs-fuse mounts what it received once it has it all; a mount it could not make is no failed stream
      const mountOnly = fuse && lines.length > 0 && lines.every((l) => /^cannot mount /.test(l)) && (await ctx.zfs.exists(be));
      if (!mountOnly) throw new BeError(`cannot import '${name}': ${lines.pop() || (error as Error).message}`, { libbe: BE_ERR.UNKNOWN, command: (error as BeError).command });
    }
    await ctx.zfs.set(be, 'canmount', 'noauto');
    if (fuse) await unmountAll(ctx, be);
  });
  return be;
}

/** Unmount every mount of BE and its children in one umount(8), deepest first (zfs-fuse only mounts at the dataset's mountpoint). */
async function unmountAll(ctx: BeContext, be: string): Promise<void> {
  const dirs = [...(await mountedDatasets(ctx, be)).values()].sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
  if (dirs.length > 0) await ctx.runner.change(['umount', ...dirs]);
}

/** FUSE lets go of what was just unmounted in its own time; zfs says "busy" until it has. */
async function whileBusy(fuse: boolean, op: () => Promise<void>): Promise<void> {
  for (let tries = 1; ; tries++) {
    try {
      return await op();
    } catch (error) {
      if (!fuse || tries === 20 || !/busy/.test((error as { stderr?: string }).stderr ?? '')) throw error;
      await new Promise((r) => setTimeout(r, 250 * tries));
    }
  }
}
