/**
 * `be sharepxe` on a zfs-fuse BE: DHCP hands out root-path <address>:<where the BE is shared
 * from> (the path `be sharenfs` exports) and TFTP serves the BE's /boot, also under the
 * root-path-prefixed names a TFTP-built FreeBSD loader asks for.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestPool, type TestPool } from '../helpers/zfs.js';
import { makeLan, type Lan } from '../helpers/netns.js';
import { BE_BIN, beOk } from '../helpers/cli.js';
import { pxeClient, startBe, tftpGet } from '../helpers/pxe.js';

describe('be sharepxe', () => {
  let pool: TestPool;
  let lan: Lan;
  let dir: string;
  const pxeboot = randomBytes(9000);

  beforeAll(async () => {
    pool = await makeTestPool('256M');
    lan = await makeLan(1);
    dir = await mkdtemp(join(tmpdir(), 'be-sharepxe-'));
    await chmod(dir, 0o755);
  }, 60_000);

  afterAll(async () => {
    await lan?.destroy();
    await pool?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it("serves the BE's /boot over TFTP and its NFS export as root-path", async () => {
    const be = `${pool.pool}/be/lab`;
    await beOk(['create', '-l', 'flat', be]);
    const mnt = (await beOk(['mount', be])).trim();
    await mkdir(join(mnt, 'boot'));
    await writeFile(join(mnt, 'boot', 'pxeboot'), pxeboot);
    await writeFile(join(mnt, 'boot', 'loader.efi'), 'loader.efi of the BE\n');
    await writeFile(join(mnt, 'boot', 'loader.conf'), 'autoboot_delay="2"\n');
    await symlink('/etc/passwd', join(mnt, 'boot', 'passwd'));
    await execa('chmod', ['-R', 'a+rX', join(mnt, 'boot')]);
    await beOk(['umount', be]);

    const address = lan.serverIps[0];
    const shared = join(pool.altroot, 'be', 'lab');
    const server = startBe(lan.servers[0], ['sharepxe', be, '--address', address, '--range', `${lan.prefix}.100-${lan.prefix}.120`, '--lease-file', join(dir, 'db', 'leases')], { netOnly: true });
    try {
      await server.waitFor(/^running as nobody/);
      expect(server.lines[0]).toBe(`sharing ${be} from ${shared} (mounted now; left mounted): TFTP ${shared}/boot, root-path ${address}:${shared}`);

      const bios = await pxeClient(lan, dir, '02:be:5a:00:00:01');
      expect(bios).toMatchObject({ siaddr: address, boot_file: 'pxeboot', rootpath: `${address}:${shared}` });
      const efi = await pxeClient(lan, dir, '02:be:5a:00:00:02', '0007');
      expect(efi).toMatchObject({ boot_file: 'loader.efi', rootpath: `${address}:${shared}` });

      expect(Buffer.compare(await tftpGet(lan, dir, 'pxeboot'), pxeboot)).toBe(0);
      expect((await tftpGet(lan, dir, 'loader.efi')).toString()).toBe('loader.efi of the BE\n');
      // a TFTP-built loader prefixes the root path: served from memory out of the same /boot
      expect((await tftpGet(lan, dir, `${shared}/boot/loader.conf`)).toString()).toBe('autoboot_delay="2"\n');
      await server.waitFor(new RegExp(`"${shared}/boot/loader.conf" 19/19 bytes .* ok`));
      // nothing outside /boot, under either name
      await expect(tftpGet(lan, dir, `${shared}/etc/passwd`)).rejects.toThrow(/Error code/);
      await expect(tftpGet(lan, dir, `${shared}/boot/passwd`)).rejects.toThrow(/Error code/);
      await expect(tftpGet(lan, dir, 'passwd')).rejects.toThrow(/Error code/);

      // the root path is the path `be sharenfs` exports
      const exportsFile = join(dir, 'exports');
      await beOk(['sharenfs', be, '--network', lan.subnet, '--exports', exportsFile]);
      expect(await readFile(exportsFile, 'utf8')).toContain(`\n${shared} -network ${lan.prefix}.0 -mask 255.255.255.0\n`);

      expect(await server.stop()).toBe(0);
      expect(await readFile('/proc/self/mounts', 'utf8')).toContain(`${be} ${shared} `);
    } finally {
      await server.stop().catch(() => {});
    }
  }, 120_000);

  it('-n prints the mount and the serve step with every setting, and changes nothing', async () => {
    const be = `${pool.pool}/be/dry`;
    await beOk(['create', '-l', 'flat', be]);
    const shared = join(pool.altroot, 'be', 'dry');
    const out = await beOk(['-n', 'sharepxe', be, '--address', '192.168.2.1', '--subnet', '192.168.2.0/24', '--range', '192.168.2.100-192.168.2.199', '--user', 'nobody']);
    const lines = out.trim().split('\n');
    expect(lines.slice(0, 2)).toEqual(['#!/bin/sh', 'set -e']);
    expect(lines.some((l) => /^zfs mount /.test(l))).toBe(true);
    // the BE the plan mounts is looked into when the plan runs, before the server starts
    const check = lines.indexOf(`[ -d ${shared}/boot ] || { echo 'be: boot environment '\\''${be}'\\'' has no /boot directory (looked in ${shared}/boot)' >&2; exit 1; }`);
    expect(check).toBeGreaterThan(lines.findIndex((l) => /^zfs mount /.test(l)));
    expect(lines.slice(check + 1, -1).every((l) => l.startsWith('# '))).toBe(true);
    expect(lines.at(-1)).toBe(`be pxe serve --address 192.168.2.1 --subnet 192.168.2.0/24 --range 192.168.2.100-192.168.2.199 --boot-bios pxeboot --boot-efi loader.efi --root-path 192.168.2.1:${shared} --lease-file /var/lib/be/pxe/leases --tftp-root ${shared}/boot --user nobody`);
    expect(await readFile('/proc/self/mounts', 'utf8')).not.toContain(`${be} `);
  }, 60_000);

  it('refuses a BE without /boot, and a missing BE, with one line', async () => {
    const be = `${pool.pool}/be/noboot`;
    await beOk(['create', '-l', 'flat', be]);
    const args = ['--address', lan.serverIps[0], '--range', `${lan.prefix}.100-${lan.prefix}.120`, '--lease-file', join(dir, 'db2', 'leases')];
    const r = await execa('nsenter', [`--net=/run/netns/${lan.servers[0]}`, process.execPath, BE_BIN, 'sharepxe', be, ...args], { reject: false });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe(`be: boot environment '${be}' has no /boot directory (looked in ${join(pool.altroot, 'be', 'noboot', 'boot')})`);
    const missing = await execa('nsenter', [`--net=/run/netns/${lan.servers[0]}`, process.execPath, BE_BIN, 'sharepxe', `${pool.pool}/be/nope`, ...args], { reject: false });
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toBe(`be: boot environment '${pool.pool}/be/nope' does not exist`);
  }, 60_000);
});
