import { describe, expect, it } from 'vitest';
import { Runner } from '../../src/sys/run.js';
import { Zfs } from '../../src/zfs/zfs.js';
import { mountBackend } from '../../src/zfs/mount.js';
import { parseMountTable } from '../../src/sys/platform.js';

function dryRunner() {
  return new Runner({ dryRun: true, out: () => {} });
}

describe('mounting per platform (exact argv)', () => {
  it('FreeBSD: mount -t zfs DATASET DIR, umount [-f] DIR — as mount(8) and rc.d/zfsbe do', async () => {
    const runner = dryRunner();
    const backend = mountBackend('freebsd', runner, new Zfs(runner), '-');
    await backend.mount('zroot/ROOT/head/var/log', '/mnt/head/var/log');
    await backend.unmount('zroot/ROOT/head/var/log', '/mnt/head/var/log', true);
    await backend.unmount('zroot/ROOT/head', '/mnt/head', false);
    expect(runner.scriptText().split('\n').slice(2, 5)).toEqual([
      'mount -t zfs zroot/ROOT/head/var/log /mnt/head/var/log',
      'umount -f /mnt/head/var/log',
      'umount /mnt/head',
    ]);
  });

  it('Linux OpenZFS: mount -t zfs -o zfsutil', async () => {
    const runner = dryRunner();
    await mountBackend('openzfs-linux', runner, new Zfs(runner), '-').mount('tank/ROOT/a', '/tmp/be_mount.x');
    expect(runner.scriptText()).toContain('mount -t zfs -o zfsutil tank/ROOT/a /tmp/be_mount.x\n');
  });

  it('zfs-fuse refuses a directory outside the pool altroot with one line', async () => {
    const runner = dryRunner();
    await expect(mountBackend('zfs-fuse', runner, new Zfs(runner), '/tmp/be.lab').mount('lab/ROOT/a', '/mnt/a')).rejects.toThrow(
      "zfs-fuse mounts only under the pool's altroot /tmp/be.lab: cannot mount at '/mnt/a'",
    );
  });

  it('reads FreeBSD mount -p and Linux /proc/self/mounts', () => {
    expect(parseMountTable('zroot/ROOT/default\t/\tzfs\trw\t0 0\n/dev/ada0p1\t/boot/efi\tmsdosfs\trw\t2 2\n')).toEqual([
      { source: 'zroot/ROOT/default', target: '/', fstype: 'zfs' },
      { source: '/dev/ada0p1', target: '/boot/efi', fstype: 'msdosfs' },
    ]);
    expect(parseMountTable('lab/ROOT/a /tmp/with\\040space fuse.zfs rw 0 0\n')[0].target).toBe('/tmp/with space');
  });
});
