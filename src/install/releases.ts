import { BeError } from '../sys/errors.js';

/**
 * FreeBSD releases and where each era keeps its distribution sets. This is the one table that
 * maps (source, os, arch, branch, release) to candidate directory URLs; everything else asks it.
 */

export type Branch = 'release' | 'stable' | 'current';

/** How a release ships its sets. */
export type Era =
  /** 9.0 and later: `<set>.txz` listed with sha256 in MANIFEST. */
  | 'txz'
  /** 5.x – 8.x: `<set>/<prefix>.aa …` pieces, checksummed in the set's CHECKSUM.SHA256. */
  | 'split-sha256'
  /** 5.0 – 5.4: as above with CHECKSUM.MD5. */
  | 'split-md5';

export interface ArchInfo {
  /** hw.machine: the first directory level (amd64, i386, arm64). */
  machine: string;
  /** hw.machine_arch: the second level of bsdinstall's DISTSITE form (amd64, i386, aarch64). */
  machineArch: string;
  /** First and last release built for it. */
  first: string;
  last?: string;
}

/** Architectures `be install` knows, with the range of releases shipped for each. */
export const ARCHES: Record<string, ArchInfo> = {
  amd64: { machine: 'amd64', machineArch: 'amd64', first: '5.1' },
  i386: { machine: 'i386', machineArch: 'i386', first: '5.0', last: '14.3' },
  arm64: { machine: 'arm64', machineArch: 'aarch64', first: '11.0' },
};
ARCHES.aarch64 = ARCHES.arm64;

/** Every FreeBSD release (X.Y[.Z]) from 5.0 on, in order. */
const RELEASES = [
  '5.0', '5.1', '5.2', '5.2.1', '5.3', '5.4', '5.5',
  '6.0', '6.1', '6.2', '6.3', '6.4',
  '7.0', '7.1', '7.2', '7.3', '7.4',
  '8.0', '8.1', '8.2', '8.3', '8.4',
  '9.0', '9.1', '9.2', '9.3',
  '10.0', '10.1', '10.2', '10.3', '10.4',
  '11.0', '11.1', '11.2', '11.3', '11.4',
  '12.0', '12.1', '12.2', '12.3', '12.4',
  '13.0', '13.1', '13.2', '13.3', '13.4', '13.5',
  '14.0', '14.1', '14.2', '14.3',
  '15.0',
];

const VERSION = /^(\d+)\.(\d+)(?:\.(\d+))?$/;

function parts(v: string): number[] {
  const m = VERSION.exec(v);
  if (!m) throw new BeError(`bad release version '${v}' (expected X.Y, e.g. 11.1)`);
  return [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
}

/** Order two release versions numerically (9.0 < 10.0 < 10.1 < 10.1.1). */
export function compareVersions(a: string, b: string): number {
  const pa = parts(a);
  const pb = parts(b);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i] - pb[i];
  return 0;
}

export function archInfo(arch: string): ArchInfo {
  const info = ARCHES[arch];
  if (!info) throw new BeError(`unknown architecture '${arch}' (known: amd64, i386, arm64)`);
  return info;
}

/** The releases built for ARCH, oldest first. */
export function knownReleases(arch: string): string[] {
  const info = archInfo(arch);
  return RELEASES.filter((v) => compareVersions(v, info.first) >= 0 && (!info.last || compareVersions(v, info.last) <= 0));
}

/** Expand `A..B` (inclusive) or a comma list into the known releases of ARCH, in order. */
export function expandReleases(arch: string, spec: string): string[] {
  const known = knownReleases(arch);
  const out: string[] = [];
  for (const piece of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const range = /^([\d.]+)\.\.([\d.]+)$/.exec(piece);
    if (range) {
      const [lo, hi] = [range[1], range[2]];
      parts(lo);
      parts(hi);
      out.push(...known.filter((v) => compareVersions(v, lo) >= 0 && compareVersions(v, hi) <= 0));
    } else {
      parts(piece);
      if (!known.includes(piece)) throw new BeError(`release '${piece}' is not known for ${arch}`);
      out.push(piece);
    }
  }
  return [...new Set(out)].sort(compareVersions);
}

/** The dist-set format of a release version (X.Y, optionally with a -RC1 style suffix). */
export function eraOf(version: string): Era {
  const base = version.replace(/-.*$/, '');
  if (compareVersions(base, '9.0') >= 0) return 'txz';
  if (compareVersions(base, '5.5') >= 0) return 'split-sha256';
  return 'split-md5';
}

