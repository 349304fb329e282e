import { randomBytes } from 'node:crypto';
import type { BeContext } from './context.js';
import { requireBe, requirePool, resolveBe } from './context.js';
import { autoSnapshotName } from './be.js';
import { BE_ERR } from './destroy.js';
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
 */
export async function exportBe(ctx: BeContext, name: string, to: StreamEnd): Promise<string> {
  const be = await requireBe(ctx, name);
  const snap = `${be}@${await autoSnapshotName(ctx, be)}`;
  await ctx.runner.transaction(async () => {
    await ctx.zfs.snapshot(snap, { recursive: true });
    await ctx.runner.carry(['zfs', 'send', '-R', snap], { to: to.end as number | NodeJS.WritableStream, onBytes: to.onBytes, shellTo: to.shell });
  });
  return snap;
}

/**
 * `import NAME`: a stream `be export` (or `zfs send`) wrote becomes a new BE under the BE root,
 * never over an existing one. libbe's be_import (lib/libbe/be.c) receives straight into NAME
 * with nomount and then sets canmount=noauto (and mountpoint=none) on it; here the stream goes
 * to a temporary name beside NAME first (be_import.XXXXXXXX), so a cut or corrupt stream leaves
 * nothing behind (what zfs recv made of it is destroyed) and NAME appears whole or not at all.
 * The BE keeps the mountpoints it was sent with (its children mount under it, as rc.d/zfsbe
 * mounts them) and gets canmount=noauto on its root, as libbe sets. zfs-fuse's recv has no -u
 * and mounts what it receives: there the received datasets are unmounted again at once.
 */
export async function importBe(ctx: BeContext, name: string, from: StreamEnd): Promise<string> {
  const be = await resolveBe(ctx, name);
  await requirePool(ctx, poolOf(be));
  if (await ctx.zfs.exists(be)) throw new BeError(`boot environment '${name}' already exists`, { exitCode: BE_ERR.EXISTS });
  const root = parentOf(be)!;
  if (!(await ctx.zfs.exists(root))) throw new BeError(`BE root '${root}' does not exist`, { exitCode: BE_ERR.NOENT });
  const tmp = `${root}/be_import.${randomBytes(4).toString('hex')}`;
  const fuse = ctx.flavour === 'zfs-fuse';
  await ctx.runner.transaction(async () => {
    // Whatever part of the stream zfs received goes when a later step (or the stream) fails.
    ctx.runner.onUndo(async () => {
      const mounted = [...(await mountedDatasets(ctx, tmp))].sort((a, b) => (a[1] < b[1] ? 1 : -1));
      for (const [ds] of mounted) await ctx.zfs.umount(ds).catch(() => {});
      if (await ctx.zfs.exists(tmp)) await whileBusy(fuse, () => ctx.zfs.destroy(tmp, { recursive: true }));
    });
    try {
      await ctx.runner.carry(['zfs', 'receive', ...(fuse ? [] : ['-u']), tmp], { from: from.end as number | NodeJS.ReadableStream, onBytes: from.onBytes, shellFrom: from.shell });
    } catch (error) {
      const lines = ((error as { stderr?: string }).stderr ?? '').trim().split('\n').filter(Boolean);
      // zfs-fuse mounts what it received once it has it all; a mount it could not make is no failed stream
      const mountOnly = fuse && lines.length > 0 && lines.every((l) => /^cannot mount /.test(l)) && (await ctx.zfs.exists(tmp));
      if (!mountOnly) throw new BeError(`cannot import '${name}': ${lines.pop() || (error as Error).message}`, { exitCode: BE_ERR.IO, command: (error as BeError).command });
    }
    if (fuse) {
      const mounted = [...(await mountedDatasets(ctx, tmp))].sort((a, b) => (a[1] < b[1] ? 1 : -1));
      for (const [ds] of mounted) await ctx.zfs.umount(ds);
    }
    await ctx.zfs.set(tmp, 'canmount', 'noauto');
    await whileBusy(fuse, () => ctx.zfs.rename(tmp, be));
  });
  return be;
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
