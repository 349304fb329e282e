import { describe, expect, it } from 'vitest';
import { candidates, checkArchRelease, compareVersions, defaultSets, eraOf, expandReleases, kernelLayoutOf, knownReleases, releaseDirName, splitSetLayout } from '../../src/install/releases.js';
import { parseChecksums, parseManifest, splitPieces } from '../../src/install/manifest.js';
import { tarExtractArgv } from '../../src/install/extract.js';
import { renderString } from '../../src/render/index.js';
import { guestFiles, parseRcPairs } from '../../src/install/guest.js';

describe('release table', () => {
  it('orders versions numerically', () => {
    expect(['10.0', '9.3', '5.2.1', '5.2', '11.10', '11.2'].sort(compareVersions)).toEqual(['5.2', '5.2.1', '9.3', '10.0', '11.2', '11.10']);
  });

  it('knows the releases of each arch: amd64 from 5.1 to 15.0, i386 from 5.0 to 14.4 (15.0 retired it), arm64 from 11.0', () => {
    expect(knownReleases('amd64')[0]).toBe('5.1');
    expect(knownReleases('amd64').slice(-3)).toEqual(['14.3', '14.4', '15.0']);
    expect(knownReleases('i386')[0]).toBe('5.0');
    expect(knownReleases('i386').at(-1)).toBe('14.4');
    expect(knownReleases('arm64')[0]).toBe('11.0');
    expect(knownReleases('arm64').at(-1)).toBe('15.0');
    expect(knownReleases('amd64')).toContain('11.1');
  });

  it('refuses a release an arch was never built for, and tells a release the table lacks', () => {
    expect(() => checkArchRelease('i386', '15.0')).toThrow('there is no i386 build of FreeBSD 15.0: i386 ends with the 14.x branch (15.0 retired it)');
    expect(() => checkArchRelease('arm64', '10.3')).toThrow('there is no arm64 build of FreeBSD 10.3: arm64 starts with 11.0');
    expect(checkArchRelease('i386', '14.4')).toBe(true);
    expect(checkArchRelease('i386', '14.5')).toBe(false); // a 14.x after the table: looked for as given
    expect(checkArchRelease('amd64', '15.2')).toBe(false);
    expect(checkArchRelease('amd64', '5.2.1')).toBe(true);
  });

  it('expands ranges for the hunt', () => {
    expect(expandReleases('amd64', '9.0..10.1')).toEqual(['9.0', '9.1', '9.2', '9.3', '10.0', '10.1']);
    expect(expandReleases('amd64', '13.5,12.0..12.1')).toEqual(['12.0', '12.1', '13.5']);
    expect(() => expandReleases('amd64', '4.11')).toThrow("release '4.11' is not known for amd64");
  });

  it('tells the set format of each era', () => {
    expect(eraOf('5.4')).toBe('split-md5');
    expect(eraOf('5.5')).toBe('split-sha256');
    expect(eraOf('8.4')).toBe('split-sha256');
    expect(eraOf('9.0')).toBe('txz');
    expect(eraOf('14.2-RC1')).toBe('txz');
  });

  it('keeps the kernel where each era does: in base before 6.1, kernels/GENERIC to 8.x, kernel.txz from 9.0', () => {
    expect(['5.4', '5.5', '6.0', '6.1', '8.4', '9.0'].map(kernelLayoutOf)).toEqual(['in-base', 'in-base', 'in-base', 'kernels-dir', 'kernels-dir', 'txz']);
    expect(defaultSets('5.4')).toEqual(['base']);
    expect(defaultSets('6.0')).toEqual(['base']);
    expect(defaultSets('6.1')).toEqual(['base', 'kernel']);
    expect(defaultSets('14.2-RC1')).toEqual(['base', 'kernel']);
    // kernels/generic.?? unpacks under /boot; its GENERIC/ becomes /boot/kernel
    expect(splitSetLayout('kernel')).toEqual({ dir: 'kernels', prefix: 'generic', target: '/boot', rename: { from: '/boot/GENERIC', to: '/boot/kernel' } });
    expect(splitSetLayout('base')).toEqual({ dir: 'base', prefix: 'base', target: '/' });
  });

  it('names release directories per branch', () => {
    expect(releaseDirName('release', '11.1').name).toBe('11.1-RELEASE');
    expect(releaseDirName('stable', '14.3').name).toBe('14.3-STABLE');
    expect(releaseDirName('current', '16.0').name).toBe('16.0-CURRENT');
    expect(releaseDirName('release', '14.2-RC1').name).toBe('14.2-RC1');
    expect(releaseDirName('release', '14.1-RELEASE-p3')).toEqual({ name: '14.1-RELEASE', version: '14.1', snapshot: false });
  });

  it('puts ALPHA, CURRENT, STABLE and PRERELEASE builds under snapshots/, BETA and RC under releases/ (mirrorselect)', () => {
    const dirs = (release: string) => candidates({ source: '/pub', os: 'FreeBSD', arch: 'amd64', branch: 'release', release }).map((c) => c.dir);
    expect(dirs('15.0-ALPHA1')).toEqual(['/pub/FreeBSD/snapshots/amd64/amd64/15.0-ALPHA1', '/pub/FreeBSD/snapshots/amd64/15.0-ALPHA1']);
    expect(dirs('16.0-CURRENT')).toEqual(['/pub/FreeBSD/snapshots/amd64/amd64/16.0-CURRENT', '/pub/FreeBSD/snapshots/amd64/16.0-CURRENT']);
    expect(dirs('14.3-STABLE')[0]).toBe('/pub/FreeBSD/snapshots/amd64/amd64/14.3-STABLE');
    expect(dirs('14.4-PRERELEASE')[0]).toBe('/pub/FreeBSD/snapshots/amd64/amd64/14.4-PRERELEASE');
    expect(dirs('15.0-BETA2')[0]).toBe('/pub/FreeBSD/releases/amd64/amd64/15.0-BETA2');
    expect(dirs('14.2-RC1')).toEqual([
      '/pub/FreeBSD/releases/amd64/amd64/14.2-RC1',
      '/pub/FreeBSD/releases/amd64/14.2-RC1',
      '/pub/FreeBSD-Archive/old-releases/amd64/14.2-RC1',
    ]);
    expect(() => dirs('8.4-STABLE')).toThrow('no snapshot 8.4-STABLE: snapshots exist from 9.0 on');
  });

  it('looks in the DISTSITE form, the plain form, then the archive', () => {
    expect(candidates({ source: '/pub', os: 'FreeBSD', arch: 'amd64', branch: 'release', release: '11.1' }).map((c) => c.dir)).toEqual([
      '/pub/FreeBSD/releases/amd64/amd64/11.1-RELEASE',
      '/pub/FreeBSD/releases/amd64/11.1-RELEASE',
      '/pub/FreeBSD-Archive/old-releases/amd64/11.1-RELEASE',
    ]);
    expect(candidates({ os: 'FreeBSD', arch: 'arm64', branch: 'release', release: '14.1' })[0].dir).toBe('https://download.freebsd.org/ftp/releases/arm64/aarch64/14.1-RELEASE');
    expect(candidates({ source: 'http://m/pub/', os: 'FreeBSD', arch: 'i386', branch: 'release', release: '5.4' }).map((c) => c.dir)).toEqual([
      'http://m/pub/FreeBSD/releases/i386/5.4-RELEASE',
      'http://m/pub/FreeBSD-Archive/old-releases/i386/5.4-RELEASE',
    ]);
    expect(candidates({ os: 'FreeBSD', arch: 'amd64', branch: 'stable', release: '14.3' }).map((c) => c.dir)).toEqual([
      'https://download.freebsd.org/ftp/snapshots/amd64/amd64/14.3-STABLE',
      'https://download.freebsd.org/ftp/snapshots/amd64/14.3-STABLE',
    ]);
    expect(() => candidates({ os: 'FreeBSD', arch: 'amd64', branch: 'stable', release: '8.4' })).toThrow('no snapshot 8.4-STABLE: snapshots exist from 9.0 on');
  });
});

