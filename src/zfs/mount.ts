import type { Runner } from '../sys/run.js';
import type { ZfsFlavour } from '../sys/platform.js';
import { BeError } from '../sys/errors.js';
import type { Zfs } from './zfs.js';
import { withFileLock } from '../sys/lock.js';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Property that remembers a dataset's own mountpoint while zfs-fuse has it mounted elsewhere. */
export const SAVED_MOUNTPOINT = 'be:mountpoint';

/**
 * Mounting a dataset at an arbitrary directory, the one place where platforms differ:
 * - FreeBSD: `mount -t zfs DATASET DIR`
 * - Linux OpenZFS: `mount -t zfs -o zfsutil DATASET DIR`
 * - zfs-fuse mounts only at a dataset's mountpoint under the pool's altroot, so the mountpoint
 *   is pointed at DIR for the time of the mount and restored on unmount (the original is kept
 *   in the user property be:mountpoint so a crash in between loses nothing).
 */
export interface MountBackend {
  mount(dataset: string, dir: string): Promise<void>;
  unmount(dataset: string, dir: string, force: boolean): Promise<void>;
}

export function mountBackend(flavour: ZfsFlavour, runner: Runner, zfs: Zfs, altroot: string): MountBackend {
  if (flavour === 'zfs-fuse') return new FuseMount(zfs, altroot);
  const opts = flavour === 'openzfs-linux' ? ['-o', 'zfsutil'] : [];
  return {
    async mount(dataset, dir) {
      const r = await runner.change(['mount', '-t', 'zfs', ...opts, dataset, dir], { undo: ['umount', dir] });
      if (r.pending) zfs.planned.mounted(dataset, dir);
    },
    async unmount(dataset, dir, force) {
      const r = await runner.change(['umount', ...(force ? ['-f'] : []), dir]);
      if (r.pending) zfs.planned.unmounted(dataset);
    },
  };
}

/** Strip the pool's altroot from a path as zfs shows it. */
export function withoutAltroot(path: string, altroot: string): string {
  if (!altroot || altroot === '-' || altroot === '/') return path;
  if (path === altroot) return '/';
  return path.startsWith(`${altroot}/`) ? path.slice(altroot.length) : path;
}

/**
 * zfs-fuse hangs when two mounts or unmounts run at once (a new mount's FUSE session is never
 * initialised), so they take turns across every `be` process on the host.
 */
export const FUSE_MOUNT_LOCK = join(existsSync('/run') ? '/run' : tmpdir(), 'be-zfs-fuse-mount');

class FuseMount implements MountBackend {
  constructor(private readonly zfs: Zfs, private readonly altroot: string) {}

  private serialized<T>(body: () => Promise<T>): Promise<T> {
    return withFileLock(FUSE_MOUNT_LOCK, body, 300_000);
  }

  private relative(dir: string): string {
    const rel = withoutAltroot(dir, this.altroot);
    if (rel === dir && this.altroot && this.altroot !== '-' && this.altroot !== '/') {
      throw new BeError(`zfs-fuse mounts only under the pool's altroot ${this.altroot}: cannot mount at '${dir}'`);
    }
    return rel;
  }

  mount(dataset: string, dir: string): Promise<void> {
    return this.serialized(() => this.mountNow(dataset, dir));
  }

  private async mountNow(dataset: string, dir: string): Promise<void> {
    const rel = this.relative(dir);
    const props = (await this.zfs.get([dataset], ['mountpoint', SAVED_MOUNTPOINT])).get(dataset)!;
    const mp = props.mountpoint;
    const own = { value: withoutAltroot(mp.value, this.altroot), inherit: mp.source !== 'local' };
    if (!props[SAVED_MOUNTPOINT] || props[SAVED_MOUNTPOINT].source !== 'local') {
      await this.zfs.set(dataset, SAVED_MOUNTPOINT, own.inherit ? '-' : own.value, { value: '', inherit: true });
    }
    // A failed mount puts the mountpoint back as it was (undo runs in reverse order).
    await this.zfs.set(dataset, 'mountpoint', rel, own);
    await this.zfs.mount(dataset, dir);
  }

  unmount(dataset: string, _dir: string, force: boolean): Promise<void> {
    return this.serialized(async () => {
      await this.zfs.umount(dataset, force);
      await restoreMountpoint(this.zfs, dataset);
    });
  }
}

/** Put back the mountpoint that a zfs-fuse mount replaced ('-' meant inherited). */
export async function restoreMountpoint(zfs: Zfs, dataset: string): Promise<void> {
  const props = (await zfs.get([dataset], [SAVED_MOUNTPOINT])).get(dataset);
  const saved = props?.[SAVED_MOUNTPOINT];
  if (!saved || saved.source !== 'local') return;
  if (saved.value === '-') await zfs.inherit(dataset, 'mountpoint');
  else await zfs.set(dataset, 'mountpoint', saved.value);
  await zfs.inherit(dataset, SAVED_MOUNTPOINT);
}
