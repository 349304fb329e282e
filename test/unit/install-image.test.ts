import { describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ddPartcodeArgv,
  ddPmbrArgv,
  espFiles,
  gpartArgv,
  gpartBootcodeArgv,
  imageLayout,
  mdconfigAttachArgv,
  newfsMsdosArgv,
  parseSize,
  sfdiskScript,
  GPT_TYPE,
} from '../../src/install/image-disk.js';
import { bootHint, checkBootFiles, checkBootFilesShell, efiBootName, uniquePoolName } from '../../src/install/image.js';
import { execa } from 'execa';
import { be } from '../helpers/cli.js';

const MIB = 2048;
const GIB10 = 10 * 1024 ** 3;

/** A PE/COFF header of the given machine type, as loader.efi starts. */
function pe(machine: number): Buffer {
  const b = Buffer.alloc(0x100);
  b.write('MZ', 0, 'latin1');
  b.writeUInt32LE(0x80, 0x3c);
  b.write('PE\0\0', 0x80, 'latin1');
  b.writeUInt16LE(machine, 0x84);
  return b;
}

describe('be image: the GPT layout (bsdinstall zfsboot order)', () => {
  it('both: ESP index 1, freebsd-boot 512k index 2, freebsd-zfs index 3 filling the disk', () => {
    const parts = imageLayout(GIB10, 'both');
    expect(parts.map((p) => [p.index, p.kind, p.label])).toEqual([
      [1, 'efi', 'efiboot0'],
      [2, 'freebsd-boot', 'gptboot0'],
      [3, 'freebsd-zfs', 'zfs0'],
    ]);
    expect(parts[0]).toMatchObject({ start: MIB, size: 33 * MIB });
    expect(parts[1]).toMatchObject({ start: 34 * MIB, size: 1024 });
    expect(parts[2].start).toBe(35 * MIB);
    // every partition on a 1 MiB boundary, none overlapping, the backup GPT (33 sectors) left free
    for (const p of parts) expect(p.start % MIB).toBe(0);
    for (let i = 1; i < parts.length; i++) expect(parts[i].start).toBeGreaterThanOrEqual(parts[i - 1].start + parts[i - 1].size);
    const end = parts[2].start + parts[2].size;
    expect(end).toBeLessThanOrEqual(GIB10 / 512 - 33);
    expect(GIB10 / 512 - 33 - end).toBeLessThan(MIB);
  });
  it('bios has no ESP and uefi no freebsd-boot', () => {
    expect(imageLayout(GIB10, 'bios').map((p) => p.kind)).toEqual(['freebsd-boot', 'freebsd-zfs']);
    expect(imageLayout(GIB10, 'uefi').map((p) => p.kind)).toEqual(['efi', 'freebsd-zfs']);
  });
  it('refuses an image too small for a 64 MiB pool, naming the minimum', () => {
    expect(() => imageLayout(64 * 1024 ** 2, 'both')).toThrow(/too small for --boot both: at least 101M/);
    expect(() => imageLayout(101 * 1024 ** 2, 'both')).not.toThrow();
  });
  it('reads sizes as truncate and gpart do (powers of 1024)', () => {
    expect(parseSize('10G')).toBe(GIB10);
    expect(parseSize('512m')).toBe(512 * 1024 ** 2);
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize('ten')).toBeUndefined();
    expect(parseSize('1.5G')).toBeUndefined();
    expect(parseSize('0')).toBeUndefined();
  });
});

