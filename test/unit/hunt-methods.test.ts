import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { jailRunPlan, jexecEnd } from '../../src/boot/jail.js';
import { bhyveRunPlan, vmNetwork, vmNameFor } from '../../src/boot/bhyve.js';
import { guestRcLocal } from '../../src/boot/guest.js';
import { TEST_DIR } from '../../src/hunt/exec.js';
import { classify } from '../../src/hunt/verdict.js';
import { makeJob, parseJob, parseBroker, checkTube, replyTube } from '../../src/hunt/protocol.js';
import { createHash } from 'node:crypto';

describe('jail(8) plan of a hunt run', () => {
  it('a standing jail on the mounted clone (persist, no command=), the test by jexec, jail -r by name, then umount of its devfs', async () => {
    const plan = await jailRunPlan('zroot/ROOT/hunt-13.2.run1-42-abcdef', '/tmp/be_mount.1', ['/var/tmp/be-hunt/t.sh', '-v']);
    // jail [-dhilqv] ... -c param=value ...: no command=, so persist (kern_jail.c: "must persist or attach")
    expect(plan.create.slice(0, 2)).toEqual(['jail', '-c']);
    expect(plan.create).toContain('name=zroot_ROOT_hunt-13_2_run1-42-abcdef');
    expect(plan.create).toContain('path=/tmp/be_mount.1');
    expect(plan.create).toContain('mount.devfs');
    expect(plan.create).toContain('persist');
    expect(plan.create.some((a) => a.startsWith('command'))).toBe(false);
    for (const a of plan.create.slice(2)) expect(a).toMatch(/^[a-z][a-z0-9_.]*(=.*)?$/);
    // jexec jail command ...: jexec execs the test, so the status is the test's (jexec.c)
    expect(plan.exec).toEqual(['jexec', 'zroot_ROOT_hunt-13_2_run1-42-abcdef', '/var/tmp/be-hunt/t.sh', '-v']);
    // jail -r jail runs no stop steps (state.c running_jail): devfs is unmounted after it, by be
    expect(plan.remove).toEqual(['jail', '-r', 'zroot_ROOT_hunt-13_2_run1-42-abcdef']);
    expect(plan.umount).toEqual([['umount', '/tmp/be_mount.1/dev']]);
  });

  it("the verdict is jexec's status, the test's own: 125 skip, 130 aborted, 1 bad; jexec's own failure aborts", () => {
    const run = (status: number | null, output = '', signal: string | null = null) => classify(jexecEnd({ status, signal, timedOut: false, output }));
    expect(run(0).verdict).toBe('good');
    expect(run(125).verdict).toBe('skip');
    expect(run(1, 'assertion failed\n').verdict).toBe('bad');
    expect(run(3).verdict).toBe('bad');
    expect(run(130)).toEqual({ verdict: 'error', reason: 'exit status 130 is above 127 (a crash, not a verdict)' });
    expect(run(null, '', 'SIGSEGV')).toEqual({ verdict: 'error', reason: 'killed by SIGSEGV' });
    // err(1, "execvp: %s", ...) in jexec.c: not the test's verdict
    expect(run(1, 'jexec: execvp: /var/tmp/be-hunt/t.sh: Permission denied\n')).toEqual({ verdict: 'error', reason: 'jexec could not start the test: execvp: /var/tmp/be-hunt/t.sh: Permission denied' });
    expect(classify({ ...jexecEnd({ status: null, signal: 'SIGTERM', timedOut: true, output: '' }), timeoutMs: 90_000 })).toEqual({ verdict: 'error', reason: 'timed out after 1m30s' });
  });
});

