import { BeError } from '../sys/errors.js';
import { readConfigFile } from '../sys/configfile.js';
import { render, type RenderOptions } from '../render/index.js';
import { loadLayout } from '../be/layouts.js';
import { checkPoolName } from '../zfs/names.js';
import { checkHostname, parseRcPairs, type RcEntry } from './guest.js';

/**
 * bsdinstall(8) scripts ("installerconfig"): a preamble of variables that bsdinstall's
 * `script` target sources (ZFSBOOT_* for zfsboot, PARTITIONS for scriptedpart, DISTRIBUTIONS,
 * BSDINSTALL_DISTSITE/DISTDIR, nonInteractive), then a `#!/bin/sh` part it runs chrooted in
 * the new system. Every value is checked here; the template only lays them out.
 *
 * Follows freebsd-src usr.sbin/bsdinstall/scripts/script (the file is split at the first `#!`
 * line; the preamble is sourced, zfsboot or scriptedpart runs, the sets are extracted, then the
 * `#!` part runs under chroot with devfs mounted by scripts/mount and the new pool still
 * imported; the pool is exported only after it), usr.sbin/bsdinstall/scripts/zfsboot (the
 * ZFSBOOT_* variables and the ZFSBOOT_DATASETS format; which datasets it makes canmount=noauto;
 * the GELI passphrase prompt) and usr.sbin/bsdconfig/password/share/password.subr
 * (f_dialog_input_password). Pool names follow src/zfs/names.ts.
 */

export type Vdev = 'stripe' | 'mirror' | 'raid10' | 'raidz1' | 'raidz2' | 'raidz3';
const VDEV_MIN: Record<Vdev, number> = { stripe: 1, mirror: 2, raid10: 4, raidz1: 3, raidz2: 4, raidz3: 5 };
const SCHEMES = ['GPT', 'MBR', 'GPT + Active', 'GPT + Lenovo Fix'];
const BOOT_TYPES = ['BIOS', 'UEFI', 'BIOS+UEFI'];
const UFS_SCHEMES = ['GPT', 'MBR', 'BSD', 'APM', 'VTOC8'];
const PART_TYPES = ['freebsd-ufs', 'freebsd-swap', 'freebsd-boot', 'freebsd-zfs', 'efi', 'freebsd', 'mbr', 'apple-boot'];

export interface UfsPartition {
  size: string;
  type: string;
  mount?: string;
}

export interface User {
  name: string;
  uid?: number;
  comment?: string;
  groups: string[];
  shell: string;
  sshKeys: string[];
  passwordHash?: string;
}

export interface InstallerConfig {
  fs: 'zfs' | 'ufs';
  disks: string[];
  zfs: {
    vdev: Vdev;
    pool: string;
    beroot: string;
    bootfs: string;
    scheme: string;
    bootType?: string;
    swap: string;
    force4k: boolean;
    layout: string;
    poolOptions?: string;
  };
  ufs: { scheme: string; partitions: UfsPartition[] };
  distributions: string[];
  distsite?: string;
  distdir?: string;
  hostname?: string;
  rc: RcEntry[];
  users: User[];
  packages: string[];
  rootPasswordHash?: string;
}

/** What a config file or flags may say (before defaults and checks). */
export type RawConfig = Record<string, unknown>;

const DISK = /^[a-z]+[0-9]+$/;
const SIZE = /^[0-9]+(\.[0-9]+)?[bkmgtpeBKMGTPE]?$/;
const COMPONENT = /^[A-Za-z0-9][A-Za-z0-9_.:-]*$/;
const USER = /^[a-z_][a-z0-9_-]{0,31}$/;
const PKG = /^[A-Za-z0-9][A-Za-z0-9_.+@/-]*$/;
const SSH_KEY = /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\n\r]*)?$/;
const HASH = /^(\*|\$[0-9a-z]+\$[./A-Za-z0-9$=,]+)$/;
const SHELL = /^\/[A-Za-z0-9_./-]+$/;
const PATH = /^\/([A-Za-z0-9_.+-]+\/?)*$/;
const URL_RE = /^(https?|ftp):\/\/[A-Za-z0-9_.:@%+/~=-]+$/;
const PROPERTY = /^[a-z][a-z0-9_:.]*=[A-Za-z0-9_.:/@+-]+$/;