describe('be image: the FreeBSD programs (geom_part.c, g_part_gpt.c, mdconfig.c, install-boot.sh)', () => {
  const parts = imageLayout(GIB10, 'both');
  it('attaches without -u so mdconfig picks and prints the unit', () => {
    expect(mdconfigAttachArgv('/vm/a.img')).toEqual(['mdconfig', '-a', '-t', 'vnode', '-f', '/vm/a.img']);
  });
  it('adds each partition at the same sectors as on Linux (-b/-s without a suffix are sectors)', () => {
    expect(gpartArgv('md4', parts)).toEqual([
      ['gpart', 'create', '-s', 'gpt', 'md4'],
      ['gpart', 'add', '-t', 'efi', '-l', 'efiboot0', '-b', '2048', '-s', '67584', '-i', '1', 'md4'],
      ['gpart', 'add', '-t', 'freebsd-boot', '-l', 'gptboot0', '-b', '69632', '-s', '1024', '-i', '2', 'md4'],
      ['gpart', 'add', '-t', 'freebsd-zfs', '-l', 'zfs0', '-b', String(35 * MIB), '-s', String(parts[2].size), '-i', '3', 'md4'],
    ]);
  });
  it('writes pmbr and gptzfsboot with gpart bootcode into the freebsd-boot index', () => {
    expect(gpartBootcodeArgv('/s/pmbr', '/s/gptzfsboot', 2, 'md4')).toEqual(['gpart', 'bootcode', '-b', '/s/pmbr', '-p', '/s/gptzfsboot', '-i', '2', 'md4']);
    expect(newfsMsdosArgv('/dev/md4p1')).toEqual(['newfs_msdos', '-F', '32', '-c', '1', '-L', 'EFISYS', '/dev/md4p1']);
    expect(espFiles('bootx64')).toEqual(['EFI/BOOT/bootx64.efi', 'EFI/freebsd/loader.efi']);
  });
  it('does on Linux what gpart bootcode does: 446 bytes into the MBR, partcode padded to a sector', () => {
    expect(ddPmbrArgv('/s/pmbr', '/vm/a.img')).toEqual(['dd', 'if=/s/pmbr', 'of=/vm/a.img', 'bs=446', 'count=1', 'conv=notrunc', 'status=none']);
    expect(ddPartcodeArgv('/s/gptzfsboot', '/dev/loop5')).toEqual(['dd', 'if=/s/gptzfsboot', 'of=/dev/loop5', 'bs=512', 'conv=sync,notrunc', 'status=none']);
    expect(sfdiskScript(parts).split('\n')[3]).toBe(`start=2048, size=67584, type=${GPT_TYPE.efi}, name="efiboot0"`);
  });
  it('names the removable-media loader after loader.efi machine type', () => {
    expect(efiBootName(pe(0x8664))).toBe('bootx64');
    expect(efiBootName(pe(0xaa64))).toBe('bootaa64');
    expect(efiBootName(pe(0x5064))).toBe('bootriscv64');
    expect(efiBootName(Buffer.from('not a PE file at all, just text that is long enough to look at it properly'))).toBeUndefined();
  });
  it('checks the BE boot code for what --boot needs', () => {
    const ok = { pmbr: Buffer.alloc(512), gptzfsboot: Buffer.alloc(1000), loaderEfi: pe(0x8664), efiName: 'bootx64' };
    expect(() => checkBootFiles(ok, 'both', 'web')).not.toThrow();
    expect(() => checkBootFiles({ ...ok, loaderEfi: undefined }, 'uefi', 'web')).toThrow("boot environment 'web' has no /boot/loader.efi (needed for --boot uefi)");
    expect(() => checkBootFiles({ ...ok, loaderEfi: undefined }, 'bios', 'web')).not.toThrow();
    expect(() => checkBootFiles({ ...ok, gptzfsboot: undefined }, 'bios', 'web')).toThrow("boot environment 'web' has no /boot/gptzfsboot (needed for --boot bios)");
    expect(() => checkBootFiles({ ...ok, pmbr: Buffer.alloc(513) }, 'both', 'web')).toThrow(/pmbr is 513 bytes, more than 512/);
    expect(() => checkBootFiles({ ...ok, gptzfsboot: Buffer.alloc(512 * 1024 + 1) }, 'bios', 'web')).toThrow(/more than the 512K freebsd-boot partition/);
    expect(() => checkBootFiles({ ...ok, efiName: undefined }, 'both', 'web')).toThrow(/not an EFI program/);
  });
  it("a plan's check of the staged boot code, run by sh, refuses what checkBootFiles refuses with the same line", async () => {
    const ok = { pmbr: Buffer.alloc(512), gptzfsboot: Buffer.alloc(1000), loaderEfi: pe(0x8664), efiName: 'bootx64' };
    const cases: Array<[typeof ok | Record<string, Buffer | string | undefined>, 'bios' | 'uefi' | 'both']> = [
      [ok, 'both'],
      [{ ...ok, pmbr: undefined }, 'both'],
      [{ ...ok, pmbr: Buffer.alloc(513) }, 'bios'],
      [{ ...ok, gptzfsboot: Buffer.alloc(512 * 1024 + 1) }, 'both'],
      [{ ...ok, gptzfsboot: undefined }, 'uefi'],
      [{ ...ok, loaderEfi: undefined }, 'uefi'],
      [{ ...ok, loaderEfi: undefined }, 'bios'],
    ];
    for (const [files, boot] of cases) {
      const stage = await mkdtemp(join(tmpdir(), 'bse2-stage.'));
      try {
        for (const [name, key] of [['pmbr', 'pmbr'], ['gptzfsboot', 'gptzfsboot'], ['loader.efi', 'loaderEfi']] as const) {
          const data = (files as Record<string, unknown>)[key];
          if (data) await writeFile(join(stage, name), data as Buffer);
        }
        let expected = '';
        try {
          checkBootFiles(files as typeof ok, boot, "it's");
        } catch (error) {
          expected = `be: ${(error as Error).message}`;
        }
        const r = await execa('sh', ['-ec', checkBootFilesShell(stage, boot, "it's")], { reject: false });
        expect([r.exitCode, r.stderr], `${boot} ${Object.keys(files).filter((k) => !(files as Record<string, unknown>)[k]).join(',')}`).toEqual([expected ? 1 : 0, expected]);
      } finally {
        await rm(stage, { recursive: true, force: true });
      }
    }
  });
  it('names the pool after the image, never as a host pool', () => {
    expect(uniquePoolName('/vm/vm1.img', new Set(['zroot']))).toBe('vm1');
    expect(uniquePoolName('/vm/vm1.img', new Set(['vm1']), () => 'ab12')).toBe('vm1-ab12');
    expect(uniquePoolName('/vm/mirror.img', new Set())).toBe('zimage-mirror');
    expect(uniquePoolName('/vm/1st.img', new Set())).toBe('zimage-1st');
  });
  it('prints how to boot it: vmrun.sh (-E for UEFI) on FreeBSD, QEMU elsewhere', () => {
    expect(bootHint(true, '/vm/a.img', 'both', 'a')).toBe('sh /usr/share/examples/bhyve/vmrun.sh -m 2G -d /vm/a.img a');
    expect(bootHint(true, '/vm/a.img', 'uefi', 'a')).toBe('sh /usr/share/examples/bhyve/vmrun.sh -E -m 2G -d /vm/a.img a');
    expect(bootHint(false, '/vm/a.img', 'bios', 'a')).toBe('qemu-system-x86_64 -m 2G -drive file=/vm/a.img,format=raw');
  });
});

