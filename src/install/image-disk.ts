import { copyFile, mkdir, rmdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Runner } from '../sys/run.js';
import { BeError } from '../sys/errors.js';
import { shQuote } from '../sys/shell.js';

/**
 * The disk side of `be image`: a GPT layout computed once, then laid on the image file by the
 * host's own tools. FreeBSD: mdconfig(8) attaches the file, gpart(8) partitions it and writes the
 * boot code, newfs_msdos(8)/mount_msdosfs(8) make the ESP. Linux: sfdisk(8) partitions the file,
 * losetup(8) puts a loop device on each partition (the kernel may make no partition nodes for a
 * loop device), dd(1) writes the boot code, mkfs.vfat(8) and mtools fill the ESP.
 *
 * FreeBSD sources followed:
 * - usr.sbin/bsdinstall/scripts/zfsboot (zfs_create_diskpart): for BIOS+UEFI the ESP is index 1,
 *   freebsd-boot (512k) index 2, then freebsd-zfs; labels efiboot0, gptboot0, zfs0;
 *   `gpart bootcode -b /boot/pmbr -p /boot/gptzfsboot -i <freebsd-boot index>`.
 * - sbin/geom/class/part/geom_part.c (gpart_bootcode, gpart_write_partcode): the partcode is
 *   written at the start of the partition, padded with zeros to a whole sector, and refused
 *   ("not enough space") when it is larger than the partition; sys/geom/part/g_part_gpt.c
 *   (g_part_gpt_bootcode) copies only the first DOSPARTOFF (446) bytes of pmbr into the MBR,
 *   keeping the protective partition entry and the signature.
 * - sbin/geom/misc/subr.c (g_parse_lba): gpart's -b/-s without a suffix count sectors.
 * - sbin/mdconfig/mdconfig.c: `mdconfig -a` without -u prints the unit it chose (mdN); -u takes
 *   that name back (it strips /dev/ and md).
 * - tools/boot/install-boot.sh (make_esp_device, make_esp_file) and
 *   usr.sbin/bsdinstall/scripts/bootconfig: a FAT32 ESP (`newfs_msdos -F 32 -c 1 -L EFISYS`, at
 *   least fat32min = 33292 KiB) holding loader.efi as EFI/freebsd/loader.efi and as the removable
 *   media default EFI/BOOT/boot<arch>.efi.
 */

/** Sector size of an md(4) vnode disk (mdconfig's default) and of a loop device. */
export const SECTOR = 512;
const MIB = (1024 * 1024) / SECTOR;
/** 33 MiB: install-boot.sh's fat32min (33292 KiB) rounded up to the 1 MiB alignment. */
export const ESP_SECTORS = 33 * MIB;
/** zfsboot's freebsd-boot partition: 512k. */
export const BOOT_SECTORS = (512 * 1024) / SECTOR;
/** ZFS refuses a vdev below 64 MiB. */
const ZFS_MIN_SECTORS = 64 * MIB;
/** The backup GPT: its header in the last sector, 32 sectors of entries before it. */
const GPT_BACKUP_SECTORS = 33;

export type BootKind = 'bios' | 'uefi' | 'both';
export type PartKind = 'efi' | 'freebsd-boot' | 'freebsd-zfs';

/** GPT partition type GUIDs (gpart's aliases efi, freebsd-boot, freebsd-zfs; sys/sys/disk/gpt.h). */
export const GPT_TYPE: Record<PartKind, string> = {
  efi: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  'freebsd-boot': '83BD6B9D-7F41-11DC-BE0B-001560B84F0F',
  'freebsd-zfs': '516E7CBA-6ECF-11D6-8FF8-00022D09712B',
};

export interface Partition {
  index: number;
  kind: PartKind;
  label: string;
  /** First sector and size, in sectors. */
  start: number;
  size: number;
}

/** `10G`, `512M`, `1T`, `4096`: bytes, powers of 1024 as truncate(1) and gpart read them. */
export function parseSize(text: string): number | undefined {
  const m = /^([0-9]+)([KMGT]?)$/i.exec(text);
  if (!m) return undefined;
  const power = ' KMGT'.indexOf(m[2].toUpperCase() || ' ');
  const bytes = Number(m[1]) * 1024 ** power;
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
}

