#!/usr/bin/env node
// bench/hunt: a 16-release hunt (be hunt run --method chroot) run twice on a file-backed pool.
// The first run installs each release into a BE and snapshots it @installed; the second finds them
// ready and only clones. Prints the share of wall time spent preparing BEs in each run: installing
// and snapshotting (or finding the snapshot), and, per run, waiting for its clone of @installed
// (each run's clone is made while the previous test runs, and destroyed after it, off the runs'
// path; the wall time includes all of it). Goal: under 5% on the second run, all of it counted.
// Run as root after `npm run build`, with ZFS available (zfs-fuse on Linux): node bench/hunt.mjs
// The same 16 releases hunted in QEMU guests against chroot, boot/test/teardown per run: bench/hunt-qemu.ts.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const be = fileURLToPath(new URL('../bin/be', import.meta.url));
const releases = ['12.0', '12.1', '12.2', '12.3', '12.4', '13.0', '13.1', '13.2', '13.3', '13.4', '13.5', '14.0', '14.1', '14.2', '14.3', '15.0'];
const jobs = process.env.JOBS ?? '1';

/** A release directory as the mirrors have it: base.txz (busybox userland) and its MANIFEST line. */
function buildRelease(mirror, version, i) {
  const dir = join(mirror, 'FreeBSD', 'releases', 'amd64', `${version}-RELEASE`);
  const stage = mkdtempSync(join(tmpdir(), 'be-bench-stage-'));
  mkdirSync(join(stage, 'bin'), { recursive: true });
  mkdirSync(join(stage, 'etc'), { recursive: true });
  mkdirSync(join(stage, 'usr/share/man/man1'), { recursive: true });
  writeFileSync(join(stage, 'bin/busybox'), readFileSync('/bin/busybox'));
  chmodSync(join(stage, 'bin/busybox'), 0o555);
  for (const tool of ['sh', 'ls', 'wc', 'grep', 'cat']) symlinkSync('busybox', join(stage, 'bin', tool));
  writeFileSync(join(stage, 'etc/feature'), i >= 11 ? 'broken\n' : 'works\n');
  for (let p = 0; p < 20 + i; p++) writeFileSync(join(stage, `usr/share/man/man1/p${p}.1`), `.Dd ${version}\n`);
  mkdirSync(dir, { recursive: true });
  execFileSync('tar', ['--numeric-owner', '--owner=0', '--group=0', '-cJf', join(dir, 'base.txz'), '-C', stage, '.']);
  rmSync(stage, { recursive: true, force: true });
  const sha = createHash('sha256').update(readFileSync(join(dir, 'base.txz'))).digest('hex');
  writeFileSync(join(dir, 'MANIFEST'), `base.txz\t${sha}\t${30 + i}\tbase\t"Base system"\ton\n`);
}

const dir = mkdtempSync(join(tmpdir(), 'be-bench-hunt-'));
const pool = `bebenchhunt${process.pid}`;
const mirror = join(dir, 'mirror');
try {
  releases.forEach((r, i) => buildRelease(mirror, r, i));
  const test = join(dir, 'test.sh');
  writeFileSync(test, '#!/bin/sh\necho "BE-METRIC manpages=$(ls /usr/share/man/man1 | wc -l)"\ngrep -q works /etc/feature\n', { mode: 0o755 });
  execFileSync(be, ['pool', 'create', '--file', join(dir, 'pool.img'), '--size', '2G', '--altroot', join(dir, 'alt'), pool]);
  const run = (name) => {
    const state = join(dir, name);
    const t = process.hrtime.bigint();
    const r = spawnSync(be, ['-R', `${pool}/ROOT`, 'hunt', 'run', '--releases', `${releases[0]}..${releases[releases.length - 1]}`, '--test', test, '--method', 'chroot', '--jobs', jobs, '-p', mirror, '--sets', 'base', '--cache', join(dir, 'cache'), '--state', state], { encoding: 'utf8' });
    const wall = Number(process.hrtime.bigint() - t) / 1e6;
    if (r.status !== 0) throw new Error(`hunt failed: ${r.stderr}`);
    const s = JSON.parse(readFileSync(join(state, 'hunt.json'), 'utf8'));
    const session = s.sessions[s.sessions.length - 1];
    const installed = Object.values(s.prepared).filter((p) => p.installed).length;
    const clone = Object.values(s.runs ?? {}).reduce((sum, x) => sum + (x.cloneMs ?? 0), 0);
    return { wall, hunt: session.wallMs, prepare: session.prepareMs, clone, runs: session.runsDone, installed, table: r.stdout };
  };
  const first = run('first');
  const second = run('second');
  const pct = (ms, x) => `${((100 * ms) / x.hunt).toFixed(1)}%`;
  console.log(`be hunt over ${releases.length} releases (--jobs ${jobs}), chroot runs on ${pool}`);
  for (const [name, x] of [['first run: ', first], ['second run:', second]]) {
    console.log(
      `${name} ${(x.hunt / 1000).toFixed(2)} s; installing/snapshots ${(x.prepare / 1000).toFixed(2)} s = ${pct(x.prepare, x)}, ` +
        `runs waiting for their clone ${(x.clone / 1000).toFixed(2)} s = ${pct(x.clone, x)}; preparing BEs in all ${pct(x.prepare + x.clone, x)} ` +
        `(${x.installed} installed, ${x.runs} runs)`,
    );
  }
  console.log(`per run on the second: waiting for the clone ${(second.clone / second.runs).toFixed(0)} ms, the rest of the wall time ${((second.hunt - second.prepare - second.clone) / second.runs).toFixed(0)} ms (mount, chroot test, unmount, and the clones and destroys beside them)`);
  const installs = (100 * second.prepare) / second.hunt;
  const all = (100 * (second.prepare + second.clone)) / second.hunt;
  console.log(`second/first wall time: ${(second.hunt / first.hunt).toFixed(2)}`);
  console.log(`goal, preparing BEs under 5% on the second run: installs and snapshots ${installs.toFixed(1)}% (${installs < 5 ? 'met' : 'NOT met'}); ` +
    `counting the runs' waits for their clones as well ${all.toFixed(1)}% (${all < 5 ? 'met' : 'NOT met'})`);
} finally {
  spawnSync(be, ['pool', 'destroy', pool], { stdio: 'ignore' });
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
}
