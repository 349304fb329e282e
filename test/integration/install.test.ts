import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { existsSync, lstatSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { be, beOk } from '../helpers/cli.js';
import { makeTestPool, type TestPool } from '../helpers/zfs.js';
import { buildMirror, busyboxUserland, serveDir, serveDirFtp, type BuiltRelease, type FtpMirrorServer, type MirrorServer, type SetSpec } from '../helpers/mirror.js';

let tp: TestPool;
let work: string;
let pub: string;
let server: MirrorServer;
let ftp: FtpMirrorServer | undefined;
let built: BuiltRelease[];
let n = 0;

/** A fresh flat BE (one dataset) for each install. */
async function freshBe(layout = 'flat'): Promise<string> {
  const name = `${tp.pool}/be/t${++n}`;
  await beOk(['create', '-l', layout, name]);
  return name;
}

function mountsOf(prefix: string): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((s) => s === prefix || s?.startsWith(`${prefix}/`));
}

/** Mount BE with `be mount`, run CHECK on its directory, unmount. */
async function inBe<T>(dataset: string, check: (dir: string) => T | Promise<T>): Promise<T> {
  // zfs-fuse sometimes still calls a dataset busy just after it was unmounted; try again briefly.
  let r = await be(['mount', dataset]);
  for (let i = 0; i < 5 && r.exitCode !== 0 && /busy/.test(r.stderr); i++) {
    await new Promise((done) => setTimeout(done, 300));
    r = await be(['mount', dataset]);
  }
  if (r.exitCode !== 0) throw new Error(`be mount ${dataset}: ${r.stderr}`);
  const dir = r.stdout.trim();
  try {
    return await check(dir);
  } finally {
    await beOk(['umount', dataset]);
  }
}

const base = (tag: string): SetSpec => ({
  files: busyboxUserland({ 'etc/release': `${tag}\n`, 'usr/share/doc/big': Buffer.alloc(96 * 1024, tag) }, { busybox: false }),
});
const kernel = (tag: string): SetSpec => ({
  files: { 'boot/kernel/kernel': { content: `kernel ${tag}\n`, mode: 0o555 }, 'boot/kernel/zfs.ko': { content: 'zfs\n', mode: 0o555 } },
});

function fetchesOf(suffix: string) {
  return server.requests.filter((r) => r.path.endsWith(suffix));
}

beforeAll(async () => {
  await beOk(['--version']);
  tp = await makeTestPool('512M');
  work = await mkdtemp(join(tmpdir(), 'be-install-test.'));
  pub = join(work, 'pub');
  built = await buildMirror(pub, [
    // Current era, in bsdinstall's DISTSITE form.
    { version: '14.1', arch: 'amd64', place: 'distsite', sets: { base: base('14.1'), kernel: kernel('14.1'), lib32: { files: { 'usr/lib32/libc.so.7': 'lib32\n' } } } },
    // A second current release whose kernel set gets corrupted below.
    { version: '14.2', arch: 'amd64', place: 'releases', sets: { base: base('14.2'), kernel: kernel('14.2') } },
    // Archive era: txz in old-releases, split sets with SHA256 and with MD5.
    { version: '11.1', arch: 'amd64', place: 'archive', sets: { base: base('11.1'), kernel: kernel('11.1') } },
    // 6.1-8.x: kernels/generic.?? is a tarball rooted at GENERIC/ (the mirror builds it so).
    { version: '8.4', arch: 'amd64', place: 'archive', pieceSize: 16 * 1024, sets: { base: base('8.4'), kernel: kernel('8.4') } },
    // Before 6.1 there is no kernels/ set: the kernel is part of base.
    { version: '5.4', arch: 'i386', place: 'archive', pieceSize: 16 * 1024, sets: { base: { files: { ...base('5.4').files, ...kernel('5.4').files } } } },
    // An ALPHA build: under snapshots/, as mirrorselect has it.
    { version: '15.0-ALPHA1', arch: 'amd64', sets: { base: base('15.0-ALPHA1'), kernel: kernel('15.0-ALPHA1') } },
  ]);
  // Corrupt 14.2's kernel.txz after its MANIFEST was written.
  const bad = join(built[1].dir, 'kernel.txz');
  const bytes = await readFile(bad);
  bytes[bytes.length >> 1] ^= 0xff;
  await writeFile(bad, bytes);
  server = await serveDir(pub);
  // The same tree over FTP, below /pub as on a real mirror.
  ftp = await serveDirFtp(work);
  await beOk(['create', '-l', 'flat', `${tp.pool}/be`]);
});

