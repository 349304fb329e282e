import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { BeContext } from '../be/context.js';
import { requireBe, requirePool } from '../be/context.js';
import { mountedDatasets } from '../be/access.js';
import { BeError, CommandError } from '../sys/errors.js';
import { shJoin, shQuote } from '../sys/shell.js';
import { withFileLock } from '../sys/lock.js';
import { FUSE_MOUNT_LOCK, SAVED_MOUNTPOINT, mountBackend } from '../zfs/mount.js';
import { checkPoolName, poolOf } from '../zfs/names.js';
import { espFiles, imageLayout, layDisk, parseSize, BOOT_SECTORS, SECTOR, type BootKind, type Partition } from './image-disk.js';

/**
 * `be image BE OUT.img`: a bootable GPT disk image made from a boot environment. The layout and
 * the platform's disk tools are in image-disk.ts; here the BE's own boot code is read and checked,
 * a pool of the image's own is made on the freebsd-zfs partition (altroot, no cache file, a name
 * no host pool has), the BE is sent into it with `zfs send -R` of a recursive snapshot, bootfs is
 * set, and the pool is exported and its device detached. Nothing of the host's other pools or
 * GELI providers is touched: bsdinstall's zfsboot (usr.sbin/bsdinstall/scripts/zfsboot,
 * zfs_create_diskpart) force-exports every imported pool and detaches every GELI provider, and
 * accepts only kern.disks disks (f_device_find DEVICE_TYPE_DISK), which an md(4) disk is not, so
 * it is not used. The BE root gets mountpoint=/ and canmount=noauto as zfsboot gives it.
 */

export interface ImageOptions {
  be: string;
  out: string;
  size: string;
  boot: string;
  /** The image's pool name (default: the image file's name, made unique). */
  pool?: string;
}

interface BootFiles {
  pmbr?: Buffer;
  gptzfsboot?: Buffer;
  loaderEfi?: Buffer;
  /** EFI/BOOT/<name>.efi for loader.efi's machine type. */
  efiName?: string;
  /** The directory the BE was mounted at when they were read. */
  from?: string;
}

/** The removable-media boot file name per PE machine type (install-boot.sh get_uefi_bootname). */
const EFI_NAMES: Record<number, string> = { 0x8664: 'bootx64', 0xaa64: 'bootaa64', 0x14c: 'bootia32', 0x1c2: 'bootarm', 0x1c4: 'bootarm', 0x5064: 'bootriscv64' };

/** The machine type of a PE/COFF program (the MZ header's e_lfanew at 0x3c points at "PE\0\0"). */
export function efiBootName(program: Buffer): string | undefined {
  if (program.length < 0x40 || program.toString('latin1', 0, 2) !== 'MZ') return undefined;
  const pe = program.readUInt32LE(0x3c);
  if (pe + 6 > program.length || program.toString('latin1', pe, pe + 4) !== 'PE\0\0') return undefined;
  return EFI_NAMES[program.readUInt16LE(pe + 4)];
}

/** GPT's protective MBR takes boot code of at most one sector (g_part_gpt's gps_bootcodesz). */
const PMBR_MAX = 512;

/** Check the BE's boot files for the chosen boot kind; `shown` names the BE in messages. */
export function checkBootFiles(files: BootFiles, boot: BootKind, shown: string): void {
  if (boot !== 'uefi') {
    if (!files.pmbr) throw new BeError(`boot environment '${shown}' has no /boot/pmbr (needed for --boot ${boot})`);
    if (files.pmbr.length > PMBR_MAX) throw new BeError(`boot environment '${shown}': /boot/pmbr is ${files.pmbr.length} bytes, more than ${PMBR_MAX}`);
    if (!files.gptzfsboot) throw new BeError(`boot environment '${shown}' has no /boot/gptzfsboot (needed for --boot ${boot})`);
    if (files.gptzfsboot.length > BOOT_SECTORS * SECTOR) {
      throw new BeError(`boot environment '${shown}': /boot/gptzfsboot is ${files.gptzfsboot.length} bytes, more than the ${(BOOT_SECTORS * SECTOR) / 1024}K freebsd-boot partition`);
    }
  }
  if (boot !== 'bios') {
    if (!files.loaderEfi) throw new BeError(`boot environment '${shown}' has no /boot/loader.efi (needed for --boot ${boot})`);
    if (!files.efiName) throw new BeError(`boot environment '${shown}': /boot/loader.efi is not an EFI program of a known machine type`);
  }
}

