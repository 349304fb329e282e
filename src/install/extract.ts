import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Runner } from '../sys/run.js';
import type { ZfsFlavour } from '../sys/platform.js';
import { CommandError } from '../sys/errors.js';
import { shQuote } from '../sys/shell.js';

/**
 * Extraction with the system tar, the one place that knows which tar a platform has:
 * - FreeBSD: bsdtar keeps modes, owners and file flags (-p); where the target filesystem
 *   cannot hold flags (NFS, tmpfs) it retries with --no-fflags.
 * - Linux: GNU tar keeps modes and numeric owners; it has no file flags and skips the
 *   SCHILY.fflags pax records of FreeBSD's sets without a warning.
 * Both read xz and gzip archives by content, so txz sets and assembled split sets share it.
 */
export function tarExtractArgv(flavour: ZfsFlavour, archive: string, dir: string, opts: { noFflags?: boolean } = {}): string[] {
  if (flavour === 'freebsd') {
    return ['tar', '-x', '-p', '--numeric-owner', ...(opts.noFflags ? ['--no-fflags'] : []), '-f', archive, '-C', dir];
  }
  return ['tar', '-x', '-p', '--numeric-owner', '--warning=no-unknown-keyword', '-f', archive, '-C', dir];
}

/** Errors from bsdtar that mean "this filesystem has no file flags". */
function flagsUnsupported(error: unknown): boolean {
  return error instanceof CommandError && /fflags|file flags|chflags|Operation not supported/i.test(error.stderr);
}

export async function extractArchive(runner: Runner, flavour: ZfsFlavour, archive: string, dir: string): Promise<void> {
  try {
    await runner.change(tarExtractArgv(flavour, archive, dir));
  } catch (error) {
    if (flavour !== 'freebsd' || !flagsUnsupported(error)) throw error;
    await runner.change(tarExtractArgv(flavour, archive, dir, { noFflags: true }));
  }
}

/**
 * Concatenate the verified pieces of a pre-9.0 split set (base.aa, base.ab, …) into one
 * gzip tarball in a private temporary directory; `release` removes it.
 */
export async function assemblePieces(runner: Runner, pieces: string[], name: string): Promise<{ path: string; release: () => Promise<void> }> {
  if (runner.dryRun) {
    const path = join(tmpdir(), `be-install.XXXXXX/${name}.tgz`);
    runner.note(`assemble ${pieces.length} pieces: cat ${pieces.map(shQuote).join(' ')} > ${path}`);
    return { path, release: async () => {} };
  }
  const dir = await mkdtemp(join(tmpdir(), 'be-install.'));
  const path = join(dir, `${name}.tgz`);
  const out = createWriteStream(path, { mode: 0o600 });
  try {
    for (const piece of pieces) await pipeline(createReadStream(piece), out, { end: false });
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  } catch (error) {
    out.destroy();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return { path, release: () => rm(dir, { recursive: true, force: true }) };
}
