import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdtemp, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runner } from '../../src/sys/run.js';
import { BeError, CommandError } from '../../src/sys/errors.js';
import { extractArchive, retryWithoutFflags, tarExtractArgv, tarFailure } from '../../src/install/extract.js';

let work: string;

/** A set as FreeBSD ships it: an xz'd pax tarball whose members carry SCHILY.fflags records. */
async function makeSet(name: string, files: Record<string, string>, opts: { fflags?: string; only?: string[] } = {}): Promise<string> {
  const stage = join(work, `${name}.stage`);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(stage, path, '..'), { recursive: true });
    await writeFile(join(stage, path), content, { mode: 0o555 });
  }
  const tar = join(work, `${name}.tar`);
  const pax = opts.fflags ? ['--format=pax', `--pax-option=SCHILY.fflags=${opts.fflags}`] : [];
  await execa('tar', ['--numeric-owner', '--sort=name', ...pax, '-cf', tar, '-C', stage, ...(opts.only ?? ['.'])]);
  await execa('xz', ['-1', '-f', tar]);
  const txz = join(work, `${name}.txz`);
  await execa('mv', [`${tar}.xz`, txz]);
  return txz;
}

/** A runner that runs for real and keeps the argv of every command it ran. */
function recordingRunner(): { runner: Runner; ran: string[] } {
  const ran: string[] = [];
  return { runner: new Runner({ verbose: true, err: (line) => ran.push(line.replace(/^\+ /, '')) }), ran };
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'be-extract-test.'));
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('tar argv per platform', () => {
  it("FreeBSD's bsdtar: -p keeps modes, owners and file flags; the retry adds --no-fflags before -f (bsdtar(1))", () => {
    expect(tarExtractArgv('freebsd', '/c/base.txz', '/mnt/be')).toEqual(['tar', '-x', '-p', '--numeric-owner', '-f', '/c/base.txz', '-C', '/mnt/be']);
    expect(tarExtractArgv('freebsd', '/c/base.txz', '/mnt/be', { noFflags: true })).toEqual(['tar', '-x', '-p', '--numeric-owner', '--no-fflags', '-f', '/c/base.txz', '-C', '/mnt/be']);
  });

  it('GNU tar on Linux: no --no-fflags (it has no file flags), and it skips the fflags pax records without a word', async () => {
    for (const flavour of ['zfs-fuse', 'openzfs-linux'] as const) {
      expect(tarExtractArgv(flavour, '/c/base.txz', '/mnt/be')).toEqual(['tar', '-x', '-p', '--numeric-owner', '--warning=no-unknown-keyword', '-f', '/c/base.txz', '-C', '/mnt/be']);
      expect(tarExtractArgv(flavour, '/c/base.txz', '/mnt/be', { noFflags: true })).not.toContain('--no-fflags');
    }
    const set = await makeSet('flags', { 'bin/sh': 'sh\n' }, { fflags: 'schg' });
    const dir = await mkdtemp(join(work, 'gnu.'));
    const [program, ...args] = tarExtractArgv('zfs-fuse', set, dir);
    const r = await execa(program, args);
    expect(r.stderr).toBe('');
    expect(await readFile(join(dir, 'bin/sh'), 'utf8')).toBe('sh\n');
    expect((await stat(join(dir, 'bin/sh'))).mode & 0o7777).toBe(0o555);
  });

  it('a dry run prints the one tar command', async () => {
    const runner = new Runner({ dryRun: true, out: () => {} });
    await extractArchive(runner, 'freebsd', '/var/cache/be/base.txz', '/tmp/be_mount.1/usr', "set 'base' (base.txz)");
    expect(runner.scriptText()).toBe("#!/bin/sh\nset -e\ntar -x -p --numeric-owner -f /var/cache/be/base.txz -C /tmp/be_mount.1/usr\n");
  });
});