function bad(what: string, value: unknown, hint = ''): BeError {
  return new BeError(`installerconfig: bad ${what} '${typeof value === 'string' ? value : JSON.stringify(value)}'${hint ? ` (${hint})` : ''}`);
}

function str(raw: RawConfig, key: string, what: string): string | undefined {
  const v = raw[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' && typeof v !== 'number') throw bad(what, v, 'expected a string');
  return String(v);
}

function list(raw: RawConfig, key: string, what: string): string[] | undefined {
  const v = raw[key];
  if (v === undefined || v === null) return undefined;
  const items = typeof v === 'string' ? v.split(/[\s,]+/).filter(Boolean) : v;
  if (!Array.isArray(items) || items.some((x) => typeof x !== 'string')) throw bad(what, v, 'expected a list of strings');
  return items as string[];
}

function obj(raw: RawConfig, key: string): RawConfig {
  const v = raw[key];
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw bad(key, v, 'expected a mapping');
  return v as RawConfig;
}

function bool(raw: RawConfig, key: string, what: string, fallback: boolean): boolean {
  const v = raw[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw bad(what, v, 'expected true or false');
  return v;
}

function checkSize(value: string, what: string): string {
  if (!SIZE.test(value)) throw bad(what, value, 'a number with an optional k/m/g/t suffix, e.g. 2g');
  return value;
}

const KNOWN_TOP = ['fs', 'disks', 'zfs', 'ufs', 'distributions', 'distsite', 'distdir', 'hostname', 'rc', 'users', 'packages', 'rootPasswordHash'];

/** Check a raw config (file merged with flags) and fill in bsdinstall's defaults. */
export function validateInstallerConfig(raw: RawConfig): InstallerConfig {
  for (const key of Object.keys(raw)) if (!KNOWN_TOP.includes(key)) throw new BeError(`installerconfig: unknown setting '${key}' (known: ${KNOWN_TOP.join(', ')})`);
  const fs = str(raw, 'fs', 'filesystem') ?? 'zfs';
  if (fs !== 'zfs' && fs !== 'ufs') throw bad('filesystem', fs, 'zfs or ufs');
  const disks = list(raw, 'disks', 'disk list') ?? [];
  if (disks.length === 0) throw new BeError('installerconfig: no disks given (disks: [ada0] or --disk ada0)');
  for (const d of disks) if (!DISK.test(d)) throw bad('disk device name', d, 'a device such as ada0, da1, nvd0, vtbd0');
  if (new Set(disks).size !== disks.length) throw bad('disk list', disks.join(' '), 'a disk is listed twice');

  const z = obj(raw, 'zfs');
  for (const key of Object.keys(z)) if (!['vdev', 'pool', 'beroot', 'bootfs', 'scheme', 'bootType', 'swap', 'geli', 'force4k', 'layout', 'poolOptions'].includes(key)) throw new BeError(`installerconfig: unknown zfs setting '${key}'`);
  const vdev = (str(z, 'vdev', 'vdev type') ?? 'stripe') as Vdev;
  if (!(vdev in VDEV_MIN)) throw bad('vdev type', vdev, 'stripe, mirror, raid10, raidz1, raidz2, raidz3');
  const pool = str(z, 'pool', 'pool name') ?? 'zroot';
  try {
    checkPoolName(pool);
  } catch (error) {
    // "invalid pool name 'X': why" → the why
    throw bad('pool name', pool, (error as Error).message.replace(/^invalid pool name '.*?': /, ''));
  }
  const beroot = str(z, 'beroot', 'BE root name') ?? 'ROOT';
  if (!COMPONENT.test(beroot)) throw bad('BE root name', beroot);
  const bootfs = str(z, 'bootfs', 'boot environment name') ?? 'default';
  if (!COMPONENT.test(bootfs)) throw bad('boot environment name', bootfs);
  const scheme = str(z, 'scheme', 'partition scheme') ?? 'GPT';
  if (!SCHEMES.includes(scheme)) throw bad('partition scheme', scheme, SCHEMES.join(', '));
  const bootType = str(z, 'bootType', 'boot type');
  if (bootType !== undefined && !BOOT_TYPES.includes(bootType)) throw bad('boot type', bootType, BOOT_TYPES.join(', '));
  if (scheme !== 'GPT' && bootType !== undefined && bootType !== 'BIOS') throw bad('boot type', bootType, `${scheme} boots BIOS only`);
  const swap = checkSize(str(z, 'swap', 'swap size') ?? '2g', 'swap size');
  const layout = str(z, 'layout', 'layout') ?? 'freebsd';
  // zfsboot reads the GELI passphrase only from a dialog(1) password box
  // (f_dialog_input_password, even with nonInteractive) and from no variable or file, so a
  // scripted install with GELI stops at the console. Refuse it rather than write that script.
  if (bool(z, 'geli', 'geli setting', false)) {
    throw new BeError("installerconfig: 'zfs.geli: true' (--geli) cannot be scripted: bsdinstall's zfsboot asks for the GELI passphrase on the console and reads it from no variable or file");
  }
  if (fs === 'zfs') {
    try {
      loadLayout(layout);
    } catch (error) {
      throw new BeError(`installerconfig: ${(error as Error).message}`);
    }
  }
  const poolOptions = str(z, 'poolOptions', 'pool options');
  if (poolOptions !== undefined && !/^(-O [a-z][a-z0-9_:.]*=[A-Za-z0-9_.:/@+-]+ ?)*$/.test(poolOptions.trim())) throw bad('pool options', poolOptions, "'-O prop=value …'");
  if (fs === 'zfs') {
    const min = VDEV_MIN[vdev];
    if (disks.length < min) throw bad(`disk count for ${vdev}`, String(disks.length), `${vdev} needs at least ${min} disks`);
    if (vdev === 'raid10' && disks.length % 2 !== 0) throw bad('disk count for raid10', String(disks.length), 'raid10 needs an even number of disks');
  }

  const u = obj(raw, 'ufs');
  const ufsScheme = str(u, 'scheme', 'UFS partition scheme') ?? 'GPT';
  if (!UFS_SCHEMES.includes(ufsScheme)) throw bad('UFS partition scheme', ufsScheme, UFS_SCHEMES.join(', '));
  const rawParts = u.partitions ?? [
    { size: 'auto', type: 'freebsd-ufs', mount: '/' },
  ];
  if (!Array.isArray(rawParts) || rawParts.length === 0) throw bad('UFS partitions', rawParts, 'a list of {size, type, mount}');
  const partitions: UfsPartition[] = rawParts.map((p: unknown) => {
    if (typeof p !== 'object' || p === null) throw bad('UFS partition', p);
    const q = p as RawConfig;
    const size = str(q, 'size', 'partition size') ?? 'auto';
    if (size !== 'auto') checkSize(size, 'partition size');
    const type = str(q, 'type', 'partition type') ?? 'freebsd-ufs';
    if (!PART_TYPES.includes(type)) throw bad('partition type', type, PART_TYPES.join(', '));
    const mount = str(q, 'mount', 'mount point');
    if (mount !== undefined && !PATH.test(mount)) throw bad('mount point', mount);
    if (mount !== undefined && type !== 'freebsd-ufs' && type !== 'efi') throw bad('mount point', mount, `${type} partitions are not mounted`);
    return { size, type, mount };
  });
  if (fs === 'ufs') {
    if (disks.length > 1) throw bad('disk list', disks.join(' '), 'a UFS root goes on one disk');
    if (!partitions.some((p) => p.mount === '/')) throw new BeError("installerconfig: UFS partitions have no '/' (add { size: auto, type: freebsd-ufs, mount: / })");
    const autos = partitions.filter((p) => p.size === 'auto').length;
    if (autos > 1) throw bad('partition size', 'auto', "only one partition can take the rest ('auto')");
    if (partitions[partitions.length - 1].size !== 'auto' && autos === 1) throw bad('partition size', 'auto', "'auto' must be the last partition");
    const mounts = partitions.map((p) => p.mount).filter(Boolean);
    if (new Set(mounts).size !== mounts.length) throw bad('mount point', mounts.join(' '), 'a mount point is used twice');
  }

  const distributions = (list(raw, 'distributions', 'distribution list') ?? ['kernel', 'base']).map((d) => d.replace(/\.txz$/, ''));
  for (const d of distributions) if (!/^[a-z][a-z0-9_-]*$/.test(d)) throw bad('distribution', d);
  if (!distributions.includes('base')) throw bad('distribution list', distributions.join(','), 'base is required');
  const distsite = str(raw, 'distsite', 'BSDINSTALL_DISTSITE');
  if (distsite !== undefined && !URL_RE.test(distsite)) throw bad('BSDINSTALL_DISTSITE', distsite, 'an http(s) or ftp URL');
  const distdir = str(raw, 'distdir', 'BSDINSTALL_DISTDIR');
  if (distdir !== undefined && !PATH.test(distdir)) throw bad('BSDINSTALL_DISTDIR', distdir, 'an absolute path');

  const hostname = str(raw, 'hostname', 'hostname');
  if (hostname !== undefined) {
    try {
      checkHostname(hostname);
    } catch {
      throw bad('hostname', hostname);
    }
  }
  const rcRaw = raw.rc ?? {};
  let rc: RcEntry[];
  try {
    rc = parseRcPairs(Array.isArray(rcRaw) ? (rcRaw as string[]) : (rcRaw as Record<string, string>));
  } catch (error) {
    throw new BeError(`installerconfig: ${(error as Error).message}`);
  }

  const usersRaw = raw.users ?? [];
  if (!Array.isArray(usersRaw)) throw bad('users', usersRaw, 'a list');
  const users: User[] = usersRaw.map((x: unknown) => {
    if (typeof x !== 'object' || x === null) throw bad('user', x);
    const q = x as RawConfig;
    for (const key of Object.keys(q)) if (!['name', 'uid', 'comment', 'groups', 'shell', 'sshKeys', 'passwordHash'].includes(key)) throw new BeError(`installerconfig: unknown user setting '${key}'`);
    const name = str(q, 'name', 'user name') ?? '';
    if (!USER.test(name) || name === 'root') throw bad('user name', name);
    const uidText = str(q, 'uid', 'uid');
    const uid = uidText === undefined ? undefined : Number(uidText);
    if (uid !== undefined && (!Number.isInteger(uid) || uid < 1000 || uid > 65533)) throw bad('uid', uidText, '1000-65533');
    const comment = str(q, 'comment', 'user comment');
    if (comment !== undefined && /[:\n\r]/.test(comment)) throw bad('user comment', comment, "no ':' or line breaks");
    const groups = list(q, 'groups', 'group list') ?? [];
    for (const g of groups) if (!USER.test(g)) throw bad('group name', g);
    const shell = str(q, 'shell', 'shell') ?? '/bin/sh';
    if (!SHELL.test(shell)) throw bad('shell', shell);
    const sshKeys = list(q, 'sshKeys', 'ssh key list') ?? [];
    // list() splits strings on spaces; keys must come as a list of whole lines.
    const keys = typeof q.sshKeys === 'string' ? [q.sshKeys as string] : sshKeys;
    for (const k of keys) if (!SSH_KEY.test(k)) throw bad('ssh key', k.length > 40 ? `${k.slice(0, 40)}…` : k, 'type base64 [comment] on one line');
    const passwordHash = str(q, 'passwordHash', 'password hash');
    if (passwordHash !== undefined && !HASH.test(passwordHash)) throw bad('password hash', passwordHash, 'a crypt(3) hash such as $6$salt$…, or *');
    return { name, uid, comment, groups, shell, sshKeys: keys, passwordHash };
  });
  const names = users.map((x) => x.name);
  if (new Set(names).size !== names.length) throw bad('users', names.join(' '), 'a user is listed twice');
  const packages = list(raw, 'packages', 'package list') ?? [];
  for (const p of packages) if (!PKG.test(p)) throw bad('package name', p);
  const rootPasswordHash = str(raw, 'rootPasswordHash', 'root password hash');
  if (rootPasswordHash !== undefined && !HASH.test(rootPasswordHash)) throw bad('root password hash', rootPasswordHash, 'a crypt(3) hash such as $6$salt$…, or *');

  return {
    fs,
    disks,
    zfs: { vdev, pool, beroot, bootfs, scheme, bootType, swap, force4k: bool(z, 'force4k', 'force4k setting', true), layout, poolOptions },
    ufs: { scheme: ufsScheme, partitions },
    distributions,
    distsite,
    distdir,
    hostname,
    rc,
    users,
    packages: [...new Set(packages)],
    rootPasswordHash,
  };
}

/** What zfsbootDatasets gives the template. */
export interface ZfsbootDatasets {
  /** ZFSBOOT_DATASETS lines: the BE root (mountpoint=none), the BE and its children. */
  lines: Array<{ path: string; options: string }>;
  /** Every dataset of the boot environment that must not mount by itself (the BE and its children). */
  canmountNoauto: string[];
  /** The layout's canmount=off datasets (they only hold children). */
  canmountOff: string[];
}

/**
 * ZFSBOOT_DATASETS lines for the BE root and `be`'s layout nested under the boot environment,
 * and the canmount settings the post-install part makes.
 *
 * zfsboot (usr.sbin/bsdinstall/scripts/zfsboot, zfs_create_boot) creates each line with
 * `zfs create -o …` (so every child is mounted under the install root while the sets are
 * extracted into it), and afterwards sets canmount=noauto: older versions on
 * `$ZFSBOOT_BEROOT_NAME/$ZFSBOOT_BOOTFS_NAME` alone, newer ones on every line under it,
 * including the canmount=off ones. Either way the layout's canmount only holds after the post-install part has
 * set it on every dataset of the BE; the pool is still imported then (scripts/script exports it
 * after the chroot part). canmount=noauto does not unmount a mounted dataset, so the install
 * finishes as it began.
 */
export function zfsbootDatasets(cfg: InstallerConfig): ZfsbootDatasets {
  let layout;
  try {
    layout = loadLayout(cfg.zfs.layout);
  } catch (error) {
    throw new BeError(`installerconfig: ${(error as Error).message}`);
  }
  const be = `/${cfg.zfs.beroot}/${cfg.zfs.bootfs}`;
  const lines = [{ path: `/${cfg.zfs.beroot}`, options: 'mountpoint=none' }];
  const canmountNoauto: string[] = [];
  const canmountOff: string[] = [];
  for (const d of layout.datasets) {
    const path = d.path === '' ? be : `${be}/${d.path}`;
    const props = { ...d.properties };
    if (d.path === '') props.mountpoint = '/';
    // Created mounted (the sets are extracted into it), made noauto after the extraction.
    if (props.canmount === 'noauto') delete props.canmount;
    (props.canmount === 'off' ? canmountOff : canmountNoauto).push(`${cfg.zfs.pool}${path}`);
    const options = Object.entries(props)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    for (const o of options ? options.split(',') : []) if (!PROPERTY.test(o)) throw new BeError(`installerconfig: layout '${cfg.zfs.layout}' has a property zfsboot cannot take: '${o}'`);
    lines.push({ path, options });
  }
  return { lines, canmountNoauto, canmountOff };
}

/** Render the script. */
export function renderInstallerConfig(cfg: InstallerConfig, opts: RenderOptions = {}): string {
  const zfs = cfg.fs === 'zfs';
  const datasets: ZfsbootDatasets = zfs ? zfsbootDatasets(cfg) : { lines: [], canmountNoauto: [], canmountOff: [] };
  const width = Math.max(0, ...datasets.lines.map((l) => l.path.length)) + 2;
  const partitions = `${cfg.disks[0]} ${cfg.ufs.scheme} { ${cfg.ufs.partitions.map((p) => [p.size, p.type, p.mount].filter(Boolean).join(' ')).join(', ')} }`;
  const text = render(
    'installerconfig',
    {
      zfs,
      cfg,
      disks: cfg.disks.join(' '),
      distributions: cfg.distributions.map((d) => `${d}.txz`).join(' '),
      datasets: datasets.lines.map((l) => ({ path: l.options ? l.path.padEnd(width) : l.path, options: l.options })),
      canmountNoauto: datasets.canmountNoauto,
      canmountOff: datasets.canmountOff,
      partitions,
      force4k: cfg.zfs.force4k ? '1' : '',
    },
    opts,
  );
  const post = postInstallPart(text);
  if (post.split('\n').slice(1).some((l) => l.startsWith('#!'))) throw new BeError('installerconfig: a value starts a line with #!, which would split the script');
  return text;
}

/** The part of a bsdinstall script after the first `#!` line (what bsdinstall runs chrooted). */
export function postInstallPart(script: string): string {
  const lines = script.split('\n');
  const at = lines.findIndex((l) => l.startsWith('#!'));
  return at < 0 ? '' : lines.slice(at).join('\n');
}

export function preamblePart(script: string): string {
  const lines = script.split('\n');
  const at = lines.findIndex((l) => l.startsWith('#!'));
  return (at < 0 ? lines : lines.slice(0, at)).join('\n');
}

/** Command-line flags as a raw config that overrides the file. */
export function flagsToConfig(opts: Record<string, unknown>): RawConfig {
  const out: RawConfig = {};
  const zfs: RawConfig = {};
  const disks = opts.disk as string[] | undefined;
  if (disks && disks.length) out.disks = disks;
  if (opts.fs !== undefined) out.fs = opts.fs;
  if (opts.vdev !== undefined) zfs.vdev = opts.vdev;
  if (opts.pool !== undefined) zfs.pool = opts.pool;
  if (opts.swap !== undefined) zfs.swap = opts.swap;
  if (opts.geli) zfs.geli = true;
  if (opts.layout !== undefined) zfs.layout = opts.layout;
  if (Object.keys(zfs).length) out.zfs = zfs;
  if (opts.dist !== undefined) out.distributions = opts.dist;
  if (opts.distsite !== undefined) out.distsite = opts.distsite;
  if (opts.hostname !== undefined) out.hostname = opts.hostname;
  const rc = opts.rc as string[] | undefined;
  if (rc && rc.length) out.rc = rc;
  const pkgs = opts.package as string[] | undefined;
  if (pkgs && pkgs.length) out.packages = pkgs;
  return out;
}

/** Merge: flags override the file; rc entries and packages add up. */
export function mergeConfig(file: RawConfig, flags: RawConfig): RawConfig {
  const out: RawConfig = { ...file, ...flags };
  if (file.zfs || flags.zfs) out.zfs = { ...((file.zfs as RawConfig) ?? {}), ...((flags.zfs as RawConfig) ?? {}) };
  if (flags.rc) {
    const asList = (rc: unknown): string[] =>
      rc === undefined || rc === null ? [] : Array.isArray(rc) ? (rc as string[]) : Object.entries(rc as Record<string, unknown>).map(([k, v]) => `${k}=${String(v)}`);
    out.rc = [...asList(file.rc), ...asList(flags.rc)];
  }
  if (flags.packages) out.packages = [...(((file.packages as string[]) ?? [])), ...(flags.packages as string[])];
  return out;
}

export async function loadInstallerConfig(file: string | undefined, flags: RawConfig): Promise<InstallerConfig> {
  // JSON or YAML, told apart by the one rule of src/sys/configfile.ts
  const fromFile: RawConfig = file ? await readConfigFile(file) : {};
  return validateInstallerConfig(mergeConfig(fromFile, flags));
}
