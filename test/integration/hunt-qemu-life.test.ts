/**
 * A QEMU run's life beyond a plain hunt, with real parts (TCG QEMU, nfs-ganesha, `be pxe serve`,
 * zfs-fuse, beanstalkd): Ctrl-C and kill of `be hunt run --method qemu` while the guest runs its
 * test, a qemu run taken by `be worker`, and `be bootpxe --vm-bridge` onto a bridge where the
 * test's own servers answer. One stand-in release (test/helpers/standin.ts) is installed once, by
 * a chroot hunt of its busybox userland, and every test boots one VM from it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { be, BE_BIN } from '../helpers/cli.js';
import { makeTestPool, type TestPool } from '../helpers/zfs.js';
import { buildMirror, busyboxUserland } from '../helpers/mirror.js';
import { missingParts, standinKernelSet, vmLeftovers } from '../helpers/standin.js';
import { startBeanstalkd, type Beanstalkd } from '../helpers/beanstalkd.js';
import { vmGaneshaConf } from '../../src/boot/vmnet.js';

const RELEASE = '13.0';
const PREFIX = `bqm${randomBytes(2).toString('hex')}-`;
const env = { ...process.env, BE_VM_PREFIX: PREFIX, BE_QEMU_ACCEL: 'tcg' } as Record<string, string>;
const TEST = '#!/bin/sh\necho "BE-METRIC examples=$(ls /usr/share/examples | wc -l)"\ngrep -q works /etc/hunt/feature\n';
// the marker is a file of its own, closed at once: the guest's NFS client writes it back on close
const HANG = '#!/bin/sh\necho hanging > /var/tmp/hanging\nexec sleep 100000\n';

let pool: TestPool;
let dir: string;
let mirror: string;

const installFlags = () => ['-p', mirror, '--sets', 'base,kernel', '--cache', join(dir, 'cache')];
const beq = (args: string[]) => be(args, { env });

async function script(name: string, text: string): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, text);
  await chmod(p, 0o755);
  return p;
}

const lines = async (argv: string[]) => (await execa(argv[0], argv.slice(1), { reject: false })).stdout.split('\n').filter(Boolean);
/** pids of the `be` processes started here (their QEMUs are named be-PID-N). */
const bes: number[] = [];
const leftovers = () => vmLeftovers(PREFIX, pool.root, bes);