describe('when a failed extraction is tried again with --no-fflags', () => {
  // What bsdtar prints where the target cannot hold file flags: libarchive's messages, one per file,
  // then bsdtar's own closing line.
  const noFlags = new CommandError(tarExtractArgv('freebsd', '/c/base.txz', '/mnt'), 1, './var/empty: Failed to set file flags\n./sbin/init: Failed to set file flags\ntar: Error exit delayed from previous errors.\n');
  const symlink = new CommandError(tarExtractArgv('freebsd', '/c/base.txz', '/mnt'), 1, "./usr/lib/libc.so: Can't set file flags on symlink.\ntar: Error exit delayed from previous errors.\n");

  it("bsdtar's file-flag failures on FreeBSD, and nothing else", () => {
    expect(retryWithoutFflags('freebsd', noFlags)).toBe(true);
    expect(retryWithoutFflags('freebsd', symlink)).toBe(true);
    for (const flavour of ['zfs-fuse', 'openzfs-linux'] as const) expect(retryWithoutFflags(flavour, noFlags)).toBe(false);
    expect(retryWithoutFflags('freebsd', new BeError('tar: command not found'))).toBe(false);
    expect(retryWithoutFflags('freebsd', new CommandError(['tar'], 1, 'tar: Truncated input file (needed 512 bytes, only 0 available)\ntar: Error exit delayed from previous errors.\n'))).toBe(false);
  });

  it('a tar that fails for another reason runs once, even where a path names chflags, and its error is kept', async () => {
    // A real failure: the set has bin/chflags (and no bin/ of its own), and bin is a file in the target.
    const set = await makeSet('chflags', { 'bin/chflags': 'chflags\n' }, { only: ['bin/chflags'] });
    const dir = await mkdtemp(join(work, 'busy.'));
    await writeFile(join(dir, 'bin'), 'not a directory\n');
    const { runner, ran } = recordingRunner();
    const error = await extractArchive(runner, 'freebsd', set, dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandError);
    expect((error as CommandError).stderr).toContain('bin/chflags: Cannot open: Not a directory');
    expect(retryWithoutFflags('freebsd', error)).toBe(false);
    expect(ran).toEqual([`tar -x -p --numeric-owner -f ${set} -C ${dir}`]);
  });
});

describe('an extraction that fails half-way names the set and the reason, in one line', () => {
  it('a truncated set: the decompressor says so, not tar\'s closing line', async () => {
    const set = await makeSet('kernel', { 'boot/kernel/kernel': 'k'.repeat(200_000) + Math.random(), 'boot/kernel/zfs.ko': 'zfs\n' });
    const bytes = await readFile(set);
    await writeFile(set, bytes.subarray(0, bytes.length >> 1));
    const dir = await mkdtemp(join(work, 'cut.'));
    const { runner, ran } = recordingRunner();
    const error = (await extractArchive(runner, 'zfs-fuse', set, dir, "set 'kernel' (kernel.txz)").catch((e: unknown) => e)) as BeError;
    expect(error).toBeInstanceOf(BeError);
    // xz's complaint comes first; tar's own line where xz had said nothing
    expect(error.message).toMatch(/^cannot extract set 'kernel' \(kernel\.txz\): (xz: \(stdin\): Unexpected end of input|tar: Unexpected EOF in archive)$/);
    expect(error.command).toEqual(tarExtractArgv('zfs-fuse', set, dir));
    expect(ran).toHaveLength(1);
  });

  it('a file that is no archive at all', async () => {
    const set = join(work, 'base.txz');
    await writeFile(set, 'this is not a tarball\n');
    const error = (await extractArchive(new Runner(), 'zfs-fuse', set, await mkdtemp(join(work, 'junk.')), "set 'base' (base.txz)").catch((e: unknown) => e)) as BeError;
    expect(error.message).toMatch(/^cannot extract set 'base' \(base\.txz\): (tar: This does not look like a tar archive|xz: \(stdin\): File format not recognized)$/);
  });

  it("tar's reason is its first line that is not a closing remark", () => {
    expect(tarFailure(new CommandError(['tar'], 2, 'tar: This does not look like a tar archive\ntar: Exiting with failure status due to previous errors\n'))).toBe('tar: This does not look like a tar archive');
    expect(tarFailure(new CommandError(['tar'], 1, './var/empty: Failed to set file flags\ntar: Error exit delayed from previous errors.\n'))).toBe('./var/empty: Failed to set file flags');
    expect(tarFailure(new CommandError(['tar'], 2, ''))).toBe('tar exited 2');
    expect(tarFailure(new BeError('tar: command not found'))).toBe('tar: command not found');
  });
});
