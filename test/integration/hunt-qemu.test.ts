/**
 * Hunting in QEMU guests on Linux, with real parts: zfs-fuse BEs installed from a mirror of
 * stand-in releases (test/helpers/standin.ts: /boot holds pxeboot and loader.efi as iPXE
 * scripts, a Linux kernel and a busybox initramfs that mounts its root over NFS), each run booted
 * by TCG QEMU from `be pxe serve` in a namespace of its own, its root served by nfs-ganesha.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { be, BE_BIN } from '../helpers/cli.js';
import { makeTestPool, type TestPool } from '../helpers/zfs.js';
import { buildMirror, busyboxUserland, type FileSpec } from '../helpers/mirror.js';
import { missingParts, standinKernelSet, vmLeftovers } from '../helpers/standin.js';

const RELEASES = ['13.0', '13.1', '13.2', '13.3'];
const UNTESTABLE = '13.1';
const FIRST_BAD = '13.3';
const metric = (r: string) => 5 + RELEASES.indexOf(r) * 2;
const verdict = (r: string) => (r === UNTESTABLE ? 'skip' : RELEASES.indexOf(r) >= RELEASES.indexOf(FIRST_BAD) ? 'bad' : 'good');
const PREFIX = `bq${randomBytes(2).toString('hex')}-`;
const env = { ...process.env, BE_VM_PREFIX: PREFIX, BE_QEMU_ACCEL: 'tcg' } as Record<string, string>;

function baseSet(release: string): Record<string, FileSpec> {
  const extra: Record<string, FileSpec> = {
    'bin/cat': { symlink: 'busybox' },
    'bin/grep': { symlink: 'busybox' },
    'bin/wc': { symlink: 'busybox' },
    'bin/sleep': { symlink: 'busybox' },
    'etc/hunt/feature': verdict(release) === 'bad' ? 'broken\n' : 'works\n',
    'var/tmp': { dir: true, mode: 0o1777 },
  };
  if (release === UNTESTABLE) extra['etc/hunt/untestable'] = 'no harness\n';
  for (let i = 0; i < metric(release); i++) extra[`usr/share/examples/ex${i}`] = `${release}\n`;
  return busyboxUserland(extra);
}

const TEST = [
  '#!/bin/sh',
  'echo "BE-METRIC examples=$(ls /usr/share/examples | wc -l)"',
  'if [ -e /etc/hunt/untestable ]; then exit 125; fi',
  'if grep -q broken /etc/hunt/feature; then echo "broken in $BE_RELEASE"; exit 1; fi',
  'echo "works in $BE_RELEASE"',
  '',
].join('\n');

let pool: TestPool;
let dir: string;
let mirror: string;

async function script(name: string, text: string): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, text);
  await chmod(p, 0o755);
  return p;
}

const installFlags = () => ['-p', mirror, '--sets', 'base,kernel', '--cache', join(dir, 'cache')];
const beq = (args: string[]) => be(args, { env });

/** What a VM run of this file could leave behind: namespaces, mount namespaces, QEMU/ganesha/pxe processes, clones. */
const leftovers = () => vmLeftovers(PREFIX, pool.root);

beforeAll(async () => {
  const missing = missingParts();
  if (missing.length) throw new Error(`kernel modules missing (run scripts/install-deps): ${missing.join(', ')}`);
  pool = await makeTestPool('1G');
  dir = await mkdtemp(join(tmpdir(), 'be-hunt-qemu-'));
  mirror = join(dir, 'mirror');
  const kernel = standinKernelSet();
  // the kernel set is mostly the (compressed) Linux kernel: xz -0, and the releases side by side
  await Promise.all(RELEASES.map((version) => buildMirror(mirror, [{ version, xz: ['-0'], sets: { base: { files: baseSet(version) }, kernel: { files: kernel } } }])));
}, 400_000);

afterAll(async () => {
  if (process.env.BE_TEST_KEEP) return;
  await pool?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
}, 60_000);