async function readOptional(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new BeError(`cannot read ${path}: ${(error as Error).message}`);
  }
}

async function readFrom(dir: string): Promise<BootFiles> {
  const boot = join(dir, 'boot');
  const [pmbr, gptzfsboot, loaderEfi] = await Promise.all(['pmbr', 'gptzfsboot', 'loader.efi'].map((f) => readOptional(join(boot, f))));
  return { pmbr, gptzfsboot, loaderEfi, efiName: loaderEfi && efiBootName(loaderEfi), from: dir };
}

/** The BE's /boot files: read where it is mounted, or from a mount of it made for the purpose. */
async function readBootFiles(ctx: BeContext, be: string): Promise<BootFiles | undefined> {
  let mounted: Map<string, string>;
  try {
    mounted = await mountedDatasets(ctx, be);
  } catch (error) {
    if (!ctx.runner.dryRun) throw error;
    mounted = new Map(); // BE_PLATFORM=freebsd -n on another system: no mount table to read
  }
  const at = mounted.get(be);
  if (at !== undefined) return readFrom(at);
  if (ctx.runner.dryRun) {
    ctx.runner.note(`${be} is not mounted: its /boot files are read and checked when this runs`);
    return undefined;
  }
  // Only the BE's root dataset is mounted for this (bsdinstall keeps /boot there): mounting every
  // child would cost a mount and an unmount each, for nothing.
  const { altroot = '-' } = await requirePool(ctx, poolOf(be));
  const base = ctx.flavour === 'zfs-fuse' && altroot !== '-' && altroot !== '/' ? altroot : tmpdir();
  const dir = join(base, `be_image.${randomBytes(4).toString('hex')}`);
  const backend = mountBackend(ctx.flavour, ctx.runner, ctx.zfs, altroot);
  return ctx.runner.transaction(async () => {
    await ctx.runner.act(`mkdir -m 700 ${shQuote(dir)}`, () => mkdir(dir, { mode: 0o700 }), () => rmdir(dir).catch(() => {}));
    await backend.mount(be, dir);
    const files = await readFrom(dir);
    await backend.unmount(be, dir, false);
    await ctx.runner.act(`rmdir ${shQuote(dir)}`, () => rmdir(dir));
    return files;
  });
}

/** A pool name from the image's file name, changed until no pool of the host has it. */
export function uniquePoolName(out: string, taken: Set<string>, random: () => string = () => randomBytes(2).toString('hex')): string {
  let base = basename(out).replace(/\.(img|raw)$/i, '').replace(/[^A-Za-z0-9_.-]/g, '');
  try {
    checkPoolName(base);
  } catch {
    base = `zimage${base ? `-${base}` : ''}`.replace(/[^A-Za-z0-9_.-]/g, '');
  }
  let name = base;
  while (taken.has(name)) name = `${base}-${random()}`;
  return name;
}

/** The command that boots the image: bhyve's vmrun.sh on FreeBSD, QEMU elsewhere. */
export function bootHint(freebsd: boolean, out: string, boot: BootKind, name: string): string {
  if (freebsd) return shJoin(['sh', '/usr/share/examples/bhyve/vmrun.sh', ...(boot === 'uefi' ? ['-E'] : []), '-m', '2G', '-d', out, name]);
  return shJoin(['qemu-system-x86_64', '-m', '2G', ...(boot === 'uefi' ? ['-bios', '/usr/share/ovmf/OVMF.fd'] : []), '-drive', `file=${out},format=raw`]);
}