describe('MANIFEST and CHECKSUM files', () => {
  const sum = 'a'.repeat(64);
  it('parses MANIFEST lines', () => {
    const m = parseManifest(`base.txz\t${sum}\t2001\tbase\t"Base system (MANDATORY)"\ton\nlib32.txz\t${'b'.repeat(64)}\t10\tlib32\t"32-bit"\toff\n`);
    expect(m.map((e) => [e.file, e.name, e.count, e.default])).toEqual([
      ['base.txz', 'base', 2001, true],
      ['lib32.txz', 'lib32', 10, false],
    ]);
    expect(m[0].description).toBe('Base system (MANDATORY)');
  });
  it('refuses a malformed MANIFEST line, naming it', () => {
    expect(() => parseManifest('base.txz nothex\n', 'X/MANIFEST')).toThrow("X/MANIFEST line 1 is not 'file<TAB>sha256<TAB>count…': base.txz nothex");
  });
  it('parses CHECKSUM files and orders split pieces', () => {
    const text = `MD5 (base.ab) = ${'1'.repeat(32)}\nMD5 (base.aa) = ${'2'.repeat(32)}\nMD5 (base.inf) = ${'3'.repeat(32)}\nMD5 (install.sh) = ${'4'.repeat(32)}\n`;
    const sums = parseChecksums(text, 'md5', 'CHECKSUM.MD5');
    expect(splitPieces(sums, 'base')).toEqual(['base.aa', 'base.ab']);
    expect(() => parseChecksums(text, 'sha256', 'CHECKSUM.SHA256')).toThrow('CHECKSUM.SHA256: not a SHA256 line');
  });
});

