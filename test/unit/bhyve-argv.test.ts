import { describe, it, expect } from 'vitest';
import { bhyveloadArgv, bhyveArgv, bhyvectlDestroyArgv, bhyveEnd, nfsRootEnv, parseAddress, runVm, withBhyveEnd } from '../../src/boot/bhyve.js';
import { Runner } from '../../src/sys/run.js';
import { render } from '../../src/render/index.js';
import { execa } from 'execa';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeContext } from '../../src/be/context.js';
import { pxeBhyveArgv, UEFI_FIRMWARE } from '../../src/boot/pxe.js';
import { platformMounts, chrootCommandProblem } from '../../src/boot/chroot.js';
import { mkdir, symlink } from 'node:fs/promises';
import { mountdReloadArgv } from '../../src/share/share.js';
import { loaderHandle, encodeCall, decodeReply, XdrWriter } from '../../src/share/mountproto.js';

const HANDLE = Buffer.from('631083b5dea37b8a0a000400000000000a00000000000000', 'hex');

describe('bhyveload(8) with an NFS root', () => {
  // SYNOPSIS: bhyveload [-C] [-S] [-c cons-dev] [-d disk-path] [-e name=value] [-h host-path] [-l os-loader] [-m memsize[K|k|M|m|G|g|T|t]] vmname
  it('passes the loader variables sys/nfs/nfs_diskless.c reads, as the talk does', () => {
    const { ip, netmask } = parseAddress('192.168.2.10/24');
    const env = nfsRootEnv({ mac: '02:01:02:03:04:05', ip, netmask, server: '192.168.2.1', path: '/ROOT/head', handle: HANDLE });
    const argv = bhyveloadArgv({ vm: 'head', hostPath: '/ROOT/head', env, memory: '1024M', console: '/dev/nmdm0A' });
    expect(argv).toEqual([
      'bhyveload', '-c', '/dev/nmdm0A', '-h', '/ROOT/head',
      '-e', 'boot.netif.name=vtnet0',
      '-e', 'boot.netif.hwaddr=02:01:02:03:04:05',
      '-e', 'boot.netif.ip=192.168.2.10',
      '-e', 'boot.netif.netmask=255.255.255.0',
      '-e', 'boot.nfsroot.server=192.168.2.1',
      '-e', `boot.nfsroot.nfshandle=X${HANDLE.toString('hex')}X`,
      '-e', 'boot.nfsroot.nfshandlelen=24',
      '-e', 'boot.nfsroot.path=/ROOT/head',
      '-e', 'vfs.root.mountfrom=nfs:192.168.2.1:/ROOT/head',
      '-e', 'vfs.root.mountfrom.options=rw',
      '-m', '1024M', 'head',
    ]);
    // every -e takes name=value; the VM name is last
    for (let i = 0; i < argv.length; i++) if (argv[i] === '-e') expect(argv[i + 1]).toMatch(/^[a-z.]+=\S+$/);
  });

  it('takes IP/prefix or IP/netmask and adds the gateway only when given', () => {
    expect(parseAddress('10.0.0.5/255.255.0.0')).toEqual({ ip: '10.0.0.5', netmask: '255.255.0.0' });
    expect(() => parseAddress('10.0.0.5/255.0.255.0')).toThrow(/invalid netmask/);
    expect(() => parseAddress('10.0.0.5')).toThrow(/invalid address '10.0.0.5'/);
    const env = nfsRootEnv({ mac: '02:00:00:00:00:01', ip: '10.0.0.5', netmask: '255.0.0.0', gateway: '10.0.0.1', server: '10.0.0.1', path: '/x', handle: HANDLE });
    expect(env.find(([k]) => k === 'boot.netif.gateway')).toEqual(['boot.netif.gateway', '10.0.0.1']);
  });

  it('loader handle is X<hex>X, the form decode_nfshandle() parses', () => {
    expect(loaderHandle(Buffer.from([0x63, 0x10, 0x83]))).toBe('X631083X');
  });
});

