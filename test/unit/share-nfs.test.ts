import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { exportsBlock, parseExports, editExports, v4RootOf, clientKeys, V4_BLOCK } from '../../src/share/exports.js';
import { mountdReloadArgv, reloadMountd } from '../../src/share/share.js';
import { Runner } from '../../src/sys/run.js';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nfsFstabBlock, parseFstab } from '../../src/share/fstab.js';
import { ganeshaBlock, exportIds, squashFor, pseudoPath, includesFile } from '../../src/share/ganesha.js';
import { makeShareSpec, parseNetwork } from '../../src/share/spec.js';
import { setBlock, listBlocks, userText } from '../../src/share/blocks.js';
import { unifiedDiff } from '../../src/sys/diff.js';

const golden = (name: string) => readFileSync(fileURLToPath(new URL(`golden/${name}`, import.meta.url)), 'utf8');
const PATHS = ['/ROOT/head', '/ROOT/head/tmp', '/ROOT/head/usr/home', '/ROOT/head/var/log'];

describe('exports(5) lines', () => {
  it('match the talk: one line per file system with -maproot, -network and -mask', () => {
    const spec = makeShareSpec({ network: ['192.168.2.0/24'], maproot: 'root' });
    expect(exportsBlock(PATHS, spec)).toBe(golden('share-exports.txt'));
  });

  it('round-trip through the parser; the V4 root is only recorded in the BE block, as a comment', () => {
    const spec = makeShareSpec({ network: ['192.168.2.0/24', '10.1.0.0/16'], host: ['lab1', '10.0.0.7'], maproot: '0:0', ro: true, v4Root: '/ROOT' });
    const block = exportsBlock(PATHS, spec);
    expect(block.split('\n').filter((l) => l.startsWith('# be:v4 '))).toEqual([
      '# be:v4 /ROOT -network 192.168.2.0 -mask 255.255.255.0',
      '# be:v4 /ROOT -network 10.1.0.0 -mask 255.255.0.0',
      '# be:v4 /ROOT lab1 10.0.0.7',
    ]);
    const parsed = parseExports(block);
    expect(parsed.filter((l) => l.v4)).toEqual([]);
    const lines = parsed.filter((l) => !l.v4);
    expect(lines).toHaveLength(PATHS.length * 3);
    expect([...new Set(lines.map((l) => l.paths[0]))]).toEqual(PATHS);
    for (const l of lines) {
      expect(l.options).toEqual({ maproot: '0:0', ro: true });
      expect(!!l.network !== (l.hosts.length > 0)).toBe(true);
    }
    const nets = lines.filter((l) => l.network).map((l) => `${l.network!.address}/${l.network!.mask}`);
    expect(new Set(nets)).toEqual(new Set(['192.168.2.0/255.255.255.0', '10.1.0.0/255.255.0.0']));
    expect(lines.find((l) => l.hosts.length)!.hosts).toEqual(['lab1', '10.0.0.7']);
  });

  it('a world export has no client field', () => {
    expect(exportsBlock(['/be/files'], makeShareSpec({}))).toBe('/be/files\n');
  });

  it('refuse bad networks, hosts and maproot with one line naming the value', () => {
    expect(() => makeShareSpec({ network: ['192.168.2.0'] })).toThrow(/invalid network '192.168.2.0'/);
    expect(() => makeShareSpec({ network: ['300.1.1.0/24'] })).toThrow(/300.1.1.0/);
    expect(() => makeShareSpec({ network: ['10.0.0.0/33'] })).toThrow(/prefix length/);
    expect(() => makeShareSpec({ host: ['-alldirs'] })).toThrow(/invalid host '-alldirs'/);
    expect(() => makeShareSpec({ maproot: 'root -alldirs' })).toThrow(/invalid maproot/);
    expect(parseNetwork('192.168.2.77/24')).toEqual({ address: '192.168.2.0', prefix: 24 });
  });
});