/** The partitions of an image of `bytes` bytes: zfsboot's order, each one on a 1 MiB boundary. */
export function imageLayout(bytes: number, boot: BootKind): Partition[] {
  const parts: Partition[] = [];
  let next = MIB;
  const add = (kind: PartKind, label: string, size: number) => {
    parts.push({ index: parts.length + 1, kind, label, start: next, size });
    next = Math.ceil((next + size) / MIB) * MIB;
  };
  if (boot !== 'bios') add('efi', 'efiboot0', ESP_SECTORS);
  if (boot !== 'uefi') add('freebsd-boot', 'gptboot0', BOOT_SECTORS);
  const total = Math.floor(bytes / SECTOR);
  const zfs = Math.floor((total - GPT_BACKUP_SECTORS - next) / MIB) * MIB;
  if (zfs < ZFS_MIN_SECTORS) {
    const need = Math.ceil((next + ZFS_MIN_SECTORS + GPT_BACKUP_SECTORS) / MIB) + 1;
    throw new BeError(`image size ${bytes} bytes is too small for --boot ${boot}: at least ${need}M`);
  }
  add('freebsd-zfs', 'zfs0', zfs);
  return parts;
}

/** sfdisk(8) input for the layout: a GPT, each partition with its FreeBSD type and label. */
export function sfdiskScript(parts: Partition[]): string {
  const lines = ['label: gpt', 'unit: sectors', `sector-size: ${SECTOR}`];
  for (const p of parts) lines.push(`start=${p.start}, size=${p.size}, type=${GPT_TYPE[p.kind]}, name="${p.label}"`);
  return lines.join('\n') + '\n';
}

/** gpart(8) argv that partition md<unit> as the layout says (-b/-s in sectors, g_parse_lba). */
export function gpartArgv(disk: string, parts: Partition[]): string[][] {
  return [
    ['gpart', 'create', '-s', 'gpt', disk],
    ...parts.map((p) => ['gpart', 'add', '-t', p.kind, '-l', p.label, '-b', String(p.start), '-s', String(p.size), '-i', String(p.index), disk]),
  ];
}

/** mdconfig(8): attach FILE as a vnode disk; the unit it chose is printed (mdconfig.c). */
export function mdconfigAttachArgv(file: string): string[] {
  return ['mdconfig', '-a', '-t', 'vnode', '-f', file];
}

/** mdconfig(8) -d -u: the unit as mdconfig printed it (mdconfig.c takes `md3`, `/dev/md3` or `3`). */
export function mdconfigDetachArgv(disk: string): string[] {
  return ['mdconfig', '-d', '-u', disk];
}

/** The unit name mdconfig -a printed (`md3`), checked. */
function mdUnit(printed: string): string {
  const unit = printed.trim();
  if (!/^md\d+$/.test(unit)) throw new BeError(`mdconfig printed '${unit}', not an md unit`);
  return unit;
}

/** gpart(8): pmbr into the protective MBR, gptzfsboot into the freebsd-boot partition. */
export function gpartBootcodeArgv(pmbr: string, gptzfsboot: string, index: number, disk: string): string[] {
  return ['gpart', 'bootcode', '-b', pmbr, '-p', gptzfsboot, '-i', String(index), disk];
}

/** newfs_msdos(8) as install-boot.sh makes an ESP. */
export function newfsMsdosArgv(dev: string): string[] {
  return ['newfs_msdos', '-F', '32', '-c', '1', '-L', 'EFISYS', dev];
}

/** losetup(8): a loop device over one partition of FILE; prints the device. */
export function losetupArgv(file: string, part: Partition): string[] {
  return ['losetup', '--find', '--show', '--offset', String(part.start * SECTOR), '--sizelimit', String(part.size * SECTOR), file];
}

/** The first 446 bytes of pmbr into sector 0, as g_part_gpt_bootcode does. */
export function ddPmbrArgv(pmbr: string, file: string): string[] {
  return ['dd', `if=${pmbr}`, `of=${file}`, 'bs=446', 'count=1', 'conv=notrunc', 'status=none'];
}

/** gptzfsboot at the start of the freebsd-boot partition, its last sector padded with zeros. */
export function ddPartcodeArgv(code: string, dev: string): string[] {
  return ['dd', `if=${code}`, `of=${dev}`, 'bs=512', 'conv=sync,notrunc', 'status=none'];
}

/** mkfs.vfat(8) with the ESP's format: FAT32, one sector per cluster, label EFISYS. */
export function mkfsVfatArgv(dev: string): string[] {
  return ['mkfs.vfat', '-F', '32', '-s', '1', '-n', 'EFISYS', dev];
}

/** Where loader.efi goes on the ESP (bootconfig, install-boot.sh). */
export function espFiles(bootName: string): string[] {
  return [`EFI/BOOT/${bootName}.efi`, 'EFI/freebsd/loader.efi'];
}

/** The image's partitions as devices of this host, and how to let them go. */
export interface DiskDevices {
  /** The device of partition INDEX (/dev/md0p3, /dev/loop2). */
  part(index: number): string;
  /** Write pmbr and gptzfsboot (files) as gpart bootcode does. */
  bootcode(pmbr: string, gptzfsboot: string, index: number): Promise<void>;
  /** Format the ESP and copy FILE to each of `targets` (paths inside the ESP). */
  makeEsp(index: number, file: string, targets: string[]): Promise<void>;
  detach(): Promise<void>;
}

