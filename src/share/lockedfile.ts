/**
 * Read-modify-write of a shared text file (/etc/exports, ganesha's include file, a guest fstab):
 * under a lock file so concurrent `be` runs lose nothing, written through a temp file that is
 * fsync'ed and renamed over the old one (a crash leaves the old file whole), with a backup.
 */
import { readFile, stat, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Runner } from '../sys/run.js';
import { BeError } from '../sys/errors.js';
import { writeFileAtomic } from '../sys/files.js';
import { withFileLock } from '../sys/lock.js';
import { unifiedDiff } from './diff.js';

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

/** Environment hook for tests: `pause-before-rename` stops with the new file written but not renamed. */
export const TEST_HOOK_ENV = 'BE_TEST_HOOK';

async function readOrEmpty(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw new BeError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}


async function writeDurably(path: string, content: string, mode: number, hook?: string): Promise<void> {
  const pause =
    hook === 'pause-before-rename'
      ? async (tmp: string) => {
          process.stderr.write(`be: test hook: ${tmp} written, pausing before rename\n`);
          await new Promise(() => {}); // until killed
        }
      : undefined;
  try {
    await writeFileAtomic(path, content, mode, pause);
  } catch (error) {
    throw new BeError(`cannot write ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/**
 * Apply EDIT to the file's text. In dry-run the diff is shown as comments in the plan, then the
 * here-document that would write the file. Returns the text before and after.
 */
export async function updateFile(runner: Runner, path: string, edit: (old: string) => string, opts: UpdateOptions = {}): Promise<UpdateResult> {
  if (runner.dryRun) {
    const before = await readOrEmpty(path);
    const after = edit(before);
    if (after !== before) {
      for (const line of unifiedDiff(before, after, path, `${path} (new)`).trimEnd().split('\n')) runner.note(line);
      if (opts.backup) runner.note(`previous content kept in ${opts.backup}`);
      await runner.writeFile(path, after, { mode: opts.mode });
    }
    return { before, after, changed: after !== before };
  }
  await mkdir(dirname(path), { recursive: true }).catch(() => {});
  return withFileLock(
    path,
    async () => {
      const before = await readOrEmpty(path);
      const after = edit(before);
      if (after === before) return { before, after, changed: false };
      const mode = (await stat(path).catch(() => undefined))?.mode ?? opts.mode ?? 0o644;
      if (opts.backup) await writeDurably(opts.backup, before, mode & 0o7777);
      if (runner.verbose) process.stderr.write(`+ write ${path}\n`);
      await writeDurably(path, after, mode & 0o7777, process.env[TEST_HOOK_ENV]);
      return { before, after, changed: true };
    },
    opts.lockTimeoutMs,
  );
}
