#!/usr/bin/env node
// A small local FreeBSD mirror for `bash scripts/demo hunt`: eight synthetic releases, each a
// busybox root tree packed as a real base.txz with its MANIFEST, and the test the hunt runs.
// Planted in them: a regression (the feature breaks from REGRESSION on), a flaky release whose
// test fails on runs 2 and 4 (read from BE_RUN, so every hunt sees the same), and a step in the
// boot_ms metric at STEP amid run-to-run noise (seeded, the same each time).
//
//   node scripts/hunt-mirror.mjs DIR   writes DIR/FreeBSD/releases/amd64/X.Y-RELEASE/ and DIR/boot-test.sh
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const RELEASES = ['13.0', '13.1', '13.2', '13.3', '13.4', '13.5', '14.0', '14.1'];
export const REGRESSION = '14.0';
export const FLAKY = '13.5';
export const FLAKY_RUNS = [2, 4];
export const STEP = '13.3';
/** A release whose runs vary widely: its median is 6% off, but the runs do not support a change. */
export const WILD = '13.1';
export const RUNS = 5;

/** mulberry32: the same seed gives the same noise. */
function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** boot_ms of each run of each release: 100 (130 from STEP on) with ±2% noise; WILD spreads ±12%. */
export function bootMs() {
  const next = seeded(15);
  const out = {};
  for (const [i, release] of RELEASES.entries()) {
    const base = i >= RELEASES.indexOf(STEP) ? 130 : 100;
    out[release] = release === WILD ? [106, 90, 112, 94, 108].map((v) => (v * base) / 100) : Array.from({ length: RUNS }, () => Math.round(base * (1 + (next() - 0.5) * 0.04) * 10) / 10);
  }
  return out;
}

export function expectedVerdict(release) {
  if (release === FLAKY) return 'flaky';
  return RELEASES.indexOf(release) >= RELEASES.indexOf(REGRESSION) ? 'bad' : 'good';
}

export const TEST = `#!/bin/sh
# How long does a (simulated) boot take, and does the feature still work?
run=\${BE_RUN:-1}
echo "BE-METRIC boot_ms=$(cat /etc/demo/boot_ms.$run)"
if grep -qx "$run" /etc/demo/fails-on-runs 2>/dev/null; then echo "intermittent failure on run $run"; exit 1; fi
if grep -q broken /etc/demo/feature; then echo "feature broken in $BE_RELEASE"; exit 1; fi
echo "feature works in $BE_RELEASE"
`;

function tree(release, boot) {
  const files = {
    'etc/motd': `synthetic FreeBSD ${release}\n`,
    'etc/master.passwd': 'root:*:0:0::0:0:Charlie &:/root:/bin/sh\n',
    'etc/demo/feature': RELEASES.indexOf(release) >= RELEASES.indexOf(REGRESSION) ? 'broken\n' : 'works\n',
  };
  for (let run = 1; run <= RUNS; run++) files[`etc/demo/boot_ms.${run}`] = `${boot[run - 1]}\n`;
  if (release === FLAKY) files['etc/demo/fails-on-runs'] = `${FLAKY_RUNS.join('\n')}\n`;
  return files;
}

function stage(dir, files) {
  const busybox = '/bin/busybox';
  if (!existsSync(busybox)) throw new Error('hunt-mirror: needs /bin/busybox (Debian: apt-get install busybox-static)');
  for (const d of ['bin', 'tmp', 'root', 'var/tmp']) mkdirSync(join(dir, d), { recursive: true });
  chmodSync(join(dir, 'tmp'), 0o1777);
  writeFileSync(join(dir, 'bin/busybox'), readFileSync(busybox), { mode: 0o555 });
  for (const tool of ['sh', 'ls', 'cat', 'grep', 'wc', 'sleep']) symlinkSync('busybox', join(dir, 'bin', tool));
  let count = 1;
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text, { mode: path === 'etc/master.passwd' ? 0o600 : 0o644 });
    count++;
  }
  return count;
}

/** Write the releases under ROOT (a pub/-style mirror) and the test beside them; returns the test's path. */
export function buildHuntMirror(root) {
  const boot = bootMs();
  for (const release of RELEASES) {
    const dir = join(root, 'FreeBSD', 'releases', 'amd64', `${release}-RELEASE`);
    mkdirSync(dir, { recursive: true });
    const work = mkdtempSync(join(tmpdir(), 'hunt-mirror.'));
    try {
      const count = stage(join(work, 'base'), tree(release, boot[release]));
      const tar = join(dir, 'base.txz');
      execFileSync('tar', ['--numeric-owner', '--owner=0', '--group=0', '--sort=name', '-cf', join(work, 'base.tar'), '-C', join(work, 'base'), '.']);
      execFileSync('xz', ['-T0', '-1', '-f', join(work, 'base.tar')]);
      writeFileSync(tar, readFileSync(join(work, 'base.tar.xz')));
      const sum = createHash('sha256').update(readFileSync(tar)).digest('hex');
      writeFileSync(join(dir, 'MANIFEST'), `${['base.txz', sum, String(count), 'base', '"Base system"', 'on'].join('\t')}\n`);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  const test = join(root, 'boot-test.sh');
  writeFileSync(test, TEST, { mode: 0o755 });
  return test;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const root = process.argv[2];
  if (!root) {
    process.stderr.write('usage: node scripts/hunt-mirror.mjs DIR\n');
    process.exit(2);
  }
  process.stdout.write(`${buildHuntMirror(root)}\n`);
}