describe('exports(5) read the way mountd.c reads it', () => {
  it('comments only as a first field, continuations joined, -opt arg and -opt=arg, V4: with or without a blank', () => {
    const text = '# all comment\n/usr -ro \\\n  -maproot root 10.0.0.1\n\n/home -ro,alldirs -network 10.1 -mask 255.255.0.0\nV4:/ -sec=sys lab1\n';
    const lines = parseExports(text);
    expect(lines.map((l) => [l.lineNo, l.v4, l.paths, l.options, l.hosts])).toEqual([
      [2, false, ['/usr'], { ro: true, maproot: 'root' }, ['10.0.0.1']],
      [5, false, ['/home'], { ro: true, alldirs: true }, []],
      [6, true, ['/'], { sec: 'sys' }, ['lab1']],
    ]);
    // get_net: "10.1" is 10.1.0.0; a classful network without a mask; /len
    expect(clientKeys(lines[1])).toEqual(['net:10.1.0.0/16']);
    expect(clientKeys(parseExports('/x -network 192.168.2.0\n')[0])).toEqual(['net:192.168.2.0/24']);
    expect(clientKeys(parseExports('/x -network=10.0.0.0/8\n')[0])).toEqual(['net:10.0.0.0/8']);
    // a '#' after the first field is not a comment to mountd: it is a host
    expect(parseExports('/x lab1 #lab2\n')[0].hosts).toEqual(['lab1', '#lab2']);
    expect(v4RootOf('V4: /a\nV4: /b\n')).toBe('/a');
  });

  const user = '# my exports\n/usr -ro 10.0.0.1\n';
  const share = (text: string, be: string, opts: Parameters<typeof makeShareSpec>[0]) =>
    editExports(text, be, exportsBlock([`/${be.replace(/^zroot\//, '')}`], makeShareSpec(opts)), '/etc/exports');

  it('one set of V4: lines for all BEs, one per client set, one root; gone with the last BE that needs it', () => {
    let text = user;
    text = share(text, 'zroot/a', { network: ['192.168.2.0/24'], v4Root: '/ROOT' }).text;
    text = share(text, 'zroot/b', { network: ['192.168.2.0/24'], v4Root: '/ROOT' }).text;
    text = share(text, 'zroot/c', { network: ['192.168.2.0/24'], v4Root: '/ROOT' }).text;
    let v4 = parseExports(text).filter((l) => l.v4);
    expect(v4.map((l) => `${l.paths[0]} ${clientKeys(l)}`)).toEqual(['/ROOT net:192.168.2.0/24']);
    // mountd takes one -network per line: a second network is a second V4: line with the same root
    text = share(text, 'zroot/d', { network: ['10.1.0.0/16', '192.168.2.0/24'], host: ['lab1'], v4Root: '/ROOT' }).text;
    v4 = parseExports(text).filter((l) => l.v4);
    expect(v4.map((l) => `${l.paths[0]} ${clientKeys(l)}`)).toEqual(['/ROOT net:192.168.2.0/24', '/ROOT net:10.1.0.0/16', '/ROOT host:lab1']);
    // in a block of their own, outside every BE's block
    expect(listBlocks(text).map((b) => b.id).sort()).toEqual(['zroot/a', 'zroot/b', 'zroot/c', 'zroot/d', V4_BLOCK].sort());
    expect(listBlocks(text).filter((b) => b.id !== V4_BLOCK).flatMap((b) => parseExports(b.body)).filter((l) => l.v4)).toEqual([]);
    // a BE shared without --v4-root needs none
    text = share(text, 'zroot/e', { network: ['172.16.0.0/12'] }).text;
    expect(parseExports(text).filter((l) => l.v4)).toHaveLength(3);
    text = editExports(text, 'zroot/d', null, '/etc/exports').text;
    expect(parseExports(text).filter((l) => l.v4).map((l) => clientKeys(l)[0])).toEqual(['net:192.168.2.0/24']);
    for (const be of ['zroot/a', 'zroot/b']) text = editExports(text, be, null, '/etc/exports').text;
    expect(parseExports(text).filter((l) => l.v4)).toHaveLength(1); // zroot/c still needs it
    text = editExports(text, 'zroot/c', null, '/etc/exports').text;
    expect(parseExports(text).filter((l) => l.v4)).toEqual([]);
    text = editExports(text, 'zroot/e', null, '/etc/exports').text;
    expect(text).toBe(user);
  });

  it("uses the user's own V4: root, adds only clients it lacks, and refuses a second root", () => {
    const own = `${user}V4: /ROOT -network 192.168.2.0/24\n`;
    const r = share(own, 'zroot/a', { network: ['192.168.2.0/24', '10.1.0.0/16'], v4Root: '/ROOT' });
    expect(r.usesUserRoot).toBe('/ROOT');
    expect(parseExports(r.text).filter((l) => l.v4).map((l) => clientKeys(l)[0])).toEqual(['net:192.168.2.0/24', 'net:10.1.0.0/16']);
    expect(() => share(own, 'zroot/a', { network: ['10.1.0.0/16'], v4Root: '/other' })).toThrow(
      "/etc/exports already has 'V4: /ROOT': mountd takes one NFSv4 root, cannot add /other",
    );
    const first = share(user, 'zroot/a', { network: ['10.1.0.0/16'], v4Root: '/ROOT' }).text;
    expect(() => share(first, 'zroot/b', { network: ['10.1.0.0/16'], v4Root: '/V4' })).toThrow(
      "/etc/exports: boot environment 'zroot/a' is shared with NFSv4 root /ROOT: mountd takes one, cannot add /V4",
    );
    expect(share(user, 'zroot/a', { network: ['10.1.0.0/16'], v4Root: '/ROOT' }).usesUserRoot).toBeUndefined();
  });

  it('refuses what mountd would drop: the same path to the same client twice, and a user line continued into be\'s', () => {
    const dup = `${user}/a -maproot=root -network 192.168.2.0 -mask 255.255.255.0\n`;
    expect(() => share(dup, 'zroot/a', { network: ['192.168.2.0/24'] })).toThrow(
      '/etc/exports line 3 already exports /a to 192.168.2.0/24: mountd refuses the same client twice for one file system',
    );
    expect(share(dup, 'zroot/a', { network: ['10.0.0.0/8'] }).text).toContain('/a -network 10.0.0.0 -mask 255.0.0.0\n');
    expect(() => share(`${user}/b lab1 \\\n`, 'zroot/a', {})).toThrow("/etc/exports line 3: ends in '\\', so mountd would join be's lines to it");
    // a line mountd drops whole is no reason to refuse
    expect(share(`${user}-ro /c\nV4: -sec=sys\n`, 'zroot/a', {}).text).toContain('# be:begin zroot/a\n/a\n');
  });

  it('turns V4: lines inside a BE block (written by an older be) into that BE\'s need, kept once', () => {
    const old = `${user}# be:begin zroot/a\nV4: /ROOT -network 10.1.0.0 -mask 255.255.0.0\n/a -network 10.1.0.0 -mask 255.255.0.0\n# be:end zroot/a\n`;
    const text = share(old, 'zroot/b', { network: ['10.1.0.0/16'], v4Root: '/ROOT' }).text;
    expect(parseExports(text).filter((l) => l.v4).map((l) => `${l.paths[0]} ${clientKeys(l)}`)).toEqual(['/ROOT net:10.1.0.0/16']);
    expect(listBlocks(text).find((b) => b.id === 'zroot/a')!.body).toBe('# be:v4 /ROOT -network 10.1.0.0 -mask 255.255.0.0\n/a -network 10.1.0.0 -mask 255.255.0.0\n');
  });
});

