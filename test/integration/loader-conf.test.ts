import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { be, beOk } from '../helpers/cli.js';
import { makeTestPool, type TestPool } from '../helpers/zfs.js';
import { buildMirror, busyboxUserland } from '../helpers/mirror.js';
import { guestFiles } from '../../src/install/guest.js';

/**
 * The root file system FreeBSD's loader hands the kernel for a BE, read from the BE's own
 * files as the loader reads them: loader.conf is applied over the loader's environment
 * (stand/lua/config.lua: each `name="value"` is a loader.setenv), and stand/common/boot.c
 * `getrootmount` keeps a vfs.root.mountfrom already set, else takes fstab's `/` line, else the
 * current device `zfs:<dataset>:`, which the loader sets to the BE it boots (zfs_fmtdev in
 * stand/libsa/zfs/zfs.c for bootfs, bootenvSet in stand/lua/menu.lua for the boot menu).
 */
function rootTheLoaderMounts(bootedBe: string, loaderConf: string, fstab: string): string {
  const env = new Map<string, string>([['currdev', `zfs:${bootedBe}:`]]);
  for (const line of loaderConf.split('\n')) {
    const m = /^\s*([\w.]+)\s*=\s*"(.*)"\s*$/.exec(line);
    if (m) env.set(m[1], m[2]);
  }
  const set = env.get('vfs.root.mountfrom');
  if (set !== undefined) return set;
  for (const line of fstab.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const f = line.split(/\s+/);
    if (f[1] === '/' && f.length >= 4) return `${f[2]}:${f[0]}`;
  }
  return env.get('currdev')!.slice(0, -1);
}

describe('loader.conf of a BE (rendered)', () => {
  it('names no root: the loader boots the root of the BE it was pointed at', () => {
    const files = guestFiles({ dataset: 'zroot/ROOT/default', hostname: 'default', rc: [] });
    const loader = files.find((f) => f.path === '/boot/loader.conf')!.content;
    const fstab = files.find((f) => f.path === '/etc/fstab')!.content;
    expect(loader).toContain('zfs_load="YES"\n');
    expect(loader).not.toMatch(/^\s*vfs\.root\.mountfrom\s*=/m);
    expect(rootTheLoaderMounts('zroot/ROOT/default', loader, fstab)).toBe('zfs:zroot/ROOT/default');
    // The same files in a copy of the BE boot the copy.
    expect(rootTheLoaderMounts('zroot/ROOT/upgrade', loader, fstab)).toBe('zfs:zroot/ROOT/upgrade');
  });
});

let tp: TestPool;
let work: string;

beforeAll(async () => {
  tp = await makeTestPool('512M');
  work = await mkdtemp(join(tmpdir(), 'bcfg-loader.'));
  await buildMirror(join(work, 'pub'), [
    {
      version: '14.1',
      arch: 'amd64',
      place: 'releases',
      sets: {
        base: { files: busyboxUserland({ 'etc/release': '14.1\n' }, { busybox: false }) },
        kernel: { files: { 'boot/kernel/kernel': { content: 'kernel 14.1\n', mode: 0o555 } } },
      },
    },
  ]);
  await beOk(['create', '-l', 'flat', `${tp.pool}/be`]);
});

afterAll(async () => {
  await tp?.destroy();
  if (work) await rm(work, { recursive: true, force: true });
});

async function filesOf(dataset: string): Promise<{ loader: string; fstab: string }> {
  const dir = (await beOk(['mount', dataset])).trim();
  try {
    return { loader: readFileSync(join(dir, 'boot/loader.conf'), 'utf8'), fstab: readFileSync(join(dir, 'etc/fstab'), 'utf8') };
  } finally {
    await beOk(['umount', dataset]);
  }
}

describe('be install, then be create -e', () => {
  it('the clone of an installed BE boots its own root, not the original', async () => {
    const original = `${tp.pool}/be/orig`;
    const copy = `${tp.pool}/be/copy`;
    await beOk(['create', '-l', 'flat', original]);
    const r = await be(['install', '-q', '-p', join(work, 'pub'), '-a', 'amd64', '-r', '14.1', original]);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    await beOk(['create', '-e', original, copy]);

    const mine = await filesOf(original);
    expect(mine.loader).not.toMatch(/^\s*vfs\.root\.mountfrom\s*=/m);
    expect(rootTheLoaderMounts(original, mine.loader, mine.fstab)).toBe(`zfs:${original}`);

    const theirs = await filesOf(copy);
    expect(theirs.loader).not.toContain(original);
    expect(theirs.fstab).not.toContain(original);
    expect(rootTheLoaderMounts(copy, theirs.loader, theirs.fstab)).toBe(`zfs:${copy}`);
  });
});
