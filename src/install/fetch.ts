import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { writeFileAtomic } from '../sys/files.js';
import { BeError } from '../sys/errors.js';
import type { Runner } from '../sys/run.js';
import type { ProgressTask } from './progress.js';

/**
 * Getting bytes from a mirror: local directories are read in place; http(s) with node's own
 * client (redirects, Range resume); ftp through fetch(1) on FreeBSD (its base system has no
 * curl) and curl(1) elsewhere, each resuming a partial file.
 */

export type Algo = 'sha256' | 'md5';

export interface Expected {
  algo: Algo;
  digest: string;
}

export function isRemote(location: string): boolean {
  return /^(https?|ftp):\/\//i.test(location);
}

/** Thrown for a 404 / missing file so that release lookup can try the next candidate. */
export class NotFound extends BeError {
  constructor(readonly location: string) {
    super(`not found: ${location}`);
  }
}

/**
 * The argv that fetches an ftp:// URL into OUT ('-' for standard output): fetch(1) on FreeBSD,
 * whose base system has no curl, and curl(1) elsewhere. With RESUME, a partial OUT is continued
 * (fetch -r, curl -C -) rather than fetched anew. fetch -r keeps the partial file when a transfer
 * breaks off and stamps it with the remote file's time; a partial file whose time differs is
 * fetched anew, which the digest check after it makes safe either way.
 */
export function ftpFetchArgv(url: string, out: string, opts: { resume?: boolean; platform?: NodeJS.Platform } = {}): string[] {
  const toStdout = out === '-';
  if ((opts.platform ?? process.platform) === 'freebsd') {
    return ['fetch', '-q', ...(opts.resume && !toStdout ? ['-r'] : []), '-o', out, url];
  }
  return ['curl', '-fsS', ...(opts.resume && !toStdout ? ['-C', '-'] : []), ...(toStdout ? [] : ['-o', out]), '--', url];
}

/**
 * Whether a failed ftp fetch means the file (or a directory on its way) is not there. curl:
 * exit 78 (remote file not found) or 9 (CWD refused: the directory is missing), or a 550 reply;
 * fetch(1) exits 1 with libfetch's "File unavailable (e.g., file not found, no access)".
 */
export function ftpMissing(program: string, status: number, stderr: string): boolean {
  if (program === 'fetch') return status === 1 && /file unavailable|not found/i.test(stderr);
  return status === 78 || status === 9 || /\b550\b/.test(stderr);
}

function ftpError(url: string, program: string, r: { status: number; stderr: string }): BeError {
  if (ftpMissing(program, r.status, r.stderr)) return new NotFound(url);
  const last = r.stderr.trim().split('\n').pop();
  return new BeError(`cannot fetch ${url}: ${last || `${program} exited ${r.status}`}`);
}

const MAX_REDIRECTS = 5;
const IDLE_TIMEOUT_MS = 60_000;

async function httpRequest(url: string, headers: Record<string, string> = {}, redirects = 0): Promise<IncomingMessage> {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = mod.get(u, { headers: { 'user-agent': 'be-install', ...headers } }, resolve);
    req.setTimeout(IDLE_TIMEOUT_MS, () => req.destroy(new Error(`no answer from ${u.host} for ${IDLE_TIMEOUT_MS / 1000}s`)));
    req.on('error', reject);
  }).catch((error: Error) => {
    throw new BeError(`cannot fetch ${url}: ${error.message}`);
  });
  const status = res.statusCode ?? 0;
  if (status >= 300 && status < 400 && res.headers.location) {
    res.resume();
    if (redirects >= MAX_REDIRECTS) throw new BeError(`too many redirects fetching ${url}`);
    return httpRequest(new URL(res.headers.location, u).toString(), headers, redirects + 1);
  }
  return res;
}