function checkBoot(boot: string): BootKind {
  if (boot === 'bios' || boot === 'uefi' || boot === 'both') return boot;
  throw new BeError(`bad --boot '${boot}' (bios, uefi or both)`);
}

/** Make the image; returns the one-line hint that boots it. */
export async function makeImage(ctx: BeContext, opts: ImageOptions): Promise<string> {
  const { runner, zfs } = ctx;
  const boot = checkBoot(opts.boot);
  const bytes = parseSize(opts.size);
  if (bytes === undefined) throw new BeError(`bad image size '${opts.size}' (e.g. 10G)`);
  const layout = imageLayout(bytes, boot);
  const freebsd = ctx.flavour === 'freebsd';
  if (freebsd && process.platform !== 'freebsd' && !runner.dryRun) throw new BeError('be image with BE_PLATFORM=freebsd runs only on FreeBSD; use -n to print the plan');
  const out = resolve(opts.out);
  if (!existsSync(dirname(out))) throw new BeError(`directory '${dirname(out)}' does not exist`);
  if (existsSync(out)) throw new BeError(`image '${opts.out}' already exists`);
  const be = await requireBe(ctx, opts.be);
  const taken = new Set((await zfs.pools([])).keys());
  let pool: string;
  if (opts.pool !== undefined) {
    pool = checkPoolName(opts.pool);
    if (taken.has(pool)) throw new BeError(`pool '${pool}' exists on this host: the image needs a pool name of its own (--pool)`);
  } else pool = uniquePoolName(out, taken);
  if (ctx.flavour === 'zfs-fuse') {
    // `be mount` on zfs-fuse lends the BE's datasets a mountpoint (kept in be:mountpoint), which
    // `zfs send -R` would carry into the image: the BE must be unmounted first.
    const lent = await zfs.get([be], [SAVED_MOUNTPOINT], { recursive: true, sources: ['local'] });
    if (lent.size > 0) throw new BeError(`boot environment '${opts.be}' is mounted by be mount: unmount it first (be umount ${opts.be})`);
  }
  const files = await readBootFiles(ctx, be);
  if (files) checkBootFiles(files, boot, opts.be);

  const beName = be.slice(be.lastIndexOf('/') + 1);
  const target = `${pool}/ROOT/${beName}`;
  const snap = `be-image-${randomBytes(4).toString('hex')}`;
  const id = randomBytes(4).toString('hex');
  const stage = join(tmpdir(), `be-image.${id}`);
  const altroot = join(tmpdir(), `be-image.${id}.root`);
  const part = (kind: Partition['kind']) => layout.find((p) => p.kind === kind);
  const fuseLocked = <T>(body: () => Promise<T>) => (ctx.flavour === 'zfs-fuse' && !runner.dryRun ? withFileLock(FUSE_MOUNT_LOCK, body, 300_000) : body());

  await runner.transaction(async () => {
    // The boot code written is the code checked: staged from what was read.
    await runner.act(`mkdir -m 700 ${shQuote(stage)}`, () => mkdir(stage, { mode: 0o700 }), () => rm(stage, { recursive: true, force: true }));
    for (const [name, data] of [['pmbr', files?.pmbr], ['gptzfsboot', files?.gptzfsboot], ['loader.efi', files?.loaderEfi]] as const) {
      const needed = name === 'loader.efi' ? boot !== 'bios' : boot !== 'uefi';
      const shown = `cp ${shQuote(join(files?.from ?? '$BE_MOUNT', 'boot', name))} ${shQuote(join(stage, name))}`;
      if (needed) await runner.act(shown, () => writeFile(join(stage, name), data!, { mode: 0o600 }));
    }
    await runner.change(['truncate', '-s', opts.size.toUpperCase(), out], { undo: () => rm(out, { force: true }) });
    const disk = await layDisk(runner, freebsd, out, layout);
    const bootPart = part('freebsd-boot');
    if (bootPart) await disk.bootcode(join(stage, 'pmbr'), join(stage, 'gptzfsboot'), bootPart.index);
    const esp = part('efi');
    if (esp) await disk.makeEsp(esp.index, join(stage, 'loader.efi'), espFiles(files?.efiName ?? 'bootx64'));

    await runner.act(`mkdir -m 700 ${shQuote(altroot)}`, () => mkdir(altroot, { mode: 0o700 }), () => removeEmptyDirs(altroot).catch(() => {}));
    let imported = true;
    await runner.change(['zpool', 'create', '-R', altroot, '-O', 'compression=on', '-O', 'atime=off', '-m', 'none', pool, disk.part(part('freebsd-zfs')!.index)], {
      undo: async () => {
        if (!imported) return;
        if (ctx.flavour === 'zfs-fuse') await fuseLocked(() => unmountPool(ctx, pool)).catch(() => {});
        await fuseLocked(() => poolChange(ctx, ['zpool', 'destroy', '-f', pool]));
      },
    });
    await runner.change(['zfs', 'create', '-o', 'mountpoint=none', `${pool}/ROOT`]); // the pool's undo takes it
    let snapped = true;
    await runner.change(['zfs', 'snapshot', '-r', `${be}@${snap}`], {
      undo: async () => {
        if (snapped) await zfs.destroy(`${be}@${snap}`, { recursive: true });
      },
    });
    // zfs-fuse's receive has no -u and mounts what it received (under the image pool's altroot).
    const recv = ['zfs', 'receive', ...(ctx.flavour === 'zfs-fuse' ? [] : ['-u']), target];
    await fuseLocked(() => runner.pipe(['zfs', 'send', '-R', `${be}@${snap}`], recv));
    // zfs-fuse answers "busy" for a moment after a send (Zfs retries that)
    await zfs.destroy(`${be}@${snap}`, { recursive: true });
    snapped = false;
    await zfs.destroy(`${target}@${snap}`, { recursive: true });
    if (ctx.flavour === 'zfs-fuse' && !runner.dryRun) {
      await fuseLocked(() => unmountPool(ctx, pool));
    }
    await zfs.set(target, 'canmount', 'noauto');
    await zfs.set(target, 'mountpoint', '/');
    await zfs.setPool(pool, 'bootfs', target);
    await fuseLocked(() => poolChange(ctx, ['zpool', 'export', pool]));
    imported = false;
    await disk.detach();
    // Mountpoint directories the mounts left behind go too; a file found there stops it.
    await runner.act(`find ${shQuote(altroot)} -depth -type d -empty -delete`, () => removeEmptyDirs(altroot));
    await runner.act(`rm -rf ${shQuote(stage)}`, () => rm(stage, { recursive: true, force: true }));
  });
  return bootHint(freebsd, out, boot, basename(out).replace(/\.(img|raw)$/i, '') || 'vm');
}

