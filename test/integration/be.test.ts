import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { be, beOk } from '../helpers/cli.js';
import { makeTestPool, type TestPool } from '../helpers/zfs.js';

let tp: TestPool;
const R = () => ['-R', tp.root];

async function datasets(root: string): Promise<string[]> {
  const r = await execa('zfs', ['list', '-H', '-o', 'name', '-r', root], { reject: false });
  return r.exitCode === 0 ? r.stdout.split('\n').filter(Boolean) : [];
}
async function prop(ds: string, name: string): Promise<string> {
  return (await execa('zfs', ['get', '-H', '-o', 'value', name, ds])).stdout.trim();
}
function mountsOf(prefix: string): Array<{ source: string; target: string }> {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter(([s]) => s === prefix || s?.startsWith(`${prefix}/`))
    .map(([source, target]) => ({ source, target }));
}

beforeAll(async () => {
  await beOk(['--version']);
  tp = await makeTestPool('512M', 'bbec');
});
afterAll(async () => tp?.destroy());

describe('be create from a layout', () => {
  it('makes the nested freebsd layout, with the BE root container, and lists it', async () => {
    expect(await beOk([...R(), 'create', 'head'])).toBe(`${tp.root}/head\n`);
    expect(await datasets(tp.root)).toEqual([
      tp.root,
      ...['', '/tmp', '/usr', '/usr/home', '/usr/ports', '/usr/src', '/var', '/var/audit', '/var/crash', '/var/log', '/var/mail', '/var/tmp'].map(
        (p) => `${tp.root}/head${p}`,
      ),
    ]);
    expect(await prop(tp.root, 'canmount')).toBe('off');
    expect(await prop(tp.root, 'mountpoint')).toBe('none');
    expect(await prop(`${tp.root}/head/usr`, 'canmount')).toBe('off');
    expect(await prop(`${tp.root}/head/var/log`, 'canmount')).toBe('noauto');
    expect(await prop(`${tp.root}/head/var/log`, 'exec')).toBe('off');
    const list = await beOk([...R(), 'list', '-H']);
    const [name, active, mp, space, created] = list.trim().split('\t');
    expect([name, active, mp]).toEqual(['head', '-', '-']);
    expect(space).toMatch(/^[\d.]+[BKMG]$/);
    expect(created).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d$/);
  });

  it('takes a full dataset path, as in the talk, and -o properties', async () => {
    const full = `${tp.pool}/be/test`;
    await beOk(['create', '-l', 'flat', '-o', 'compression=on', full]);
    expect(await datasets(`${tp.pool}/be`)).toEqual([`${tp.pool}/be`, full]);
    expect(await prop(full, 'compression')).toBe('on');
    await beOk(['destroy', full]);
  });

  it('refuses bad names, unknown layouts, existing BEs and missing pools, changing nothing', async () => {
    const before = await datasets(tp.pool);
    const cases: Array<[string[], RegExp, number?]> = [
      [[...R(), 'create', 'a;reboot'], /^be: invalid BE name 'a;reboot': character ";" is not allowed\n$/],
      [['create', `${tp.pool}/ROOT/../x`], /^be: invalid BE name '.*': '\.\.' is not allowed\n$/],
      [['create', `${tp.pool}//x`], /^be: invalid BE name '.*': empty component\n$/],
      [[...R(), 'create', '-l', 'nested', 'x'], /^be: unknown layout 'nested' \(known: flat, freebsd, shallow\)\n$/],
      // the bectl verbs exit as bectl does (sbin/bectl/bectl.c): libbe's BE_ERR_EXISTS, the -1
      // of a failed libbe_init (no pool), BE_ERR_NOENT; a bad name is BE_ERR_INVALIDNAME (1)
      [[...R(), 'create', 'head'], /^be: boot environment 'head' already exists\n$/, 2],
      [['create', 'nopool1234/ROOT/x'], /^be: pool 'nopool1234' does not exist\n$/, 255],
      [[...R(), 'destroy', 'ghost'], /^be: boot environment 'ghost' does not exist\n$/, 3],
      [[...R(), 'create', '-e', 'ghost', 'x'], /^be: boot environment 'ghost' does not exist\n$/, 3],
      [['create', '-e', `${tp.pool}/ROOT/head`, 'nopool1234/ROOT/x'], /^be: cannot clone '.*\/ROOT\/head' to 'nopool1234\/ROOT\/x': not in the same pool\n$/],
      [[...R(), 'create', '--layout-file', '/nonexistent/l.json', 'x'], /^be: cannot read layout file '\/nonexistent\/l.json': ENOENT\n$/],
    ];
    for (const [args, message, status = 1] of cases) {
      const r = await be(args);
      expect(r.stderr).toMatch(message);
      expect(r.exitCode).toBe(status);
    }
    expect(await datasets(tp.pool)).toEqual(before);
    // bectl's usage(false): EX_USAGE
    const usage = await be(['create']);
    expect(usage.exitCode).toBe(64);
    expect(usage.stderr).toBe("be: missing required argument 'be'\n");
    // -v echoes each command before the one-line error; BE_DEBUG=1 adds the stack trace
    const verbose = await be(['-v', 'create', 'nopool1234/ROOT/x']);
    expect(verbose.stderr).toBe('+ zpool list -H -o name,bootfs,altroot,health nopool1234\nbe: pool \'nopool1234\' does not exist\n');
    const debug = await be(['create', 'nopool1234/ROOT/x'], { env: { BE_DEBUG: '1' } });
    expect(debug.stderr).toMatch(/^BeError: pool 'nopool1234' does not exist\n(\s+at .+\n)+be: pool 'nopool1234' does not exist\n$/);
  });

  it('undoes a create that fails half way: a child that zfs refuses for real', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'be-layout-'));
    const file = join(dir, 'broken.json');
    await writeFile(file, JSON.stringify({ datasets: [{ path: '' , properties: { mountpoint: '/', canmount: 'noauto' } }, { path: 'tmp' }, { path: 'var', properties: { recordsize: '3' } }] }));
    const before = await datasets(tp.pool);
    const r = await be(['-R', `${tp.pool}/NEWROOT`, 'create', '--layout-file', file, 'half']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^be: zfs exited \d+: .*recordsize.*\n$/);
    expect(await datasets(tp.pool)).toEqual(before); // BE, its children and the new container are gone
    await rm(dir, { recursive: true });
  });

  it('undoes a clone that fails: its snapshot of the source is removed too', async () => {
    const before = await execa('zfs', ['list', '-H', '-t', 'snapshot', '-o', 'name', '-r', tp.pool]);
    const r = await be([...R(), 'create', '-e', 'head', '-o', 'recordsize=3', 'badclone']);
    expect(r.exitCode).toBe(15); // be_deep_clone: BE_ERR_ZFSCLONE
    expect(await datasets(`${tp.root}/badclone`)).toEqual([]);
    const after = await execa('zfs', ['list', '-H', '-t', 'snapshot', '-o', 'name', '-r', tp.pool]);
    expect(after.stdout).toBe(before.stdout);
  });
});

