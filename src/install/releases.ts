import { BeError } from '../sys/errors.js';

/**
 * FreeBSD releases and where each era keeps its distribution sets. This is the one table that
 * maps (source, os, arch, branch, release) to candidate directory URLs; everything else asks it.
 *
 * Follows, in freebsd-src: usr.sbin/bsdinstall/scripts/mirrorselect (DISTSITE:
 * <releases|snapshots>/<machine>/<machine_arch>/<uname -r>, snapshots for -ALPHA*, -CURRENT,
 * -STABLE and -PRERELEASE); release/Makefile of 6.x-8.x (release.3 installs each kernel with
 * KODIR=/<KERNCONF>, release.6 tars it from kernels/ as <kernconf>.??, so the tarball is rooted at
 * GENERIC/); release/scripts/kernels-install.sh (unpacks it under ${DESTDIR}/boot); sysinstall's
 * installFixupKernel in usr.sbin/sysinstall/install.c (rm -rf /boot/kernel; mv /boot/GENERIC
 * /boot/kernel) and its DistTable in dist.c (kernels/GENERIC extracted into /boot).
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
  /** First and last release built for it (last: the newest one the table knows). */
  first: string;
  last?: string;
  /** The last branch built for it: no X.Y with a higher X exists. */
  lastMajor?: number;
}

/** Architectures `be install` knows, with the range of releases shipped for each. */
export const ARCHES: Record<string, ArchInfo> = {
  amd64: { machine: 'amd64', machineArch: 'amd64', first: '5.1' },
  // 15.0 retired i386 (its release notes: "The venerable 32-bit hardware platforms i386, armv6,
  // and 32-bit powerpc have been retired"): i386 builds end with the 14 branch.
  i386: { machine: 'i386', machineArch: 'i386', first: '5.0', last: '14.4', lastMajor: 14 },
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
  '14.0', '14.1', '14.2', '14.3', '14.4',
  '15.0',
];

/** The newest release the table knows. */
export const NEWEST_KNOWN = RELEASES[RELEASES.length - 1];

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

/**
 * Where a release keeps its kernel. Before 6.1 it is part of `base` (release/Makefile of 5.x
 * installs it into the base tree); 6.1 to 8.x ship it as `kernels/generic.??`, a tarball rooted
 * at GENERIC/ that goes under /boot and is renamed to /boot/kernel; 9.0 on, `kernel.txz` holds
 * ./boot/kernel itself.
 */
export type KernelLayout = 'in-base' | 'kernels-dir' | 'txz';

/** The first release with a kernels/ distribution (sam's "remove kernel from the base tarball"). */
export const FIRST_KERNELS_DIR = '6.1';

export function kernelLayoutOf(version: string): KernelLayout {
  const base = version.replace(/-.*$/, '');
  if (compareVersions(base, '9.0') >= 0) return 'txz';
  if (compareVersions(base, FIRST_KERNELS_DIR) >= 0) return 'kernels-dir';
  return 'in-base';
}

/** The sets `be install` takes when none are named: base and kernel, or base alone before 6.1. */
export function defaultSets(version: string): string[] {
  return kernelLayoutOf(version) === 'in-base' ? ['base'] : ['base', 'kernel'];
}

/**
 * Check that ARCH was built at all for VERSION (X.Y): one line naming the range where not.
 * Returns whether the table lists the release, so that the caller can say it looks for one it
 * does not know (a release newer than the table) as given.
 */