/** rmdir DIR and the directories below it, deepest first: fails on anything that is not empty. */
async function removeEmptyDirs(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) await removeEmptyDirs(join(dir, entry.name));
  }
  await rmdir(dir);
}

/** Unmount what zfs-fuse's receive mounted in the image's pool, deepest first (never -f there). */
async function unmountPool(ctx: BeContext, pool: string): Promise<void> {
  const table = await ctx.zfs.get([pool], ['mounted'], { recursive: true });
  const mounted = [...table].filter(([, p]) => p.mounted?.value === 'yes').map(([name]) => name);
  for (const name of mounted.reverse()) await ctx.zfs.umount(name);
}

/**
 * A zpool command that zfs-fuse may answer with "busy" for a few seconds after mounts and sends
 * of the pool, even with nothing mounted: retried there for up to about 15 s.
 */
async function poolChange(ctx: BeContext, argv: string[]): Promise<void> {
  for (let tries = 1; ; tries++) {
    try {
      await ctx.runner.change(argv);
      return;
    } catch (error) {
      if (ctx.flavour !== 'zfs-fuse' || tries >= 20 || !(error instanceof CommandError) || !/busy/.test(error.stderr)) throw error;
      await new Promise((r) => setTimeout(r, 50 * tries));
    }
  }
}
