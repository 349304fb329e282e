// bench/hunt-qemu: a 16-release hunt in QEMU guests (be hunt run --method qemu) of stand-in
// releases (test/helpers/standin.ts: a Linux kernel and a busybox initramfs that boots the BE
// over PXE and NFS, as FreeBSD's pxeboot and kernel do), against a chroot hunt of the same
// releases in the same run. Prints, per run, the wall time split into boot (the VM's network
// made, then QEMU until the test starts: firmware, DHCP, TFTP, kernel, NFS root), test (timed
// in the guest) and teardown (the rest: QEMU's power-off, the network removed, the clone
// unmounted), the totals, and the ratio of the qemu hunt's wall time to the chroot hunt's.
// Both hunts run on installed snapshots: a first chroot hunt installs the releases.
// Run as root after `npm run build`, with ZFS (zfs-fuse on Linux), QEMU, ipxe-qemu, nfs-ganesha
// and the stand-in kernel (scripts/install-deps):
//   npx vite-node bench/hunt-qemu.ts        (JOBS=1, RELEASES=16 by default; BE_QEMU_ACCEL=tcg forces TCG;
//   the test times itself with date +%s, so its share is whole seconds)
import { execa } from 'execa';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildMirror, busyboxUserland, type FileSpec } from '../test/helpers/mirror.js';
import { makeTestPool } from '../test/helpers/zfs.js';
import { missingParts, standinKernelSet } from '../test/helpers/standin.js';

const BE = fileURLToPath(new URL('../bin/be', import.meta.url));
const ALL = ['12.0', '12.1', '12.2', '12.3', '12.4', '13.0', '13.1', '13.2', '13.3', '13.4', '13.5', '14.0', '14.1', '14.2', '14.3', '15.0'];
const releases = ALL.slice(0, Number(process.env.RELEASES ?? ALL.length));
const jobs = process.env.JOBS ?? '1';
const env = { ...process.env, BE_VM_PREFIX: process.env.BE_VM_PREFIX ?? 'bench-' } as Record<string, string>;

function base(i: number): Record<string, FileSpec> {
  const extra: Record<string, FileSpec> = {
    'bin/grep': { symlink: 'busybox' },
    'bin/wc': { symlink: 'busybox' },
    'bin/date': { symlink: 'busybox' },
    'etc/feature': i >= 11 ? 'broken\n' : 'works\n',
    'var/tmp': { dir: true, mode: 0o1777 },
  };
  for (let p = 0; p < 20 + i; p++) extra[`usr/share/man/man1/p${p}.1`] = `.Dd ${i}\n`;
  return busyboxUserland(extra);
}

// the test times itself with the clock of wherever it runs (the guest's, in QEMU)
const TEST = [
  '#!/bin/sh',
  's=$(date +%s)',
  'n=$(ls /usr/share/man/man1 | wc -l)',
  'grep -q works /etc/feature; r=$?',
  'echo "BE-METRIC manpages=$n"',
  'echo "BE-METRIC test_s=$(( $(date +%s) - s ))"',
  'exit $r',
  '',
].join('\n');

interface Run { release: string; durationMs: number; metrics?: Record<string, number>; log?: string }
interface Hunt { wallMs: number; runs: Run[]; state: string }

const missing = missingParts();
if (missing.length) throw new Error(`stand-in kernel modules missing (run scripts/install-deps): ${missing.join(', ')}`);
const pool = await makeTestPool('3G', process.env.POOL_PREFIX ?? 'bebenchq');
const dir = await mkdtemp(join(tmpdir(), 'be-bench-qemu-'));
try {
  const mirror = join(dir, 'mirror');
  const kernel = standinKernelSet();
  await Promise.all(releases.map((version, i) => buildMirror(mirror, [{ version, xz: ['-0'], sets: { base: { files: base(i) }, kernel: { files: kernel } } }])));
  const test = join(dir, 'test.sh');
  await writeFile(test, TEST);
  await chmod(test, 0o755);

  const hunt = async (name: string, method: string): Promise<Hunt> => {
    const state = join(dir, name);
    const r = await execa(BE, ['-R', pool.root, 'hunt', 'run', '--method', method, '--jobs', jobs, '--releases', releases.join(','), '--test', test, '--timeout', '15m',
      '--state', state, '-p', mirror, '--sets', 'base,kernel', '--cache', join(dir, 'cache')], { env, reject: false });
    if (r.exitCode !== 0) throw new Error(`${method} hunt failed: ${r.stderr}`);
    const s = JSON.parse(await readFile(join(state, 'hunt.json'), 'utf8'));
    const session = s.sessions[s.sessions.length - 1];
    return { wallMs: session.wallMs - session.prepareMs, runs: s.runs, state };
  };
  await hunt('install', 'chroot');
  const chroot = await hunt('chroot', 'chroot');
  const qemu = await hunt('qemu', 'qemu');

  const sec = (ms: number) => (ms / 1000).toFixed(1).padStart(6);
  const rows: { boot: number; test: number; teardown: number; total: number }[] = [];
  console.log(`be hunt --method qemu over ${releases.length} stand-in releases (--jobs ${jobs}), against --method chroot of the same releases`);
  console.log('release   boot s  test s  teardown s  total s');
  for (const run of qemu.runs) {
    const log = await readFile(join(qemu.state, run.log ?? ''), 'utf8').catch(() => '');
    const ready = Number(/its network ready in (\d+) ms/.exec(log)?.[1]);
    const ran = Number(/QEMU ran (\d+) ms; its network removed/.exec(log)?.[1]);
    if (!Number.isFinite(ready) || !Number.isFinite(ran)) throw new Error(`${run.release}: no VM timings in ${run.log}`);
    const test = (run.metrics?.test_s ?? 0) * 1000;
    const boot = ready + ran - test;
    const row = { boot, test, teardown: run.durationMs - boot - test, total: run.durationMs };
    rows.push(row);
    console.log(`${run.release.padEnd(8)} ${sec(row.boot)}  ${sec(row.test)}  ${sec(row.teardown).padStart(10)}  ${sec(row.total)}`);
  }
  const sum = (k: keyof (typeof rows)[0]) => rows.reduce((a, r) => a + r[k], 0);
  console.log(`all runs: boot ${sec(sum('boot'))} s, test ${sec(sum('test'))} s, teardown ${sec(sum('teardown'))} s, runs ${sec(sum('total'))} s`);
  console.log(`per run: boot ${(sum('boot') / rows.length / 1000).toFixed(1)} s = ${((100 * sum('boot')) / sum('total')).toFixed(0)}%, ` +
    `test ${((100 * sum('test')) / sum('total')).toFixed(0)}%, teardown ${((100 * sum('teardown')) / sum('total')).toFixed(0)}%`);
  console.log(`hunt wall time (installs excluded): qemu ${sec(qemu.wallMs)} s, chroot ${sec(chroot.wallMs)} s; qemu/chroot ${(qemu.wallMs / chroot.wallMs).toFixed(1)}x`);
  const verdicts = (h: Hunt) => h.runs.map((r) => `${r.release}:${r.metrics?.manpages}`).join(' ');
  if (verdicts(qemu) !== verdicts(chroot)) console.log(`metrics differ: qemu ${verdicts(qemu)} / chroot ${verdicts(chroot)}`);
} finally {
  await pool.destroy();
  await rm(dir, { recursive: true, force: true });
}
