import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Runner } from '../sys/run.js';
import type { ZfsFlavour } from '../sys/platform.js';
import { BeError, CommandError } from '../sys/errors.js';
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

/**
 * Whether a failed extraction is worth one more try with --no-fflags: only FreeBSD's bsdtar
 * sets file flags, and only libarchive's own complaints about them ("Failed to set file flags",
 * "Can't set file flags on symlink.") say the target filesystem cannot hold them (NFS, tmpfs).
 * Anything else (a damaged archive, a full disk, a path that merely contains "chflags") fails
 * the same way again and is reported as it is.
 */
export function retryWithoutFflags(flavour: ZfsFlavour, error: unknown): boolean {
  return flavour === 'freebsd' && error instanceof CommandError && /(Failed to set|Can't set) file flags/.test(error.stderr);
}

/** Lines of tar's stderr that only say an earlier line was the error. */
const WRAP_UP = /Error is not recoverable|Error exit delayed|Child returned status|Exiting with failure status/;

/** The line of a failed tar's stderr that says what went wrong: the first one that is not a wrap-up. */
export function tarFailure(error: unknown): string {
  if (!(error instanceof CommandError)) return (error as Error).message;
  const lines = error.stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines.find((l) => !WRAP_UP.test(l)) ?? error.message;
}

/**
 * Extract ARCHIVE into DIR (retrying without file flags where bsdtar cannot set them). With
 * WHAT (e.g. "set 'base' (base.txz)") a failure is one line naming it and tar's reason.
 */
export async function extractArchive(runner: Runner, flavour: ZfsFlavour, archive: string, dir: string, what?: string): Promise<void> {
  try {
    try {
      await runner.change(tarExtractArgv(flavour, archive, dir));
    } catch (error) {
      if (!retryWithoutFflags(flavour, error)) throw error;
      await runner.change(tarExtractArgv(flavour, archive, dir, { noFflags: true }));
    }
  } catch (error) {
    if (what === undefined) throw error;
    throw new BeError(`cannot extract ${what}: ${tarFailure(error)}`, { command: (error as BeError).command, cause: error });
  }
}

/**
 * Concatenate the verified pieces of a pre-9.0 split set (base.aa, base.ab, …) into one
 * gzip tarball in a private temporary directory; `release` removes it.
 */
export async function assemblePieces(runner: Runner, pieces: string[], name: string): Promise<{ path: string; release: () => Promise<void> }> {
  const dir = join(tmpdir(), `be-install.${process.pid}.${randomBytes(4).toString('hex')}`);
  const path = join(dir, `${name}.tgz`);
  const release = () => runner.act(`rm -rf ${shQuote(dir)}`, () => rm(dir, { recursive: true, force: true }));
  await runner.act(`mkdir -m 700 ${shQuote(dir)} && cat ${pieces.map(shQuote).join(' ')} > ${shQuote(path)}`, async () => {
    await mkdir(dir, { mode: 0o700 });
    const out = createWriteStream(path, { mode: 0o600 });
    try {
      for (const piece of pieces) await pipeline(createReadStream(piece), out, { end: false });
      await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    } catch (error) {
      out.destroy();
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
  });
  return { path, release };
}
