import { open, rename, unlink, readFile, stat, mkdir } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BeError } from './errors.js';
import { withFileLock } from './lock.js';

/** Write via a temp file in the same directory, fsync, rename, fsync the directory: never a torn file. */
export async function writeFileAtomic(
  path: string,
  content: string | Buffer,
  mode = 0o644,
): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(content);
    await fh.chmod(mode);
    await fh.sync();
  } catch (error) {
    await fh.close();
    await unlink(tmp).catch(() => {});
    throw error;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (error) {
    await unlink(tmp).catch(() => {});
    throw error;
  }
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

export interface UpdateOptions {
  /** Keep the previous content here (written atomically before the new file). */
  backup?: string;
  /** Mode of a file created from nothing (an existing file keeps its mode). */
  mode?: number;
  /** How long to wait for another `be` holding the lock (default 60 s). */
  lockTimeoutMs?: number;
}

export interface UpdateResult {
  before: string;
  after: string;
  changed: boolean;
}

/** A text file's content; '' when it does not exist. */
export async function readTextOrEmpty(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw new BeError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/**
 * Read-modify-write of a shared text file (/etc/exports, ganesha's include file, a guest fstab):
 * under a lock file so concurrent `be` runs lose nothing, written through a temp file that is
 * fsync'ed and renamed over the old one (a crash leaves the old file whole), with a backup.
 */
export async function updateTextFile(path: string, edit: (old: string) => string, opts: UpdateOptions = {}): Promise<UpdateResult> {
  await mkdir(dirname(path), { recursive: true }).catch(() => {});
  return withFileLock(
    path,
    async () => {
      const before = await readTextOrEmpty(path);
      const after = edit(before);
      if (after === before) return { before, after, changed: false };
      const mode = ((await stat(path).catch(() => undefined))?.mode ?? opts.mode ?? 0o644) & 0o7777;
      try {
        if (opts.backup) await writeFileAtomic(opts.backup, before, mode);
        await writeFileAtomic(path, after, mode);
      } catch (error) {
        throw new BeError(`cannot write ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      }
      return { before, after, changed: true };
    },
    opts.lockTimeoutMs,
  );
}
