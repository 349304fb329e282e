/** Without ZFS on the PATH, a command that needs it says so in one line and does nothing else. */
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BE_BIN } from '../helpers/cli.js';

describe('be on a host without zfs(8) and zpool(8)', () => {
  it('list and create end with one line naming the missing program, exit 1', async () => {
    // a PATH holding only node
    const bin = mkdtempSync(join(tmpdir(), 'be-nozfs-'));
    try {
      symlinkSync(process.execPath, join(bin, 'node'));
      for (const args of [['list'], ['-R', 'zroot/ROOT', 'create', 'x']]) {
        const r = await execa(join(bin, 'node'), [BE_BIN, ...args], { env: { PATH: bin }, extendEnv: false, reject: false });
        expect(r.stderr).toBe('be: zpool not found: install ZFS (FreeBSD base, OpenZFS or zfs-fuse)');
        expect(r.exitCode).toBe(1);
        expect(r.stdout).toBe('');
      }
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });
});