describe('be mount / umount', () => {
  it('mounts in zfsbe order at a fresh directory, shows it in list, and unmounts in reverse', async () => {
    const dir = (await beOk([...R(), 'mount', 'head'])).trim();
    expect(existsSync(dir)).toBe(true);
    const mounted = mountsOf(`${tp.root}/head`);
    expect(mounted.map((m) => m.source)).toEqual(
      ['', '/tmp', '/usr/home', '/usr/ports', '/usr/src', '/var/audit', '/var/crash', '/var/log', '/var/mail', '/var/tmp'].map((p) => `${tp.root}/head${p}`),
    );
    expect(mounted.map((m) => m.target.slice(dir.length))).toEqual(['', '/tmp', '/usr/home', '/usr/ports', '/usr/src', '/var/audit', '/var/crash', '/var/log', '/var/mail', '/var/tmp']);
    await writeFile(join(dir, 'var/log/messages'), 'hello\n');
    expect(await prop(`${tp.root}/head/var/log`, 'used')).not.toBe('');
    const list = (await beOk([...R(), 'list', '-H'])).split('\n').find((l) => l.startsWith('head\t'))!;
    expect(list.split('\t')[2]).toBe(dir);
    const again = await be([...R(), 'mount', 'head']);
    expect(again.stderr).toBe(`be: boot environment '${tp.root}/head' is already mounted at ${dir}\n`);
    await beOk([...R(), 'umount', 'head']);
    expect(mountsOf(`${tp.root}/head`)).toEqual([]);
    // the directory be made for the mount goes with it
    expect(existsSync(dir)).toBe(false);
    // The BE's own properties are what they were: still bootable at /.
    expect(await prop(`${tp.root}/head`, 'mountpoint')).toBe(tp.altroot);
    expect(await prop(`${tp.root}/head/var/log`, 'mountpoint')).toBe(`${tp.altroot}/var/log`);
    // The file written through the mount is in the var/log dataset.
    const dir2 = join(tp.altroot, 'mnt', 'again');
    expect((await beOk([...R(), 'mount', 'head', dir2])).trim()).toBe(dir2);
    expect(readFileSync(join(dir2, 'var/log/messages'), 'utf8')).toBe('hello\n');
    expect(mountsOf(`${tp.root}/head/var/log`)[0].target).toBe(join(dir2, 'var/log'));
    await beOk([...R(), 'umount', 'head']);
    // a directory the user named stays
    expect(existsSync(dir2)).toBe(true);
  });

  it('prints the mount as a script under --dry-run and mounts nothing', async () => {
    const r = await be([...R(), 'mount', '-n', 'head', join(tp.altroot, 'dry')]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^#!\/bin\/sh\nset -e\n/);
    expect(r.stdout).toContain(`zfs mount ${tp.root}/head/var/log`);
    expect(r.stdout.indexOf(`zfs mount ${tp.root}/head\n`)).toBeLessThan(r.stdout.indexOf(`zfs mount ${tp.root}/head/tmp`));
    expect((await execa('sh', ['-n'], { input: r.stdout, reject: false })).exitCode).toBe(0);
    expect(mountsOf(`${tp.root}/head`)).toEqual([]);
  });
});

describe('clone, snapshot, rollback, rename, activate, destroy', () => {
  it('clones every child with its local properties kept', async () => {
    await beOk([...R(), 'create', '-e', 'head', 'copy']);
    const src = (await datasets(`${tp.root}/head`)).map((d) => d.slice(`${tp.root}/head`.length));
    const dst = (await datasets(`${tp.root}/copy`)).map((d) => d.slice(`${tp.root}/copy`.length));
    expect(dst).toEqual(src);
    expect(await prop(`${tp.root}/copy/var/log`, 'exec')).toBe('off');
    expect(await prop(`${tp.root}/copy/usr`, 'canmount')).toBe('off');
    expect(await prop(`${tp.root}/copy`, 'origin')).toMatch(new RegExp(`^${tp.root}/head@\\d{4}-\\d\\d-\\d\\d-\\d\\d:\\d\\d:\\d\\d-0$`));
    expect(mountsOf(`${tp.root}/copy`)).toEqual([]); // a clone is not mounted behind the user's back
    const dir = (await beOk([...R(), 'mount', 'copy'])).trim();
    expect(readFileSync(join(dir, 'var/log/messages'), 'utf8')).toBe('hello\n');
    await beOk([...R(), 'umount', 'copy']);
  });

  it('snapshots recursively and rolls every child back', async () => {
    expect(await beOk([...R(), 'snapshot', 'copy@clean'])).toBe(`${tp.root}/copy@clean\n`);
    const snaps = (await execa('zfs', ['list', '-H', '-t', 'snapshot', '-o', 'name', '-r', `${tp.root}/copy`])).stdout;
    expect(snaps).toContain(`${tp.root}/copy/var/log@clean`);
    const dir = (await beOk([...R(), 'mount', 'copy'])).trim();
    await writeFile(join(dir, 'var/log/messages'), 'changed\n');
    await writeFile(join(dir, 'tmp/junk'), 'x');
    await beOk([...R(), 'umount', 'copy']);
    await beOk([...R(), 'rollback', 'copy@clean']);
    const dir2 = (await beOk([...R(), 'mount', 'copy'])).trim();
    expect(readFileSync(join(dir2, 'var/log/messages'), 'utf8')).toBe('hello\n');
    expect(existsSync(join(dir2, 'tmp/junk'))).toBe(false);
    await beOk([...R(), 'umount', 'copy']);
    const s = await be([...R(), 'list', '-s', '-H']);
    expect(s.stdout).toContain(`${tp.root}/copy@clean\t`);
  });

  it('activates (bootfs), refuses to destroy the active BE, renames it with bootfs following', async () => {
    expect(await beOk([...R(), 'activate', 'copy'])).toBe(`${tp.root}/copy is active\n`);
    expect((await execa('zpool', ['list', '-H', '-o', 'bootfs', tp.pool])).stdout.trim()).toBe(`${tp.root}/copy`);
    expect(await prop(`${tp.root}/copy`, 'origin')).toBe('-'); // promoted
    const rows = (await beOk([...R(), 'list', '-H'])).trim().split('\n').map((l) => l.split('\t'));
    expect(rows.find((r) => r[0] === 'copy')![1]).toBe('R');
    const refuse = await be([...R(), 'destroy', 'copy']);
    expect(refuse.stderr).toBe("be: cannot destroy the active boot environment 'copy'\n");
    await beOk([...R(), 'rename', 'copy', 'main']);
    expect((await execa('zpool', ['list', '-H', '-o', 'bootfs', tp.pool])).stdout.trim()).toBe(`${tp.root}/main`);
    expect(await datasets(`${tp.root}/copy`)).toEqual([]);
    // Short names resolve under $BE_ROOT when no -R is given.
    const implicit = await beOk(['list', '-H'], { env: { BE_ROOT: tp.root } });
    expect(implicit).toContain('main\tR\t');
    const temp = await be([...R(), 'activate', '-t', 'head']);
    expect(temp.stderr).toBe('be: activate -t needs zfsbootcfg(8), which only FreeBSD has\n');
  });

  it('destroys with -F (mounted) and -o (origin snapshot)', async () => {
    await beOk([...R(), 'create', '-e', 'main@clean', 'scratch']);
    await beOk([...R(), 'mount', 'scratch']);
    const mounted = await be([...R(), 'destroy', 'scratch']);
    expect(mounted.stderr).toMatch(/^be: boot environment 'scratch' is mounted at .* \(use -F\)\n$/);
    await beOk([...R(), 'destroy', '-F', '-o', 'scratch']);
    expect(await datasets(`${tp.root}/scratch`)).toEqual([]);
    const snaps = (await execa('zfs', ['list', '-H', '-t', 'snapshot', '-o', 'name', '-r', tp.root])).stdout;
    expect(snaps).not.toContain(`${tp.root}/main@clean`);
    expect(mountsOf(`${tp.root}/scratch`)).toEqual([]);
  });

  it('prints create -e as a script under --dry-run and makes nothing', async () => {
    const before = await datasets(tp.pool);
    const r = await be([...R(), '-n', 'create', '-e', 'main', 'drycopy']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`zfs snapshot -r ${tp.root}/main@\\S+\\n`));
    expect(r.stdout).toContain(`${tp.root}/drycopy/var/log`);
    expect((await execa('sh', ['-n'], { input: r.stdout, reject: false })).exitCode).toBe(0);
    expect(await datasets(tp.pool)).toEqual(before);
  });

  it('lists every dataset with -a and JSON for scripts', async () => {
    const all = await beOk([...R(), 'list', '-a', '-H']);
    expect(all).toContain(`${tp.root}/main/var/log\t`);
    const json = JSON.parse(await beOk([...R(), 'list', '--json']));
    expect(json.map((r: { name: string }) => r.name).sort()).toEqual(['head', 'main']);
    expect(json.find((r: { name: string }) => r.name === 'main')).toMatchObject({ dataset: `${tp.root}/main`, active: 'R', kind: 'be' });
  });
});

