import { describe, expect, it } from 'vitest';
import { Runner } from '../../src/sys/run.js';
import { Zfs } from '../../src/zfs/zfs.js';
import { mountBackend } from '../../src/zfs/mount.js';
import { parseMountTable } from '../../src/sys/platform.js';
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BE_BIN } from '../helpers/cli.js';

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

describe('rc.d/be_pxe against libexec/rc/rc.subr', () => {
  const script = readFileSync(fileURLToPath(new URL('../../rc.d/be_pxe', import.meta.url)), 'utf8');
  /** The per-service variables run_rc_command reads itself (rc.subr: eval ...=\$${name}_X). */
  const RC_SUBR_RESERVED = ['program', 'chroot', 'chdir', 'cpuset', 'flags', 'env', 'env_file', 'fib', 'nice', 'user', 'group', 'groups', 'prepend', 'login_class', 'limits', 'oomprotect', 'setup', 'umask', 'offcmd', 'svcj', 'svcj_options', 'svcj_ipaddrs'];

  it('defines none of the ${name}_* variables rc.subr gives a meaning to (be_pxe_program would replace $command)', () => {
    const own = [...script.matchAll(/\$\{be_pxe_([a-z_]+):=/g)].map((m) => m[1]);
    expect(own).toEqual(['enable', 'config', 'logfile', 'bin', 'node']);
    expect(own.filter((v) => RC_SUBR_RESERVED.includes(v))).toEqual([]);
  });

  it("starts daemon(8) with be under it, after run_rc_command's ${name}_program step", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bplt-rcd.'));
    try {
      // Only the steps of rc.subr this script relies on: load_rc_config, then in run_rc_command
      // `eval _override_command=\$${name}_program; command=${_override_command:-$command}` and
      // the start method's `$command $rc_flags $command_args`.
      await writeFile(
        join(dir, 'rc.subr'),
        'load_rc_config() { :; }\nrun_rc_command() { eval _override_command=\\$${name}_program; command=${_override_command:-$command}; echo "$command $command_args"; }\n',
      );
      const r = await execa('sh', ['-c', script.replace('. /etc/rc.subr', `. ${join(dir, 'rc.subr')}`), 'be_pxe', 'start'], { env: {}, extendEnv: false });
      expect(r.stdout).toBe(
        '/usr/sbin/daemon -f -H -t be_pxe -p /var/run/be_pxe.pid -o /var/log/be_pxe.log /usr/local/bin/node /usr/local/bin/be pxe serve --config /usr/local/etc/be/pxe.json',
      );
      expect(script).toMatch(/^procname="\$\{be_pxe_node\}"$/m);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('starts be without PATH: service(8) runs rc.d scripts with PATH=/sbin:/bin:/usr/sbin:/usr/bin (service.sh), no /usr/local/bin', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bplt-rcd.'));
    try {
      await writeFile(join(dir, 'rc.subr'), 'load_rc_config() { :; }\nrun_rc_command() { echo "$command_args"; }\n');
      const settings = `be_pxe_node=${process.execPath} be_pxe_bin=${BE_BIN} be_pxe_config=${join(dir, 'none.json')} be_pxe_logfile=${join(dir, 'log')}`;
      const r = await execa('sh', ['-c', `${settings}; ${script.replace('. /etc/rc.subr', `. ${join(dir, 'rc.subr')}`)}`, 'be_pxe', 'start'], { env: {}, extendEnv: false });
      const args = r.stdout.split(' ');
      const child = args.slice(args.indexOf('-o') + 2); // what daemon(8) execvp()s
      expect(child.slice(0, 2)).toEqual([process.execPath, BE_BIN]);
      const run = await execa(child[0], child.slice(1), { env: { PATH: '/var/empty' }, extendEnv: false, reject: false });
      expect(run.stderr).toMatch(new RegExp(`^be: .*${join(dir, 'none.json').replace(/[.]/g, '\\.')}`));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
