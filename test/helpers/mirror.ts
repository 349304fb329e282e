/**
 * Synthetic FreeBSD mirrors for tests and benchmarks.
 *
 * `buildMirror(root, releases)` writes real distribution sets under a pub/-style tree, laid out
 * era by era as the real mirrors are (freebsd-src release/Makefile of each era,
 * release/scripts/kernels-install.sh, usr.sbin/bsdinstall/scripts/mirrorselect):
 * - 9.0 and later: `<set>.txz` (xz tarballs) and a MANIFEST with each file's sha256;
 * - 6.1 to 8.x: split sets (`base/base.aa …`) of a gzip tarball with `<prefix>.inf`, `install.sh`
 *   and CHECKSUM.SHA256 + .MD5; the kernel is `kernels/generic.aa …`, a tarball rooted at
 *   GENERIC/ (release.3 installs it with KODIR=/GENERIC, release.6 tars kernels/GENERIC) whose
 *   install.sh unpacks it under ${DESTDIR}/boot;
 * - before 6.1: the same split sets without kernels/: the kernel (boot/kernel/…) is part of
 *   base, checksummed in CHECKSUM.MD5 (up to 5.4) or CHECKSUM.SHA256 + .MD5 (5.5, 6.0);
 * placed as the real mirrors do: releases/<arch>/X.Y-RELEASE, bsdinstall's
 * releases/<machine>/<machine_arch>/X.Y-RELEASE, FreeBSD-Archive/old-releases/<arch>/X.Y-RELEASE,
 * or snapshots/<machine>/<machine_arch>/ for X.Y-STABLE, -CURRENT, -PRERELEASE and -ALPHAn
 * builds (mirrorselect's RELDIR="snapshots" cases; BETA and RC builds are under releases/).
 *
 * `serveDir(root)` serves a directory over HTTP on 127.0.0.1 with Range support, logs every
 * request, and can cut a response off after N bytes to simulate a broken download.
 * `serveDirFtp(root)` serves it over anonymous read-only FTP (pyftpdlib, Debian's
 * python3-pyftpdlib) on 127.0.0.1 and collects the server's log: each command a client sent
 * and each file sent (RETR).
 */
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { chmod, chown, lchown, mkdir, mkdtemp, readFile, realpath, rm, stat, symlink, writeFile, rename } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, normalize, relative, sep } from 'node:path';

export type FileSpec =
  | string
  | Buffer
  | {
      content?: string | Buffer;
      /** Permission bits, e.g. 0o4555 (default 0o644 for files, 0o755 for directories). */
      mode?: number;
      uid?: number;
      gid?: number;
      /** Make a symbolic link to this target instead of a file. */
      symlink?: string;
      /** Make a directory. */
      dir?: boolean;
    };

export interface SetSpec {
  /** Guest paths (relative to /, e.g. 'bin/sh', 'boot/kernel/kernel') → content. */
  files?: Record<string, FileSpec>;
  /** A directory tree copied as is (cp -a) into the set, before `files`. */
  root?: string;
  /** MANIFEST description. */
  description?: string;
}

export type Era = 'txz' | 'split-md5' | 'split-sha256';
export type Place = 'releases' | 'distsite' | 'archive' | 'snapshots';

export interface ReleaseSpec {
  /** 11.1, 8.4, 5.4, 14.2-RC1, 15.0-ALPHA1, or a snapshot version such as 14.3 with branch stable. */
  version: string;
  arch?: string;
  os?: string;
  /** Default: by version (txz from 9.0, split-sha256 from 5.5, split-md5 before). */
  era?: Era;
  /** Default: releases (plain releases/<arch>/X.Y-RELEASE); snapshots for branch stable/current and -ALPHAn/-CURRENT/-STABLE/-PRERELEASE. */
  place?: Place;
  branch?: 'release' | 'stable' | 'current';
  sets: Record<string, SetSpec>;
  /**
   * 6.1-8.x: the directory the kernels/ tarball is rooted at (default GENERIC, as release.6 makes
   * it); '' puts the kernel's files at the tarball's top, as a wrongly made mirror would.
   */
  kernelRoot?: string;
  /** Piece size of split sets (default 64 KiB). */
  pieceSize?: number;
  /** xz options for txz sets (default ['-T0', '-1']). */
  xz?: string[];
}