describe('extraction argv per platform', () => {
  it('GNU tar on Linux keeps modes and numeric owners and skips pax fflags records', () => {
    expect(tarExtractArgv('zfs-fuse', '/c/base.txz', '/mnt')).toEqual(['tar', '-x', '-p', '--numeric-owner', '--warning=no-unknown-keyword', '-f', '/c/base.txz', '-C', '/mnt']);
  });
  it('bsdtar on FreeBSD, with the --no-fflags fallback', () => {
    expect(tarExtractArgv('freebsd', '/c/base.txz', '/mnt')).toEqual(['tar', '-x', '-p', '--numeric-owner', '-f', '/c/base.txz', '-C', '/mnt']);
    expect(tarExtractArgv('freebsd', '/c/base.txz', '/mnt', { noFflags: true })).toContain('--no-fflags');
  });
});

describe('render and guest files', () => {
  it('quotes for sh and rc.conf through helpers', () => {
    expect(renderString('{{sh v}} {{dq v}}', { v: `it's $HOME "x"` })).toBe(`'it'\\''s $HOME "x"' "it's \\$HOME \\"x\\""`);
  });
  it('writes rc.conf, fstab and loader.conf for a ZFS BE', () => {
    const files = guestFiles({ dataset: 'bd/be/test', hostname: 'test', rc: parseRcPairs(['sshd_enable=YES', 'motd="hi"']) });
    const rc = files.find((f) => f.path === '/etc/rc.conf')!.content;
    expect(rc).toContain('hostname="test"\nzfs_enable="YES"\nifconfig_DEFAULT="DHCP"\nsshd_enable="YES"\nmotd="\\"hi\\""\n');
    expect(files.find((f) => f.path === '/boot/loader.conf')!.content).toContain('zfs_load="YES"\n');
    expect(files.find((f) => f.path === '/boot/loader.conf')!.content).not.toContain('bd/be/test');
    expect(files.map((f) => f.path)).toEqual(['/etc/rc.conf', '/etc/fstab', '/boot/loader.conf']);
  });
});