describe('bhyve(8) and bhyvectl(8)', () => {
  // SYNOPSIS: bhyve [-AaCDeHhPSuWwxY] [-c [[cpus=]numcpus]...] [-l lpcdev[,conf]] [-m memsize] [-s slot,emulation[,conf]] vmname
  it('virtio-net on the tap and com1 on an nmdm console; UEFI bootrom for PXE', () => {
    expect(bhyveArgv({ vm: 'head', memory: '1G', tap: 'tap0', mac: '02:01:02:03:04:05', console: '/dev/nmdm0A' })).toEqual([
      'bhyve', '-c', '1', '-m', '1G', '-A', '-H', '-P',
      '-s', '0:0,hostbridge', '-s', '1:0,lpc', '-s', '2:0,virtio-net,tap0,mac=02:01:02:03:04:05',
      '-l', 'com1,/dev/nmdm0A', 'head',
    ]);
    const pxe = pxeBhyveArgv({ vm: 'pxe1', tap: 'tap3', memory: '512M' });
    expect(pxe.slice(-3)).toEqual(['-l', `bootrom,${UEFI_FIRMWARE}`, 'pxe1']);
    expect(UEFI_FIRMWARE).toBe('/usr/local/share/uefi-firmware/BHYVE_UEFI.fd');
    expect(pxe).toContain('2:0,virtio-net,tap3');
    expect(() => pxeBhyveArgv({ vm: 'x', tap: 'em0' })).toThrow(/invalid tap interface 'em0'/);
    expect(() => pxeBhyveArgv({ vm: 'x', memory: 'lots' })).toThrow(/invalid memory size 'lots'/);
    expect(() => pxeBhyveArgv({ vm: 'bad name' })).toThrow(/invalid VM name 'bad name'/);
  });
  // SYNOPSIS: bhyvectl --vm=<vmname> [--destroy] ...
  it('destroys the VM by name', () => {
    expect(bhyvectlDestroyArgv('head')).toEqual(['bhyvectl', '--destroy', '--vm=head']);
  });
});

