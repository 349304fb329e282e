import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { readFileSync, existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BE_BIN, be, beOk } from '../helpers/cli.js';
import { makeTestPool, type TestPool } from '../helpers/zfs.js';

// bectl export/import (sbin/bectl/bectl.c, lib/libbe/be.c be_export/be_import) with be's
// whole-BE streams: zfs send -R of a fresh recursive snapshot, received straight into the new
// BE as be_import does (unmounted), and what a cut or corrupt stream left of it destroyed.
// be_import returns BE_ERR_UNKNOWN (19) for every failure of zfs_receive, whose
// zfs_receive_one (libzfs_sendrecv.c) gives -1 for each, an existing destination too.

let tp: TestPool;
let dir: string;
const R = () => ['-R', tp.root];
const payload = randomBytes(3 * 1024 * 1024);

async function zfsList(): Promise<string[]> {
  return (await execa('zfs', ['list', '-H', '-o', 'name', '-t', 'filesystem,snapshot', '-r', tp.pool])).stdout.split('\n').filter(Boolean);
}
async function prop(ds: string, name: string): Promise<string> {
  return (await execa('zfs', ['get', '-H', '-o', 'value', name, ds])).stdout.trim();
}
async function withMount<T>(name: string, read: (dir: string) => Promise<T>): Promise<T> {
  const at = (await beOk([...R(), 'mount', name])).trim();
  try {
    return await read(at);
  } finally {
    await beOk([...R(), 'umount', name]);
  }
}

