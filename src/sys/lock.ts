/**
 * A lock between `be` processes (and between concurrent operations in one): a lock file made with
 * O_EXCL that holds the owner's pid; a lock whose owner died is broken, the breaking serialized.
 */
import { open, readFile, stat, unlink } from 'node:fs/promises';
import { constants } from 'node:fs';
import { BeError } from './errors.js';

async function readOrEmpty(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return '';
  }
}

/** Whether process PID lives on this host (EPERM: it does, as another user's). */
export function processAlive(pid: number): boolean {
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
    if (!processAlive(holder)) {
      const s = await stat(lock).catch(() => undefined);
      // a lock file just created may not hold its pid yet
      if (s && (Number.isInteger(holder) || Date.now() - s.mtimeMs > 2_000)) await unlink(lock).catch(() => {});
    }
  } finally {
    await unlink(breaker).catch(() => {});
  }
}

/** Run BODY while holding `<path>.be-lock`, waiting at most TIMEOUTMS for it (Infinity: as long as it takes). */
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
    // short waits at first (mounts take turns in milliseconds), then at most 5 a second (an install)
    await sleep(Math.min(200, 5 + attempt * 2) + Math.floor(Math.random() * 20));
  }
  try {
    return await body();
  } finally {
    await unlink(lock).catch(() => {});
  }
}