describe('mountd reload (rc.subr refuses `reload` with mountd_enable unset: onereload)', () => {
  it('is `service mountd onereload`, planned only when the pid file names a live process', async () => {
    expect(mountdReloadArgv()).toEqual(['service', 'mountd', 'onereload']);
    const dir = mkdtempSync(join(tmpdir(), 'bsha-mountd-'));
    try {
      const pidFile = join(dir, 'mountd.pid');
      writeFileSync(pidFile, `${process.pid}\n`);
      const live = new Runner({ dryRun: true });
      expect(await reloadMountd(live, pidFile)).toBe('mountd');
      expect(live.scriptText()).toContain('service mountd onereload\n');
      writeFileSync(pidFile, '999999999\n');
      for (const file of [pidFile, join(dir, 'none.pid')]) {
        const dead = new Runner({ dryRun: true });
        expect(await reloadMountd(dead, file)).toBeUndefined();
        expect(dead.scriptText()).toContain(`# mountd is not running (no live pid in ${file}); the exports apply when it starts\n`);
        expect(dead.scriptText()).not.toContain('service mountd');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('marked blocks', () => {
  const user = '# my own exports\n/usr   -ro   -alldirs\t10.0.0.1\n\n  # odd spacing stays\n/home -maproot=nobody';
  it('are added, replaced and removed while the user lines stay byte-identical', () => {
    const one = setBlock(user, 'zroot/ROOT/head', '/ROOT/head\n');
    expect(one.startsWith(user)).toBe(true);
    const two = setBlock(one, 'zroot/be/files', '/be/files\n');
    const replaced = setBlock(two, 'zroot/ROOT/head', '/ROOT/head -ro\n/ROOT/head/tmp -ro\n');
    expect(listBlocks(replaced).map((b) => [b.id, b.body])).toEqual([
      ['zroot/ROOT/head', '/ROOT/head -ro\n/ROOT/head/tmp -ro\n'],
      ['zroot/be/files', '/be/files\n'],
    ]);
    expect(userText(replaced)).toBe(`${user}\n`);
    const removed = setBlock(setBlock(replaced, 'zroot/be/files', null), 'zroot/ROOT/head', null);
    expect(removed).toBe(`${user}\n`);
    // a block in the middle of user lines keeps its place and its neighbours
    const middle = '# a\n# be:begin x\nold\n# be:end x\n# b\n';
    expect(setBlock(middle, 'x', 'new\n')).toBe('# a\n# be:begin x\nnew\n# be:end x\n# b\n');
    expect(setBlock(middle, 'x', null)).toBe('# a\n# b\n');
  });

  it('refuse a damaged file instead of guessing', () => {
    expect(() => setBlock('# be:begin x\n/a\n', 'y', '/b\n', '/etc/exports')).toThrow(/\/etc\/exports: block 'x' has no '# be:end x' line/);
  });
});

describe('guest fstab', () => {
  it('matches the talk and parses back', () => {
    const text = nfsFstabBlock('192.168.2.1', '/be/head', ['/tmp', '/usr/home', '/var/log'], 'rw,noatime,async');
    expect(text).toBe(golden('share-fstab.txt'));
    expect(parseFstab(text).map((e) => [e.device, e.mountpoint, e.fstype, e.options, e.dump, e.pass])).toEqual([
      ['192.168.2.1:/be/head/tmp', '/tmp', 'nfs', 'rw,noatime,async', '0', '0'],
      ['192.168.2.1:/be/head/usr/home', '/usr/home', 'nfs', 'rw,noatime,async', '0', '0'],
      ['192.168.2.1:/be/head/var/log', '/var/log', 'nfs', 'rw,noatime,async', '0', '0'],
    ]);
  });
});

describe('nfs-ganesha exports', () => {
  const spec = makeShareSpec({ network: ['192.168.2.0/24'], host: ['10.0.0.7'], maproot: 'root' });
  it('one EXPORT per file system, ids kept for known paths and fresh ones skip used ids', () => {
    const text = ganeshaBlock(
      [{ path: '/ROOT/head', pseudo: '/ROOT/head' }, { path: '/ROOT/head/var/log', pseudo: '/ROOT/head/var/log' }],
      spec,
      '',
      new Map([['/ROOT/head', 1000]]),
      new Set([1001]),
    );
    expect(text).toBe(golden('share-ganesha.txt'));
    expect(exportIds(text)).toEqual(new Map([['/ROOT/head', 1000], ['/ROOT/head/var/log', 1002]]));
  });

  it('maps -maproot to Squash and Anonymous_Uid', () => {
    const passwd = 'root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n';
    expect(squashFor(makeShareSpec({}), passwd)).toEqual({ squash: 'Root_Squash' });
    expect(squashFor(makeShareSpec({ maproot: 'root' }), passwd)).toEqual({ squash: 'No_Root_Squash' });
    expect(squashFor(makeShareSpec({ maproot: 'nobody' }), passwd)).toEqual({ squash: 'Root_Squash', anonUid: 65534, anonGid: 65534 });
    expect(squashFor(makeShareSpec({ maproot: '1001:20' }), passwd)).toEqual({ squash: 'Root_Squash', anonUid: 1001, anonGid: 20 });
    expect(() => squashFor(makeShareSpec({ maproot: 'ghost' }), passwd)).toThrow(/unknown maproot user 'ghost'/);
  });

  it('pseudo paths hang below the V4 root; includes are recognised', () => {
    expect(pseudoPath('/ROOT/head/var', '/ROOT')).toBe('/head/var');
    expect(pseudoPath('/ROOT', '/ROOT')).toBe('/');
    expect(pseudoPath('/x', undefined)).toBe('/x');
    expect(includesFile('NFS_CORE_PARAM {}\n%include "/etc/ganesha/be-exports.conf"\n', '/etc/ganesha/be-exports.conf')).toBe(true);
    expect(includesFile('#%include "/etc/ganesha/be-exports.conf"\n', '/etc/ganesha/be-exports.conf')).toBe(false);
  });
});

describe('unified diff for --dry-run', () => {
  it('shows added and removed lines with context', () => {
    const d = unifiedDiff('a\nb\nc\n', 'a\nc\nd\n', 'old', 'new');
    expect(d).toBe('--- old\n+++ new\n@@ -1,3 +1,3 @@\n a\n-b\n c\n+d\n');
    expect(unifiedDiff('same\n', 'same\n', 'a', 'b')).toBe('');
  });
});
