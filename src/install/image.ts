import { existsSync } from 'node:fs';
import { rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { BeContext } from '../be/context.js';
import { BeError } from '../sys/errors.js';
import { shJoin } from '../sys/shell.js';
import { mergeConfig, readConfigFile, renderInstallerConfig, validateInstallerConfig, type RawConfig } from './installerconfig.js';

/**
 * `be image`: a disk image made by bsdinstall on FreeBSD. The image file is attached as a
 * vnode md(4) disk, bsdinstall runs the rendered script against it, the pool it made is
 * exported and the disk detached; the result boots with bhyve's vmrun.sh.
 * Each FreeBSD program's argv is built in one function below and checked against its manual.
 */

/** truncate(1): `truncate -s size file` makes the sparse image file. */
export function truncateArgv(size: string, file: string): string[] {
  return ['truncate', '-s', size, file];
}

/** mdconfig(8): `mdconfig -a -t vnode -f file -u unit` attaches FILE as md<unit>. */
export function mdconfigAttachArgv(file: string, unit: number): string[] {
  return ['mdconfig', '-a', '-t', 'vnode', '-f', file, '-u', String(unit)];
}

/** mdconfig(8): `mdconfig -d -u unit` detaches md<unit>. */
export function mdconfigDetachArgv(unit: number): string[] {
  return ['mdconfig', '-d', '-u', String(unit)];
}

/** mdconfig(8): `mdconfig -l` lists the attached md devices (md0 md3 …). */
export function mdconfigListArgv(): string[] {
  return ['mdconfig', '-l'];
}

/** bsdinstall(8): `bsdinstall script SCRIPT` runs a scripted installation. */
export function bsdinstallScriptArgv(script: string): string[] {
  return ['bsdinstall', 'script', script];
}

/** zpool(8): `zpool export pool`, so that the image's pool leaves the host before detaching. */
export function zpoolExportArgv(pool: string): string[] {
  return ['zpool', 'export', pool];
}

/** /usr/share/examples/bhyve/vmrun.sh [-m memsize] [-d disk file] vmname */
export function vmrunArgv(image: string, name: string, memory = '2G'): string[] {
  return ['sh', '/usr/share/examples/bhyve/vmrun.sh', '-m', memory, '-d', image, name];
}

/** The lowest md unit not in `mdconfig -l` output. */
export function freeMdUnit(listing: string): number {
  const used = new Set(
    listing
      .split(/\s+/)
      .map((w) => /^md(\d+)$/.exec(w))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1])),
  );
  let unit = 0;
  while (used.has(unit)) unit++;
  return unit;
}

const SIZE = /^[0-9]+[kKmMgGtT]?$/;
const VM_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export interface ImageOptions {
  out: string;
  size: string;
  config?: string;
  name?: string;
  memory: string;
  /** Override for tests: pretend to be on this platform. */
  platform?: NodeJS.Platform;
}

/** Make the image; returns the vmrun.sh command line that boots it. */
export async function makeImage(ctx: BeContext, opts: ImageOptions): Promise<string> {
  const runner = ctx.runner;
  if (!SIZE.test(opts.size)) throw new BeError(`bad image size '${opts.size}' (e.g. 10G)`);
  if (!SIZE.test(opts.memory)) throw new BeError(`bad memory size '${opts.memory}' (e.g. 2G)`);
  const out = resolve(opts.out);
  if (!existsSync(dirname(out))) throw new BeError(`directory '${dirname(out)}' does not exist`);
  if (existsSync(out)) throw new BeError(`image '${opts.out}' already exists`);
  const name = opts.name ?? basename(out).replace(/\.(img|raw)$/, '');
  if (!VM_NAME.test(name)) throw new BeError(`bad VM name '${name}' (use --name)`);
  const platform = opts.platform ?? process.platform;
  const onFreeBSD = platform === 'freebsd';
  if (!onFreeBSD && !runner.dryRun) throw new BeError('be image needs FreeBSD (mdconfig, bsdinstall); use -n to print the plan');

  let unit = 0;
  if (onFreeBSD) unit = freeMdUnit((await runner.query(mdconfigListArgv())).stdout);
  else runner.note(`on FreeBSD the first free md unit is used; md${unit} shown here`);
  const disk = `md${unit}`;
  // The image's own disk replaces whatever disks the config names; the pool gets a name of its
  // own unless the config gives one, so it cannot clash with the host's zroot.
  const raw = opts.config ? readConfigFile(opts.config) : {};
  const zfsRaw = (raw.zfs ?? {}) as RawConfig;
  const flags: RawConfig = { disks: [disk], zfs: zfsRaw.pool === undefined ? { pool: `z${name.replace(/[^A-Za-z0-9_.-]/g, '')}` } : {} };
  const cfg = validateInstallerConfig(mergeConfig(raw, flags));
  const script = renderInstallerConfig(cfg);
  const scriptPath = join(tmpdir(), `be-image.${randomBytes(4).toString('hex')}.cfg`);

  await runner.transaction(async () => {
    await runner.writeFile(scriptPath, script, { mode: 0o600, undo: () => unlink(scriptPath).catch(() => {}) });
    await runner.change(truncateArgv(opts.size, out), { undo: () => rm(out, { force: true }) });
    await runner.change(mdconfigAttachArgv(out, unit), { undo: mdconfigDetachArgv(unit) });
    await runner.change(bsdinstallScriptArgv(scriptPath), cfg.fs === 'zfs' ? { undo: zpoolExportArgv(cfg.zfs.pool) } : {});
    if (cfg.fs === 'zfs') await runner.change(zpoolExportArgv(cfg.zfs.pool));
    await runner.change(mdconfigDetachArgv(unit));
    await runner.act(`rm -f ${scriptPath}`, () => rm(scriptPath, { force: true }));
  });
  return shJoin(vmrunArgv(out, name, opts.memory));
}