export interface ReleaseQuery {
  /** Mirror root holding `FreeBSD/` and `FreeBSD-Archive/` (a pub/ tree); undefined: official sites. */
  source?: string;
  os: string;
  arch: string;
  branch: Branch;
  release: string;
}

export interface Candidate {
  /** Directory URL or path, without trailing slash. */
  dir: string;
  /** Directory name such as 11.1-RELEASE. */
  name: string;
  era: Era;
}

/** The official download site (a pub/FreeBSD tree) and the archive of old releases. */
export const OFFICIAL = {
  current: 'https://download.freebsd.org/ftp',
  archive: 'http://ftp-archive.freebsd.org/pub/FreeBSD-Archive',
};

const OS_NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;
const RELEASE_ARG = /^(\d+\.\d+(?:\.\d+)?)(?:-([A-Z][A-Z0-9]*))?$/;

/** The directory name of a release on a branch: 11.1-RELEASE, 14.3-STABLE, 16.0-CURRENT, 14.2-RC1. */
export function releaseDirName(branch: Branch, release: string): { name: string; version: string } {
  const m = RELEASE_ARG.exec(release);
  if (!m) throw new BeError(`bad release '${release}' (expected X.Y such as 11.1, or X.Y-RC1)`);
  const version = m[1];
  const suffix = m[2];
  if (suffix) return { name: `${version}-${suffix}`, version };
  const tag = branch === 'release' ? 'RELEASE' : branch === 'stable' ? 'STABLE' : 'CURRENT';
  return { name: `${version}-${tag}`, version };
}

export function checkBranch(branch: string): Branch {
  if (branch === 'release' || branch === 'stable' || branch === 'current') return branch;
  throw new BeError(`bad branch '${branch}' (expected release, stable or current)`);
}

function join(root: string, ...segments: string[]): string {
  return [root.replace(/\/+$/, ''), ...segments].join('/');
}

/**
 * Directories to look for a release, in order. Releases: bsdinstall's DISTSITE form
 * (releases/<machine>/<machine_arch>/X.Y-RELEASE, 9.0 on), the plain form
 * (releases/<arch>/X.Y-RELEASE), then the archive (FreeBSD-Archive/old-releases/<arch>/X.Y-RELEASE).
 * Snapshots (stable, current) live under snapshots/ in the same two forms.
 */
export function candidates(q: ReleaseQuery): Candidate[] {
  if (!OS_NAME.test(q.os)) throw new BeError(`bad OS name '${q.os}'`);
  const info = archInfo(q.arch);
  const { name, version } = releaseDirName(q.branch, q.release);
  const era = eraOf(version);
  const top = q.source === undefined ? OFFICIAL.current : join(q.source, q.os);
  const archive = q.source === undefined ? OFFICIAL.archive : join(q.source, `${q.os}-Archive`);
  const out: Candidate[] = [];
  if (q.branch === 'release') {
    if (era === 'txz') out.push({ dir: join(top, 'releases', info.machine, info.machineArch, name), name, era });
    out.push({ dir: join(top, 'releases', info.machine, name), name, era });
    out.push({ dir: join(archive, 'old-releases', info.machine, name), name, era });
  } else {
    if (era !== 'txz') throw new BeError(`no ${q.branch} snapshots of ${version}: snapshots exist from 9.0 on`);
    out.push({ dir: join(top, 'snapshots', info.machine, info.machineArch, name), name, era });
    out.push({ dir: join(top, 'snapshots', info.machine, name), name, era });
  }
  return out;
}

/** Where a set lives in a split-era release: kernel is kernels/generic.??, others <set>/<set>.??. */
export function splitSetLayout(set: string): { dir: string; prefix: string; target: string } {
  if (set === 'kernel') return { dir: 'kernels', prefix: 'generic', target: '/boot/kernel' };
  return { dir: set, prefix: set, target: '/' };
}

/** Sets a split-era release can carry (src is left out: its subsets install differently). */
export const SPLIT_SETS = ['base', 'kernel', 'lib32', 'games', 'doc', 'manpages', 'catpages', 'dict', 'info', 'proflibs'];

export function checksumFileOf(era: Era): { file: string; algo: 'md5' | 'sha256' } {
  return era === 'split-md5' ? { file: 'CHECKSUM.MD5', algo: 'md5' } : { file: 'CHECKSUM.SHA256', algo: 'sha256' };
}
