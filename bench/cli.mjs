#!/usr/bin/env node
// bench/cli: start-up of the `be` CLI against Node's own bare start-up, and the cost of creating
// 100 nested (freebsd layout) BEs on a file-backed pool.
// Run as root after `npm run build`, with ZFS available (zfs-fuse on Linux): node bench/cli.mjs
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const be = fileURLToPath(new URL('../bin/be', import.meta.url));
const runs = Number(process.env.RUNS ?? 30);
const count = Number(process.env.BES ?? 100);

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
function time(argv, env) {
  const samples = [];
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    const r = spawnSync(argv[0], argv.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr}`);
    samples.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return median(samples);
}

const dir = mkdtempSync(join(tmpdir(), 'be-bench-'));
const pool = `bebench${process.pid}`;
try {
  execFileSync(be, ['pool', 'create', '--file', join(dir, 'pool.img'), '--size', '2G', '--altroot', join(dir, 'alt'), pool]);
  execFileSync(be, ['-R', `${pool}/ROOT`, 'create', 'first']);

  const node = time([process.execPath, '-e', '0']);
  const version = time([be, '--version']);
  const list = time([be, '-R', `${pool}/ROOT`, 'list', '-H']);
  const zpool = time(['zfs', 'list', '-H', '-o', 'name', '-r', pool]);
  console.log(`start-up (median of ${runs} runs)`);
  console.log(`  node -e 0        ${node.toFixed(1)} ms`);
  console.log(`  be --version     ${version.toFixed(1)} ms   ratio ${(version / node).toFixed(2)}x node (goal <= 1.5x)`);
  console.log(`  be list -H       ${list.toFixed(1)} ms   ratio ${(list / node).toFixed(2)}x node; one bare 'zfs list' here takes ${zpool.toFixed(1)} ms`);

  let spawns = 0;
  let zfsSpawns = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const r = spawnSync(be, ['-v', '-R', `${pool}/ROOT`, 'create', `be${i}`], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('+ '));
    spawns += lines.length;
    zfsSpawns += lines.filter((l) => l.startsWith('+ zfs ') || l.startsWith('+ zpool ')).length;
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`create ${count} freebsd-layout BEs (12 datasets each)`);
  console.log(`  ${secs.toFixed(1)} s total, ${((secs / count) * 1000).toFixed(0)} ms per BE`);
  console.log(`  ${(zfsSpawns / count).toFixed(1)} zfs/zpool processes per BE (${(spawns / count).toFixed(1)} processes in all)`);
} finally {
  spawnSync(be, ['pool', 'destroy', pool]);
  rmSync(dir, { recursive: true, force: true });
}
