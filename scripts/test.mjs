#!/usr/bin/env node
// The whole test suite: files that need no ZFS pool in parallel, then the ZFS ones one at a time
// (see vitest.config.ts). Ends with one summary line: "N passed, N failed".
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'be-tests-'));
const extra = process.argv.slice(2);
let passed = 0;
let failed = 0;
let ok = true;
for (const set of ['rest', 'zfs']) {
  const out = join(dir, `${set}.json`);
  const r = spawnSync('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`, ...extra], {
    stdio: 'inherit',
    env: { ...process.env, BE_TEST_SET: set },
  });
  try {
    const report = JSON.parse(readFileSync(out, 'utf8'));
    passed += report.numPassedTests;
    failed += report.numFailedTests;
  } catch {
    failed += 1; // the run died before writing its report
  }
  if (r.status !== 0) ok = false;
}
rmSync(dir, { recursive: true, force: true });
console.log(`${passed} passed, ${failed} failed`);
process.exit(ok && failed === 0 ? 0 : 1);
