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

type BootFile = 'pmbr' | 'gptzfsboot' | 'loader.efi';

/** What --boot needs of the BE's /boot: each file, its size limit, the one-line errors. */
function bootFileRules(boot: BootKind, shown: string): Array<{ file: BootFile; max?: number; missing: string; tooBig?: (size: string) => string }> {
  const missing = (file: BootFile) => `boot environment '${shown}' has no /boot/${file} (needed for --boot ${boot})`;
  const rules: ReturnType<typeof bootFileRules> = [];
  if (boot !== 'uefi') {
    rules.push({ file: 'pmbr', max: PMBR_MAX, missing: missing('pmbr'), tooBig: (size) => `boot environment '${shown}': /boot/pmbr is ${size} bytes, more than ${PMBR_MAX}` });
    rules.push({
      file: 'gptzfsboot',
      max: BOOT_SECTORS * SECTOR,
      missing: missing('gptzfsboot'),
      tooBig: (size) => `boot environment '${shown}': /boot/gptzfsboot is ${size} bytes, more than the ${(BOOT_SECTORS * SECTOR) / 1024}K freebsd-boot partition`,
    });
  }
  if (boot !== 'bios') rules.push({ file: 'loader.efi', missing: missing('loader.efi') });
  return rules;
}

const FILE_KEY: Record<BootFile, 'pmbr' | 'gptzfsboot' | 'loaderEfi'> = { pmbr: 'pmbr', gptzfsboot: 'gptzfsboot', 'loader.efi': 'loaderEfi' };

/** Check the BE's boot files for the chosen boot kind; `shown` names the BE in messages. */
export function checkBootFiles(files: BootFiles, boot: BootKind, shown: string): void {
  for (const rule of bootFileRules(boot, shown)) {
    const data = files[FILE_KEY[rule.file]];
    if (!data) throw new BeError(rule.missing);
    if (rule.max !== undefined && data.length > rule.max) throw new BeError(rule.tooBig!(String(data.length)));
  }
  if (boot !== 'bios' && !files.efiName) throw new BeError(`boot environment '${shown}': /boot/loader.efi is not an EFI program of a known machine type`);
}

/**
 * The same checks as /bin/sh, of the files staged in STAGE (a plan's, made where the BE is not
 * mounted yet). loader.efi's machine type is not read there: the ESP names it bootx64.efi.
 */
export function checkBootFilesShell(stage: string, boot: BootKind, shown: string): string {
  const fail = (text: string) => `{ echo ${text.split('$be_size').map((p) => (p ? shQuote(p) : '')).join('"$be_size"')} >&2; exit 1; }`;
  const lines: string[] = [];
  for (const rule of bootFileRules(boot, shown)) {
    const path = shQuote(join(stage, rule.file));
    lines.push(`[ -f ${path} ] || ${fail(`be: ${rule.missing}`)}`);
    if (rule.max !== undefined) lines.push(`be_size=$(($(wc -c < ${path}))); [ "$be_size" -le ${rule.max} ] || ${fail(`be: ${rule.tooBig!('$be_size')}`)}`);
  }
  return lines.join('\n');
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
  return { pmbr, gptzfsboot, loaderEfi, efiName: loaderEfi && efiBootName(loaderEfi) };
}

/**
 * The BE's /boot files that --boot needs, read and copied into STAGE: where the BE is mounted, or
 * from a mount of its root dataset made for the purpose (bsdinstall keeps /boot there: mounting
 * every child would cost a mount and an unmount each, for nothing). The checks come after
 * (checkStaged): of what was read, or, where the BE is mounted only by the plan, of the files
 * the plan staged, when it runs.
 */
async function stageBootFiles(ctx: BeContext, be: string, stage: string, boot: BootKind): Promise<BootFiles & { readLater: boolean }> {
  const { runner } = ctx;
  return runner.transaction(async () => {
    await runner.act(`mkdir -m 700 ${shQuote(stage)}`, () => mkdir(stage, { mode: 0o700 }), () => rm(stage, { recursive: true, force: true }));
    let dir = (await mountedDatasets(ctx, be)).get(be);
    let unmount: (() => Promise<void>) | undefined;
    if (dir === undefined) {
      const { altroot = '-' } = await requirePool(ctx, poolOf(be));
      const base = ctx.flavour === 'zfs-fuse' && altroot !== '-' && altroot !== '/' ? altroot : tmpdir();
      const at = join(base, `be_image.${randomBytes(4).toString('hex')}`);
      const backend = mountBackend(ctx.flavour, runner, ctx.zfs, altroot);
      await runner.act(`mkdir -m 700 ${shQuote(at)}`, () => mkdir(at, { mode: 0o700 }), () => rmdir(at).catch(() => {}));
      await backend.mount(be, at);
      dir = at;
      unmount = async () => {
        await backend.unmount(be, at, false);
        await runner.act(`rmdir ${shQuote(at)}`, () => rmdir(at));
      };
    }
    // a mount only the plan has made is not there to read yet
    const readLater = ctx.zfs.planned.mounts.get(be) === dir;
    const files = await readFrom(dir);
    for (const { file } of bootFileRules(boot, be)) {
      const from = join(dir, 'boot', file);
      const data = files[FILE_KEY[file]];
      await runner.act(`[ ! -f ${shQuote(from)} ] || cp ${shQuote(from)} ${shQuote(join(stage, file))}`, async () => {
        if (data) await writeFile(join(stage, file), data, { mode: 0o600 });
      });
    }
    await unmount?.();
    return { ...files, readLater };
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
  if (freebsd) runner.requireSystem('freebsd', 'be image with BE_PLATFORM=freebsd');
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

  const beName = be.slice(be.lastIndexOf('/') + 1);
  const target = `${pool}/ROOT/${beName}`;
  const snap = `be-image-${randomBytes(4).toString('hex')}`;
  const id = randomBytes(4).toString('hex');
  const stage = join(tmpdir(), `be-image.${id}`);
  const altroot = join(tmpdir(), `be-image.${id}.root`);
  const part = (kind: Partition['kind']) => layout.find((p) => p.kind === kind);
  const fuseLocked = <T>(body: () => Promise<T>) => (ctx.flavour === 'zfs-fuse' ? withFileLock(FUSE_MOUNT_LOCK, body, 300_000) : body());

  // The boot code written is the code checked: staged, then checked there.
  const files = await stageBootFiles(ctx, be, stage, boot);
  await runner.transaction(async () => {
    runner.onUndo(() => rm(stage, { recursive: true, force: true }));
    if (files.readLater) await runner.act(checkBootFilesShell(stage, boot, opts.be), async () => checkBootFiles(files, boot, opts.be));
    else checkBootFiles(files, boot, opts.be);
    await runner.change(['truncate', '-s', opts.size.toUpperCase(), out], { undo: () => rm(out, { force: true }) });
    const disk = await layDisk(runner, freebsd, out, layout);
    const bootPart = part('freebsd-boot');
    if (bootPart) await disk.bootcode(join(stage, 'pmbr'), join(stage, 'gptzfsboot'), bootPart.index);
    const esp = part('efi');
    if (esp) await disk.makeEsp(esp.index, join(stage, 'loader.efi'), espFiles(files.efiName ?? 'bootx64'));

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
    if (ctx.flavour === 'zfs-fuse') {
      // what the receive mounted, deepest first
      const shell = `zfs get -H -o name,value -r mounted ${shQuote(pool)} | awk '$2 == "yes" { print $1 }' | tac | while read -r be_ds; do zfs umount "$be_ds"; done`;
      await fuseLocked(() => runner.act(shell, () => unmountPool(ctx, pool)));
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