export interface BuiltRelease {
  spec: ReleaseSpec;
  era: Era;
  /** Absolute directory of the release. */
  dir: string;
  /** Path of the release directory below the mirror root, with a leading slash (URL path). */
  urlPath: string;
  /** Files written in the release directory (relative), e.g. base.txz, MANIFEST, base/base.aa. */
  files: string[];
}

const MACHINE_ARCH: Record<string, string> = { amd64: 'amd64', i386: 'i386', arm64: 'aarch64' };

function versionParts(v: string): number[] {
  return v.replace(/-.*$/, '').split('.').map(Number);
}

/** Whether the kernel is part of base (before 6.1), kernels/generic.?? (6.1-8.x) or kernel.txz. */
export function kernelLayoutOfVersion(v: string): 'in-base' | 'kernels-dir' | 'txz' {
  const [maj, min] = versionParts(v);
  if (maj >= 9) return 'txz';
  if (maj > 6 || (maj === 6 && min >= 1)) return 'kernels-dir';
  return 'in-base';
}

export function eraOfVersion(v: string): Era {
  const [maj, min] = versionParts(v);
  if (maj >= 9) return 'txz';
  if (maj > 5 || (maj === 5 && min >= 5)) return 'split-sha256';
  return 'split-md5';
}

/** Where the release directory goes below the mirror root. */
export function releaseRelPath(spec: ReleaseSpec): string {
  const os = spec.os ?? 'FreeBSD';
  const arch = spec.arch ?? 'amd64';
  const branch = spec.branch ?? 'release';
  const tag = spec.version.includes('-') ? spec.version : `${spec.version}-${branch === 'release' ? 'RELEASE' : branch === 'stable' ? 'STABLE' : 'CURRENT'}`;
  const snapshot = /-(ALPHA\d*|CURRENT|STABLE|PRERELEASE)$/.test(tag);
  const place = spec.place ?? (snapshot ? 'snapshots' : 'releases');
  const march = MACHINE_ARCH[arch] ?? arch;
  switch (place) {
    case 'releases':
      return join(os, 'releases', arch, tag);
    case 'distsite':
      return join(os, 'releases', arch, march, tag);
    case 'archive':
      return join(`${os}-Archive`, 'old-releases', arch, tag);
    case 'snapshots':
      return join(os, 'snapshots', arch, march, tag);
  }
}

async function sha(path: string, algo: 'sha256' | 'md5'): Promise<string> {
  return createHash(algo).update(await readFile(path)).digest('hex');
}

/** Write one set's tree into a staging directory (STRIP: a prefix every path must have, taken off). */
async function stage(dir: string, set: SetSpec, strip?: string): Promise<number> {
  await mkdir(dir, { recursive: true });
  if (set.root) await execa('cp', ['-a', `${set.root}/.`, dir]);
  let count = 0;
  const entries = Object.entries(set.files ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [rawPath, raw] of entries) {
    let rel = rawPath.replace(/^\/+/, '');
    if (strip) {
      if (!rel.startsWith(strip)) throw new Error(`mirror: '${rawPath}' of a split kernel set must be under /${strip}`);
      rel = rel.slice(strip.length);
    }
    const path = join(dir, rel);
    await mkdir(dirname(path), { recursive: true });
    const spec = typeof raw === 'string' || Buffer.isBuffer(raw) ? { content: raw } : raw;
    if (spec.symlink !== undefined) {
      await symlink(spec.symlink, path);
      await lchown(path, spec.uid ?? 0, spec.gid ?? 0);
    } else if (spec.dir) {
      await mkdir(path, { recursive: true });
      await chown(path, spec.uid ?? 0, spec.gid ?? 0);
      await chmod(path, spec.mode ?? 0o755);
    } else {
      await writeFile(path, spec.content ?? '');
      // chown before chmod: chown clears setuid bits.
      await chown(path, spec.uid ?? 0, spec.gid ?? 0);
      await chmod(path, spec.mode ?? 0o644);
    }
    count++;
  }
  return count;
}

async function tarCreate(stageDir: string, out: string, gzip: boolean): Promise<void> {
  await execa('tar', ['--numeric-owner', '--sort=name', ...(gzip ? ['-z'] : []), '-cf', out, '-C', stageDir, '.']);
}