describe('be hunt --method qemu', () => {
  it('runs every release in its own VM, two at once, with the right verdicts and metrics, and leaves nothing behind', async () => {
    const state = join(dir, 'run');
    const seen = new Set<string>();
    let most = 0;
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const now = (await readdir('/run/netns').catch(() => [] as string[])).filter((n) => n.startsWith(PREFIX));
        for (const n of now) seen.add(n);
        most = Math.max(most, now.length);
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    const r = await beq(['-R', pool.root, 'hunt', 'run', '--method', 'qemu', '--jobs', '2', '--releases', RELEASES.join(','), '--test', await script('t.sh', TEST), '--timeout', '10m', '--state', state, ...installFlags()]);
    polling = false;
    await poller;
    expect(r.exitCode, r.stderr).toBe(0);
    const report = JSON.parse((await beq(['hunt', 'report', '--state', state, '--format', 'json'])).stdout);
    expect(report.releases.map((x: { release: string; verdict: string }) => `${x.release} ${x.verdict}`)).toEqual(RELEASES.map((x) => `${x} ${verdict(x)}`));
    for (const rel of report.releases) expect(rel.metrics.examples.median, rel.release).toBe(metric(rel.release));
    // each run had a namespace of its own, two of them at a time
    expect(seen.size).toBe(RELEASES.length);
    expect(most).toBe(2);
    // the test ran in the guest: its rc.local line came over the serial console into the run's log
    const log = await readFile(join(state, 'logs', FIRST_BAD, 'run-1.log'), 'utf8');
    expect(log).toMatch(new RegExp(`be hunt: ${FIRST_BAD.replace('.', '\\.')} run 1: exit 1`));
    expect(log).toContain('stand-in: lease');
    expect(await leftovers()).toEqual([]);
  }, 1_200_000);

  it(`bisect finds ${FIRST_BAD}`, async () => {
    const r = await beq(['-R', pool.root, 'hunt', 'bisect', '--method', 'qemu', '--good', RELEASES[0], '--bad', RELEASES.at(-1)!, '--test', await script('t.sh', TEST), '--timeout', '10m', '--state', join(dir, 'bisect'), ...installFlags()]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`be hunt bisect: ${FIRST_BAD} is the first bad release`);
    expect(await leftovers()).toEqual([]);
  }, 900_000);

  it('be -n prints the run as a script: the namespace, ganesha.conf, pxe serve, QEMU, the status read from the clone; nothing is changed', async () => {
    const before = await leftovers();
    const datasets = async () => (await execa('zfs', ['list', '-H', '-o', 'name', '-t', 'all', '-r', pool.pool])).stdout;
    const had = await datasets();
    const r = await beq(['-n', '-R', pool.root, 'hunt', 'run', '--method', 'qemu', '--releases', RELEASES[0], '--test', await script('t.sh', TEST), '--vm-cpus', '2', ...installFlags()]);
    expect(r.exitCode, r.stderr).toBe(0);
    await execa('sh', ['-n'], { input: r.stdout });
    const ns = new RegExp(`^ip netns add (${PREFIX}\\d+-0)$`, 'm').exec(r.stdout)?.[1];
    expect(ns, r.stdout).toBeTruthy();
    expect(r.stdout).toMatch(/^cat > \S+\/etc\/rc\.local <<'BE_EOF'$/m);
    expect(r.stdout).toMatch(/^ip -n \S+ tuntap add dev tap0 mode tap$/m);
    expect(r.stdout).toMatch(/Enable_UDP = true;/);
    expect(r.stdout).toMatch(/CLIENT \{ Clients = 10\.[0-9.]+; Access_Type = RW; \}/);
    expect(r.stdout).toMatch(new RegExp(`^nsenter --mount=/run/be-vm/${ns}\\.mnt --net=/run/netns/${ns} -- ganesha\\.nfsd -F `, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^ip netns exec ${ns} be pxe serve --address \\S+ --interface br0 .*--root-path 10\\.[0-9.]+:/\\S+ `, 'm'));
    expect(r.stdout).toMatch(new RegExp(`ip netns exec ${ns} qemu-system-x86_64 .*-accel tcg -m 512M -smp 2 `));
    expect(r.stdout).toMatch(/^be_status=\$\(cat \S+\/var\/tmp\/be-hunt\/status/m);
    expect(r.stdout).toMatch(new RegExp(`^ip netns del ${ns}$`, 'm'));
    expect(await datasets()).toBe(had);
    expect(await leftovers()).toEqual(before);
  }, 120_000);

  it('the printed qemu hunt runs with sh: the same verdicts as a live hunt, nothing left behind', async () => {
    const rels = [RELEASES[0], FIRST_BAD];
    const plan = await beq(['-n', '-R', `${pool.pool}/PLAN`, 'hunt', 'run', '--method', 'qemu', '--releases', rels.join(','), '--test', await script('t.sh', TEST), '--timeout', '10m', ...installFlags()]);
    expect(plan.exitCode, plan.stderr).toBe(0);
    await writeFile(join(dir, 'plan.sh'), plan.stdout);
    // the script starts `be pxe serve` as an installed be would be: from PATH
    const ran = await execa('sh', [join(dir, 'plan.sh')], { reject: false, env: { ...env, PATH: `${dirname(BE_BIN)}:${process.env.PATH}` } });
    await writeFile(join(dir, 'plan.out'), ran.stdout + '\n--- stderr\n' + ran.stderr);
    expect(ran.exitCode, ran.stderr.slice(-3000)).toBe(0);
    // the verdict lines (the guest's console, also on standard output, says `be hunt: … exit N`)
    const verdicts = ran.stdout.split('\n').filter((l) => /^[\d.]+ run \d: /.test(l)).map((l) => l.replace(/ \(exit \d+\)$/, '')).sort();
    expect(verdicts).toEqual(rels.map((r) => `${r} run 1: ${verdict(r)}`).sort());
    expect(await leftovers()).toEqual([]);
  }, 900_000);

  it('a test that hangs is ended by --timeout, the run aborted, and nothing is left', async () => {
    const hang = await script('hang.sh', '#!/bin/sh\necho hanging\nsleep 100000\n');
    const r = await beq(['-R', pool.root, 'hunt', 'run', '--method', 'qemu', '--releases', RELEASES[0], '--test', hang, '--timeout', '45s', '--state', join(dir, 'hang'), ...installFlags()]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^13\.0\s+aborted \(timed out after 45s\)/m);
    expect(await leftovers()).toEqual([]);
  }, 180_000);
});

describe('be bootpxe --vmm qemu', () => {
  let standin = '';
  const marker = `BE-RC-LOCAL-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    standin = `${pool.root}/standin`;
    const made = await beq(['create', '-e', `${pool.root}/hunt-13.0@installed`, standin]);
    expect(made.exitCode, made.stderr).toBe(0);
    const m = await beq(['mount', standin]);
    expect(m.exitCode, m.stderr).toBe(0);
    const root = m.stdout.trim();
    await mkdir(join(root, 'etc'), { recursive: true });
    // put together at run time: the marker is in no file the guest reads
    await writeFile(join(root, 'etc', 'rc.local'), `#!/bin/sh\nm=${marker.slice(0, 12)}\necho "\${m}${marker.slice(12)}"\n`, { mode: 0o755 });
    expect((await beq(['umount', standin])).exitCode).toBe(0);
  }, 60_000);

  for (const firmware of ['bios', 'uefi']) {
    it(`${firmware.toUpperCase()}: the firmware, pxe serve, ganesha and the BE's rc.local, on the serial console`, async () => {
      const log = join(dir, `${firmware}.console`);
      const r = await beq(['bootpxe', standin, '--vmm', 'qemu', '--vm-firmware', firmware, '--vm-memory', '384M', '--vm-console', log]);
      expect(r.exitCode, r.stderr).toBe(0);
      const console = await readFile(log, 'latin1');
      expect(console, console.slice(-2000)).toContain(marker);
      expect(r.stderr).toMatch(/QEMU runs with TCG/);
      expect(r.stderr).toMatch(new RegExp(`pxe: tftp \\S+ "${firmware === 'uefi' ? 'loader\\.efi' : 'pxeboot'}"`));
      expect(await leftovers()).toEqual([]);
      expect(existsSync(log)).toBe(true);
    }, 600_000);
  }
});