export function checkArchRelease(arch: string, version: string): boolean {
  const info = archInfo(arch);
  const [major] = parts(version);
  if (compareVersions(version, info.first) < 0) throw new BeError(`there is no ${arch} build of FreeBSD ${version}: ${arch} starts with ${info.first}`);
  if (info.lastMajor !== undefined && major > info.lastMajor) {
    throw new BeError(`there is no ${arch} build of FreeBSD ${version}: ${arch} ends with the ${info.lastMajor}.x branch (${info.lastMajor + 1}.0 retired it)`);
  }
  return RELEASES.includes(version);
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
/** X.Y[.Z], a -TAG such as -RC1, -ALPHA2, -STABLE, and a patch level (-p3) that is dropped. */
const RELEASE_ARG = /^(\d+\.\d+(?:\.\d+)?)(?:-([A-Z][A-Z0-9]*))?(?:-p\d+)?$/;

/**
 * Builds that live under snapshots/ rather than releases/: mirrorselect's
 * `*-ALPHA*|*-CURRENT|*-STABLE|*-PRERELEASE` (BETA and RC builds are under releases/).
 */
const SNAPSHOT_TAG = /^(ALPHA\d*|CURRENT|STABLE|PRERELEASE)$/;

/**
 * The directory name of a release on a branch: 11.1-RELEASE, 14.3-STABLE, 16.0-CURRENT, 14.2-RC1,
 * 15.0-ALPHA1, and whether it is a snapshot (under snapshots/). A -pN patch level is dropped as
 * mirrorselect drops it from `uname -r`: the sets of X.Y-RELEASE-p3 are X.Y-RELEASE's.
 */
export function releaseDirName(branch: Branch, release: string): { name: string; version: string; snapshot: boolean } {
  const m = RELEASE_ARG.exec(release);
  if (!m) throw new BeError(`bad release '${release}' (expected X.Y such as 11.1, or X.Y-RC1)`);
  const version = m[1];
  const suffix = m[2];
  if (suffix) return { name: `${version}-${suffix}`, version, snapshot: SNAPSHOT_TAG.test(suffix) };
  const tag = branch === 'release' ? 'RELEASE' : branch === 'stable' ? 'STABLE' : 'CURRENT';
  return { name: `${version}-${tag}`, version, snapshot: branch !== 'release' };
}

export function checkBranch(branch: string): Branch {
  if (branch === 'release' || branch === 'stable' || branch === 'current') return branch;
  throw new BeError(`bad branch '${branch}' (expected release, stable or current)`);
}

function join(root: string, ...segments: string[]): string {
  return [root.replace(/\/+$/, ''), ...segments].join('/');
}

/**
 * Directories to look for a release, in order. Releases (and their BETA and RC builds):
 * bsdinstall's DISTSITE form (releases/<machine>/<machine_arch>/X.Y-RELEASE, 9.0 on), the plain
 * form (releases/<arch>/X.Y-RELEASE), then the archive
 * (FreeBSD-Archive/old-releases/<arch>/X.Y-RELEASE). Snapshots (-b stable, -b current, and
 * X.Y-ALPHAn, -CURRENT, -STABLE, -PRERELEASE builds, as mirrorselect has it) live under
 * snapshots/ in the same two forms.
 */
export function candidates(q: ReleaseQuery): Candidate[] {
  if (!OS_NAME.test(q.os)) throw new BeError(`bad OS name '${q.os}'`);
  const info = archInfo(q.arch);
  const { name, version, snapshot } = releaseDirName(q.branch, q.release);
  const era = eraOf(version);
  const top = q.source === undefined ? OFFICIAL.current : join(q.source, q.os);
  const archive = q.source === undefined ? OFFICIAL.archive : join(q.source, `${q.os}-Archive`);
  const out: Candidate[] = [];
  if (!snapshot) {
    if (era === 'txz') out.push({ dir: join(top, 'releases', info.machine, info.machineArch, name), name, era });
    out.push({ dir: join(top, 'releases', info.machine, name), name, era });
    out.push({ dir: join(archive, 'old-releases', info.machine, name), name, era });
  } else {
    if (era !== 'txz') throw new BeError(`no snapshot ${name}: snapshots exist from 9.0 on`);
    out.push({ dir: join(top, 'snapshots', info.machine, info.machineArch, name), name, era });
    out.push({ dir: join(top, 'snapshots', info.machine, name), name, era });
  }
  return out;
}

export interface SplitSetLayout {
  /** Directory of the set in the release: base, kernels. */
  dir: string;
  /** Piece prefix: base (base.aa …), generic (generic.aa …). */
  prefix: string;
  /** Directory inside the BE the tarball is unpacked under. */
  target: string;
  /** A directory the tarball makes under TARGET that becomes another one (GENERIC → kernel). */
  rename?: { from: string; to: string };
}

/**
 * Where a set lives in a split-era release and where it goes: the kernel is kernels/generic.??,
 * a tarball rooted at GENERIC/ unpacked under /boot (kernels-install.sh, sysinstall's DistTable
 * "GENERIC" → "/boot") whose /boot/GENERIC then replaces /boot/kernel (installFixupKernel); the
 * others are <set>/<set>.?? unpacked at /.
 */
export function splitSetLayout(set: string): SplitSetLayout {
  if (set === 'kernel') return { dir: 'kernels', prefix: 'generic', target: '/boot', rename: { from: '/boot/GENERIC', to: '/boot/kernel' } };
  return { dir: set, prefix: set, target: '/' };
}

/** Sets a split-era release can carry (src is left out: its subsets install differently). */
export const SPLIT_SETS = ['base', 'kernel', 'lib32', 'games', 'doc', 'manpages', 'catpages', 'dict', 'info', 'proflibs'];

export function checksumFileOf(era: Era): { file: string; algo: 'md5' | 'sha256' } {
  return era === 'split-md5' ? { file: 'CHECKSUM.MD5', algo: 'md5' } : { file: 'CHECKSUM.SHA256', algo: 'sha256' };
}