describe('be activate does what libbe be_activate does (lib/libbe/be.c)', () => {
  it('sets canmount=noauto on the old bootfs, bootfs to the new BE, and promotes a clone of a clone all the way', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bsha-activate-'));
    const layout = join(dir, 'layout.json');
    await writeFile(layout, JSON.stringify({ datasets: [
      { path: '', properties: { mountpoint: '/', canmount: 'noauto' } },
      { path: 'tmp', properties: { canmount: 'noauto' } },
      { path: 'var', properties: { canmount: 'off' } },
      { path: 'var/log', properties: { canmount: 'noauto' } },
    ] }));
    const bootfs = async () => (await execa('zpool', ['list', '-H', '-o', 'bootfs', tp.pool])).stdout.trim();
    await beOk([...R(), 'create', '--layout-file', layout, 'aold']);
    await rm(dir, { recursive: true, force: true });
    await beOk([...R(), 'create', '-e', 'aold', 'amid']);
    await beOk([...R(), 'create', '-e', 'amid', 'anew']);
    // An old install whose BE root is canmount=on: `zfs mount -a` would mount it over /.
    await execa('zfs', ['set', 'canmount=on', `${tp.root}/aold`]);
    await beOk([...R(), 'activate', 'aold']);
    expect(await bootfs()).toBe(`${tp.root}/aold`);
    expect(await prop(`${tp.root}/anew`, 'origin')).toMatch(new RegExp(`^${tp.root}/amid@`));
    expect(await beOk([...R(), 'activate', 'anew'])).toBe(`${tp.root}/anew is active\n`);
    expect(await bootfs()).toBe(`${tp.root}/anew`);
    // be_deactivate: the previous bootfs, its root only, canmount=noauto set locally
    expect((await execa('zfs', ['get', '-H', '-o', 'value,source', 'canmount', `${tp.root}/aold`])).stdout).toBe('noauto\tlocal');
    // be_zfs_promote, repeated while an origin is found: no file system of the BE is a clone any more
    for (const ds of await datasets(`${tp.root}/anew`)) expect([ds, await prop(ds, 'origin')]).toEqual([ds, '-']);
    // so the BEs it came from can go, children and all
    await beOk([...R(), 'destroy', 'amid']);
    await beOk([...R(), 'destroy', 'aold']);
    expect(await datasets(`${tp.root}/aold`)).toEqual([]);
    expect(await datasets(`${tp.root}/anew`)).toHaveLength(4);
  }, 120_000);
});

