/**
 * `be X` loads only the group of commands X belongs to (start-up, bench/cli.mjs): the table in
 * src/cli/program.ts must name every command each group registers, and nothing else.
 */
import { describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildProgram, commandWord, COMMAND_GROUPS } from '../../src/cli/program.js';

const names = (c: Command) => c.commands.flatMap((x) => [x.name(), ...x.aliases()]);

describe('the command groups', () => {
  it('each group registers exactly the commands the table gives it; together they are the whole program', async () => {
    const all: string[] = [];
    for (const g of COMMAND_GROUPS) {
      const p = new Command('be');
      (await g.load())(p);
      expect(names(p).sort()).toEqual([...g.commands].sort());
      all.push(...names(p));
    }
    expect(names(await buildProgram()).sort()).toEqual(all.sort());
    expect(new Set(all).size).toBe(all.length);
  });

  it('the command word is found after the global options; only its group is loaded', async () => {
    expect(commandWord(['-n', '-R', 'lab/ROOT', 'list', '-H'])).toBe('list');
    expect(commandWord(['-nR', 'lab/ROOT', 'hunt', 'run'])).toBe('hunt');
    expect(commandWord(['--root', 'list', 'create', 'x'])).toBe('create');
    expect(commandWord(['-v'])).toBeUndefined();
    expect(names(await buildProgram(['node', 'be', '-R', 'lab/ROOT', 'list'])).sort()).toEqual([...COMMAND_GROUPS[0].commands].sort());
    expect(names(await buildProgram(['node', 'be', 'wol', 'x']))).toEqual(['pxe', 'sharepxe', 'wol']);
    expect(names(await buildProgram(['node', 'be', '--version']))).toEqual([]);
    // no command, or a word that is none: every group (help and suggestions need them all)
    expect(names(await buildProgram(['node', 'be', 'lsit'])).length).toBe(COMMAND_GROUPS.flatMap((g) => g.commands).length);
  });

  it('the launcher answers --version as the program does, and hands everything else to it', async () => {
    const bin = fileURLToPath(new URL('../../bin/be', import.meta.url));
    const cli = fileURLToPath(new URL('../../dist/main.js', import.meta.url));
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    for (const flag of ['--version', '-V']) {
      expect((await execa(bin, [flag])).stdout).toBe(version);
      expect((await execa(process.execPath, [cli, flag])).stdout).toBe(version);
    }
    // not the launcher's: the program's parser answers (and refuses) as before
    const bad = await execa(bin, ['--version', '--bogus'], { reject: false });
    expect(bad.stdout).toBe(version);
    const unknown = await execa(bin, ['--bogus'], { reject: false });
    expect([unknown.exitCode, unknown.stderr]).toEqual([2, "be: unknown option '--bogus'"]);
  });
});
