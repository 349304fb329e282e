import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { retryLine } from '../../src/sys/run.js';
import { shQuote } from '../../src/sys/shell.js';

/** A command that fails saying WORD its first FAILS calls, then succeeds; counts its calls in a file. */
async function flaky(dir: string, fails: number, word: string): Promise<string> {
  const count = join(dir, 'count');
  await writeFile(count, '0');
  return `sh -c ${shQuote(`n=$(cat ${count}); n=$((n+1)); echo $n > ${count}; if [ $n -le ${fails} ]; then echo "cannot destroy: dataset is ${word}" >&2; exit 1; fi`)}`;
}

describe('a recorded change retried while busy (the script does what Zfs.retryBusy does live)', () => {
  it('tries again while the error says busy, then goes on', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'be-retry-'));
    try {
      const r = await execa('sh', ['-ec', `${retryLine(await flaky(dir, 2, 'busy'), 'busy')}\necho after`], { reject: false });
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toBe('after');
      expect((await readFile(join(dir, 'count'), 'utf8')).trim()).toBe('3');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 20_000);

  it('any other error ends the script at once, with the error on standard error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'be-retry-'));
    try {
      const r = await execa('sh', ['-ec', `${retryLine(await flaky(dir, 5, 'gone'), 'busy')}\necho after`], { reject: false });
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain('cannot destroy: dataset is gone');
      expect((await readFile(join(dir, 'count'), 'utf8')).trim()).toBe('1');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
