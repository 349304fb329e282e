import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { be, beOk } from '../helpers/cli.js';
import { makeTestPool, type TestPool } from '../helpers/zfs.js';

// bectl list (sbin/bectl/bectl_list.c), check, mount, rename and umount replayed on a pool
// laid out as bsdinstall leaves it, made with zfs.

let tp: TestPool;
const R = () => ['-R', tp.root];

async function num(ds: string, prop: string): Promise<number> {
  return Number((await execa('zfs', ['get', '-H', '-p', '-o', 'value', prop, ds])).stdout.trim());
}
function human(bytes: number): string {
  const units = ['B', 'K', 'M', 'G', 'T', 'P'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${bytes}B` : `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)}${units[i]}`;
}
const rows = (out: string) => out.trim().split('\n').map((l) => l.split('\t'));

beforeAll(async () => {
  tp = await makeTestPool('512M', 'bbec');
  await execa('zfs', ['create', '-o', 'mountpoint=none', tp.root]);
  await execa('zfs', ['create', '-o', 'mountpoint=/', '-o', 'canmount=noauto', `${tp.root}/default`]);
  await execa('zpool', ['set', `bootfs=${tp.root}/default`, tp.pool]);
  const dir = (await beOk([...R(), 'mount', 'default'])).trim();
  await writeFile(join(dir, 'big'), randomBytes(2 * 1024 * 1024));
  await beOk([...R(), 'umount', 'default']);
  await beOk([...R(), 'create', '-e', 'default', 'upgrade']);
  // default changes its file: the snapshot upgrade came from keeps the old blocks alone
  const again = (await beOk([...R(), 'mount', 'default'])).trim();
  await writeFile(join(again, 'big'), randomBytes(1024 * 1024));
  await beOk([...R(), 'umount', 'default']);
});
afterAll(async () => tp?.destroy());

describe('bectl list', () => {
  it("prints bectl's columns: R for bootfs, Space with the origin snapshot, -D with the origin file system too", async () => {
    const out = await beOk([...R(), 'list']);
    expect(out.split('\n')[0]).toMatch(/^BE\s+Active Mountpoint Space Created$/);
    const h = rows(await beOk([...R(), 'list', '-H']));
    expect(h.map((r) => r.slice(0, 3))).toEqual([
      ['default', 'R', '-'],
      ['upgrade', '-', '-'],
    ]);
    const origin = (await execa('zfs', ['get', '-H', '-o', 'value', 'origin', `${tp.root}/upgrade`])).stdout.trim();
    const used = await num(`${tp.root}/upgrade`, 'used');
    const snapUsed = await num(origin, 'used');
    const fsUsed = await num(`${tp.root}/default`, 'used');
    expect(snapUsed).toBeGreaterThan(0);
    expect(h[1][3]).toBe(human(used + snapUsed));
    expect(h[0][3]).toBe(human(fsUsed));
    const d = rows(await beOk([...R(), 'list', '-D', '-H']));
    expect(d[1][3]).toBe(human(used + snapUsed + fsUsed));
    expect(d[0][3]).toBe(human(fsUsed));
    expect(h[0][4]).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d$/);
  });

  it('-s prints a block per BE: its dataset, its origin indented, its snapshots; -D is ignored there', async () => {
    const out = await beOk([...R(), 'list', '-s']);
    const lines = out.split('\n');
    expect(lines[0]).toMatch(/^BE\/Dataset\/Snapshot\s+Active Mountpoint Space Created$/);
    expect(lines[1]).toBe('');
    const origin = (await execa('zfs', ['get', '-H', '-o', 'value', 'origin', `${tp.root}/upgrade`])).stdout.trim();
    expect(lines[2]).toBe('default');
    expect(lines[3]).toMatch(new RegExp(`^  ${tp.root}/default +R +- +\\S+ +\\d{4}-`));
    expect(await beOk([...R(), 'list', '-s', '-D'])).toBe(out);
    const scripted = rows(await beOk([...R(), 'list', '-s', '-H']));
    expect(scripted.map((r) => r[0])).toEqual(['default', `  ${tp.root}/default`, `  ${origin}`, '', 'upgrade', `  ${tp.root}/upgrade`, `    ${origin}`]);
    expect(scripted[1].slice(1, 3)).toEqual(['R', '-']);
  });

  it('-a shows every dataset of a BE', async () => {
    await beOk([...R(), 'create', 'deep']);
    const out = await beOk([...R(), 'list', '-a', '-H']);
    expect(out).toContain(`\n  ${tp.root}/deep/var/log\t-\t-\t`);
  });

  it('sorts by a property with -c (ascending) and -C (descending), the last one given winning', async () => {
    const byUsed = async (flag: string) => rows(await beOk([...R(), 'list', '-H', flag, 'used'])).map((r) => r[0]);
    const sizes = new Map<string, number>();
    for (const b of ['default', 'upgrade', 'deep']) sizes.set(b, await num(`${tp.root}/${b}`, 'used'));
    const asc = [...sizes].sort((a, b) => a[1] - b[1]).map(([n]) => n);
    expect(await byUsed('-c')).toEqual(asc);
    expect(await byUsed('-C')).toEqual([...asc].reverse());
    expect(rows(await beOk([...R(), 'list', '-H', '-C', 'name'])).map((r) => r[0])).toEqual(['upgrade', 'default', 'deep']);
    expect(rows(await beOk([...R(), 'list', '-H', '-C', 'name', '-c', 'creation'])).map((r) => r[0])).toEqual(['default', 'upgrade', 'deep']);
    const bad = await be([...R(), 'list', '-c', 'color']);
    expect(bad.exitCode).toBe(64); // a refusal of bectl list's arguments: EX_USAGE
    expect(bad.stderr).toBe("be: list: cannot sort by 'color' (known: name, creation, origin, used, usedds, usedbydataset, usedsnap, usedbysnapshots, usedrefreserv, usedbyrefreservation)\n");
  });
});

describe('bectl check, mount, rename, umount, activate -T', () => {
  it('check exits 0 where BEs are in use (the pool of -R) and 255 silently where not', async () => {
    const ok = await be([...R(), 'check']);
    expect([ok.exitCode, ok.stdout, ok.stderr]).toEqual([0, '', '']);
    const no = await be(['-R', 'nopool1234/ROOT', 'check']);
    expect([no.exitCode, no.stdout, no.stderr]).toEqual([255, '', '']);
    // this host's / is no ZFS file system: without -R there is no BE root
    const host = await be(['check'], { env: { BE_ROOT: '' } });
    expect([host.exitCode, host.stderr]).toEqual([255, '']);
  });

  it('mount BE [mountpoint] prints where, rename renames, unmount (and umount -f) unmount', async () => {
    const at = join(tp.altroot, 'made', 'here');
    expect(await beOk([...R(), 'mount', 'upgrade', at])).toBe(`${at}\n`);
    expect(existsSync(join(at, 'big'))).toBe(true);
    const busy = await be([...R(), 'rename', 'upgrade', 'next']);
    expect(busy.stderr).toBe(`be: boot environment 'upgrade' is mounted at ${at}: unmount it first\n`);
    await beOk([...R(), 'unmount', 'upgrade']);
    expect(readFileSync('/proc/self/mounts', 'utf8')).not.toContain(`${tp.root}/upgrade `);
    expect(await beOk([...R(), 'rename', 'upgrade', 'next'])).toBe(`${tp.root}/next\n`);
    const dir = (await beOk([...R(), 'mount', 'next'])).trim();
    expect(existsSync(join(dir, 'big'))).toBe(true);
    await beOk([...R(), 'umount', '-f', 'next']);
    expect(readFileSync('/proc/self/mounts', 'utf8')).not.toContain(`${tp.root}/next`);
  });

  it('activate -T needs FreeBSD here and takes no -t with it', async () => {
    const t = await be([...R(), 'activate', '-T']);
    expect([t.exitCode, t.stderr]).toEqual([1, 'be: activate -T needs zfsbootcfg(8), which only FreeBSD has\n']);
    const both = await be([...R(), 'activate', '-t', '-T', 'next']);
    expect([both.exitCode, both.stderr]).toEqual([64, 'be: activate: -t and -T exclude each other\n']);
  });
});
