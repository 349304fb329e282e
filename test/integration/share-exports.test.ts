import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execa } from 'execa';
import { mkdtemp, writeFile, readFile, rm, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestPool, type TestPool } from '../helpers/zfs.js';
import { be, beOk, BE_BIN } from '../helpers/cli.js';
import { listBlocks, userText } from '../../src/share/blocks.js';
import { parseExports } from '../../src/share/exports.js';

const USER_LINES = '# exports of this host\n/usr   -ro  -alldirs\t10.0.0.1\n\n   # odd spacing, kept as is\n/home -maproot=nobody lab1 lab2\n';

describe('be sharenfs --exports (FreeBSD exports(5) file on any host)', () => {
  let pool: TestPool;
  let work: string;

  beforeAll(async () => {
    pool = await makeTestPool('256M');
    work = await mkdtemp(join(tmpdir(), 'be-share-'));
  }, 60_000);

  afterAll(async () => {
    await pool?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  }, 60_000);

  it('NAS in two commands: the BE is mounted where it is exported, unsharenfs removes both', async () => {
    const file = join(work, 'exports.nas');
    await writeFile(file, USER_LINES);
    const nas = `${pool.pool}/be/files`;
    await beOk(['create', '-l', 'flat', nas]);
    const out = await beOk(['sharenfs', nas, '--network', '192.168.2.0/24', '--exports', file]);
    const dir = join(pool.altroot, 'be', 'files');
    expect(out).toBe(`${dir}\n`);
    expect(await readFile(file, 'utf8')).toBe(`${USER_LINES}# be:begin ${nas}\n${dir} -network 192.168.2.0 -mask 255.255.255.0\n# be:end ${nas}\n`);
    expect(await readFile(`${file}.be-bak`, 'utf8')).toBe(USER_LINES);
    const mounts = await readFile('/proc/self/mounts', 'utf8');
    expect(mounts).toContain(`${nas} ${dir} `);
    // sharing again replaces the block (options changed), never duplicates it
    await beOk(['sharenfs', nas, '--host', '10.0.0.9', '--ro', '--maproot', 'root', '--exports', file]);
    expect(listBlocks(await readFile(file, 'utf8')).map((b) => b.body)).toEqual([`${dir} -maproot=root -ro 10.0.0.9\n`]);
    await beOk(['unsharenfs', nas, '--exports', file]);
    expect(await readFile(file, 'utf8')).toBe(USER_LINES);
    expect(await readFile('/proc/self/mounts', 'utf8')).not.toContain(`${nas} `);
    const prop = await execa('zfs', ['get', '-H', '-o', 'value,source', 'be:sharenfs', nas]);
    expect(prop.stdout.trim()).toBe('-\t-');
  }, 60_000);

  it('--dry-run shows the diff and changes nothing', async () => {
    const file = join(work, 'exports.dry');
    await writeFile(file, USER_LINES);
    const nas = `${pool.pool}/be/dry`;
    await beOk(['create', '-l', 'flat', nas]);
    const r = await beOk(['-n', 'sharenfs', nas, '--network', '10.9.0.0/16', '--exports', file, '--no-mount']);
    expect(r).toContain(`# +# be:begin ${nas}\n`);
    expect(r).toContain(`# +${join(pool.altroot, 'be', 'dry')} -network 10.9.0.0 -mask 255.255.0.0\n`);
    expect(await readFile(file, 'utf8')).toBe(USER_LINES);
  }, 60_000);

  it('bad input changes nothing and says which value is wrong', async () => {
    const file = join(work, 'exports.bad');
    await writeFile(file, USER_LINES);
    const r = await be(['sharenfs', `${pool.pool}/be/files`, '--network', '192.168.2.0', '--exports', file]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe("be: invalid network '192.168.2.0': expected CIDR like 192.168.2.0/24\n");
    expect(await readFile(file, 'utf8')).toBe(USER_LINES);
  });

  it('20 concurrent runs on different BEs leave all 20 blocks and the user lines intact', async () => {
    const file = join(work, 'exports.many');
    await writeFile(file, USER_LINES);
    const names = Array.from({ length: 20 }, (_, i) => `${pool.pool}/many/be${i}`);
    await execa('zfs', ['create', '-o', 'mountpoint=none', '-o', 'canmount=off', `${pool.pool}/many`]);
    for (const n of names) await execa('zfs', ['create', '-o', 'mountpoint=/', '-o', 'canmount=noauto', n]);
    const runs = await Promise.all(names.map((n) => be(['sharenfs', n, '--network', '192.168.2.0/24', '--maproot', 'root', '--exports', file, '--no-mount'])));
    expect(runs.map((r) => r.exitCode)).toEqual(names.map(() => 0));
    const text = await readFile(file, 'utf8');
    expect(listBlocks(text).map((b) => b.id).sort()).toEqual([...names].sort());
    expect(userText(text)).toBe(USER_LINES);
    expect(parseExports(text).filter((l) => l.options.maproot === 'root')).toHaveLength(20);
    expect((await readdir(work)).filter((f) => f.includes('be-lock') || f.endsWith('.tmp'))).toEqual([]);
  }, 120_000);

  it('--v4-root: one V4: line for every BE on the same network, outside their blocks, gone with the last one (mountd.c)', async () => {
    const file = join(work, 'exports.v4');
    await writeFile(file, USER_LINES);
    const names = Array.from({ length: 5 }, (_, i) => `${pool.pool}/v4/be${i}`);
    await execa('zfs', ['create', '-o', 'mountpoint=none', '-o', 'canmount=off', `${pool.pool}/v4`]);
    for (const n of names) await execa('zfs', ['create', '-o', 'mountpoint=/', '-o', 'canmount=noauto', n]);
    const share = (n: string, ...more: string[]) => be(['sharenfs', n, '--network', '192.168.2.0/24', '--v4-root', '/v4', '--exports', file, '--no-mount', ...more]);
    expect((await Promise.all(names.map((n) => share(n)))).map((r) => r.exitCode)).toEqual(names.map(() => 0));
    const v4 = async () => parseExports(await readFile(file, 'utf8')).filter((l) => l.v4).map((l) => `${l.paths[0]} ${l.network?.address}/${l.network?.mask}`);
    expect(await v4()).toEqual(['/v4 192.168.2.0/255.255.255.0']);
    const text = await readFile(file, 'utf8');
    expect(listBlocks(text).filter((b) => b.id !== 'nfsv4-root').flatMap((b) => parseExports(b.body)).filter((l) => l.v4)).toEqual([]);
    expect(userText(text)).toBe(USER_LINES);
    // a second root is what mountd drops ("different V4 dirpath"): refused, nothing changed
    const other = await be(['sharenfs', names[0], '--network', '10.0.0.0/8', '--v4-root', '/other', '--exports', file, '--no-mount']);
    expect(other.stderr).toMatch(new RegExp(`^be: ${file}: boot environment '${pool.pool}/v4/be[1-4]' is shared with NFSv4 root /v4: mountd takes one, cannot add /other\\n$`));
    expect(await readFile(file, 'utf8')).toBe(text);
    const r = await Promise.all(names.slice(1).map((n) => be(['unsharenfs', n, '--exports', file])));
    expect(r.map((x) => x.exitCode)).toEqual([0, 0, 0, 0]);
    expect(await v4()).toEqual(['/v4 192.168.2.0/255.255.255.0']); // names[0] still needs it
    await beOk(['unsharenfs', names[0], '--exports', file]);
    expect(await v4()).toEqual([]);
    expect(await readFile(file, 'utf8')).toBe(USER_LINES);
    // the user's own V4: line with that root is the one used, and said so
    await writeFile(file, `${USER_LINES}V4: /v4 -network 192.168.2.0/24\n`);
    const own = await share(names[0]);
    expect(own.stderr).toBe(`be: ${file} has its own 'V4: /v4' line: be's clients use that NFSv4 root\n`);
    expect(await v4()).toEqual(['/v4 192.168.2.0//24']);
  }, 120_000);

  it('a be killed at any moment leaves the old file or the new one whole, and the next run proceeds', async () => {
    const file = join(work, 'exports.kill');
    await writeFile(file, USER_LINES);
    const nas = `${pool.pool}/be/kill`;
    await beOk(['create', '-l', 'flat', nas]);
    const args = ['sharenfs', nas, '--network', '192.168.2.0/24', '--exports', file, '--no-mount'];
    // how long a whole run takes, then kills spread over that time
    const t0 = Date.now();
    await beOk(args);
    const whole = await readFile(file, 'utf8');
    const span = Date.now() - t0;
    await beOk(['unsharenfs', nas, '--exports', file]);
    const seen = new Set<string>();
    for (let i = 0; i < 16; i++) {
      const child = execa(BE_BIN, args, { reject: false });
      await new Promise((r) => setTimeout(r, Math.round((span * i) / 16)));
      child.kill('SIGKILL');
      await child;
      const text = await readFile(file, 'utf8');
      expect([USER_LINES, whole]).toContain(text);
      seen.add(text === whole ? 'new' : 'old');
      // whichever it was, the next run takes over a dead run's lock and gets to the new file
      await beOk(args);
      expect(await readFile(file, 'utf8')).toBe(whole);
      await beOk(['unsharenfs', nas, '--exports', file]);
    }
    expect(seen.has('old')).toBe(true);
  }, 240_000);

  it('be fstab writes the NFS mounts of the children into the BE and keeps its own lines', async () => {
    const layout = join(work, 'layout.json');
    await writeFile(layout, JSON.stringify({ datasets: [
      { path: '', properties: { mountpoint: '/', canmount: 'noauto' } },
      { path: 'tmp', properties: { canmount: 'noauto' } },
      { path: 'var', properties: { canmount: 'off' } },
      { path: 'var/log', properties: { canmount: 'noauto' } },
    ] }));
    const head = `${pool.pool}/be/head`;
    await beOk(['create', '--layout-file', layout, head]);
    const mnt = join(pool.altroot, 'look');
    const own = '# the guest\'s own lines\n/dev/vtbd1p1\t/data  ufs rw 2 2\n';
    await beOk(['mount', head, mnt]);
    try {
      await execa('mkdir', ['-p', join(mnt, 'etc')]);
      await writeFile(join(mnt, 'etc', 'fstab'), own);
    } finally {
      await beOk(['umount', head]);
    }
    const out = await beOk(['fstab', head, '--server', '192.168.2.1', '--path-prefix', '/be/head']);
    const lines = '192.168.2.1:/be/head/tmp /tmp nfs rw,noatime,async 0 0\n192.168.2.1:/be/head/var/log /var/log nfs rw,noatime,async 0 0\n';
    expect(out).toBe(lines);
    await beOk(['mount', head, mnt]);
    try {
      expect(await readFile(join(mnt, 'etc', 'fstab'), 'utf8')).toBe(`${own}# be:begin nfs\n${lines}# be:end nfs\n`);
    } finally {
      await beOk(['umount', head]);
    }
    expect((await readFile('/proc/self/mounts', 'utf8')).includes(`${head} `)).toBe(false);
  }, 60_000);
});