afterAll(async () => {
  await ftp?.close();
  await server?.close();
  await tp?.destroy();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('be install', () => {
  it("runs the talk's example against a local /pub tree into a nested freebsd BE, keeping modes and owners", async () => {
    const target = `${tp.pool}/be/test`;
    await beOk(['create', '-l', 'freebsd', target]);
    const r = await be(['install', '-p', pub, '-o', 'FreeBSD', '-a', 'amd64', '-b', 'release', '-r', '11.1', target]);
    expect(r.stderr).toContain('release 11.1-RELEASE (amd64):');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`${target}: installed 11.1-RELEASE (base, kernel)`);
    expect(mountsOf(target)).toEqual([]); // unmounted afterwards
    await inBe(target, (dir) => {
      expect(readFileSync(join(dir, 'etc/release'), 'utf8')).toBe('11.1\n');
      expect(readFileSync(join(dir, 'boot/kernel/kernel'), 'utf8')).toBe('kernel 11.1\n');
      const ping = statSync(join(dir, 'sbin/ping'));
      expect(ping.mode & 0o7777).toBe(0o4555);
      expect(ping.uid).toBe(0);
      const wall = statSync(join(dir, 'usr/bin/wall'));
      expect([wall.mode & 0o7777, wall.gid]).toEqual([0o2555, 5]);
      expect(statSync(join(dir, 'tmp')).mode & 0o7777).toBe(0o1777);
      const mail = statSync(join(dir, 'var/mail'));
      expect([mail.mode & 0o7777, mail.gid]).toEqual([0o775, 6]);
      expect(statSync(join(dir, 'etc/master.passwd')).mode & 0o777).toBe(0o600);
      expect(lstatSync(join(dir, 'bin/sh')).isSymbolicLink()).toBe(true);
      expect(readFileSync(join(dir, 'etc/rc.conf'), 'utf8')).toMatch(/^hostname="test"$/m);
      expect(readFileSync(join(dir, 'boot/loader.conf'), 'utf8')).not.toContain(target); // the loader takes the root from the BE it boots
    });
  });

  it('installs into a BE mounted beforehand and leaves it mounted', async () => {
    const target = await freshBe();
    const dir = (await beOk(['mount', target])).trim();
    try {
      await beOk(['install', '-q', '-p', pub, '-a', 'amd64', '-r', '11.1', '--hostname', 'lab1', '--rc', 'sshd_enable=YES', target]);
      expect(mountsOf(target)).toEqual([target]);
      const rc = readFileSync(join(dir, 'etc/rc.conf'), 'utf8');
      expect(rc).toMatch(/^hostname="lab1"$/m);
      expect(rc).toMatch(/^sshd_enable="YES"$/m);
    } finally {
      await beOk(['umount', target]);
    }
  });

  it('fetches over HTTP once, then installs from the cache without a single request', async () => {
    const cache = join(work, 'cache-http');
    const t1 = await freshBe();
    const before = server.requests.length;
    await beOk(['install', '-p', server.url, '-a', 'amd64', '-r', '14.1', '--sets', 'base,kernel,lib32', '--cache', cache, t1]);
    const first = server.requests.slice(before);
    expect(first.map((q) => q.path)).toEqual(
      expect.arrayContaining(['/FreeBSD/releases/amd64/amd64/14.1-RELEASE/MANIFEST', '/FreeBSD/releases/amd64/amd64/14.1-RELEASE/base.txz']),
    );
    await inBe(t1, (dir) => {
      expect(readFileSync(join(dir, 'usr/lib32/libc.so.7'), 'utf8')).toBe('lib32\n');
      expect(readFileSync(join(dir, 'boot/kernel/kernel'), 'utf8')).toBe('kernel 14.1\n');
    });
    const t2 = await freshBe();
    const again = server.requests.length;
    await beOk(['install', '-p', server.url, '-a', 'amd64', '-r', '14.1', '--sets', 'base,kernel,lib32', '--cache', cache, t2]);
    expect(server.requests.slice(again)).toEqual([]);
    await inBe(t2, (dir) => expect(readFileSync(join(dir, 'etc/release'), 'utf8')).toBe('14.1\n'));
    // --offline works from the same cache, and names a set it does not have.
    const t3 = await freshBe();
    await beOk(['install', '--offline', '-p', server.url, '-a', 'amd64', '-r', '14.1', '--cache', cache, t3]);
    const missing = await be(['install', '--offline', '-p', server.url, '-a', 'amd64', '-r', '14.1', '--sets', 'base,games', '--cache', cache, t3]);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toMatch(/^be: set 'games' is not in release 14\.1-RELEASE \(amd64\)/m);
    expect(server.requests.length).toBe(again);
  });

  it('fetches over FTP once, installs again from the cache with no RETR, resumes a cut .part, names a missing release', async () => {
    const srv = ftp!;
    const source = `${srv.url}/pub`;
    const rel = '/pub/FreeBSD/releases/amd64/amd64/14.1-RELEASE';
    const cache = join(work, 'cache-ftp');
    const t1 = await freshBe();
    let mark = srv.retrs().length;
    await beOk(['install', '-p', source, '-a', 'amd64', '-r', '14.1', '--cache', cache, t1]);
    await srv.idle();
    const sizeOf = (f: string) => statSync(join(built[0].dir, f)).size;
    // the sets download side by side: compare in path order
    expect(srv.retrs().slice(mark).sort((a, b) => (a.path < b.path ? -1 : 1))).toEqual([
      { path: `${rel}/MANIFEST`, bytes: sizeOf('MANIFEST'), completed: true },
      { path: `${rel}/base.txz`, bytes: sizeOf('base.txz'), completed: true },
      { path: `${rel}/kernel.txz`, bytes: sizeOf('kernel.txz'), completed: true },
    ]);
    await inBe(t1, (dir) => {
      expect(readFileSync(join(dir, 'etc/release'), 'utf8')).toBe('14.1\n');
      expect(readFileSync(join(dir, 'boot/kernel/kernel'), 'utf8')).toBe('kernel 14.1\n');
      expect(statSync(join(dir, 'sbin/ping')).mode & 0o7777).toBe(0o4555);
      expect(existsSync(join(dir, 'usr/lib32'))).toBe(false); // lib32 was not asked for
    });

    // Again into another BE: everything comes from the cache, not one file from the server.
    const t2 = await freshBe();
    mark = srv.retrs().length;
    await beOk(['install', '-p', source, '-a', 'amd64', '-r', '14.1', '--cache', cache, t2]);
    await srv.idle();
    expect(srv.retrs().slice(mark)).toEqual([]);
    await inBe(t2, (dir) => expect(readFileSync(join(dir, 'boot/kernel/kernel'), 'utf8')).toBe('kernel 14.1\n'));

    // A download cut half way: the cached base.txz put back as the first half of its .part.
    const cut = join(work, 'cache-ftp-cut');
    await execa('cp', ['-a', cache, cut]);
    const cached = (await execa('find', [cut, '-name', 'base.txz.sha256-*'])).stdout.trim().split('\n');
    expect(cached).toHaveLength(1);
    const size = sizeOf('base.txz');
    const half = Math.floor(size / 2);
    await writeFile(`${cached[0]}.part`, readFileSync(cached[0]).subarray(0, half));
    await rm(cached[0]);
    const t3 = await freshBe();
    mark = srv.retrs().length;
    const cmdMark = srv.commands().length;
    await beOk(['install', '-p', source, '-a', 'amd64', '-r', '14.1', '--cache', cut, t3]);
    await srv.idle();
    expect(srv.commands().slice(cmdMark).filter((c) => c.command === 'REST')).toEqual([{ command: 'REST', arg: String(half) }]);
    expect(srv.retrs().slice(mark)).toEqual([{ path: `${rel}/base.txz`, bytes: size - half, completed: true }]);
    expect(readFileSync(cached[0]).equals(readFileSync(join(built[0].dir, 'base.txz')))).toBe(true);
    expect(existsSync(`${cached[0]}.part`)).toBe(false);
    await inBe(t3, (dir) => expect(readFileSync(join(dir, 'etc/release'), 'utf8')).toBe('14.1\n'));

    // A .part longer than the file on the mirror (the mirror changed): fetched anew, not refused.
    const long = join(work, 'cache-ftp-long');
    await execa('cp', ['-a', cache, long]);
    const [longSet] = (await execa('find', [long, '-name', 'base.txz.sha256-*'])).stdout.trim().split('\n');
    await writeFile(`${longSet}.part`, Buffer.alloc(size + 100, 7));
    await rm(longSet);
    await beOk(['install', '-p', source, '-a', 'amd64', '-r', '14.1', '--cache', long, await freshBe()]);
    expect(readFileSync(longSet).equals(readFileSync(join(built[0].dir, 'base.txz')))).toBe(true);

    // A release the mirror does not have: one line naming it and where it was looked for.
    const r = await be(['install', '-p', source, '-a', 'amd64', '-r', '12.0', '--cache', cache, t3]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe(
      `be: release 12.0-RELEASE (amd64) not found; looked in ${source}/FreeBSD/releases/amd64/amd64/12.0-RELEASE, ${source}/FreeBSD/releases/amd64/12.0-RELEASE, ${source}/FreeBSD-Archive/old-releases/amd64/12.0-RELEASE\n`,
    );
  });

  it('--offline without a cache fails naming the release or the set, and changes nothing', async () => {
    const target = await freshBe();
    const empty = join(work, 'cache-empty');
    const r = await be(['install', '--offline', '-p', server.url, '-a', 'amd64', '-r', '14.1', '--cache', empty, target]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe(`be: --offline: release 14.1-RELEASE (amd64) from ${server.url} is not in the cache ${empty}\n`);
    // Index cached, sets not: the message names the set.
    const partial = join(work, 'cache-partial');
    const cut = server.requests.length;
    await beOk(['install', '-p', server.url, '-a', 'amd64', '-r', '14.1', '--sets', 'kernel', '--cache', partial, target]);
    expect(server.requests.length).toBeGreaterThan(cut);
    const r2 = await be(['install', '-q', '--offline', '-p', server.url, '-a', 'amd64', '-r', '14.1', '--sets', 'base,kernel', '--cache', partial, target]);
    expect(r2.exitCode).toBe(1);
    expect(r2.stderr).toBe(`be: --offline: set 'base' (base.txz) is not in the cache ${partial}\n`);
  });

  it('resumes a download that was cut off half way', async () => {
    const cache = join(work, 'cache-cut');
    const target = await freshBe();
    const size = statSync(join(built[0].dir, 'base.txz')).size;
    const half = Math.floor(size / 2);
    server.cutOnce('/14.1-RELEASE/base.txz', half);
    const before = server.requests.length;
    await beOk(['install', '-p', server.url, '-a', 'amd64', '-r', '14.1', '--cache', cache, target]);
    const gets = server.requests.slice(before).filter((q) => q.path.endsWith('/base.txz'));
    expect(gets.map((g) => [g.status, g.range ?? '', g.bytes])).toEqual([
      [200, '', half],
      [206, `bytes=${half}-`, size - half],
    ]);
    await inBe(target, (dir) => expect(readFileSync(join(dir, 'etc/release'), 'utf8')).toBe('14.1\n'));
  });

  it('refuses a corrupted set: names set and checksum, deletes the download, extracts nothing', async () => {
    const cache = join(work, 'cache-bad');
    const target = await freshBe();
    const manifest = readFileSync(join(built[1].dir, 'MANIFEST'), 'utf8');
    const sum = manifest.split('\n').find((l) => l.startsWith('kernel.txz'))!.split('\t')[1];
    const r = await be(['install', '-q', '-p', server.url, '-a', 'amd64', '-r', '14.2', '--cache', cache, target]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^be: checksum mismatch for set 'kernel' \\(kernel\\.txz\\): sha256 expected ${sum}, got [0-9a-f]{64}; the bad download was deleted and nothing was extracted\\n$`));
    await inBe(target, (dir) => expect(readdirSync(dir)).toEqual([]));
    const left = (await execa('find', [cache, '-name', 'kernel.txz*'])).stdout.trim();
    expect(left).toBe('');
    expect(mountsOf(target)).toEqual([]);
  });

  it('installs 6.1-8.x split sets (8.4 amd64, SHA256, over HTTP): kernels/generic.?? becomes /boot/kernel', async () => {
    const cache = join(work, 'cache-split');
    const t84 = await freshBe();
    await beOk(['install', '-p', server.url, '-a', 'amd64', '-r', '8.4', '--cache', cache, t84]);
    const pieces = fetchesOf('.aa').map((q) => q.path);
    expect(pieces).toEqual(expect.arrayContaining(['/FreeBSD-Archive/old-releases/amd64/8.4-RELEASE/base/base.aa', '/FreeBSD-Archive/old-releases/amd64/8.4-RELEASE/kernels/generic.aa']));
    await inBe(t84, async (dir) => {
      expect(readFileSync(join(dir, 'etc/release'), 'utf8')).toBe('8.4\n');
      expect(readFileSync(join(dir, 'usr/share/doc/big')).length).toBe(96 * 1024);
      // generic.?? unpacks to /boot/GENERIC, which becomes /boot/kernel (installFixupKernel)
      expect(readFileSync(join(dir, 'boot/kernel/kernel'), 'utf8')).toBe('kernel 8.4\n');
      expect(statSync(join(dir, 'boot/kernel/zfs.ko')).mode & 0o777).toBe(0o555);
      expect([existsSync(join(dir, 'boot/GENERIC')), existsSync(join(dir, 'boot/kernel/GENERIC'))]).toEqual([false, false]);
      expect(statSync(join(dir, 'sbin/ping')).mode & 0o7777).toBe(0o4555);
      await writeFile(join(dir, 'boot/kernel/stale.ko'), 'from an earlier kernel\n');
    });
    // Again into the same BE: the new kernel replaces /boot/kernel as a whole (rm -rf, then mv).
    await beOk(['install', '-q', '-p', server.url, '-a', 'amd64', '-r', '8.4', '--sets', 'kernel', '--cache', cache, t84]);
    await inBe(t84, (dir) => {
      expect(readdirSync(join(dir, 'boot/kernel')).sort()).toEqual(['kernel', 'zfs.ko']);
      expect(existsSync(join(dir, 'boot/GENERIC'))).toBe(false);
    });
  });

  it('a 6.1-8.x kernel set not rooted at GENERIC/: one line naming the set, the BE unmounted', async () => {
    const odd = join(work, 'pub-odd-kernel');
    await buildMirror(odd, [{ version: '7.4', arch: 'amd64', kernelRoot: '', sets: { base: base('7.4'), kernel: kernel('7.4') } }]);
    const target = await freshBe();
    const r = await be(['install', '-q', '-p', odd, '-a', 'amd64', '-r', '7.4', target]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe("be: set 'kernel' (kernels/generic.aa) made no /boot/GENERIC: a kernels/ set of 6.1-8.x is a tarball rooted at GENERIC/\n");
    expect(mountsOf(target)).toEqual([]);
    await inBe(target, (dir) => expect(readFileSync(join(dir, 'etc/release'), 'utf8')).toBe('7.4\n'));
  });

  it('installs pre-6.1 split sets (5.4 i386, MD5, local): base alone by default, the kernel comes with it', async () => {
    const t54 = await freshBe();
    const r54 = await be(['install', '-p', pub, '-a', 'i386', '-r', '5.4', t54]);
    expect(r54.stderr).not.toMatch(/^be: /m);
    expect(r54.exitCode).toBe(0);
    expect(r54.stdout).toContain(`${t54}: installed 5.4-RELEASE (base) from ${pub}/FreeBSD-Archive/old-releases/i386/5.4-RELEASE`);
    await inBe(t54, (dir) => {
      expect(readFileSync(join(dir, 'boot/kernel/kernel'), 'utf8')).toBe('kernel 5.4\n');
      expect(readFileSync(join(dir, 'etc/release'), 'utf8')).toBe('5.4\n');
    });
    // Asking for a kernel set there says where the kernel is and installs base.
    const t54k = await freshBe();
    const k = await be(['install', '-p', pub, '-a', 'i386', '-r', '5.4', '--sets', 'base,kernel', t54k]);
    expect(k.exitCode).toBe(0);
    expect(k.stderr).toContain('releases before 6.1 have no kernel set: the kernel comes with base\n');
    await inBe(t54k, (dir) => expect(readFileSync(join(dir, 'boot/kernel/kernel'), 'utf8')).toBe('kernel 5.4\n'));
  });

  it('finds ALPHA builds under snapshots/, and looks for a release the table does not know as given', async () => {
    const target = await freshBe();
    const r = await be(['install', '-p', pub, '-a', 'amd64', '-r', '15.0-ALPHA1', target]);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toContain(`release 15.0-ALPHA1 (amd64): ${pub}/FreeBSD/snapshots/amd64/amd64/15.0-ALPHA1\n`);
    await inBe(target, (dir) => expect(readFileSync(join(dir, 'boot/kernel/kernel'), 'utf8')).toBe('kernel 15.0-ALPHA1\n'));

    const unknown = await be(['install', '-p', pub, '-a', 'amd64', '-r', '15.2', target]);
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stderr).toBe(
      "15.2-RELEASE is not in be's release table (newest known: 15.0); looking for it as given\n" +
        `be: release 15.2-RELEASE (amd64) not found; looked in ${pub}/FreeBSD/releases/amd64/amd64/15.2-RELEASE, ${pub}/FreeBSD/releases/amd64/15.2-RELEASE, ${pub}/FreeBSD-Archive/old-releases/amd64/15.2-RELEASE\n`,
    );
    const i386 = await be(['install', '-p', pub, '-a', 'i386', '-r', '15.0', target]);
    expect(i386.stderr).toBe('be: there is no i386 build of FreeBSD 15.0: i386 ends with the 14.x branch (15.0 retired it)\n');
    expect(i386.exitCode).toBe(1);
  });

  it('names what it could not find, and checks values before touching anything', async () => {
    const target = await freshBe();
    const r = await be(['install', '-p', pub, '-a', 'amd64', '-r', '12.0', target]);
    expect(r.stderr).toBe(
      `be: release 12.0-RELEASE (amd64) not found; looked in ${pub}/FreeBSD/releases/amd64/amd64/12.0-RELEASE, ${pub}/FreeBSD/releases/amd64/12.0-RELEASE, ${pub}/FreeBSD-Archive/old-releases/amd64/12.0-RELEASE\n`,
    );
    expect((await be(['install', '-p', pub, '-a', 'sparc64', '-r', '11.1', target])).stderr).toBe("be: unknown architecture 'sparc64' (known: amd64, i386, arm64)\n");
    expect((await be(['install', '-p', pub, '-r', '11.1', '--rc', 'bad-key=1', target])).stderr).toBe("be: bad rc.conf variable 'bad-key'\n");
    expect((await be(['install', '-p', pub, '-r', 'eleven', target])).stderr).toBe("be: bad release 'eleven' (expected X.Y such as 11.1, or X.Y-RC1)\n");
    expect((await be(['install', '-q', '-p', pub, '-a', 'amd64', '-r', '11.1', '--sets', 'base,lib32', target])).stderr).toBe(
      "be: set 'lib32' is not in release 11.1-RELEASE (amd64) (MANIFEST has: base, kernel)\n",
    );
    const ur = await be(['install', target]);
    expect(ur.exitCode).toBe(2);
    expect(ur.stderr).toBe('be: install: -r RELEASE is required (e.g. -r 11.1)\n');
    // -o names a mirror's OS directory: without -p it would be ignored, so it is refused
    const os = await be(['install', '-o', 'MidnightBSD', '-r', '11.1', target]);
    expect(os.exitCode).toBe(2);
    expect(os.stderr).toBe('be: install: -o MidnightBSD names the OS directory of a -p mirror; give -p as well\n');
    await inBe(target, (dir) => expect(readdirSync(dir)).toEqual([]));
  });

  it('--dry-run prints the plan (mount, tar, config files) and changes nothing', async () => {
    const target = await freshBe();
    const r = await beOk(['install', '-n', '-p', pub, '-a', 'amd64', '-r', '11.1', target]);
    expect(r).toContain(`tar -x -p --numeric-owner --warning=no-unknown-keyword -f ${pub}/FreeBSD-Archive/old-releases/amd64/11.1-RELEASE/base.txz -C `);
    expect(r).toMatch(/cat > \S+\/etc\/rc\.conf <<'BE_EOF'/);
    // 8.4: generic.?? goes under /boot, then /boot/GENERIC replaces /boot/kernel
    const r84 = await beOk(['install', '-n', '-p', pub, '-a', 'amd64', '-r', '8.4', '--sets', 'kernel', target]);
    const m = /^tar -x .* -f \S+\/kernel\.tgz -C (\S+)\/boot\n/m.exec(r84);
    expect(m).not.toBeNull();
    const root = m![1];
    // an earlier /boot/GENERIC is kept before the tar; after it the script itself checks the kernel's directory
    expect(r84).toContain(`if [ -e ${root}/boot/GENERIC ]; then rm -rf ${root}/boot/GENERIC.sav && mv ${root}/boot/GENERIC ${root}/boot/GENERIC.sav; fi\ntar `);
    expect(r84.slice(m!.index)).toMatch(new RegExp(`^tar [^\\n]*\\n\\[ -d ${root}/boot/GENERIC \\] \\|\\| [^\\n]*exit 1; }\\nrm -rf ${root}/boot/kernel\\nmv ${root}/boot/GENERIC ${root}/boot/kernel\\n`));
    await inBe(target, (dir) => expect(readdirSync(dir)).toEqual([]));
  });
});

describe('be install --templates DIR, and an extraction that fails half-way', () => {
  let broken: string;
  let templates: string;

  /** The be_mount.* directories `be` makes for a BE it mounts itself (under the altroot with zfs-fuse). */
  function mountDirs(): string[] {
    return [tp.altroot, tmpdir()].flatMap((d) => (existsSync(d) ? readdirSync(d).filter((n) => n.startsWith('be_mount.')).map((n) => join(d, n)) : []));
  }

  beforeAll(async () => {
    templates = join(work, 'templates');
    await execa('mkdir', ['-p', join(templates, 'site'), join(templates, 'bad')]);
    // 13.0: a kernel.txz cut in half whose MANIFEST has the cut file's checksum, so it passes
    // verification and only tar finds out, after base was extracted.
    broken = join(work, 'pub-broken');
    const [rel] = await buildMirror(broken, [{ version: '13.0', arch: 'amd64', sets: { base: base('13.0'), kernel: kernel('13.0') } }]);
    const txz = join(rel.dir, 'kernel.txz');
    const bytes = await readFile(txz);
    const cut = bytes.subarray(0, bytes.length >> 1);
    await writeFile(txz, cut);
    const sum = (await import('node:crypto')).createHash('sha256').update(cut).digest('hex');
    const manifest = join(rel.dir, 'MANIFEST');
    await writeFile(manifest, readFileSync(manifest, 'utf8').replace(/^(kernel\.txz\t)[0-9a-f]{64}/m, `$1${sum}`));
  });

  it('takes rc.conf.hbs from DIR and the other guest files from the package', async () => {
    const dir = join(templates, 'site');
    await writeFile(join(dir, 'rc.conf.hbs'), '# {{release}}, site rc.conf\nhostname={{dq hostname}}\n{{#each rc}}\n{{assign key value}}\n{{/each}}\n');
    const target = await freshBe();
    await beOk(['install', '-q', '-p', pub, '-a', 'amd64', '-r', '11.1', '--hostname', 'lab7', '--rc', 'sshd_enable=YES', '--templates', dir, target]);
    await inBe(target, (root) => {
      expect(readFileSync(join(root, 'etc/rc.conf'), 'utf8')).toBe('# 11.1-RELEASE amd64, site rc.conf\nhostname="lab7"\nifconfig_DEFAULT="DHCP"\nsshd_enable="YES"\n');
      expect(readFileSync(join(root, 'boot/loader.conf'), 'utf8')).toMatch(/^zfs_load="YES"$/m);
      expect(readFileSync(join(root, 'etc/fstab'), 'utf8')).toMatch(/^# \/etc\/fstab written by be\.\n/);
    });
  });

  it('a template that does not render, or a DIR that is not there: one line naming it, nothing fetched, the BE untouched', async () => {
    const dir = join(templates, 'bad');
    await writeFile(join(dir, 'fstab.hbs'), '# fstab\n{{#if zfs}}\n{{dataset}} / zfs rw 0 0\n');
    const target = await freshBe();
    const cache = join(work, 'cache-templates');
    const before = server.requests.length;
    const dirsBefore = mountDirs();
    const r = await be(['install', '-q', '-p', server.url, '-a', 'amd64', '-r', '14.1', '--cache', cache, '--templates', dir, target]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^be: template ${join(dir, 'fstab.hbs').replace(/[.]/g, '\\.')}: Parse error on line 4: Expecting .*, got 'EOF'\\n$`));
    // the release was looked up, but no set was fetched, nothing mounted, nothing written
    expect(server.requests.slice(before).filter((q) => q.path.endsWith('.txz'))).toEqual([]);
    expect(mountsOf(target)).toEqual([]);
    expect(mountDirs()).toEqual(dirsBefore);
    await inBe(target, (root) => expect(readdirSync(root)).toEqual([]));

    const missing = await be(['install', '-q', '-p', pub, '-a', 'amd64', '-r', '11.1', '--templates', join(work, 'no-templates'), target]);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toBe(`be: template directory '${join(work, 'no-templates')}' does not exist\n`);
    await inBe(target, (root) => expect(readdirSync(root)).toEqual([]));
  });

  it('a set tar rejects half-way: one line naming the set, the BE unmounted, its mountpoint back, no mount directory left', async () => {
    const target = await freshBe();
    const dirsBefore = mountDirs();
    const r = await be(['install', '-p', broken, '-a', 'amd64', '-r', '13.0', target]);
    expect(r.exitCode).toBe(1);
    const lines = r.stderr.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines[lines.length - 1]).toMatch(/^be: cannot extract set 'kernel' \(kernel\.txz\): (xz: \(stdin\): Unexpected end of input|tar: Unexpected EOF in archive)$/);
    expect(lines.filter((l) => l.startsWith('be:'))).toHaveLength(1);
    expect(r.stdout).toBe('');
    expect(mountsOf(target)).toEqual([]);
    expect(mountDirs()).toEqual(dirsBefore);
    // zfs-fuse mounts by re-pointing the mountpoint: it is the BE's own again
    const props = (await execa('zfs', ['get', '-H', '-o', 'property,value,source', 'mountpoint,be:mountpoint', target])).stdout.split('\n');
    expect(props[1]).toBe('be:mountpoint\t-\t-');
    // base went in before kernel failed; the guest files were not written
    await inBe(target, (root) => {
      expect(readFileSync(join(root, 'etc/release'), 'utf8')).toBe('13.0\n');
      expect(existsSync(join(root, 'etc/rc.conf'))).toBe(false);
    });
  });

  it('an install into a BE it mounts itself leaves no mount directory behind', async () => {
    const target = await freshBe();
    const dirsBefore = mountDirs();
    await beOk(['install', '-q', '-p', pub, '-a', 'amd64', '-r', '11.1', target]);
    expect(mountsOf(target)).toEqual([]);
    expect(mountDirs()).toEqual(dirsBefore);
  });
});
