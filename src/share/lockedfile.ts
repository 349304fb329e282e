/**
 * Read-modify-write of a shared text file (/etc/exports, ganesha's include file, a guest fstab):
 * under a lock file so concurrent `be` runs lose nothing, written through a temp file that is
 * fsync'ed and renamed over the old one (a crash leaves the old file whole), with a backup.
 */
import { open, readFile, rename, stat, unlink, mkdir } from 'node:fs/promises';
import { constants } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Runner } from '../sys/run.js';
import { BeError } from '../sys/errors.js';
import { writeFileAtomic } from '../sys/files.js';
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

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function createExclusive(path: string): Promise<boolean> {
  try {
    const fh = await open(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o644);
    await fh.writeFile(`${process.pid}\n`);
    await fh.close();
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new BeError(`cannot create lock ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/** Remove LOCK if the process that made it is gone; breaking is itself serialized. */
async function breakStale(lock: string): Promise<void> {
  const breaker = `${lock}.break`;
  if (!(await createExclusive(breaker))) {
    // A breaker killed mid-way leaves its file behind: take it over after a while.
    const s = await stat(breaker).catch(() => undefined);
    if (s && Date.now() - s.mtimeMs > 10_000) await unlink(breaker).catch(() => {});
    return;
  }
  try {
    const holder = parseInt(await readOrEmpty(lock), 10);
    if (!alive(holder)) {
      const s = await stat(lock).catch(() => undefined);
      // a lock file just created may not hold its pid yet
      if (s && (Number.isInteger(holder) || Date.now() - s.mtimeMs > 2_000)) await unlink(lock).catch(() => {});
    }
  } finally {
    await unlink(breaker).catch(() => {});
  }
}

/** Run BODY while holding `<path>.be-lock`. */
export async function withFileLock<T>(path: string, body: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const lock = `${path}.be-lock`;
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    if (await createExclusive(lock)) break;
    if (attempt % 20 === 19) await breakStale(lock);
    if (Date.now() > deadline) {
      const holder = (await readOrEmpty(lock)).trim();
      throw new BeError(`cannot lock ${path}: ${lock} is held by process ${holder || '?'}`);
    }
    await sleep(5 + Math.floor(Math.random() * 20));
  }
  try {
    return await body();
  } finally {
    await unlink(lock).catch(() => {});
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
