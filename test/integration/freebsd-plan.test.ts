import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { be, beOk } from '../helpers/cli.js';
import { makeTestPool, type TestPool } from '../helpers/zfs.js';
import { buildMirror, busyboxUserland } from '../helpers/mirror.js';

/**
 * `BE_PLATFORM=freebsd be -n …` on this Linux host: every command that changes a host prints the
 * FreeBSD plan, its lookups answered here (the zfs queries by the real zfs-fuse pool, the mount
 * table from /proc/self/mounts instead of FreeBSD's `mount -p`), as a script `sh -n` accepts,
 * with FreeBSD's programs in it and none of the Linux ones.
 */
let tp: TestPool;
let work: string;
let mirror: string;
const FREEBSD = { BE_PLATFORM: 'freebsd' };

/** Linux-only steps that must never be in a FreeBSD plan. */
const LINUX_ONLY = [/-o zfsutil/, /\bdevtmpfs\b/, /mount -t proc\b/, /\blosetup\b/, /\bsfdisk\b/, /\bganesha\b/, /--warning=no-unknown-keyword/, /\bumount -l\b/, /\/var\/lib\/be\//];

async function plan(args: string[]): Promise<string> {
  const r = await be(['-R', tp.root, '-n', ...args], { env: FREEBSD });
  expect(r.stderr, `be -n ${args.join(' ')}`).not.toMatch(/^be: |Error|at .*\.js/m);
  expect(r.exitCode, `be -n ${args.join(' ')}: ${r.stderr}`).toBe(0);
  const check = await execa('sh', ['-n'], { input: r.stdout, reject: false });
  expect(check.stderr, `sh -n of the plan of be ${args.join(' ')}:\n${r.stdout}`).toBe('');
  expect(check.exitCode).toBe(0);
  for (const linux of LINUX_ONLY) expect(r.stdout, `be -n ${args.join(' ')}`).not.toMatch(linux);
  return r.stdout;
}

/** The plan's command lines (no comments, no here-document bodies). */
function commands(script: string): string[] {
  const out: string[] = [];
  let heredoc: string | undefined;
  for (const line of script.split('\n')) {
    if (heredoc !== undefined) {
      if (line === heredoc) heredoc = undefined;
      continue;
    }
    const h = /<<-?\s*'?([A-Z_]+)'?/.exec(line);
    if (h) heredoc = h[1];
    if (line && !line.startsWith('#')) out.push(line);
  }
  return out;
}

beforeAll(async () => {
  await beOk(['--version']);
  tp = await makeTestPool('512M', 'bplt');
  work = await mkdtemp(join(tmpdir(), 'bplt-plan.'));
  mirror = join(work, 'pub');
  await buildMirror(mirror, [
    {
      version: '14.1',
      arch: 'amd64',
      sets: {
        base: { files: busyboxUserland({ 'etc/release': '14.1\n' }, { busybox: false }) },
        kernel: { files: { 'boot/kernel/kernel': { content: 'kernel\n', mode: 0o555 } } },
      },
    },
  ]);
  await writeFile(join(work, 'test.sh'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  // Made for real (zfs-fuse): the BEs the plans are made against.
  await beOk(['-R', tp.root, 'create', 'head']);
  await beOk(['-R', tp.root, 'create', '-e', 'head', 'clone']);
  await beOk(['-R', tp.root, 'snapshot', 'head@one']);
  await beOk(['-R', tp.root, 'create', 'mounted']);
  await beOk(['-R', tp.root, 'mount', 'mounted']);
});

afterAll(async () => {
  if (tp) await be(['-R', tp.root, 'umount', 'mounted']);
  await tp?.destroy();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('BE_PLATFORM=freebsd be -n on Linux: the FreeBSD plan of every command that changes the host', () => {
  it('reads the mount table of this host instead of running mount -p, and says so', async () => {
    const out = await plan(['destroy', 'clone']);
    expect(out).toContain('# mount table read from /proc/self/mounts of this linux host (on FreeBSD: mount -p)');
    // the clone, then its origin: an automatic snapshot nothing else uses (libbe's be_destroy)
    expect(commands(out)).toEqual(['set -e', `zfs destroy -r ${tp.root}/clone`, expect.stringMatching(new RegExp(`^zfs destroy -r ${tp.root}/head@\\d{4}-\\d\\d-\\d\\d-[\\d:]+-\\d+$`))]);
    // nothing changed
    expect((await beOk(['-R', tp.root, 'list', '-H'])).split('\n').map((l) => l.split('\t')[0])).toContain('clone');
  });

  it('create (a layout and a clone): plain zfs create/clone, without the zfs-fuse mountpoint detour', async () => {
    expect(await plan(['create', 'fresh'])).toContain(`zfs create -o mountpoint=/ -o canmount=noauto ${tp.root}/fresh\n`);
    const clone = commands(await plan(['create', '-e', 'head', 'copy']));
    expect(clone.some((l) => l.startsWith(`zfs clone -o mountpoint=/ -o canmount=noauto ${tp.root}/head@`))).toBe(true);
    expect(clone.filter((l) => /mountpoint=none|zfs inherit mountpoint/.test(l))).toEqual([]);
  });

  it('mount: mount -t zfs DATASET DIR in rc.d/zfsbe order, the way FreeBSD mounts at any directory', async () => {
    const lines = commands(await plan(['mount', 'head', '/mnt/head']));
    expect(lines).toContain(`mount -t zfs ${tp.root}/head /mnt/head`);
    expect(lines).toContain(`mount -t zfs ${tp.root}/head/var/log /mnt/head/var/log`);
    expect(lines.filter((l) => /^zfs (set|mount)/.test(l))).toEqual([]);
    expect(lines.indexOf(`mount -t zfs ${tp.root}/head /mnt/head`)).toBeLessThan(lines.indexOf(`mount -t zfs ${tp.root}/head/var/log /mnt/head/var/log`));
  });

  it('umount of a BE mounted here: umount DIR, deepest first', async () => {
    const lines = commands(await plan(['umount', 'mounted']));
    const umounts = lines.filter((l) => l.startsWith('umount '));
    expect(umounts.length).toBeGreaterThan(3);
    expect(umounts.at(-1)).toMatch(/^umount \S+be_mount\.[0-9a-f]{8}$/);
    expect(lines.filter((l) => l.startsWith('zfs '))).toEqual([]);
  });

  it('rename, snapshot, rollback, activate', async () => {
    expect(commands(await plan(['rename', 'clone', 'renamed']))).toContain(`zfs rename ${tp.root}/clone ${tp.root}/renamed`);
    expect(commands(await plan(['snapshot', 'head@two']))).toContain(`zfs snapshot -r ${tp.root}/head@two`);
    expect(commands(await plan(['rollback', 'head@one']))).toContain(`zfs rollback ${tp.root}/head@one`);
    expect(commands(await plan(['activate', 'head']))).toContain(`zpool set bootfs=${tp.root}/head ${tp.pool}`);
  });

  it('activate -t: zfsbootcfg on the BE\'s pool', async () => {
    expect(commands(await plan(['activate', '-t', 'head']))).toContain(`zfsbootcfg -z ${tp.pool} zfs:${tp.root}/head:`);
  });

  it('chroot: devfs on DIR/dev (no proc, no devtmpfs), unmounted afterwards', async () => {
    const lines = commands(await plan(['chroot', 'head', '--', '/bin/echo', 'hi']));
    const devfs = lines.findIndex((l) => /^mount -t devfs devfs \S+\/dev$/.test(l));
    expect(devfs).toBeGreaterThan(0);
    // in the environment a live run gives it (env -i PATH=… HOME=…)
    const chroot = lines.findIndex((l) => /^env -i .* chroot \S+ \/bin\/echo hi$/.test(l));
    expect(chroot).toBeGreaterThan(devfs);
    expect(lines.findIndex((l) => /^umount \S+\/dev$/.test(l))).toBeGreaterThan(chroot);
  });

  // jail(8), exports/mountd and `be image` are rebuilt elsewhere: only that their plans exist.
  it('jail, unjail: a plan with jail(8) in it', async () => {
    expect(await plan(['jail', 'head'])).toMatch(/^jail /m);
    expect(await plan(['unjail', 'head'])).toMatch(/^jail /m);
  });

  it('sharenfs, unsharenfs: a plan that reaches mountd', async () => {
    expect(await plan(['sharenfs', 'head', '--network', '10.77.0.0/24'])).toMatch(/mountd/);
    expect(await plan(['unsharenfs', 'head'])).toMatch(/mountd/);
  });

  it('image: a plan with mdconfig in it', async () => {
    expect(await plan(['image', '--size', '1G', 'head', join(work, 'bplt.img')])).toMatch(/\bmdconfig\b/);
  });

  it('fstab: the guest fstab written into the BE', async () => {
    expect(await plan(['fstab', 'head', '--server', '10.77.0.1'])).toMatch(/^10\.77\.0\.1:\S+\/var\/log \/var\/log nfs /m);
  });

  it('install from a local mirror: bsdtar keeping file flags (no GNU tar options)', async () => {
    const lines = commands(await plan(['install', '-p', mirror, '-r', '14.1', '-a', 'amd64', '--cache', join(work, 'cache'), '-q', 'head']));
    expect(lines.some((l) => /^tar -x -p --numeric-owner -f \S+base\.txz -C \S+$/.test(l))).toBe(true);
  });

  it('bootnfs: bhyveload with the NFS root, bhyve, bhyvectl --destroy; the file handle asked when the plan runs if mountd does not answer now', async () => {
    const out = await plan(['bootnfs', 'head', '--vm', 'bplt1', '--address', '10.77.0.5/24', '--mac', '02:00:00:00:77:01', '--server', '127.0.0.1']);
    // the reboot loop's lines, unindented
    const lines = commands(out).map((l) => l.trim());
    expect(out).toMatch(/^# no NFS file handle of 127\.0\.0\.1:\S+ now \(.*\): the plan asks mountd for it when it runs$/m);
    const nfs = lines.findIndex((l) => /^nfs=\$\(be nfshandle 127\.0\.0\.1 \S+\)$/.test(l));
    const load = lines.findIndex((l) => l.startsWith('bhyveload '));
    const run = lines.findIndex((l) => l.startsWith('bhyve '));
    expect([nfs >= 0, nfs < load, load < run]).toEqual([true, true, true]);
    expect(lines[load]).toContain('-e "boot.nfsroot.nfshandle=${nfs% *}" -e "boot.nfsroot.nfshandlelen=${nfs#* }"');
    expect(lines[run]).toContain('-s 2:0,virtio-net,tap0,mac=02:00:00:00:77:01');
    // nfs_diskless.c finds the boot interface by boot.netif.hwaddr: the NIC bhyve gives the guest
    expect(lines[load]).toContain('-e boot.netif.hwaddr=02:00:00:00:77:01 ');
    expect(lines[run]).toMatch(/ bplt1 \|\| be_status=\$\?$/);
    expect(lines[run + 1]).toBe('bhyvectl --destroy --vm=bplt1 || true');
    expect([lines[nfs + 1], lines.at(-1)]).toEqual(['while :; do', 'done']);
    // what the shell makes of the bhyveload line, with the handle be nfshandle would print
    const words = await execa('sh', ['-c', `nfs='X0a0bX 2'; bhyveload() { printf '%s\\n' "$@"; }\n${lines[load]}`]);
    expect(words.stdout.split('\n')).toEqual(expect.arrayContaining(['boot.nfsroot.nfshandle=X0a0bX', 'boot.nfsroot.nfshandlelen=2']));
  }, 30_000);

  it('bootpxe: bhyve with the UEFI bootrom', async () => {
    expect(commands(await plan(['bootpxe', 'head', '--vm', 'bplt2'])).map((l) => l.trim())).toContain(
      'bhyve -c 1 -m 1G -A -H -P -s 0:0,hostbridge -s 1:0,lpc -s 2:0,virtio-net,tap0 -l com1,/dev/nmdm0A -l bootrom,/usr/local/share/uefi-firmware/BHYVE_UEFI.fd bplt2 || be_status=$?',
    );
  });

  it('sharepxe and pxe serve: the BE mounted FreeBSD\'s way and the server it starts', async () => {
    const share = commands(await plan(['sharepxe', 'head', '--address', '10.77.0.1', '--subnet', '10.77.0.0/24', '--range', '10.77.0.100-10.77.0.110']));
    expect(share.some((l) => l.startsWith(`mount -t zfs ${tp.root}/head `))).toBe(true);
    expect(share.some((l) => /^be pxe serve .*--root-path 10\.77\.0\.1:\S+/.test(l))).toBe(true);
    expect(share.some((l) => /^be pxe serve .*--lease-file \/var\/db\/be\/pxe\/leases /.test(l))).toBe(true);
    expect(await plan(['pxe', 'serve', '--address', '10.77.0.1', '--subnet', '10.77.0.0/24', '--range', '10.77.0.100-10.77.0.110', '--tftp-root', work])).toMatch(
      /^be pxe serve .*--lease-file \/var\/db\/be\/pxe\/leases /m,
    );
  });

  it("sharepxe refuses a root path longer than the loader's rootpath[128] (stand/libsa/net.h), mounting nothing", async () => {
    const long = `10.77.0.1:/${'d'.repeat(120)}`;
    for (const env of [FREEBSD, {}]) {
      const r = await be(['-R', tp.root, 'sharepxe', 'head', '--address', '10.77.0.1', '--subnet', '10.77.0.0/24', '--range', '10.77.0.100-10.77.0.110', '--root-path', long], { env });
      expect(r.stderr).toBe(`be: root path '${long}' is 131 bytes: FreeBSD's loader keeps at most 127 (share the BE from a shorter path)\n`);
      expect(r.exitCode).toBe(1);
      expect((await beOk(['-R', tp.root, 'list', '-H'])).split('\n').find((l) => l.startsWith('head\t'))).toMatch(/^head\t-\t-\t/);
    }
    // 127 bytes pass
    const fits = `10.77.0.1:/${'d'.repeat(116)}`;
    expect(fits.length).toBe(127);
    expect(await plan(['sharepxe', 'head', '--address', '10.77.0.1', '--subnet', '10.77.0.0/24', '--range', '10.77.0.100-10.77.0.110', '--root-path', fits])).toContain(`--root-path ${fits}`);
  });

  it('chroot into a BE without the command: one line naming it (FreeBSD chroot(8) would exit 1, a "bad" verdict), nothing left mounted', async () => {
    const r = await be(['-R', tp.root, 'chroot', 'head', '--', '/usr/local/bin/bash', '-c', 'true']);
    expect(r.stderr).toBe('be: /usr/local/bin/bash: not found in the boot environment\n');
    expect(r.exitCode).toBe(1);
    expect((await beOk(['-R', tp.root, 'list', '-H'])).split('\n').find((l) => l.startsWith('head\t'))).toMatch(/^head\t-\t-\t/);
  });

  it('hunt run: jail by default on FreeBSD; --method bhyve', async () => {
    const test = join(work, 'test.sh');
    const from = ['-p', mirror, '-a', 'amd64', '--cache', join(work, 'cache')];
    expect(await plan(['hunt', 'run', '--releases', '14.1', '--test', test, ...from])).toMatch(/\bjail -c /);
    const bhyve = commands(await plan(['hunt', 'run', '--releases', '14.1', '--test', test, '--method', 'bhyve', ...from]));
    expect(bhyve.some((l) => l.startsWith('bhyveload '))).toBe(true);
    expect(bhyve.some((l) => /\bbhyve -c 1 /.test(l))).toBe(true);
  });

  it('pool create and pool destroy', async () => {
    expect(commands(await plan(['pool', 'create', '--file', join(work, 'bpltq.img'), '--size', '1G', 'bpltq']))).toContain(`zpool create -m none -R /tmp/be.bpltq bpltq ${join(work, 'bpltq.img')}`);
    expect(commands(await plan(['pool', 'destroy', tp.pool]))).toContain(`zpool destroy -f ${tp.pool}`);
  });
});
