#!/usr/bin/env node
// bench/cli: start-up of the `be` CLI against Node's own bare start-up, the cost of creating
// 100 nested (freebsd layout) BEs on a file-backed pool, and moving a freebsd-layout BE with
// 100 MiB of files by `be export | be import` against plain zfs doing the same work in the same
// run (goal: within 1.1x): a recursive snapshot, `zfs send -R | zfs recv` of it, canmount=noauto
// on the new root and nothing left mounted (zfs-fuse's recv mounts what it gets: one umount),
// and what two bare Node start-ups in a pipe take, the part of be's time no code of its own can
// save (both start at once, each on a core of its own only where there are two free).
// Run as root after `npm run build`, with ZFS available (zfs-fuse on Linux): node bench/cli.mjs
// (BES=0 skips the creates; XFER_MIB sets the payload, XFER_RUNS the rounds; BE_BENCH_POOL names the pool.)
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
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

const xferMiB = Number(process.env.XFER_MIB ?? 100);
const xferRuns = Number(process.env.XFER_RUNS ?? 3);

/** Run A | B with a pipe between them (no shell); resolves with the wall time in seconds. */
function pipeline(a, b) {
  return new Promise((resolve, reject) => {
    const t = process.hrtime.bigint();
    const left = spawn(a[0], a.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    const right = spawn(b[0], b.slice(1), { stdio: [left.stdout, 'ignore', 'pipe'] });
    left.stdout.destroy(); // the pipe is between the two programs now, not through here
    let err = '';
    left.stderr.on('data', (d) => (err += d));
    right.stderr.on('data', (d) => (err += d));
    let open = 2;
    const done = (name) => (code) => {
      if (code !== 0) reject(new Error(`${name} exited ${code}: ${err}`));
      else if (--open === 0) resolve(Number(process.hrtime.bigint() - t) / 1e9);
    };
    left.on('exit', done(a.join(' ')));
    right.on('exit', done(b.join(' ')));
  });
}

/** A freebsd-layout BE with MIB MiB of incompressible files spread over its children. */
function fillBe(root, name, mib) {
  execFileSync(be, ['-R', root, 'create', name]);
  const at = execFileSync(be, ['-R', root, 'mount', name], { encoding: 'utf8' }).trim();
  const parts = [['', 0.5], ['usr/home', 0.2], ['var/log', 0.2], ['usr/src', 0.1]];
  for (const [sub, share] of parts) {
    const files = Math.max(1, Math.round(mib * share));
    for (let i = 0; i < files; i++) writeFileSync(join(at, sub, `f${i}`), randomBytes(1024 * 1024));
  }
  execFileSync(be, ['-R', root, 'umount', name]);
}

// The pool's vdev lives in memory where there is room: zfs-fuse's sync(2) on unmount stalls
// behind a busy disk, which would time the disk rather than the transfer.
const pool = process.env.BE_BENCH_POOL ?? `bebench${process.pid}`;
const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), `${pool}-`));
try {
  execFileSync(be, ['pool', 'create', '--file', join(dir, 'pool.img'), '--size', '2G', '--altroot', join(dir, 'alt'), pool]);
  execFileSync(be, ['-R', `${pool}/ROOT`, 'create', 'first']);

  const node = time([process.execPath, '-e', '0']);
  const version = time([be, '--version']);
  // the same answer from the program itself (ES modules and the argument parser loaded), as every other command starts
  const program = time([process.execPath, fileURLToPath(new URL('../dist/main.js', import.meta.url)), '--version']);
  const list = time([be, '-R', `${pool}/ROOT`, 'list', '-H']);
  const zpool = time(['zfs', 'list', '-H', '-o', 'name', '-r', pool]);
  console.log(`start-up (median of ${runs} runs)`);
  console.log(`  node -e 0        ${node.toFixed(1)} ms`);
  console.log(`  be --version     ${version.toFixed(1)} ms   ratio ${(version / node).toFixed(2)}x node (goal <= 1.3x)`);
  console.log(`  dist/main.js -V  ${program.toFixed(1)} ms   ratio ${(program / node).toFixed(2)}x node (what any command pays before its own work)`);
  console.log(`  be list -H       ${list.toFixed(1)} ms   ratio ${(list / node).toFixed(2)}x node; one bare 'zfs list' here takes ${zpool.toFixed(1)} ms`);

  if (count > 0) {
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
  }

  if (xferMiB > 0) {
    const root = `${pool}/ROOT`;
    const src = `${root}/xfer`;
    fillBe(root, 'xfer', xferMiB);
    const beTimes = [];
    const zfsTimes = [];
    const bareTimes = [];
    const nodeTimes = [];
    const fuse = !existsSync('/dev/zfs');
    const run = (argv) => {
      const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr}`);
      return r.stdout;
    };
    // Every round starts from the same BE: no snapshots, so both streams carry the one snapshot
    // each side takes (zfs send -R sends every snapshot up to the one named).
    const dropSnapshots = () => {
      for (const s of run(['zfs', 'list', '-H', '-o', 'name', '-t', 'snapshot', '-r', '-d', '1', src]).split('\n').filter((n) => n.startsWith(`${src}@`))) run(['zfs', 'destroy', '-r', s]);
    };
    const drop = (ds) => {
      // zfs-fuse answers "busy" for a while after an unmount; that wait is not part of either side
      for (let i = 0; i < 40 && spawnSync('zfs', ['destroy', '-r', ds]).status !== 0; i++) spawnSync('sleep', ['0.25']);
    };
    // The plain peer does what be import leaves done: the BE received (all children, properties),
    // canmount=noauto on its root, nothing mounted. zfs-fuse's recv has no -u and mounts what it
    // received, so there the peer unmounts it again (one umount, deepest first, as be does).
    const plain = async (name) => {
      const t = process.hrtime.bigint();
      run(['zfs', 'snapshot', '-r', `${src}@plain`]);
      bareTimes.push(await pipeline(['zfs', 'send', '-R', `${src}@plain`], ['zfs', 'receive', ...(fuse ? [] : ['-u']), name]));
      run(['zfs', 'set', 'canmount=noauto', name]);
      if (fuse) {
        const dirs = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')).filter(([dev]) => dev === name || dev?.startsWith(`${name}/`)).map(([, dir]) => dir).sort().reverse();
        if (dirs.length) run(['umount', ...dirs]);
      }
      return Number(process.hrtime.bigint() - t) / 1e9;
    };
    for (let i = 0; i < xferRuns; i++) {
      // alternate which goes first, so neither always meets a warm cache
      const order = i % 2 === 0 ? ['zfs', 'be'] : ['be', 'zfs'];
      for (const who of order) {
        dropSnapshots();
        if (who === 'zfs') {
          zfsTimes.push(await plain(`${root}/plain${i}`));
          drop(`${root}/plain${i}`);
        } else {
          beTimes.push(await pipeline([be, '-R', root, 'export', 'xfer'], [be, '-R', root, 'import', `moved${i}`]));
          drop(`${root}/moved${i}`);
        }
      }
      // what any two Node programs in a pipe cost before their first instruction: be's floor
      nodeTimes.push(await pipeline([process.execPath, '-e', '0'], [process.execPath, '-e', 'process.stdin.resume()']));
    }
    dropSnapshots();
    const b = median(beTimes);
    const z = median(zfsTimes);
    const bare = median(bareTimes);
    const nodes = median(nodeTimes);
    console.log(`move a freebsd-layout BE with ${xferMiB} MiB of files (median of ${xferRuns} rounds)`);
    console.log(`  zfs snapshot -r, send -R | recv${fuse ? '' : ' -u'}, set canmount=noauto${fuse ? ', umount' : ''}: ${(xferMiB / z).toFixed(1)} MiB/s (${z.toFixed(2)} s; the send | recv alone ${bare.toFixed(2)} s)`);
    console.log(`  be export | be import       ${(xferMiB / b).toFixed(1)} MiB/s (${b.toFixed(2)} s)   ratio ${(b / z).toFixed(2)}x the time of zfs (goal <= 1.1x)`);
    console.log(`  node -e 0 | node (two bare start-ups side by side) ${(nodes * 1000).toFixed(0)} ms: zfs plus that is ${((z + nodes) / z).toFixed(2)}x, be's own part ${((b - z - nodes) * 1000).toFixed(0)} ms`);
  }
} finally {
  // zfs-fuse can answer "busy" for a while after the last unmount
  for (let i = 0; i < 20 && spawnSync(be, ['pool', 'destroy', pool]).status !== 0; i++) spawnSync('sleep', ['1']);
  rmSync(dir, { recursive: true, force: true });
}
