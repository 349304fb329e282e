import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { Runner } from '../../src/sys/run.js';
import { mountTable, mountTableArgv, parseMountTable, rootDataset } from '../../src/sys/platform.js';
import { zfsbootcfgArgv } from '../../src/be/be.js';
import { be } from '../helpers/cli.js';

/** The words sh makes of one line of a dry-run script whose command is NAME. */
async function words(line: string, name: string): Promise<string[]> {
  const r = await execa('sh', ['-c', `${name}() { printf '%s\\n' ${name} "$@"; }\n${line}`]);
  return r.stdout.split('\n');
}

/**
 * One line of FreeBSD's `mount -p`, laid out as sbin/mount/mount.c's putfsent() does: the
 * device and the mount point each padded with tabs to the next of columns 8, 16, 24 (one space
 * when longer), the type and a tab, the options and a tab (a space when 8 or longer), then a
 * tab and "dump pass".
 */
function putfsent(from: string, on: string, type: string, opts: string, dumpPass = '0 0'): string {
  const pad = (s: string) => `${s}${s.length < 8 ? '\t' : ''}${s.length < 16 ? '\t' : ''}${s.length < 24 ? '\t' : ' '}`;
  return `${pad(from)}${pad(on)}${type}\t${opts}${opts.length < 8 ? '\t' : ' '}\t${dumpPass}\n`;
}

describe('be activate -t: zfsbootcfg(8), FreeBSD only', () => {
  it('one operand "zfs:pool/filesystem:", as zfsbootcfg(8) shows for a new boot environment, on the BE\'s pool (-z pool)', async () => {
    expect(zfsbootcfgArgv('tank/ROOT/newbe')).toEqual(['zfsbootcfg', '-z', 'tank', 'zfs:tank/ROOT/newbe:']);
    // as the dry-run script prints it, sh makes the same single word of it
    const runner = new Runner({ dryRun: true, out: () => {} });
    await runner.change(zfsbootcfgArgv('zroot/ROOT/14.1-p3_new'));
    const line = runner.scriptText().split('\n')[2];
    expect(line).toBe('zfsbootcfg -z zroot zfs:zroot/ROOT/14.1-p3_new:');
    expect(await words(line, 'zfsbootcfg')).toEqual(['zfsbootcfg', '-z', 'zroot', 'zfs:zroot/ROOT/14.1-p3_new:']);
  });

  it('on Linux: one line, and no command is run (-v echoes none)', async () => {
    for (const platform of ['zfs-fuse', 'openzfs-linux']) {
      const r = await be(['-v', 'activate', '-t', 'zroot/ROOT/newbe'], { env: { BE_PLATFORM: platform } });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toBe('be: activate -t needs zfsbootcfg(8), which only FreeBSD has\n');
      expect(r.stdout).toBe('');
    }
  });
});

describe("the mount table on FreeBSD: mount -p (mount(8): 'Print mount information in fstab(5) format')", () => {
  const freebsd =
    putfsent('zroot/ROOT/default', '/', 'zfs', 'rw,noatime,nfsv4acls') +
    putfsent('devfs', '/dev', 'devfs', 'rw,multilabel') +
    putfsent('/dev/gpt/efiboot0', '/boot/efi', 'msdosfs', 'rw', '2 2') +
    putfsent('zroot/ROOT/default/var/log', '/var/log', 'zfs', 'rw,noexec,nosuid,noatime,nfsv4acls') +
    putfsent('zroot/ROOT/a-boot-environment-with-a-long-name', '/tmp/be_mount.0a1b2c3d', 'zfs', 'rw,nfsv4acls') +
    putfsent('tmpfs', '/tmp', 'tmpfs', 'rw');

  it('is read with `mount -p` there, and from /proc/self/mounts on Linux', () => {
    expect(mountTableArgv('freebsd')).toEqual(['mount', '-p']);
    expect(mountTableArgv('linux')).toBeUndefined();
  });

  it('is the host\'s: a FreeBSD plan made on Linux reads /proc/self/mounts, and its script says so once', async () => {
    const runner = new Runner({ dryRun: true, out: () => {} });
    const table = await mountTable(runner, 'freebsd', 'linux');
    expect(table.find((e) => e.target === '/')).toBeDefined();
    await mountTable(runner, 'freebsd', 'linux');
    expect(runner.scriptText()).toBe('#!/bin/sh\nset -e\n# mount table read from /proc/self/mounts of this linux host (on FreeBSD: mount -p)\n');
  });

  it('parses tab-aligned and space-separated fields alike', () => {
    expect(freebsd).toContain('zroot/ROOT/default\t/\t\t\tzfs\trw,noatime,nfsv4acls \t0 0\n');
    expect(freebsd).toContain('zroot/ROOT/a-boot-environment-with-a-long-name /tmp/be_mount.0a1b2c3d\tzfs\trw,nfsv4acls \t0 0\n');
    expect(parseMountTable(freebsd)).toEqual([
      { source: 'zroot/ROOT/default', target: '/', fstype: 'zfs' },
      { source: 'devfs', target: '/dev', fstype: 'devfs' },
      { source: '/dev/gpt/efiboot0', target: '/boot/efi', fstype: 'msdosfs' },
      { source: 'zroot/ROOT/default/var/log', target: '/var/log', fstype: 'zfs' },
      { source: 'zroot/ROOT/a-boot-environment-with-a-long-name', target: '/tmp/be_mount.0a1b2c3d', fstype: 'zfs' },
      { source: 'tmpfs', target: '/tmp', fstype: 'tmpfs' },
    ]);
  });

  it('finds the running BE, the one `be destroy` refuses: the ZFS dataset at /', () => {
    expect(rootDataset(parseMountTable(freebsd))).toBe('zroot/ROOT/default');
    // the last mount at / is the one seen (a BE mounted over the root in a rescue shell)
    expect(rootDataset(parseMountTable(freebsd + putfsent('zroot/ROOT/rescue', '/', 'zfs', 'rw')))).toBe('zroot/ROOT/rescue');
    // a UFS root: no running BE
    expect(rootDataset(parseMountTable(putfsent('/dev/ada0p2', '/', 'ufs', 'rw', '1 1') + putfsent('zroot/ROOT/default', '/mnt', 'zfs', 'rw')))).toBeUndefined();
    // Linux: OpenZFS and zfs-fuse roots in /proc/self/mounts; an ext4 root
    expect(rootDataset(parseMountTable('rpool/ROOT/debian / zfs rw,relatime,xattr,posixacl 0 0\nproc /proc proc rw 0 0\n'))).toBe('rpool/ROOT/debian');
    expect(rootDataset(parseMountTable('lab/ROOT/a / fuse.zfs rw,allow_other 0 0\n'))).toBe('lab/ROOT/a');
    expect(rootDataset(parseMountTable('/dev/vda / ext4 rw,relatime 0 0\nlab/ROOT/a /tmp/lab.alt/a fuse.zfs rw 0 0\n'))).toBeUndefined();
  });
});