/** Partition FILE and attach it: gpart on an md(4) disk, or sfdisk and a loop device a partition. */
export async function layDisk(runner: Runner, freebsd: boolean, file: string, parts: Partition[]): Promise<DiskDevices> {
  return freebsd ? layFreeBSD(runner, file, parts) : layLinux(runner, file, parts);
}

async function layFreeBSD(runner: Runner, file: string, parts: Partition[]): Promise<DiskDevices> {
  let attached = true;
  // A plan keeps the unit mdconfig prints in $md, and names the disk by it.
  const attach = await runner.change(mdconfigAttachArgv(file), { scriptVar: 'md' });
  const disk = attach.pending ? attach.stdout : mdUnit(attach.stdout);
  runner.onUndo(async () => {
    if (attached) await runner.change(mdconfigDetachArgv(disk));
  });
  for (const argv of gpartArgv(disk, parts)) await runner.change(argv);
  return {
    part: (index) => `/dev/${disk}p${index}`,
    async bootcode(pmbr, gptzfsboot, index) {
      await runner.change(gpartBootcodeArgv(pmbr, gptzfsboot, index, disk));
    },
    async makeEsp(index, source, targets) {
      const dev = `/dev/${disk}p${index}`;
      await runner.change(newfsMsdosArgv(dev));
      const dir = join(tmpdir(), `be-esp.${randomBytes(4).toString('hex')}`);
      await runner.act(`mkdir -m 700 ${shQuote(dir)}`, () => mkdir(dir, { mode: 0o700 }), () => rmdir(dir).catch(() => {}));
      let mounted = true;
      await runner.change(['mount_msdosfs', dev, dir], {
        undo: async () => {
          if (mounted) await runner.change(['umount', dir]);
        },
      });
      for (const target of targets) {
        const at = join(dir, target);
        await runner.act(`mkdir -p ${shQuote(join(at, '..'))}`, () => mkdir(join(at, '..'), { recursive: true }));
        await runner.act(`cp ${shQuote(source)} ${shQuote(at)}`, () => copyFile(source, at));
      }
      await runner.change(['umount', dir]);
      mounted = false;
      await runner.act(`rmdir ${shQuote(dir)}`, () => rmdir(dir));
    },
    async detach() {
      await runner.change(mdconfigDetachArgv(disk));
      attached = false;
    },
  };
}

async function layLinux(runner: Runner, file: string, parts: Partition[]): Promise<DiskDevices> {
  await runner.change(['sfdisk', '--quiet', '--no-reread', '--no-tell-kernel', file], { input: sfdiskScript(parts) });
  const loops = new Map<number, string>();
  for (const p of parts) {
    // a plan keeps the device losetup prints in $loopN (N: the partition), and names it by that
    const r = await runner.change(losetupArgv(file, p), { scriptVar: `loop${p.index}` });
    const dev = r.stdout.trim();
    if (!r.pending && !/^\/dev\/loop\d+$/.test(dev)) throw new BeError(`losetup printed '${dev}', not a loop device`);
    loops.set(p.index, dev);
    runner.onUndo(async () => {
      if (loops.get(p.index) === dev) await runner.change(['losetup', '-d', dev]);
    });
  }
  const part = (index: number) => {
    const dev = loops.get(index);
    if (!dev) throw new BeError(`internal: no partition ${index}`);
    return dev;
  };
  return {
    part,
    async bootcode(pmbr, gptzfsboot, index) {
      await runner.change(ddPmbrArgv(pmbr, file));
      await runner.change(ddPartcodeArgv(gptzfsboot, part(index)));
    },
    async makeEsp(index, source, targets) {
      const dev = part(index);
      await runner.change(mkfsVfatArgv(dev));
      const dirs = [...new Set(targets.flatMap((t) => t.split('/').slice(0, -1).map((_, i, a) => a.slice(0, i + 1).join('/'))))];
      await runner.change(['mmd', '-i', dev, ...dirs.map((d) => `::/${d}`)]);
      for (const target of targets) await runner.change(['mcopy', '-i', dev, source, `::/${target}`]);
    },
    async detach() {
      for (const [index, dev] of [...loops].reverse()) {
        // what mkfs.vfat, mtools and dd wrote through the device's cache reaches the image first
        // (losetup -d alone may drop it): BLKFLSBUF
        await runner.change(['blockdev', '--flushbufs', dev]);
        await runner.change(['losetup', '-d', dev]);
        loops.delete(index);
      }
    },
  };
}
