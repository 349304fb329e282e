import { defineConfig } from 'vitest/config';
import { readdirSync, readFileSync } from 'node:fs';

// zfs-fuse deadlocks when several test files mount and re-point datasets at once, so the test
// files that use a ZFS pool (they import test/helpers/zfs) run one after another, as their own
// set; everything else runs in parallel. BE_TEST_SET=zfs|rest picks a set; unset runs all.
const files = (readdirSync('test', { recursive: true }) as string[])
  .filter((f) => f.endsWith('.test.ts'))
  .map((f) => `test/${f}`)
  .sort();
const usesZfs = (f: string) => /helpers\/zfs(\.js)?['"]/.test(readFileSync(f, 'utf8'));
const set = process.env.BE_TEST_SET;

export default defineConfig({
  test: {
    include: set === 'zfs' ? files.filter(usesZfs) : set === 'rest' ? files.filter((f) => !usesZfs(f)) : files,
    fileParallelism: set !== 'zfs',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