/** A small text file (MANIFEST, CHECKSUM.*): local path or URL. Missing → NotFound. */
export async function readText(location: string, runner: Runner): Promise<string> {
  if (!isRemote(location)) {
    try {
      return await readFile(location, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') throw new NotFound(location);
      throw new BeError(`cannot read ${location}: ${(error as NodeJS.ErrnoException).code}`);
    }
  }
  if (/^ftp:/i.test(location)) {
    const argv = ftpFetchArgv(location, '-');
    const r = await runner.query(argv, { allowFailure: true });
    if (r.status === 0) return r.stdout;
    throw ftpError(location, argv[0], r);
  }
  const res = await httpRequest(location);
  const status = res.statusCode ?? 0;
  if (status === 404 || status === 410) {
    res.resume();
    throw new NotFound(location);
  }
  if (status !== 200) {
    res.resume();
    throw new BeError(`cannot fetch ${location}: HTTP ${status}`);
  }
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Hash a file, reporting progress. */
export async function hashFile(path: string, algo: Algo, task?: ProgressTask): Promise<string> {
  const hash = createHash(algo);
  let done = 0;
  await pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), async function* (source) {
    for await (const chunk of source) {
      hash.update(chunk as Buffer);
      done += (chunk as Buffer).length;
      task?.update(done);
    }
  });
  return hash.digest('hex');
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/**
 * Download URL into PART, resuming from what PART already holds with a Range request.
 * A connection that breaks off is retried (resuming) a few times before giving up.
 */
export async function downloadResuming(url: string, part: string, runner: Runner, task?: ProgressTask, attempts = 4): Promise<void> {
  await mkdir(dirname(part), { recursive: true });
  if (/^ftp:/i.test(url)) {
    const argv = ftpFetchArgv(url, part, { resume: true });
    let r = await runner.query(argv, { allowFailure: true });
    if (r.status === 36 && argv[0] === 'curl') {
      // curl cannot resume: the partial file is longer than the file now on the mirror. Start over.
      await unlink(part).catch(() => {});
      r = await runner.query(argv, { allowFailure: true });
    }
    if (r.status !== 0) throw ftpError(url, argv[0], r);
    return;
  }
  let lastError = '';
  for (let attempt = 0; attempt < attempts; attempt++) {
    const have = await sizeOf(part);
    // The file is open before the request so that no event of the response can be missed.
    const fh = await open(part, have > 0 ? 'r+' : 'w');
    let start = 0;
    let done = 0;
    let length = NaN;
    try {
      const res = await httpRequest(url, have > 0 ? { range: `bytes=${have}-` } : {});
      const status = res.statusCode ?? 0;
      if (status === 416 && have > 0) {
        // Nothing left to send: PART already holds the whole file.
        res.resume();
        return;
      }
      if (status === 404 || status === 410) {
        res.resume();
        throw new NotFound(url);
      }
      if (status !== 200 && status !== 206) {
        res.resume();
        throw new BeError(`cannot fetch ${url}: HTTP ${status}`);
      }
      start = status === 206 ? have : 0;
      if (start === 0 && have > 0) await fh.truncate(0);
      length = Number(res.headers['content-length'] ?? NaN);
      if (Number.isFinite(length)) task?.setTotal(start + length);
      done = start;
      // Every chunk the parser hands over is written, also when the connection breaks right
      // after it, so the next attempt asks only for the rest.
      await new Promise<void>((resolve, reject) => {
        let chain: Promise<unknown> = Promise.resolve();
        let pending = 0;
        let settled = false;
        const settle = (error?: Error) => {
          if (settled) return;
          settled = true;
          chain.then(() => (error ? reject(error) : resolve()), reject);
        };
        res.on('data', (chunk: Buffer) => {
          pending++;
          if (pending > 16) res.pause();
          chain = chain.then(async () => {
            await fh.write(chunk, 0, chunk.length, done);
            done += chunk.length;
            task?.update(done);
            if (--pending <= 4) res.resume();
          });
        });
        res.on('end', () => settle());
        res.on('error', (error) => settle(error));
        res.on('close', () => settle(res.complete ? undefined : new Error('connection closed early')));
      });
    } catch (error) {
      if (error instanceof BeError) throw error;
      lastError = (error as Error).message;
      continue;
    } finally {
      await fh.close();
    }
    if (Number.isFinite(length) && done - start < length) {
      lastError = `connection closed after ${done - start} of ${length} bytes`;
      continue;
    }
    return;
  }
  throw new BeError(`download of ${url} broke off ${attempts} times (${lastError}); run again to resume`);
}

/**
 * The download cache: a file is stored under its URL (host and path) with its expected digest
 * appended, so a changed set (same URL, new checksum) never reuses an old one. Files are
 * written as `<name>.part` and renamed only once their digest matched.
 */
export class DistCache {
  constructor(readonly root: string) {}

  pathFor(url: string, expected: Expected): string {
    const u = new URL(url);
    const clean = decodeURIComponent(u.pathname)
      .split('/')
      .filter((s) => s && s !== '.' && s !== '..')
      .map((s) => s.replace(/[^A-Za-z0-9_.,+@=-]/g, '_'));
    const host = u.host.replace(/[^A-Za-z0-9_.-]/g, '_');
    return join(this.root, host, ...clean.slice(0, -1), `${clean[clean.length - 1]}.${expected.algo}-${expected.digest}`);
  }

  has(url: string, expected: Expected): boolean {
    return existsSync(this.pathFor(url, expected));
  }

  /** A small text file stored by key (release index records). */
  recordPath(key: string): string {
    return join(this.root, 'releases', `${key.replace(/[^A-Za-z0-9_.,+@=-]/g, '_')}.json`);
  }

  async readRecord<T>(key: string): Promise<T | undefined> {
    try {
      return JSON.parse(await readFile(this.recordPath(key), 'utf8')) as T;
    } catch {
      return undefined;
    }
  }

  async writeRecord(key: string, value: unknown): Promise<void> {
    const path = this.recordPath(key);
    await mkdir(dirname(path), { recursive: true });
    await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
  }
}

export interface SetFile {
  /** What the user calls it: base.txz, base/base.ab. */
  label: string;
  /** Set name for messages: base. */
  set: string;
  location: string;
  expected: Expected;
  size?: number;
}

export interface Fetched extends SetFile {
  /** A verified local file. */
  path: string;
  /** Bytes that came over the network for it (0 when cached or local). */
  downloaded: number;
}

export function mismatch(file: SetFile, got: string): BeError {
  return new BeError(
    `checksum mismatch for set '${file.set}' (${file.label}): ${file.expected.algo} expected ${file.expected.digest}, got ${got}; the bad download was deleted and nothing was extracted`,
  );
}

/** Make FILE available as a verified local file: in place for local mirrors, else via the cache. */
export async function obtain(
  file: SetFile,
  opts: { cache: DistCache; runner: Runner; offline: boolean; verifyTask?: (label: string, size: number) => ProgressTask; fetchTask?: (label: string, size: number) => ProgressTask },
): Promise<Fetched> {
  if (!isRemote(file.location)) {
    const size = await sizeOf(file.location);
    if (!existsSync(file.location)) throw new BeError(`set '${file.set}': ${file.location} is missing from the mirror`);
    const task = opts.verifyTask?.(`verify ${file.label}`, size);
    const got = await hashFile(file.location, file.expected.algo, task);
    task?.finish(got === file.expected.digest ? 'ok' : 'MISMATCH');
    if (got !== file.expected.digest) {
      throw new BeError(`checksum mismatch for set '${file.set}' (${file.label}): ${file.expected.algo} expected ${file.expected.digest}, got ${got}; nothing was extracted`);
    }
    return { ...file, path: file.location, downloaded: 0 };
  }
  const path = opts.cache.pathFor(file.location, file.expected);
  if (existsSync(path)) {
    const size = await sizeOf(path);
    const task = opts.verifyTask?.(`verify ${file.label} (cached)`, size);
    const got = await hashFile(path, file.expected.algo, task);
    task?.finish(got === file.expected.digest ? 'ok' : 'MISMATCH');
    if (got === file.expected.digest) return { ...file, path, downloaded: 0 };
    // The cache copy went bad on disk: drop it and fetch again.
    await unlink(path).catch(() => {});
    if (opts.offline) throw mismatch(file, got);
  }
  if (opts.offline) throw new BeError(`--offline: set '${file.set}' (${file.label}) is not in the cache ${opts.cache.root}`);
  const part = `${path}.part`;
  const before = await sizeOf(part);
  const task = opts.fetchTask?.(`fetch ${file.label}`, file.size ?? 0);
  await downloadResuming(file.location, part, opts.runner, task);
  const size = await sizeOf(part);
  task?.finish(`${size - before} bytes`);
  const got = await hashFile(part, file.expected.algo);
  if (got !== file.expected.digest) {
    await unlink(part).catch(() => {});
    throw mismatch(file, got);
  }
  await rename(part, path);
  return { ...file, path, downloaded: size - before };
}
