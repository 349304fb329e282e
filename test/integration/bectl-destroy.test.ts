import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { be, beOk } from '../helpers/cli.js';
import { makeTestPool, type TestPool } from '../helpers/zfs.js';

// bectl's create and destroy replayed on a pool laid out as bsdinstall leaves it (made with
// zfs, not be): libbe's be_destroy promotes the clones that depend on a BE (lib/libbe/be.c
// be_promote_dependent_clones), refuses a snapshot with clones (BE_ERR_HASCLONES, 21) and
// destroys an origin with an automatic name (BE_DESTROY_AUTOORIGIN).

let tp: TestPool;
const R = () => ['-R', tp.root];

async function zfsList(types = 'filesystem,snapshot'): Promise<string[]> {
  return (await execa('zfs', ['list', '-H', '-o', 'name', '-t', types, '-r', tp.pool])).stdout.split('\n').filter(Boolean);
}
async function origin(ds: string): Promise<string> {
  return (await execa('zfs', ['get', '-H', '-o', 'value', 'origin', ds])).stdout.trim();
}
async function origins(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const ds of await zfsList('filesystem')) out[ds] = await origin(ds);
  return out;
}
/** What a BE holds: its /etc/motd through a real mount (and the mount goes again). */
async function motd(name: string): Promise<string> {
  const dir = (await beOk([...R(), 'mount', name])).trim();
  try {
    return readFileSync(join(dir, 'etc/motd'), 'utf8');
  } finally {
    await beOk([...R(), 'umount', name]);
  }
}

beforeAll(async () => {
  tp = await makeTestPool('512M', 'bbec');
  // bsdinstall's ZFS layout: ROOT with mountpoint=none, ROOT/default at / with canmount=noauto
  await execa('zfs', ['create', '-o', 'mountpoint=none', `${tp.root}`]);
  await execa('zfs', ['create', '-o', 'mountpoint=/', '-o', 'canmount=noauto', `${tp.root}/default`]);
  const dir = (await beOk([...R(), 'mount', 'default'])).trim();
  await execa('mkdir', ['-p', join(dir, 'etc')]);
  await writeFile(join(dir, 'etc/motd'), 'default\n');
  await beOk([...R(), 'umount', 'default']);
});
afterAll(async () => tp?.destroy());

describe('bectl create', () => {
  it('create [-r] BE@snap makes a recursive snapshot of the BE and no BE', async () => {
    const before = await zfsList('filesystem');
    expect(await beOk([...R(), 'create', '-r', 'default@first'])).toBe(`${tp.root}/default@first\n`);
    expect(await zfsList('snapshot')).toContain(`${tp.root}/default@first`);
    expect(await zfsList('filesystem')).toEqual(before);
    const again = await be([...R(), 'create', 'default@first']);
    expect(again.stderr).toBe(`be: snapshot '${tp.root}/default@first' already exists\n`);
    const mixed = await be([...R(), 'create', '-e', 'default', 'default@x']);
    expect([mixed.exitCode, mixed.stderr]).toEqual([64, "be: create: 'default@x' makes a snapshot and takes no -e, -l, --layout-file or -o\n"]);
  });

  it('create -r -e BE NAME clones it from a fresh snapshot with an automatic name libbe knows', async () => {
    expect(await beOk([...R(), 'create', '-r', '-e', 'default', 'a'])).toBe(`${tp.root}/a\n`);
    expect(await origin(`${tp.root}/a`)).toMatch(new RegExp(`^${tp.root}/default@\\d{4}-\\d\\d-\\d\\d-\\d\\d:\\d\\d:\\d\\d-0$`));
    await beOk([...R(), 'create', '-e', 'default@first', 'b']);
    expect(await origin(`${tp.root}/b`)).toBe(`${tp.root}/default@first`);
    expect(await motd('b')).toBe('default\n');
  });
});