/** Wait until TEST holds, polling; fails with WHAT after MS. */
async function until(what: string, test: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await test())) {
    if (Date.now() > end) throw new Error(`no ${what} within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The guest is running the hanging test: its output file on the clone (written over NFS) says so. */
async function guestTestRunning(): Promise<boolean> {
  const mounts = (await readFile('/proc/mounts', 'utf8')).split('\n').map((l) => l.split(' ')).filter((f) => f[0].startsWith(`${pool.root}/`) && f[0].includes('.run')).map((f) => f[1]);
  for (const m of mounts) if ((await readFile(join(m, 'var/tmp/hanging'), 'utf8').catch(() => '')).includes('hanging')) return true;
  return false;
}

beforeAll(async () => {
  const missing = missingParts();
  if (missing.length) throw new Error(`kernel modules missing (run scripts/install-deps): ${missing.join(', ')}`);
  pool = await makeTestPool('768M', 'bqm');
  dir = await mkdtemp(join(tmpdir(), 'bqm-hunt-qemu-'));
  mirror = join(dir, 'mirror');
  const base = busyboxUserland({
    'bin/grep': { symlink: 'busybox' },
    'bin/wc': { symlink: 'busybox' },
    'bin/sleep': { symlink: 'busybox' },
    'etc/hunt/feature': 'works\n',
    'var/tmp': { dir: true, mode: 0o1777 },
    'usr/share/examples/a': 'a\n',
    'usr/share/examples/b': 'b\n',
    'usr/share/examples/c': 'c\n',
  });
  await buildMirror(mirror, [{ version: RELEASE, xz: ['-0'], sets: { base: { files: base }, kernel: { files: standinKernelSet() } } }]);
  // installed once (hunt-13.0@installed), by a chroot hunt of the busybox userland: every VM below clones it
  const r = await beq(['-R', pool.root, 'hunt', 'run', '--method', 'chroot', '--releases', RELEASE, '--test', await script('t.sh', TEST), '--state', join(dir, 'chroot'), ...installFlags()]);
  if (r.exitCode !== 0) throw new Error(`install: ${r.stderr}`);
}, 400_000);

afterAll(async () => {
  if (process.env.BE_TEST_KEEP) return;
  await pool?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
}, 60_000);

describe('be hunt run --method qemu, stopped while the guest runs its test', () => {
  for (const [how, sig] of [['Ctrl-C (SIGINT to the terminal\'s process group)', 'SIGINT'], ['kill (SIGTERM to be)', 'SIGTERM']] as const) {
    it(`${how}: the hunt stops with "interrupted", and no QEMU, namespace, server, clone or mount is left`, async () => {
      const state = join(dir, `stop-${sig}`);
      // its own process group, as a shell's foreground job: Ctrl-C signals the whole group
      const child = execa(BE_BIN, ['-R', pool.root, 'hunt', 'run', '--method', 'qemu', '--releases', RELEASE, '--test', await script('hang.sh', HANG), '--timeout', '20m', '--state', state, ...installFlags()],
        { env, reject: false, detached: sig === 'SIGINT' }) as ResultPromise;
      bes.push(child.pid!);
      let exited = false;
      void child.finally(() => (exited = true));
      try {
        await until('hanging test in the guest', async () => exited || (await guestTestRunning()), 480_000);
      } finally {
        if (!exited && !(await guestTestRunning())) child.kill('SIGTERM');
      }
      if (exited) expect.fail(`be ended before the guest ran the test: ${String((await child).stderr)}`);
      // while it runs: the VM, its namespace and its servers are there (what must go afterwards)
      const during = await leftovers();
      expect(during.some((l) => l.startsWith(PREFIX) && !l.includes(' '))).toBe(true);
      expect(during.some((l) => l.includes('ganesha.nfsd'))).toBe(true);
      expect(during.some((l) => l.includes(' pxe serve '))).toBe(true);
      expect(during.some((l) => l.includes('qemu-system-x86_64'))).toBe(true);
      if (sig === 'SIGINT') process.kill(-child.pid!, 'SIGINT');
      else process.kill(child.pid!, 'SIGTERM'); // not child.kill: execa would SIGKILL it 5 s later
      const r = await child;
      expect(r.exitCode, String(r.stderr)).toBe(130);
      expect(String(r.stderr)).toMatch(/interrupted; run the same command again to resume/);
      const left = await leftovers();
      if (left.length) {
        // what a stopped run could not remove goes at the next start of a hunt (any method)
        const next = await beq(['-R', pool.root, 'hunt', 'run', '--method', 'chroot', '--releases', RELEASE, '--test', await script('t.sh', TEST), '--state', `${state}-next`, ...installFlags()]);
        expect(next.exitCode, next.stderr).toBe(0);
        expect(next.stderr).toMatch(/removed VM network|destroyed /);
      }
      expect(await leftovers(), `left after ${sig}: ${left.join(', ')}`).toEqual([]);
    }, 700_000);
  }
});

describe('be worker --method qemu jobs', () => {
  let broker: Beanstalkd | undefined;
  let worker: ResultPromise | undefined;

  afterAll(async () => {
    worker?.kill('SIGKILL');
    await worker?.catch(() => {});
    await broker?.stop();
  });

  it('a worker boots the run in QEMU and answers with the verdict and the metric; nothing is left', async () => {
    broker = await startBeanstalkd();
    const tube = `bqm-${randomBytes(3).toString('hex')}`;
    const workerLines: string[] = [];
    worker = execa(BE_BIN, ['-R', pool.root, 'worker', '--broker', broker.address, '--tube', tube, '--state', join(dir, 'worker')], { env, reject: false }) as ResultPromise;
    bes.push(worker.pid!);
    worker.stderr?.on('data', (b: Buffer) => workerLines.push(...b.toString().split('\n').filter(Boolean)));
    const state = join(dir, 'brokered');
    const r = await beq(['-R', pool.root, 'hunt', 'run', '--method', 'qemu', '--broker', broker.address, '--tube', tube, '--releases', RELEASE, '--test', await script('t.sh', TEST), '--timeout', '10m', '--state', state, ...installFlags()]);
    expect(r.exitCode, r.stderr).toBe(0);
    const report = JSON.parse((await beq(['hunt', 'report', '--state', state, '--format', 'json'])).stdout);
    expect(report.releases.map((x: { release: string; verdict: string }) => `${x.release} ${x.verdict}`)).toEqual([`${RELEASE} good`]);
    expect(report.releases[0].metrics.examples.median).toBe(3);
    expect(report.releases[0].runs[0].worker).toMatch(/:\d+$/);
    // the worker's run log holds what came over the guest's serial console
    expect(workerLines.filter((l) => /: done /.test(l)).length, workerLines.join('\n')).toBe(1);
    const logs = await lines(['grep', '-rl', 'stand-in: lease', join(dir, 'worker')]);
    expect(logs.length, workerLines.join('\n')).toBeGreaterThan(0);
    // the worker goes on serving, its VM's network and servers gone
    expect(worker.exitCode).toBeNull();
    expect(await leftovers()).toEqual([]);
  }, 700_000);

  it('a worker stopped (SIGTERM) while its guest runs the test takes QEMU and the servers along; its next start removes the namespace and the clone', async () => {
    broker ??= await startBeanstalkd();
    const tube = `bqm-${randomBytes(3).toString('hex')}`;
    const w = execa(BE_BIN, ['-R', pool.root, 'worker', '--broker', broker.address, '--tube', tube, '--state', join(dir, 'worker-2')], { env, reject: false }) as ResultPromise;
    bes.push(w.pid!);
    const hunt = execa(BE_BIN, ['-R', pool.root, 'hunt', 'run', '--method', 'qemu', '--broker', broker.address, '--tube', tube, '--releases', RELEASE, '--test', await script('hang.sh', HANG), '--timeout', '20m', '--state', join(dir, 'brokered-2'), ...installFlags()], { env, reject: false }) as ResultPromise;
    try {
      await until('hanging test in the guest', async () => w.exitCode !== null || (await guestTestRunning()), 480_000);
      expect(w.exitCode).toBeNull();
      process.kill(w.pid!, 'SIGTERM');
      expect((await w).exitCode).toBe(143);
      // nothing of the VM runs on: no QEMU, ganesha, rpcbind or pxe serve (given a moment to be reaped)
      const running = async () => (await leftovers()).filter((l) => /^\d+ /.test(l));
      await until('the VM\'s processes gone', async () => (await running()).length === 0, 10_000).catch(() => {});
      const left = await leftovers();
      expect(left.filter((l) => /^\d+ /.test(l)), left.join('\n')).toEqual([]);
      expect(left.length, 'the namespace and the clone are there until the next start').toBeGreaterThan(0);
      // the next start of a worker (on any tube) removes them before it serves
      const next = execa(BE_BIN, ['-R', pool.root, 'worker', '--broker', broker.address, '--tube', `${tube}-idle`, '--state', join(dir, 'worker-3')], { env, reject: false }) as ResultPromise;
      const nextLines: string[] = [];
      next.stderr?.on('data', (b: Buffer) => nextLines.push(...b.toString().split('\n').filter(Boolean)));
      await until('the next start\'s cleanup', async () => (await leftovers()).length === 0, 60_000);
      process.kill(next.pid!, 'SIGTERM');
      await next;
      expect(nextLines.join('\n')).toMatch(new RegExp(`removed VM network ${PREFIX}${w.pid}-0`));
    } finally {
      hunt.kill('SIGTERM');
      await hunt;
      w.kill('SIGKILL');
    }
    expect(await leftovers()).toEqual([]);
  }, 700_000);
});

describe('be bootpxe --vmm qemu --vm-bridge', () => {
  const ns = `${PREFIX}br`;
  const bridge = 'bqmbr0';
  const server = '10.253.7.1';
  const guest = '10.253.7.2';
  const mac = `52:54:00:${randomBytes(3).toString('hex').match(/../g)!.join(':')}`;
  const marker = `BE-BRIDGE-${randomBytes(4).toString('hex')}`;
  const daemons: ResultPromise[] = [];
  const standin = () => `${pool.root}/bridged`;
  let root = '';

  afterAll(async () => {
    for (const d of daemons) d.kill('SIGKILL');
    await Promise.all(daemons.map((d) => d.catch(() => {})));
    await execa('ip', ['netns', 'del', ns], { reject: false });
    await execa('umount', [join(dir, 'bridge.mnt')], { reject: false });
    await execa('umount', [dir], { reject: false });
    if (standin() && root) await beq(['umount', standin()]);
  });

  it("boots onto a bridge the user made, from that bridge's pxe serve and ganesha, to the BE's rc.local marker", async () => {
    expect((await beq(['create', '-e', `${pool.root}/hunt-${RELEASE}@installed`, standin()])).exitCode).toBe(0);
    const m = await beq(['mount', standin()]);
    expect(m.exitCode, m.stderr).toBe(0);
    root = m.stdout.trim();
    await mkdir(join(root, 'etc'), { recursive: true });
    await writeFile(join(root, 'etc', 'rc.local'), `#!/bin/sh\nm=${marker.slice(0, 10)}\necho "\${m}${marker.slice(10)}"\n`, { mode: 0o755 });

    // the user's network: a bridge with the server's address, in a namespace of the test's own
    for (const argv of [
      ['ip', 'netns', 'add', ns],
      ['ip', '-n', ns, 'link', 'set', 'lo', 'up'],
      ['ip', '-n', ns, 'link', 'add', bridge, 'type', 'bridge'],
      ['ip', '-n', ns, 'addr', 'add', `${server}/29`, 'dev', bridge],
      ['ip', '-n', ns, 'link', 'set', bridge, 'up'],
    ]) await execa(argv[0], argv.slice(1));
    // its NFS server: rpcbind and ganesha with a /run of their own, exporting the BE to the guest
    const conf = join(dir, 'bridge-ganesha.conf');
    const glog = join(dir, 'bridge-ganesha.log');
    await writeFile(conf, vmGaneshaConf({ path: root, guest, bind: server }));
    const mnt = join(dir, 'bridge.mnt');
    await writeFile(mnt, '');
    await execa('mount', ['--bind', dir, dir]);
    await execa('mount', ['--make-private', dir]);
    await execa('unshare', [`--mount=${mnt}`, '--propagation', 'private', 'mount', '-t', 'tmpfs', 'bqm', '/run']);
    const inMnt = ['nsenter', `--mount=${mnt}`, `--net=/run/netns/${ns}`, '--'];
    await execa(inMnt[0], [...inMnt.slice(1), 'mkdir', '-p', '/run/rpcbind']);
    daemons.push(execa(inMnt[0], [...inMnt.slice(1), 'rpcbind', '-f'], { reject: false }));
    await until('rpcbind', async () => (await execa(inMnt[0], [...inMnt.slice(1), 'rpcinfo', '-p', '127.0.0.1'], { reject: false })).exitCode === 0, 30_000);
    daemons.push(execa(inMnt[0], [...inMnt.slice(1), 'ganesha.nfsd', '-F', '-f', conf, '-L', glog, '-p', join(dir, 'bridge-ganesha.pid'), '-N', 'NIV_EVENT'], { reject: false }));
    await until('ganesha', async () => (await readFile(glog, 'utf8').catch(() => '')).includes('NFS SERVER INITIALIZED'), 60_000);
    // and its DHCP/TFTP: be pxe serve for the BE, as a user would start it on that bridge
    const pxeLines: string[] = [];
    const pxe = execa('ip', ['netns', 'exec', ns, BE_BIN, 'pxe', 'serve', '--address', server, '--interface', bridge, '--range', `${guest}-${guest}`, '--host', `${mac}=${guest}`,
      '--tftp-root', join(root, 'boot'), '--boot-bios', 'pxeboot', '--root-path', `${server}:${root}`, '--lease-file', join(dir, 'bridge-leases', 'leases'), '--user', 'root'], { reject: false, env });
    daemons.push(pxe);
    pxe.stdout?.on('data', (b: Buffer) => pxeLines.push(...b.toString().split('\n').filter(Boolean)));
    await until('pxe serve', async () => pxeLines.some((l) => l.startsWith('tftp serving ')), 30_000);

    const log = join(dir, 'bridge.console');
    const boot = execa('ip', ['netns', 'exec', ns, BE_BIN, 'bootpxe', standin(), '--vmm', 'qemu', '--vm-bridge', bridge, '--mac', mac, '--vm-memory', '384M', '--vm-console', log], { reject: false, env });
    bes.push(boot.pid!); // ip netns exec execs be: the same pid
    const r = await boot;
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const console = await readFile(log, 'latin1');
    expect(console, console.slice(-2000)).toContain(marker);
    expect(console).toContain(`stand-in: lease ${guest}, root-path ${server}:${root}`);
    // the lease and the boot file came from the bridge's own server
    expect(pxeLines.join('\n')).toMatch(new RegExp(`DHCPACK ${guest.replace(/\./g, '\\.')} to ${mac}`));
    expect(pxeLines.join('\n')).toMatch(/tftp \S+ "pxeboot" .* ok/);
    // be made no network of its own, and its tap is gone from the bridge
    expect(String(r.stderr)).not.toMatch(/namespace/);
    expect((await lines(['ip', '-n', ns, '-o', 'link', 'show', 'master', bridge]))).toEqual([]);
    expect(await leftovers().then((l) => l.filter((x) => !x.startsWith(ns) && !x.includes(dir)))).toEqual([]);
    expect(existsSync(log)).toBe(true);
  }, 600_000);
});