describe('bhyve(8) plan of a hunt run', () => {
  it('loads with bhyveload -c stdio -h PATH -e ... -m MEM VM, runs bhyve with com1 on stdio, then bhyvectl --destroy', async () => {
    const [load, run, destroy] = await bhyveRunPlan({ vm: 'hunt-13.2', hostPath: '/tmp/be_mount.2', env: [['vfs.root.mountfrom', 'nfs:10.0.0.1:/x']], memory: '512M', tap: 'tap3' });
    // bhyveload [-c cons-dev] [-e name=value] [-h host-path] [-m mem-size] vmname; the loader boots at once.
    expect(load).toEqual(['bhyveload', '-c', 'stdio', '-h', '/tmp/be_mount.2', '-e', 'autoboot_delay=0', '-e', 'vfs.root.mountfrom=nfs:10.0.0.1:/x', '-m', '512M', 'hunt-13.2']);
    expect(run[0]).toBe('bhyve');
    expect(run[run.length - 1]).toBe('hunt-13.2');
    expect(run.join(' ')).toContain('-l com1,stdio');
    expect(run.join(' ')).toContain('-s 2:0,virtio-net,tap3');
    expect(destroy).toEqual(['bhyvectl', '--destroy', '--vm=hunt-13.2']);
  });

  it('the guest network defaults its NFS server to .1 of the guest network; VM names fit bhyve', async () => {
    expect(await vmNetwork({ address: '10.254.0.2/24', tap: 'tap0', memory: '512M' })).toEqual({ ip: '10.254.0.2', netmask: '255.255.255.0', server: '10.254.0.1', tap: 'tap0', memory: '512M' });
    expect((await vmNetwork({ address: '192.168.7.20/255.255.255.0', server: '192.168.7.5', tap: 'tap2', memory: '1G' })).server).toBe('192.168.7.5');
    await expect(vmNetwork({ address: '10.0.0.2', tap: 'tap0', memory: '512M' })).rejects.toThrow("invalid address '10.0.0.2'");
    await expect(vmNetwork({ address: '10.0.0.2/24', tap: 'em0', memory: '512M' })).rejects.toThrow("invalid tap interface 'em0'");
    const name = vmNameFor('zroot/ROOT/hunt-13.2.run1-4242-abcdef');
    expect(name).toMatch(/^hunt-[0-9a-f]{12}$/);
    expect(vmNameFor('zroot/ROOT/hunt-13.2.run1-4242-abcdef')).toBe(name);
  });

  it('the guest rc.local runs the test with the hunt env, writes status via a temporary name, then powers off', async () => {
    const rc = guestRcLocal(TEST_DIR, ['/var/tmp/be-hunt/t.sh'], { PATH: '/sbin:/bin', BE_RELEASE: "13.2'x$y", BE_RUN: '1', BE_HUNT: 'run-abc' });
    expect(rc.startsWith('#!/bin/sh\n')).toBe(true);
    expect(rc).toContain('export BE_RELEASE="13.2\'x\\$y"');
    expect(rc).toContain('export BE_HUNT="run-abc"');
    expect(rc).toContain('/var/tmp/be-hunt/t.sh </dev/null >"$dir/output" 2>&1');
    expect(rc).toContain('echo "$status" >"$dir/status.tmp" && mv -f "$dir/status.tmp" "$dir/status"');
    expect(rc.trimEnd().endsWith('${BE_HUNT_POWEROFF:-poweroff}')).toBe(true);
    await execa('sh', ['-n'], { input: rc });
    expect(() => guestRcLocal(TEST_DIR, ['/t'], { 'BAD NAME': 'x' })).toThrow("bad variable name 'BAD NAME'");
  });
});

describe('beanstalkd jobs', () => {
  const data = Buffer.from('#!/bin/sh\nexit 0\n');
  const test = { name: 't.sh', data, sha256: createHash('sha256').update(data).digest('hex') };
  const job = makeJob({ hunt: 'run-abc', release: '13.2', run: 1, method: 'chroot', test, timeoutMs: 60_000, install: { sets: ['base'] } }, 120);

  it('carry the test as argv and data, never a shell string, and round-trip', () => {
    expect(job.test.argv).toEqual(['/var/tmp/be-hunt/t.sh']);
    expect(job.reply).toBe('be-hunt-reply.run-abc.13.2.1');
    expect(parseJob(Buffer.from(JSON.stringify(job)))).toEqual(job);
  });

  it('are refused when malformed or when the test does not match its digest', () => {
    expect(() => parseJob('nope')).toThrow('job is not JSON');
    expect(() => parseJob(JSON.stringify({ ...job, test: { ...job.test, argv: 'rm -rf /' } }))).toThrow('does not have the shape');
    expect(() => parseJob(JSON.stringify({ ...job, release: '../x' }))).toThrow('does not have the shape');
    expect(() => parseJob(JSON.stringify({ ...job, install: { templates: '/etc' } }))).toThrow('install flags are not source, arch, sets, cache, offline');
    expect(() => parseJob(JSON.stringify({ ...job, install: { sets: 'base; rm -rf /' } }))).toThrow('install flags');
    expect(() => parseJob(JSON.stringify({ ...job, test: { ...job.test, data: Buffer.from('exit 1').toString('base64') } }))).toThrow('does not match its sha256');
  });

  it('broker addresses and tube names are checked', () => {
    expect(parseBroker('127.0.0.1:11300')).toEqual({ host: '127.0.0.1', port: 11300 });
    expect(parseBroker('[::1]:11300')).toEqual({ host: '::1', port: 11300 });
    expect(() => parseBroker('localhost')).toThrow("invalid broker 'localhost': expected HOST:PORT");
    expect(() => parseBroker('h:70000')).toThrow('expected HOST:PORT');
    expect(() => checkTube('-bad')).toThrow("invalid tube '-bad'");
    expect(replyTube('h', '14.0', 2)).toBe('be-hunt-reply.h.14.0.2');
  });

  it("refuses the workers' own flags (--jobs, --vm-*) on a --broker hunt, with usage status 2", async () => {
    const { BE_BIN } = await import('../helpers/cli.js');
    const run = await execa(BE_BIN, ['hunt', 'run', '--broker', '127.0.0.1:1', '--jobs', '2', '--releases', '14.1', '--test', '/bin/true'], { reject: false });
    expect([run.exitCode, run.stderr]).toEqual([2, 'be: --jobs: not used with --broker (give it to each be worker)']);
    const bisect = await execa(BE_BIN, ['hunt', 'bisect', '--broker', '127.0.0.1:1', '--vm-tap', 'tap3', '--good', '13.0', '--bad', '14.0', '--test', '/bin/true'], { reject: false });
    expect([bisect.exitCode, bisect.stderr]).toEqual([2, 'be: --vm-tap: not used with --broker (give it to each be worker)']);
  });
});