describe('bectl destroy', () => {
  it('refuses a snapshot that has clones, naming one, and changes nothing', async () => {
    const before = await zfsList();
    const r = await be([...R(), 'destroy', 'default@first']);
    expect(r.stderr).toBe(`be: cannot destroy snapshot 'default@first': it has clones ('${tp.root}/b')\n`);
    expect(r.exitCode).toBe(21);
    expect(await zfsList()).toEqual(before);
  });

  it('destroys a snapshot no BE came from, in every child, promoting nothing', async () => {
    await beOk([...R(), 'create', '-l', 'flat', 'deep']);
    await execa('zfs', ['create', '-o', 'canmount=noauto', `${tp.root}/deep/var`]);
    await beOk([...R(), 'create', 'deep@lonely']);
    const before = await origins();
    await beOk([...R(), 'destroy', 'deep@lonely']);
    const snaps = await zfsList('snapshot');
    expect(snaps.filter((s) => s.endsWith('@lonely'))).toEqual([]);
    expect(await origins()).toEqual(before);
    const gone = await be([...R(), 'destroy', 'deep@lonely']);
    expect([gone.exitCode, gone.stderr]).toEqual([3, "be: snapshot 'deep@lonely' does not exist\n"]);
  });

  it('destroys a BE two BEs were cloned from: they are promoted, keep their files, and no origin is left pointing at it', async () => {
    const r = await be([...R(), 'destroy', 'default']);
    expect(r.exitCode).toBe(0);
    expect(await zfsList('filesystem')).not.toContain(`${tp.root}/default`);
    for (const [ds, o] of Object.entries(await origins())) expect([ds, o.startsWith(`${tp.root}/default@`)]).toEqual([ds, false]);
    // one of them now holds the snapshots; the other is its clone
    const oa = await origin(`${tp.root}/a`);
    const ob = await origin(`${tp.root}/b`);
    expect([oa, ob].filter((o) => o === '-')).toHaveLength(1);
    expect(await motd('a')).toBe('default\n');
    expect(await motd('b')).toBe('default\n');
  });

  it('destroys the middle of a chain of clones: the end is promoted over it and its automatic origin goes', async () => {
    await beOk([...R(), 'create', '-e', 'a', 'mid']);
    await beOk([...R(), 'create', '-e', 'mid', 'end']);
    expect(await origin(`${tp.root}/end`)).toMatch(new RegExp(`^${tp.root}/mid@`));
    await beOk([...R(), 'destroy', 'mid']);
    expect(await zfsList('filesystem')).not.toContain(`${tp.root}/mid`);
    expect(await origin(`${tp.root}/end`)).toMatch(new RegExp(`^${tp.root}/a@`));
    expect(await motd('end')).toBe('default\n');
    // the snapshot of a that mid was cloned from was automatic and used by nothing else
    expect((await zfsList('snapshot')).filter((s) => s.startsWith(`${tp.root}/mid@`) || s.startsWith(`${tp.root}/end@`))).toEqual([]);
  });

  it('says it leaves an origin with a name of your own intact, and -o takes it', async () => {
    await beOk([...R(), 'create', 'a@mine']);
    await beOk([...R(), 'create', '-e', 'a@mine', 'c']);
    const keep = await be([...R(), 'destroy', 'c']);
    expect(keep.stderr).toBe(`be: leaving origin '${tp.root}/a@mine' intact\n`);
    expect(await zfsList('snapshot')).toContain(`${tp.root}/a@mine`);
    await beOk([...R(), 'create', '-e', 'a@mine', 'c']);
    await beOk([...R(), 'destroy', '-o', 'c']);
    expect(await zfsList('snapshot')).not.toContain(`${tp.root}/a@mine`);
  });

  it('refuses -o on a BE that is no clone, the active BE and a mounted one without -F, changing nothing', async () => {
    await beOk([...R(), 'activate', 'end']);
    const before = await zfsList();
    // libbe reads the origin after promoting the clones: a BE no BE came from and no clone
    const noOrigin = await be([...R(), 'destroy', '-o', 'deep']);
    expect([noOrigin.exitCode, noOrigin.stderr]).toEqual([11, "be: boot environment 'deep' is not a clone: it has no origin to destroy (-o)\n"]);
    const active = await be([...R(), 'destroy', 'end']);
    expect([active.exitCode, active.stderr]).toEqual([5, "be: cannot destroy the active boot environment 'end'\n"]);
    const dir = (await beOk([...R(), 'mount', 'deep'])).trim();
    const mounted = await be([...R(), 'destroy', 'deep']);
    expect([mounted.exitCode, mounted.stderr]).toEqual([6, `be: boot environment 'deep' is mounted at ${dir} (use -F)\n`]);
    const ghost = await be([...R(), 'destroy', 'ghost']);
    expect([ghost.exitCode, ghost.stderr]).toEqual([3, "be: boot environment 'ghost' does not exist\n"]);
    expect(await zfsList()).toEqual(before);
    await beOk([...R(), 'destroy', '-F', 'deep']);
    expect(await zfsList('filesystem')).not.toContain(`${tp.root}/deep`);
  });

  it('prints a destroy with promotions as a script under --dry-run and changes nothing', async () => {
    await beOk([...R(), 'create', '-e', 'end', 'leaf']);
    await beOk([...R(), 'activate', 'a']);
    const before = await zfsList();
    const r = await be([...R(), '-n', 'destroy', 'end']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`zfs promote ${tp.root}/leaf\n`);
    expect(r.stdout).toContain(`zfs destroy -r ${tp.root}/end`);
    expect(r.stdout.indexOf('zfs promote')).toBeLessThan(r.stdout.indexOf('zfs destroy'));
    expect(await zfsList()).toEqual(before);
  });
});