beforeAll(async () => {
  tp = await makeTestPool('512M', 'bbec');
  dir = await mkdtemp(join(tmpdir(), 'bbec-transfer-'));
  await execa('zfs', ['create', '-o', 'mountpoint=none', tp.root]);
  await execa('zfs', ['create', '-o', 'mountpoint=/', '-o', 'canmount=noauto', `${tp.root}/default`]);
  await beOk([...R(), 'create', 'src']); // freebsd layout: children with their own properties
  await withMount('src', async (at) => {
    await writeFile(join(at, 'var/log/messages'), payload);
    await writeFile(join(at, 'motd'), 'src\n');
  });
});
afterAll(async () => {
  await tp?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('bectl export / import', () => {
  it('exports the whole BE to a file and imports it as a new BE with every child, property and file', async () => {
    const file = join(dir, 'src.zstream');
    expect(await beOk([...R(), 'export', '-o', file, 'src'])).toBe('');
    expect((await stat(file)).size).toBeGreaterThan(payload.length);
    expect(await beOk([...R(), 'import', '-i', file, 'copy'])).toBe(`${tp.root}/copy\n`);
    const names = (await zfsList()).filter((n) => !n.includes('@'));
    const kids = (be: string) => names.filter((n) => n.startsWith(`${tp.root}/${be}/`)).map((n) => n.slice(`${tp.root}/${be}`.length));
    expect(kids('copy')).toEqual(kids('src'));
    expect(kids('copy')).toContain('/var/log');
    expect(await prop(`${tp.root}/copy`, 'canmount')).toBe('noauto');
    expect(await prop(`${tp.root}/copy/var/log`, 'exec')).toBe('off');
    expect(await prop(`${tp.root}/copy/usr`, 'canmount')).toBe('off');
    // nothing of it is mounted behind the user's back, and it mounts as a BE
    expect(readFileSync('/proc/self/mounts', 'utf8')).not.toContain(`${tp.root}/copy`);
    const got = await withMount('copy', async (at) => [await readFile(join(at, 'var/log/messages')), await readFile(join(at, 'motd'), 'utf8')] as const);
    expect(got[0].equals(payload)).toBe(true);
    expect(got[1]).toBe('src\n');
    // the snapshot it was sent from stays on the source, as libbe leaves it
    expect((await zfsList()).some((n) => new RegExp(`^${tp.root}/src@\\d{4}-\\d\\d-\\d\\d-\\d\\d:\\d\\d:\\d\\d-0$`).test(n))).toBe(true);
  });

  it('moves a BE through a pipe, as `be export BE | ssh host be import BE` does', async () => {
    const r = await execa(BE_BIN, [...R(), 'export', 'src'], { reject: false }).pipe(BE_BIN, [...R(), 'import', 'piped'], { reject: false });
    expect([r.pipedFrom[0].exitCode, r.exitCode, r.stdout]).toEqual([0, 0, `${tp.root}/piped`]);
    const got = await withMount('piped', (at) => readFile(join(at, 'var/log/messages')));
    expect(got.equals(payload)).toBe(true);
  }, 120_000);

  it('writes -o to a device or a FIFO as it is, never replacing it with a file', async () => {
    const fifo = join(dir, 'stream.fifo');
    await execa('mkfifo', [fifo]);
    const reader = execa('cat', [fifo], { encoding: 'buffer', timeout: 60_000, reject: false });
    const r = await be([...R(), 'export', '-o', fifo, 'src']);
    const read = await reader;
    expect([r.exitCode, r.stderr, read.exitCode]).toEqual([0, '', 0]);
    expect((read.stdout as Uint8Array).length).toBeGreaterThan(payload.length);
    expect((await stat(fifo)).isFIFO()).toBe(true);
    expect((await readdir(dir)).filter((f) => f.includes('be-partial'))).toEqual([]);
  }, 120_000);

  it('never imports over an existing BE, and a cut or corrupt stream leaves nothing behind', async () => {
    const file = join(dir, 'src.zstream');
    const whole = await readFile(file);
    const before = await zfsList();
    const over = await be([...R(), 'import', '-i', file, 'copy']);
    expect([over.exitCode, over.stderr]).toEqual([19, "be: boot environment 'copy' already exists\n"]);
    const cut = join(dir, 'cut.zstream');
    await writeFile(cut, whole.subarray(0, Math.floor(whole.length * 0.6)));
    const r1 = await be([...R(), 'import', '-i', cut, 'cut']);
    expect(r1.exitCode).toBe(19);
    expect(r1.stderr).toMatch(/^be: cannot import 'cut': .+\n$/);
    const bad = Buffer.from(whole);
    for (let i = Math.floor(bad.length / 2); i < bad.length / 2 + 8192; i += 61) bad[i] ^= 0x5a;
    const r2 = await be([...R(), 'import', 'bad'], { input: bad as unknown as string });
    expect(r2.exitCode).toBe(19);
    expect(r2.stderr).toMatch(/^be: cannot import 'bad': .+\n$/);
    expect(await zfsList()).toEqual(before);
    const mounts = readFileSync('/proc/self/mounts', 'utf8');
    expect(mounts).not.toContain(`${tp.root}/cut`);
    expect(mounts).not.toContain(`${tp.root}/bad`);
  }, 120_000);

  it('refuses to write a stream to a terminal or read one from it (EX_USAGE), and names a missing file', async () => {
    const tty = await execa('script', ['-qec', `${BE_BIN} -R ${tp.root} export src`, '/dev/null'], { reject: false });
    expect(tty.stdout.trim()).toBe('be: export: refusing to write a replication stream to a terminal: redirect stdout or give -o FILE');
    expect(tty.exitCode).toBe(64);
    const ttyIn = await execa('script', ['-qec', `${BE_BIN} -R ${tp.root} import other`, '/dev/null'], { reject: false });
    expect(ttyIn.stdout.trim()).toBe('be: import: refusing to read a replication stream from a terminal: pipe one in or give -i FILE');
    expect(ttyIn.exitCode).toBe(64);
    const missing = await be([...R(), 'import', '-i', join(dir, 'nope'), 'other']);
    expect(missing.stderr).toBe(`be: cannot read '${join(dir, 'nope')}': ENOENT\n`);
    const ghost = await be([...R(), 'export', '-o', join(dir, 'ghost.zstream'), 'ghost']);
    expect(ghost.stderr).toBe("be: boot environment 'ghost' does not exist\n");
    expect(existsSync(join(dir, 'ghost.zstream'))).toBe(false);
  });

  it('prints export and import as a script under --dry-run', async () => {
    const before = await zfsList();
    const e = await be([...R(), '-n', 'export', '-o', '/backup/src.zstream', 'src']);
    expect(e.stdout).toMatch(new RegExp(`zfs snapshot -r ${tp.root}/src@\\S+-0\\nzfs send -R ${tp.root}/src@\\S+ > /backup/src.zstream\\n`));
    const i = await be([...R(), '-n', 'import', '-i', '/backup/src.zstream', 'fresh']);
    // zfs-fuse's recv has no -u (OpenZFS's gets it); the name is the BE's from the start
    expect(i.stdout).toBe(`#!/bin/sh\nset -e\nzfs receive ${tp.root}/fresh < /backup/src.zstream\nzfs set canmount=noauto ${tp.root}/fresh\n`);
    expect(await zfsList()).toEqual(before);
  });
});
