import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { exportsBlock, parseExports } from '../../src/share/exports.js';
import { nfsFstabBlock, parseFstab } from '../../src/share/fstab.js';
import { ganeshaBlock, exportIds, squashFor, pseudoPath, includesFile } from '../../src/share/ganesha.js';
import { makeShareSpec, parseNetwork } from '../../src/share/spec.js';
import { setBlock, listBlocks, userText } from '../../src/share/blocks.js';
import { unifiedDiff } from '../../src/share/diff.js';

const golden = (name: string) => readFileSync(fileURLToPath(new URL(`golden/${name}`, import.meta.url)), 'utf8');
const PATHS = ['/ROOT/head', '/ROOT/head/tmp', '/ROOT/head/usr/home', '/ROOT/head/var/log'];

describe('exports(5) lines', () => {
  it('match the talk: one line per file system with -maproot, -network and -mask', () => {
    const spec = makeShareSpec({ network: ['192.168.2.0/24'], maproot: 'root' });
    expect(exportsBlock(PATHS, spec)).toBe(golden('share-exports.txt'));
  });

  it('round-trip through the parser', () => {
    const spec = makeShareSpec({ network: ['192.168.2.0/24', '10.1.0.0/16'], host: ['lab1', '10.0.0.7'], maproot: '0:0', ro: true, v4Root: '/ROOT' });
    const parsed = parseExports(exportsBlock(PATHS, spec));
    const v4 = parsed.filter((l) => l.v4);
    expect(v4.map((l) => l.paths[0])).toEqual(['/ROOT', '/ROOT', '/ROOT']);
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
