import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { shJoin, shQuote, shWriteFile } from '../../src/sys/shell.js';
import { Runner } from '../../src/sys/run.js';

const nasty = ["it's", 'a b', '$(reboot)', '`id`', 'x;y', 'tab\there', 'new\nline', '', '*', '~root', 'plain/path-1.0:x'];

describe('dry-run shell quoting', () => {
  it('leaves safe words alone and quotes the rest', () => {
    expect(shQuote('zroot/ROOT/default@snap')).toBe('zroot/ROOT/default@snap');
    expect(shQuote("it's")).toBe(`'it'\\''s'`);
    expect(shQuote('')).toBe("''");
  });

  it('round-trips every argument through /bin/sh unchanged', async () => {
    const script = `printf '%s\\0' ${shJoin(nasty)}`;
    const { stdout } = await execa('sh', ['-c', script]);
    expect(stdout.split('\0').slice(0, -1)).toEqual(nasty);
  });

  it('writes files byte for byte, with or without a final newline', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'be-sh-'));
    try {
      for (const content of ['a\nb\n', 'no newline', "quote ' and BE_EOF\nBE_EOF\n", '']) {
        const file = join(dir, 'out file');
        await execa('sh', ['-c', shWriteFile(file, content, 0o640)]);
        expect(await readFile(file, 'utf8')).toBe(content);
        expect((await stat(file)).mode & 0o777).toBe(0o640);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('records changes into a script that sh -n accepts, and runs nothing', async () => {
    const runner = new Runner({ dryRun: true, out: () => {} });
    await runner.change(['zfs', 'create', '-o', 'mountpoint=/', 'pool/ROOT/it\'s']);
    await runner.writeFile('/etc/exports', '/ROOT/head -maproot=root\n');
    await runner.act('mkdir -p /tmp/x', async () => {
      throw new Error('must not run');
    });
    const script = runner.scriptText();
    expect(script).toContain(`zfs create -o mountpoint=/ 'pool/ROOT/it'\\''s'`);
    expect(runner.spawns).toBe(0);
    const check = await execa('sh', ['-n'], { input: script, reject: false });
    expect(check.exitCode).toBe(0);
  });

  it('undoes completed steps in reverse when a later one fails', async () => {
    const log: string[] = [];
    const runner = new Runner({ out: () => {}, err: () => {} });
    await expect(
      runner.transaction(async () => {
        await runner.act('one', async () => log.push('do 1'), async () => log.push('undo 1'));
        await runner.act('two', async () => log.push('do 2'), async () => log.push('undo 2'));
        await runner.change(['false']);
      }),
    ).rejects.toThrow('false exited 1');
    expect(log).toEqual(['do 1', 'do 2', 'undo 2', 'undo 1']);
  });

  it('names the program, exit code and last stderr line of a failed command', async () => {
    const runner = new Runner();
    await expect(runner.query(['sh', '-c', 'echo first >&2; echo "last words" >&2; exit 3'])).rejects.toThrow(/^sh exited 3: last words$/);
    await expect(runner.query(['no-such-program-be'])).rejects.toThrow('no-such-program-be: command not found');
  });
});