describe('be image: bad input is one line and makes nothing', () => {
  it('refuses a bad size, a bad --boot, an existing image and a missing directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bimg-unit.'));
    try {
      const img = join(dir, 'vm1.img');
      expect((await be(['image', '-n', '--size', 'ten', 'web', img])).stderr).toBe("be: bad image size 'ten' (e.g. 10G)\n");
      expect((await be(['image', '--boot', 'efi', 'web', img])).stderr).toBe("be: bad --boot 'efi' (bios, uefi or both)\n");
      expect((await be(['image', '--size', '50M', 'web', img])).stderr).toBe('be: image size 52428800 bytes is too small for --boot both: at least 101M\n');
      expect((await be(['image', 'web', join(dir, 'no', 'x.img')])).stderr).toBe(`be: directory '${join(dir, 'no')}' does not exist\n`);
      await writeFile(img, 'keep');
      const r = await be(['image', 'web', img]);
      expect(r.stderr).toBe(`be: image '${img}' already exists\n`);
      expect(r.exitCode).toBe(1);
      expect(existsSync(join(dir, 'no'))).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('Runner.pipe: zfs send | zfs receive without a shell', () => {
  it('feeds the first program into the second, and records one pipeline line in dry-run', async () => {
    const { Runner } = await import('../../src/sys/run.js');
    const dir = await mkdtemp(join(tmpdir(), 'bimg-pipe.'));
    try {
      const out = join(dir, 'out');
      await new Runner().pipe(['head', '-c', '300000', '/dev/zero'], ['dd', `of=${out}`, 'status=none']);
      expect((await import('node:fs')).statSync(out).size).toBe(300000);
      const dry = new Runner({ dryRun: true, out: () => {} });
      await dry.pipe(['zfs', 'send', '-R', 'a/b@s'], ['zfs', 'receive', 'p/ROOT/b']);
      expect(dry.scriptText()).toContain('\nzfs send -R a/b@s | zfs receive p/ROOT/b\n');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
  it('names the program that failed first: a consumer that quits leaves no producer blocked', async () => {
    const { Runner } = await import('../../src/sys/run.js');
    // yes(1) writes for ever: it ends only when the consumer's going closes its pipe
    await expect(new Runner().pipe(['yes'], ['sh', '-c', 'head -c 10 >/dev/null; echo no room >&2; exit 3'])).rejects.toThrow('sh exited 3: no room');
    await expect(new Runner().pipe(['sh', '-c', 'echo no snapshot >&2; exit 1'], ['cat'])).rejects.toThrow('sh exited 1: no snapshot');
    await expect(new Runner().pipe(['nosuchprogram-bimg'], ['cat'])).rejects.toThrow('nosuchprogram-bimg: command not found');
  });
});
