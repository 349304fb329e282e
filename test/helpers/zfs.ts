import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Start the zfs-fuse daemon if this Linux host has no kernel ZFS and the daemon is not running. */
export async function ensureZfs(): Promise<void> {
  const probe = await execa('zpool', ['list', '-H', '-o', 'name'], { reject: false });
  if (probe.exitCode === 0) return;
  if (existsSync('/dev/zfs')) throw new Error(`zpool list failed: ${probe.stderr}`);
  // A daemon killed earlier leaves its pid file behind, and zfs-fuse then refuses to start.
  const pidFile = '/run/zfs-fuse.pid';
  if (existsSync(pidFile)) {
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    if (!pid || !existsSync(`/proc/${pid}`)) await rm(pidFile, { force: true });
  }
  // Without the page cache the daemon's own sync(2) during an unmount cannot wait on dirty pages
  // of its other mounts (a deadlock seen when one BE is unmounted while another is written).
  await execa('zfs-fuse', ['--pidfile', pidFile, '--no-kstat-mount', '--disable-page-cache'], { reject: false });
  for (let i = 0; i < 50; i++) {
    const again = await execa('zpool', ['list', '-H', '-o', 'name'], { reject: false });
    if (again.exitCode === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('zfs-fuse did not start');
}

export interface TestPool {
  pool: string;
  file: string;
  altroot: string;
  /** BE root inside the pool, for -R. */
  root: string;
  destroy(): Promise<void>;
}

/** A throw-away file-backed pool with an altroot under the temp directory, named PREFIX<hex>. */
export async function makeTestPool(size = '512M', prefix = 'betest'): Promise<TestPool> {
  await ensureZfs();
  const id = randomBytes(3).toString('hex');
  const pool = `${prefix}${id}`;
  // The vdev lives in memory (tmpfs) where there is one: zfs-fuse calls sync(2) on every
  // unmount, and with its pool files on a busy disk that sync can stall the whole daemon.
  const file = join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), `${pool}.img`);
  const altroot = join(tmpdir(), `${pool}.alt`);
  await execa('truncate', ['-s', size, file]);
  await execa('zpool', ['create', '-m', 'none', '-R', altroot, pool, file]);
  return {
    pool,
    file,
    altroot,
    root: `${pool}/ROOT`,
    async destroy() {
      // Unmount deepest first so zfs-fuse lets the pool go, then destroy it and its file.
      const mounts = (await execa('zfs', ['list', '-H', '-o', 'name', '-r', pool], { reject: false })).stdout.split('\n').filter(Boolean).reverse();
      // Never `zfs umount -f` on zfs-fuse: a lazy detach leaves its daemon spinning (see src/zfs).
      for (const ds of mounts) {
        for (let i = 0; i < 10; i++) {
          const r = await execa('zfs', ['umount', ds], { reject: false });
          if (r.exitCode === 0 || /not currently mounted/.test(r.stderr)) break;
          await new Promise((res) => setTimeout(res, 200));
        }
      }
      await execa('zpool', ['destroy', '-f', pool], { reject: false });
      await rm(file, { force: true });
      await rm(altroot, { recursive: true, force: true }).catch(() => {});
    },
  };
}