describe('be pool', () => {
  it('creates a file-backed pool with an altroot and destroys it with its file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'be-pool-'));
    const file = join(dir, 'p.img');
    const name = `bepool${Date.now() % 100000}`;
    const out = await beOk(['pool', 'create', '--file', file, '--size', '256M', '--altroot', join(dir, 'alt'), name]);
    expect(out).toBe(`${name} on ${file}, altroot ${join(dir, 'alt')}\n`);
    expect((await execa('zpool', ['list', '-H', '-o', 'name,altroot', name])).stdout).toBe(`${name}\t${join(dir, 'alt')}`);
    const dup = await be(['pool', 'create', '--file', join(dir, 'q.img'), name]);
    expect(dup.stderr).toBe(`be: pool '${name}' already exists\n`);
    expect(existsSync(join(dir, 'q.img'))).toBe(false);
    const size = await be(['pool', 'create', '--file', join(dir, 'r.img'), '--size', 'huge', 'other']);
    expect(size.stderr).toBe("be: invalid size 'huge': expected a number with K, M, G or T\n");
    await beOk(['pool', 'destroy', name]);
    expect(existsSync(file)).toBe(false);
    expect((await execa('zpool', ['list', name], { reject: false })).exitCode).not.toBe(0);
    await rm(dir, { recursive: true, force: true });
  });
});