describe("bhyve's exit status, as usr.sbin/bhyve/amd64/vmexit.c and bhyverun.c write it", () => {
  it('0 (VM_SUSPEND_RESET) is a reboot: loaded and started again; 1 poweroff and 2 halt end the boot; 3 and 4 are errors', () => {
    expect(bhyveEnd(0)).toEqual({ kind: 'reboot' });
    expect(bhyveEnd(1)).toEqual({ kind: 'off', how: 'powered off' });
    expect(bhyveEnd(2)).toEqual({ kind: 'off', how: 'halted' });
    expect(bhyveEnd(3)).toEqual({ kind: 'failed', why: 'the guest triple-faulted' });
    expect(bhyveEnd(4)).toMatchObject({ kind: 'failed', why: expect.stringMatching(/^bhyve failed/) });
    expect(bhyveEnd(100)).toMatchObject({ kind: 'failed' });
    // VMEXIT_ABORT is abort(): a signal, reported by the runner as 128 or more
    expect(bhyveEnd(134)).toEqual({ kind: 'failed', why: 'bhyve was killed (it aborts on a VM exit it cannot handle)' });
  });

  it('the plan is the reboot loop as /bin/sh, reading each status as bhyveEnd does (bhyveload, bhyve, bhyvectl --destroy after every run)', async () => {
    const lines: string[] = [];
    const ctx = { ...makeContext({ env: { BE_PLATFORM: 'freebsd' } }), runner: new Runner({ dryRun: true, out: (l) => lines.push(l) }) };
    expect(await runVm(ctx, 'vm1', ['bhyveload', '-m', '1G', 'vm1'], bhyveArgv({ vm: 'vm1', memory: '1G', tap: 'tap0', console: 'stdio' }))).toBe(0);
    const script = ctx.runner.scriptText();
    const body = script.split('\n').map((l) => l.trim());
    expect(body[2]).toMatch(/^# bhyve exits 0 when the guest reboots \(be loads and starts it again\), 1 when it powers off, 2 when it halts; 3 \(triple fault\), 4 \(error\)/);
    expect(body[3]).toBe('while :; do');
    expect(body.indexOf('bhyveload -m 1G vm1 || be_status=$?')).toBeGreaterThan(3);
    expect(body.findIndex((l) => /^bhyve -c 1 .* vm1 \|\| be_status=\$\?$/.test(l))).toBeGreaterThan(body.indexOf('bhyveload -m 1G vm1 || be_status=$?'));
    expect((await execa('sh', ['-n'], { input: script, reject: false })).exitCode).toBe(0);
    // The script run with bhyve's statuses in turn (bhyve cannot run here: shell functions answer
    // as it would, and record each call): the outcome of each one is bhyveEnd's.
    const run = async (statuses: number[], loadStatus = 0) => {
      const fns = [
        `calls=''; n=0`,
        `bhyveload() { calls="$calls load"; return ${loadStatus}; }`,
        `bhyve() { n=$((n + 1)); calls="$calls run"; set -- ${statuses.join(' ')}; shift $((n - 1)); return $1; }`,
        `bhyvectl() { calls="$calls destroy"; }`,
      ];
      const r = await execa('sh', ['-c', `${fns.join('\n')}\n${script}\necho "$calls"`], { reject: false });
      return { code: r.exitCode, err: r.stderr, calls: r.stdout.trim() };
    };
    // a reboot loads and runs it again; a poweroff or halt ends it with 0
    expect(await run([0, 1])).toEqual({ code: 0, err: '', calls: 'load run destroy load run destroy' });
    expect(await run([2])).toEqual({ code: 0, err: '', calls: 'load run destroy' });
    for (const status of [3, 4, 64, 71, 100, 7, 134]) {
      const end = bhyveEnd(status);
      expect(end.kind).toBe('failed');
      const r = await run([status]);
      expect([r.code, r.err], String(status)).toEqual([1, `be: VM 'vm1': ${end.kind === 'failed' ? end.why : ''}`]);
    }
    // bhyveload that loaded no kernel: the VM destroyed, one line, nothing run
    expect(await run([1], 2)).toMatchObject({ code: 1, err: "be: bhyveload exited 2: the loader did not start a kernel in VM 'vm1'" });
  });

  it('a hunt run whose guest left no status names how bhyve ended (a reboot after a panic, a triple fault); a poweroff adds nothing', () => {
    const none = { status: null, signal: null, timedOut: false, output: '', failure: 'the guest wrote no /var/tmp/be-hunt/status' };
    expect(withBhyveEnd(none, 0).failure).toBe('the guest wrote no /var/tmp/be-hunt/status; bhyve exited 0: the guest rebooted instead of powering off');
    expect(withBhyveEnd(none, 3).failure).toBe('the guest wrote no /var/tmp/be-hunt/status; bhyve exited 3: the guest triple-faulted');
    expect(withBhyveEnd(none, 1)).toBe(none);
    const good = { status: 0, signal: null, timedOut: false, output: '' };
    expect(withBhyveEnd(good, 0)).toBe(good);
  });
});

describe("the bhyve hunt guest's /etc/rc.local, run as libexec/rc/rc.d/local runs it", () => {
  it('sourced by local_start in a subshell: the status and output are kept, poweroff runs, rc goes on', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bplt-rclocal.'));
    try {
      const rcLocal = join(dir, 'rc.local');
      const test = ['/bin/sh', '-c', 'echo out; if read line; then echo stdin; fi; exit 7'];
      await writeFile(rcLocal, render('hunt-rc.local', { dir: join(dir, 'hunt'), env: { BE_RELEASE: '14.1', BE_RUN: '1' }, argv: test }));
      // rc.d/local: local_start() { if [ -f /etc/rc.local ]; then startmsg -n ...; . /etc/rc.local; startmsg '.'; fi }
      // rc.subr run_rc_script: ( set $_arg; . $_file )
      const rc = `local_start() { if [ -f "$1" ]; then printf 'Starting local daemons:'; . "$1"; echo '.'; fi; }\n( set start; local_start "$0" )\necho "rc goes on"`;
      const r = await execa('sh', ['-c', rc, rcLocal], { env: { PATH: process.env.PATH!, BE_HUNT_POWEROFF: 'echo poweroff' }, extendEnv: false, input: 'not for the test\n' });
      expect(await readFile(join(dir, 'hunt', 'status'), 'utf8')).toBe('7\n');
      expect(await readFile(join(dir, 'hunt', 'output'), 'utf8')).toBe('out\n');
      expect(r.stdout.split('\n')).toEqual(['Starting local daemons:be hunt: 14.1 run 1: exit 7', 'poweroff', '.', 'rc goes on']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('platform argv', () => {
  it('chroot mounts devfs on FreeBSD, proc and devtmpfs on Linux', () => {
    expect(platformMounts('freebsd', '/mnt').map((m) => m.argv)).toEqual([['mount', '-t', 'devfs', 'devfs', '/mnt/dev']]);
    expect(platformMounts('zfs-fuse', '/mnt').map((m) => m.argv)).toEqual([
      ['mount', '-t', 'proc', 'proc', '/mnt/proc'],
      ['mount', '-t', 'devtmpfs', 'devtmpfs', '/mnt/dev'],
    ]);
  });
  // usr.sbin/chroot/chroot.c: execvp(argv[1]) inside the root, err(1) when it fails (status 1 = "bad")
  it('looks for the command and its #! interpreter inside the BE before chroot(8) runs it', async () => {
    const root = await mkdtemp(join(tmpdir(), 'bplt-chroot.'));
    try {
      await mkdir(join(root, 'bin'), { recursive: true });
      await mkdir(join(root, 'var/tmp/be-hunt'), { recursive: true });
      await writeFile(join(root, 'bin/busybox'), 'ELF', { mode: 0o755 });
      await symlink('/bin/busybox', join(root, 'bin/sh')); // absolute: it points into the BE, not the host
      await writeFile(join(root, 'var/tmp/be-hunt/ok.sh'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
      await writeFile(join(root, 'var/tmp/be-hunt/bash.sh'), '#! /usr/local/bin/bash -e\nexit 0\n', { mode: 0o755 });
      expect(await chrootCommandProblem(root, ['/bin/sh'])).toBeUndefined();
      expect(await chrootCommandProblem(root, ['sh', '-c', 'true'])).toBeUndefined();
      expect(await chrootCommandProblem(root, ['/var/tmp/be-hunt/ok.sh'])).toBeUndefined();
      expect(await chrootCommandProblem(root, ['/var/tmp/be-hunt/bash.sh'])).toBe('/var/tmp/be-hunt/bash.sh: its interpreter /usr/local/bin/bash is not in the boot environment');
      expect(await chrootCommandProblem(root, ['/usr/bin/true'])).toBe('/usr/bin/true: not found in the boot environment');
      expect(await chrootCommandProblem(root, ['zsh'], '/bin:/usr/bin')).toBe('zsh: not found in the boot environment (PATH /bin:/usr/bin)');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  // rc.subr refuses `reload` when mountd_enable is unset (nfsd starts mountd by force_depend): onereload
  it('mountd reload through service(8)', () => {
    expect(mountdReloadArgv()).toEqual(['service', 'mountd', 'onereload']);
  });
});

describe('ONC RPC encoding', () => {
  it('builds a CALL with AUTH_SYS and reads an accepted reply', () => {
    const call = encodeCall({ xid: 7, prog: 100005, vers: 3, proc: 1, args: new XdrWriter().string('/x').bytes(), machine: 'm' });
    expect(call.readUInt32BE(0)).toBe(7);
    expect(call.readUInt32BE(4)).toBe(0); // CALL
    expect(call.readUInt32BE(8)).toBe(2); // RPC version 2
    expect([call.readUInt32BE(12), call.readUInt32BE(16), call.readUInt32BE(20)]).toEqual([100005, 3, 1]);
    expect(call.readUInt32BE(24)).toBe(1); // AUTH_SYS
    const reply = new XdrWriter().u32(7).u32(1).u32(0).u32(0).opaque(Buffer.alloc(0)).u32(0).u32(13).bytes();
    expect(decodeReply(reply, 7, 't')!.u32()).toBe(13);
    expect(decodeReply(reply, 8, 't')).toBeUndefined();
    const denied = new XdrWriter().u32(7).u32(1).u32(1).u32(1).u32(5).bytes();
    expect(() => decodeReply(denied, 7, 'mountd')).toThrow(/mountd: refused credentials/);
  });
});
