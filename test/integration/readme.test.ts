import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BE_BIN, beOk } from '../helpers/cli.js';
import { ensureZfs } from '../helpers/zfs.js';

const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');

function section(name: string): string {
  const start = readme.indexOf(`<!-- section: ${name} -->`);
  const end = readme.indexOf(`<!-- end section: ${name} -->`);
  if (start < 0 || end < 0) throw new Error(`README has no section ${name}`);
  return readme.slice(start, end);
}

/** The `be …` lines of the first sh block of a README section, comments dropped. */
function commands(text: string): string[][] {
  const block = /```sh\n([\s\S]*?)```/.exec(text)![1];
  return block
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => l.startsWith('be '))
    .map((l) => l.split(/\s+/).slice(1));
}

describe('README', () => {
  it('the boot environment walk-through runs as shown', async () => {
    await ensureZfs();
    const lines = commands(section('boot environments'));
    expect(lines.length).toBeGreaterThan(8);
    const pool = lines[0][lines[0].length - 1];
    const file = lines[0][lines[0].indexOf('--file') + 1];
    // A run killed half way leaves the README's pool or its file behind: start from nothing.
    await execa(BE_BIN, ['pool', 'destroy', pool], { reject: false });
    await rm(file, { force: true });
    try {
      for (const args of lines) await beOk(args);
      expect((await execa('zpool', ['list', pool], { reject: false })).exitCode).not.toBe(0);
    } finally {
      await execa(BE_BIN, ['pool', 'destroy', pool], { reject: false });
      await rm(file, { force: true });
    }
  });

  it('npm pack ships the CLI, its templates and the manual page', async () => {
    const { stdout } = await execa('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: fileURLToPath(new URL('../..', import.meta.url)) });
    const files: string[] = JSON.parse(stdout)[0].files.map((f: { path: string }) => f.path);
    for (const needed of ['bin/be', 'dist/main.js', 'templates/layouts/freebsd.json', 'be.8', 'README.md']) expect(files).toContain(needed);
    expect(files.some((f) => f.startsWith('test/') || f.startsWith('src/'))).toBe(false);
  });

  it('the packed tarball installs with npm i -g and its be runs', async () => {
    const repo = fileURLToPath(new URL('../..', import.meta.url));
    const tmp = await mkdtemp(join(tmpdir(), 'be-pack-'));
    try {
      // dist/ is built by the test command; prepack would build it again
      const packed = await execa('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], { cwd: repo });
      const tarball = join(tmp, JSON.parse(packed.stdout)[0].filename);
      const prefix = join(tmp, 'global');
      await execa('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: tmp });
      const be = join(prefix, 'bin', 'be');
      const version = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')).version;
      expect((await execa(be, ['--version'], { cwd: tmp })).stdout).toBe(version);
      expect((await execa(be, ['help', 'create'], { cwd: tmp })).stdout).toContain('Usage: be create');
      // templates come from the installed package, not from this checkout
      const ic = await execa(be, ['installerconfig', '--disk', 'ada0'], { cwd: tmp });
      expect(ic.stdout).toContain('export ZFSBOOT_DISKS=ada0');
      expect(readFileSync(join(prefix, 'lib', 'node_modules', 'be', 'be.8'), 'utf8')).toContain('.Dt BE 8');
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }, 120_000);
});