/** Build the releases under ROOT (created if missing). */
export async function buildMirror(root: string, releases: ReleaseSpec[]): Promise<BuiltRelease[]> {
  const built: BuiltRelease[] = [];
  for (const spec of releases) built.push(await buildRelease(root, spec));
  return built;
}

export async function buildRelease(root: string, spec: ReleaseSpec): Promise<BuiltRelease> {
  const era = spec.era ?? eraOfVersion(spec.version);
  const rel = releaseRelPath(spec);
  const dir = join(root, rel);
  await mkdir(dir, { recursive: true });
  const work = await mkdtemp(join(tmpdir(), 'be-mirror.'));
  const files: string[] = [];
  try {
    if (era === 'txz') {
      const lines: string[] = [];
      for (const [name, set] of Object.entries(spec.sets)) {
        const st = join(work, name);
        const count = await stage(st, set);
        const tar = join(work, `${name}.tar`);
        await tarCreate(st, tar, false);
        await execa('xz', [...(spec.xz ?? ['-T0', '-1']), '-f', tar]);
        const file = `${name}.txz`;
        await rename(`${tar}.xz`, join(dir, file));
        files.push(file);
        const desc = set.description ?? `${name} set`;
        lines.push([file, await sha(join(dir, file), 'sha256'), String(count), name, `"${desc}"`, name === 'base' || name === 'kernel' ? 'on' : 'off'].join('\t'));
      }
      await writeFile(join(dir, 'MANIFEST'), `${lines.join('\n')}\n`);
      files.push('MANIFEST');
    } else {
      const pieceSize = spec.pieceSize ?? 64 * 1024;
      if (spec.sets.kernel && kernelLayoutOfVersion(spec.version) === 'in-base') {
        throw new Error(`mirror: ${spec.version} has no kernels/ set (its kernel is part of base): put boot/kernel/… into base`);
      }
      for (const [name, set] of Object.entries(spec.sets)) {
        const setDir = name === 'kernel' ? 'kernels' : name;
        const prefix = name === 'kernel' ? 'generic' : name;
        const st = join(work, name);
        // kernels/GENERIC is the tree installkernel wrote with KODIR=/GENERIC: the kernel's
        // boot/kernel/… files sit under GENERIC/ in the tarball.
        await stage(name === 'kernel' ? join(st, spec.kernelRoot ?? 'GENERIC') : st, set, name === 'kernel' ? 'boot/kernel/' : undefined);
        const tgz = join(work, `${name}.tgz`);
        await tarCreate(st, tgz, true);
        const whole = await readFile(tgz);
        await mkdir(join(dir, setDir), { recursive: true });
        const pieces: string[] = [];
        for (let i = 0, n = 0; i < whole.length || n === 0; i += pieceSize, n++) {
          const suffix = String.fromCharCode(97 + Math.floor(n / 26)) + String.fromCharCode(97 + (n % 26));
          const piece = `${prefix}.${suffix}`;
          await writeFile(join(dir, setDir, piece), whole.subarray(i, i + pieceSize));
          pieces.push(piece);
        }
        const target = name === 'kernel' ? '${DESTDIR}/boot' : '${DESTDIR:-/}';
        await writeFile(join(dir, setDir, `${prefix}.inf`), `Pieces =  ${pieces.length}\n`);
        await writeFile(
          join(dir, setDir, 'install.sh'),
          `#!/bin/sh\n# synthetic ${name} set: unpack the pieces in order${name === 'kernel' ? ' (into $BOOT/GENERIC)' : ''}\ncat ${prefix}.?? | tar --unlink -xpzf - -C ${target}\n`,
          { mode: 0o755 },
        );
        const listed = [...pieces, `${prefix}.inf`, 'install.sh'];
        const algos: Array<'md5' | 'sha256'> = era === 'split-md5' ? ['md5'] : ['md5', 'sha256'];
        for (const algo of algos) {
          const tag = algo === 'md5' ? 'MD5' : 'SHA256';
          const lines = await Promise.all(listed.map(async (f) => `${tag} (${f}) = ${await sha(join(dir, setDir, f), algo)}`));
          await writeFile(join(dir, setDir, `CHECKSUM.${tag}`), `${lines.join('\n')}\n`);
          files.push(`${setDir}/CHECKSUM.${tag}`);
        }
        files.push(...listed.map((f) => `${setDir}/${f}`));
      }
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return { spec, era, dir, urlPath: `/${rel.split(sep).join('/')}`, files };
}

/** A tiny guest userland: busybox-static as /bin/sh and friends, with modes and owners to check. */
export function busyboxUserland(extra: Record<string, FileSpec> = {}, opts: { busybox?: boolean } = {}): Record<string, FileSpec> {
  const busybox = '/bin/busybox';
  const real = opts.busybox !== false && existsSync(busybox);
  const files: Record<string, FileSpec> = {
    'bin/busybox': { content: real ? readFileSync(busybox) : Buffer.from('#!/bin/sh\n'), mode: 0o555 },
    'bin/sh': { symlink: 'busybox' },
    'bin/ls': { symlink: 'busybox' },
    'etc/motd': 'synthetic FreeBSD userland\n',
    'etc/master.passwd': { content: 'root:*:0:0::0:0:Charlie &:/root:/bin/sh\n', mode: 0o600 },
    'sbin/ping': { content: '#!/bin/sh\n', mode: 0o4555 },
    'usr/bin/wall': { content: '#!/bin/sh\n', mode: 0o2555, gid: 5 },
    tmp: { dir: true, mode: 0o1777 },
    'var/mail': { dir: true, mode: 0o775, gid: 6 },
  };
  return { ...files, ...extra };
}

export interface LoggedRequest {
  method: string;
  path: string;
  range?: string;
  status: number;
  /** Body bytes sent. */
  bytes: number;
}

export interface ServeOptions {
  /**
   * Called for each GET; a number N makes the server send only N body bytes (after the
   * headers that promise the whole length) and then drop the connection.
   */
  cut?: (req: { path: string; range?: string; size: number }) => number | undefined;
}

export interface MirrorServer {
  /** http://127.0.0.1:PORT (no trailing slash). */
  url: string;
  port: number;
  requests: LoggedRequest[];
  /** Cut the next GET of a path ending in SUFFIX after BYTES body bytes (once). */
  cutOnce(suffix: string, bytes: number): void;
  close(): Promise<void>;
}

/** Serve ROOT over HTTP on 127.0.0.1 (a free port), with Range and a cut hook. */
export async function serveDir(root: string, opts: ServeOptions = {}): Promise<MirrorServer> {
  const requests: LoggedRequest[] = [];
  const oneShot: Array<{ suffix: string; bytes: number }> = [];
  const sockets = new Set<import('node:net').Socket>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://x');
    const path = decodeURIComponent(url.pathname);
    const range = typeof req.headers.range === 'string' ? req.headers.range : undefined;
    const entry: LoggedRequest = { method, path, range, status: 0, bytes: 0 };
    requests.push(entry);
    const done = (status: number, body = '') => {
      entry.status = status;
      res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    const file = normalize(join(root, path));
    if (relative(root, file).startsWith('..') || (method !== 'GET' && method !== 'HEAD')) return done(method === 'GET' || method === 'HEAD' ? 403 : 405);
    let size: number;
    try {
      const st = await stat(file);
      if (!st.isFile()) return done(404, 'not found\n');
      size = st.size;
    } catch {
      return done(404, 'not found\n');
    }
    let start = 0;
    let end = size - 1;
    let status = 200;
    if (range) {
      const m = /^bytes=(\d*)-(\d*)$/.exec(range);
      if (!m || (m[1] === '' && m[2] === '')) return done(416);
      if (m[1] === '') {
        start = Math.max(0, size - Number(m[2]));
      } else {
        start = Number(m[1]);
        if (m[2] !== '') end = Math.min(end, Number(m[2]));
      }
      if (start >= size || start > end) {
        entry.status = 416;
        res.writeHead(416, { 'content-range': `bytes */${size}`, 'content-length': 0 });
        return void res.end();
      }
      status = 206;
    }
    const length = end - start + 1;
    const headers: Record<string, string | number> = { 'content-length': length, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
    if (status === 206) headers['content-range'] = `bytes ${start}-${end}/${size}`;
    entry.status = status;
    res.writeHead(status, headers);
    if (method === 'HEAD' || length === 0) return void res.end();
    let limit: number | undefined;
    const i = oneShot.findIndex((c) => path.endsWith(c.suffix));
    if (i >= 0) limit = oneShot.splice(i, 1)[0].bytes;
    else limit = opts.cut?.({ path, range, size });
    const stream = createReadStream(file, { start, end: limit !== undefined ? Math.min(end, start + limit - 1) : end });
    stream.on('data', (chunk) => {
      entry.bytes += (chunk as Buffer).length;
    });
    stream.on('end', () => {
      if (limit !== undefined && limit < length) {
        // Headers promised LENGTH bytes; drop the connection short of it.
        res.socket?.destroy();
      }
    });
    stream.pipe(res, { end: limit === undefined || limit >= length });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      res.destroy();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    cutOnce(suffix, bytes) {
      oneShot.push({ suffix, bytes });
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface FtpCommand {
  /** USER, CWD, SIZE, REST, RETR … */
  command: string;
  arg: string;
}

export interface FtpRetr {
  /** The file sent, below the served root, with a leading slash: /pub/FreeBSD/…/base.txz. */
  path: string;
  /** Bytes sent (what is left after a REST). */
  bytes: number;
  completed: boolean;
}

export interface FtpMirrorServer {
  /** ftp://127.0.0.1:PORT (no trailing slash). */
  url: string;
  port: number;
  /** What the server has logged so far (its standard error). */
  log(): string;
  /** Commands the clients sent, in order. */
  commands(): FtpCommand[];
  /** Files sent, in order. */
  retrs(): FtpRetr[];
  /** Wait until every session opened so far was closed and its transfers logged. */
  idle(): Promise<void>;
  /** Stop the server (SIGTERM, then SIGKILL) and wait for it to exit. */
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  const srv = createNetServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** Debian's python3, which python3-pyftpdlib installs into (a python3 earlier in PATH may lack it). */
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/**
 * Serve ROOT over anonymous read-only FTP on 127.0.0.1 at a free port, with pyftpdlib run in the
 * foreground by this process. Its debug log (stderr) is kept: every command and every RETR.
 */
export async function serveDirFtp(root: string): Promise<FtpMirrorServer> {
  const real = await realpath(root);
  let lastError = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const child = spawn(PYTHON, ['-m', 'pyftpdlib', '-D', '-i', '127.0.0.1', '-p', String(port), '-d', real], { stdio: ['ignore', 'ignore', 'pipe'] });
    let text = '';
    let exited = false;
    const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
    // Should the test process end without close(), the server goes with it.
    const reap = () => child.kill('SIGKILL');
    process.once('exit', reap);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      text += chunk;
    });
    child.once('error', (error) => {
      text += `\n${error.message}\n`;
    });
    const started = await new Promise<boolean>((resolve) => {
      const deadline = Date.now() + 10_000;
      const poll = () => {
        if (/>>> starting FTP server on/.test(text)) return resolve(true);
        if (exited || Date.now() > deadline) return resolve(false);
        setTimeout(poll, 20);
      };
      poll();
    });
    const close = async () => {
      if (!exited) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 2000);
        await exit;
        clearTimeout(killer);
      }
      process.removeListener('exit', reap);
    };
    if (!started) {
      await close();
      lastError = text.trim().split('\n').slice(-3).join(' | ') || `${PYTHON} -m pyftpdlib did not start`;
      if (/address already in use/i.test(text)) continue;
      throw new Error(`pyftpdlib: ${lastError}`);
    }
    const lines = () => text.split('\n');
    const count = (re: RegExp) => lines().filter((l) => re.test(l)).length;
    return {
      url: `ftp://127.0.0.1:${port}`,
      port,
      log: () => text,
      commands: () =>
        lines().flatMap((l) => {
          const m = /\] <- (\S+)(?: (.*))?$/.exec(l);
          return m ? [{ command: m[1].toUpperCase(), arg: m[2] ?? '' }] : [];
        }),
      retrs: () =>
        lines().flatMap((l) => {
          const m = /\] RETR (.*) completed=(\d) bytes=(\d+) seconds=/.exec(l);
          if (!m) return [];
          const path = m[1].startsWith(real) ? m[1].slice(real.length) || '/' : m[1];
          return [{ path, bytes: Number(m[3]), completed: m[2] === '1' }];
        }),
      async idle() {
        const deadline = Date.now() + 10_000;
        while (count(/FTP session opened/) > count(/FTP session closed/) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      },
      close,
    };
  }
  throw new Error(`pyftpdlib: no free port after 5 tries (${lastError})`);
}
