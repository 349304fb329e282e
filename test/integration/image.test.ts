import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestPool, type TestPool } from '../helpers/zfs.js';
import { be, beOk } from '../helpers/cli.js';

/**
 * `be image` for real on zfs-fuse, sfdisk, losetup, mkfs.vfat and mtools: the image is read back
 * byte by byte and its pool imported back under another name.
 */

const GPT = { efi: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B', boot: '83BD6B9D-7F41-11DC-BE0B-001560B84F0F', zfs: '516E7CBA-6ECF-11D6-8FF8-00022D09712B' };

/** A loader.efi of known bytes with the PE header of an amd64 EFI program. */
function fakeLoader(): Buffer {
  const b = randomBytes(200_000);
  b.write('MZ', 0, 'latin1');
  b.writeUInt32LE(0x80, 0x3c);
  b.write('PE\0\0', 0x80, 'latin1');
  b.writeUInt16LE(0x8664, 0x84);
  return b;
}

interface SfdiskPart {
  start: number;
  size: number;
  type: string;
  name: string;
}

async function partitions(img: string): Promise<SfdiskPart[]> {
  const { stdout } = await execa('sfdisk', ['--json', img]);
  const table = JSON.parse(stdout).partitiontable;
  expect(table.label).toBe('gpt');
  return table.partitions;
}

async function readAt(file: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    await fh.read(buf, 0, length, offset);
    return buf;
  } finally {
    await fh.close();
  }
}

async function loop(img: string, p: SfdiskPart): Promise<string> {
  return (await execa('losetup', ['--find', '--show', '--offset', String(p.start * 512), '--sizelimit', String(p.size * 512), img])).stdout.trim();
}

async function loopsOf(img: string): Promise<string> {
  return (await execa('losetup', ['-j', img])).stdout.trim();
}

async function poolNames(): Promise<string[]> {
  return (await execa('zpool', ['list', '-H', '-o', 'name'])).stdout.split('\n').filter(Boolean);
}

describe('be image (zfs-fuse, sfdisk, losetup, mkfs.vfat, mtools)', () => {
  let tp: TestPool;
  let bystander: TestPool;
  let dir: string;
  const files = { pmbr: randomBytes(512), gptzfsboot: randomBytes(150_001), loader: fakeLoader() };
  const R = () => ['-R', tp.root];

  beforeAll(async () => {
    tp = await makeTestPool('512M');
    bystander = await makeTestPool('128M');
    dir = await mkdtemp(join(tmpdir(), 'bimg.'));
    await beOk([...R(), 'create', 'web']);
    await beOk([...R(), 'create', 'bare']);
    const at = (await beOk([...R(), 'mount', 'web'])).trim();
    await mkdir(join(at, 'boot'), { recursive: true });
    await writeFile(join(at, 'boot', 'pmbr'), files.pmbr);
    await writeFile(join(at, 'boot', 'gptzfsboot'), files.gptzfsboot);
    await writeFile(join(at, 'boot', 'loader.efi'), files.loader);
    await writeFile(join(at, 'usr', 'home', 'hello.txt'), 'hello from home\n');
    await writeFile(join(at, 'var', 'log', 'messages'), 'a log line\n');
    await beOk([...R(), 'umount', 'web']);
  }, 120_000);

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
    await bystander?.destroy();
    await tp?.destroy();
  }, 120_000);

  it('makes a BIOS+UEFI image whose boot code, ESP and pool are the BE own, leaving the host as it was', async () => {
    const img = join(dir, 'vm1.img');
    const pool = `bimg${randomBytes(3).toString('hex')}`;
    const before = await poolNames();
    const started = Date.now();
    const r = await be([...R(), 'image', '--size', '160M', '--pool', pool, 'web', img]);
    const took = Date.now() - started;
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(`qemu-system-x86_64 -m 2G -drive file=${img},format=raw\n`);
    console.log(`be image of a BE with ${files.loader.length + files.gptzfsboot.length} bytes of boot files into a 160M image: ${took} ms`);

    // Nothing of the host moved: its pools (the bystander above all) stay imported, the image's
    // pool is not, no loop device is left on the image, the BE keeps no snapshot.
    const after = await poolNames();
    expect(after).toContain(bystander.pool);
    expect(after).toContain(tp.pool);
    expect(before.filter((p) => p === bystander.pool || p === tp.pool)).toHaveLength(2);
    expect(after).not.toContain(pool);
    expect(await loopsOf(img)).toBe('');
    expect((await execa('zfs', ['list', '-H', '-t', 'snapshot', '-o', 'name', '-r', `${tp.root}/web`])).stdout).toBe('');

    // The partition table: zfsboot's BIOS+UEFI order, FreeBSD's type GUIDs, 1 MiB aligned.
    const parts = await partitions(img);
    expect(parts.map((p) => [p.type, p.name])).toEqual([
      [GPT.efi, 'efiboot0'],
      [GPT.boot, 'gptboot0'],
      [GPT.zfs, 'zfs0'],
    ]);
    expect(parts.map((p) => [p.start, p.size]).slice(0, 2)).toEqual([
      [2048, 33 * 2048],
      [34 * 2048, 1024],
    ]);
    expect(parts[2].start).toBe(35 * 2048);
    expect(parts[2].start + parts[2].size).toBeGreaterThan((160 * 2048) - 2048 - 34);

    // Sector 0: pmbr's first 446 bytes, then the protective GPT entry (0xEE) and the signature.
    const mbr = await readAt(img, 0, 512);
    expect(mbr.subarray(0, 446).equals(files.pmbr.subarray(0, 446))).toBe(true);
    expect(mbr[446 + 4]).toBe(0xee);
    expect(mbr.readUInt16LE(510)).toBe(0xaa55);
    // freebsd-boot: gptzfsboot's bytes, its last sector padded with zeros.
    const code = await readAt(img, parts[1].start * 512, 512 * 1024);
    expect(code.subarray(0, files.gptzfsboot.length).equals(files.gptzfsboot)).toBe(true);
    expect(code.subarray(files.gptzfsboot.length).every((b) => b === 0)).toBe(true);

    // The ESP: FAT32 labelled EFISYS, loader.efi as the removable-media default and as FreeBSD's.
    const esp = await loop(img, parts[0]);
    try {
      // the FAT32 boot sector: volume label at 71, file system type at 82
      const fat = await readAt(img, parts[0].start * 512, 512);
      expect(fat.toString('latin1', 71, 90)).toBe('EFISYS     FAT32   ');
      for (const path of ['::/EFI/BOOT/bootx64.efi', '::/EFI/freebsd/loader.efi']) {
        const got = await execa('mtype', ['-i', esp, path], { encoding: 'buffer' });
        expect(Buffer.from(got.stdout).equals(files.loader)).toBe(true);
      }
    } finally {
      await execa('losetup', ['-d', esp]);
    }

    // The pool, imported back from the image under another name and a fresh altroot.
    const zdev = await loop(img, parts[2]);
    const back = `bimgback${randomBytes(2).toString('hex')}`;
    const alt = join(dir, 'back');
    await mkdir(alt);
    try {
      await execa('zpool', ['import', '-d', '/dev', '-R', alt, pool, back]);
      const bootfs = (await execa('zpool', ['list', '-H', '-o', 'bootfs', back])).stdout.trim();
      expect(bootfs).toBe(`${back}/ROOT/web`);
      const listed = (await execa('zfs', ['list', '-H', '-o', 'name', '-t', 'all', '-r', `${back}/ROOT/web`])).stdout.split('\n');
      const src = (await execa('zfs', ['list', '-H', '-o', 'name', '-r', `${tp.root}/web`])).stdout.split('\n');
      expect(listed).toEqual(src.map((n) => n.replace(`${tp.root}/web`, `${back}/ROOT/web`))); // every child, no snapshot
      const props = (await execa('zfs', ['get', '-H', '-o', 'value', 'canmount,mountpoint', `${back}/ROOT/web`])).stdout.split('\n');
      expect(props).toEqual(['noauto', alt]);
      // the BE's children kept their own properties (be create made usr with canmount=off)
      expect((await execa('zfs', ['get', '-H', '-o', 'value', 'canmount', `${back}/ROOT/web/usr`])).stdout.trim()).toBe('off');
      await execa('zfs', ['mount', `${back}/ROOT/web`]);
      await execa('zfs', ['mount', `${back}/ROOT/web/usr/home`]);
      await execa('zfs', ['mount', `${back}/ROOT/web/var/log`]);
      expect((await readFile(join(alt, 'boot', 'loader.efi'))).equals(files.loader)).toBe(true);
      expect(await readFile(join(alt, 'usr', 'home', 'hello.txt'), 'utf8')).toBe('hello from home\n');
      expect(await readFile(join(alt, 'var', 'log', 'messages'), 'utf8')).toBe('a log line\n');
    } finally {
      await execa('zpool', ['export', back], { reject: false });
      await execa('losetup', ['-d', zdev]);
    }
  }, 180_000);

  it('--boot bios makes no ESP and --boot uefi no freebsd-boot partition', async () => {
    const img = join(dir, 'bios.img');
    const r = await be([...R(), 'image', '--size', '120M', '--boot', 'bios', '--pool', `bimg${randomBytes(3).toString('hex')}`, 'web', img]);
    expect(r.exitCode, r.stderr).toBe(0);
    const parts = await partitions(img);
    expect(parts.map((p) => [p.type, p.name, p.start])).toEqual([
      [GPT.boot, 'gptboot0', 2048],
      [GPT.zfs, 'zfs0', 2 * 2048],
    ]);
    expect((await readAt(img, 0, 446)).equals(files.pmbr.subarray(0, 446))).toBe(true);
    expect((await readAt(img, 2048 * 512, files.gptzfsboot.length)).equals(files.gptzfsboot)).toBe(true);
    expect(await loopsOf(img)).toBe('');
    const plan = await be([...R(), '-n', 'image', '--boot', 'uefi', 'web', join(dir, 'uefi.img')]);
    expect(plan.stderr).toBe('');
    expect(plan.stdout).toContain(`start=2048, size=67584, type=${GPT.efi}, name="efiboot0"\nstart=${34 * 2048}, `);
    expect(plan.stdout).not.toMatch(/gptboot0|dd if=/);
    expect(plan.stdout.trimEnd().split('\n').pop()).toBe(`qemu-system-x86_64 -m 2G -bios /usr/share/ovmf/OVMF.fd -drive file=${join(dir, 'uefi.img')},format=raw`);
  }, 120_000);

  it('prints the FreeBSD plan with BE_PLATFORM=freebsd -n: md(4), gpart, newfs_msdos; no host pool or GELI touched', async () => {
    const img = join(dir, 'fbsd.img');
    const r = await be([...R(), '-n', 'image', '--pool', 'bimgplan', 'web', img], { env: { BE_PLATFORM: 'freebsd' } });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const lines = r.stdout.split('\n');
    const stage = lines.map((l) => /^mkdir -m 700 (\/\S+be-image\.[0-9a-f]{8})$/.exec(l)?.[1]).find(Boolean)!;
    expect(stage).toBeDefined();
    const zfsStart = 35 * 2048;
    const zfsSize = Math.floor((10 * 1024 * 2048 - 33 - zfsStart) / 2048) * 2048;
    const expected = [
      `truncate -s 10G ${img}`,
      // the unit mdconfig prints is kept in $md and names the disk from then on
      `md=$(mdconfig -a -t vnode -f ${img})`,
      'gpart create -s gpt "${md}"',
      'gpart add -t efi -l efiboot0 -b 2048 -s 67584 -i 1 "${md}"',
      'gpart add -t freebsd-boot -l gptboot0 -b 69632 -s 1024 -i 2 "${md}"',
      `gpart add -t freebsd-zfs -l zfs0 -b ${zfsStart} -s ${zfsSize} -i 3 "\${md}"`,
      `gpart bootcode -b ${stage}/pmbr -p ${stage}/gptzfsboot -i 2 "\${md}"`,
      'newfs_msdos -F 32 -c 1 -L EFISYS "/dev/${md}p1"',
      `zpool create -R ${stage}.root -O compression=on -O atime=off -m none bimgplan "/dev/\${md}p3"`,
      'zpool set bootfs=bimgplan/ROOT/web bimgplan',
      'zpool export bimgplan',
      'mdconfig -d -u "${md}"',
    ];
    let at = -1;
    for (const line of expected) {
      const i = lines.indexOf(line);
      expect(i, line).toBeGreaterThan(at);
      at = i;
    }
    // web is not mounted: the plan mounts its root, stages the boot code from there and checks it
    // when it runs (as be does now where it can look), before the image is made
    const mount = lines.findIndex((l) => /^mount -t zfs \S+\/web \/\S+\/be_image\.[0-9a-f]{8}$/.test(l));
    const dirOf = mount >= 0 ? lines[mount].split(' ').pop()! : '';
    const copy = lines.indexOf(`[ ! -f ${dirOf}/boot/pmbr ] || cp ${dirOf}/boot/pmbr ${stage}/pmbr`);
    const check = lines.indexOf(`[ -f ${stage}/pmbr ] || { echo 'be: boot environment '\\''web'\\'' has no /boot/pmbr (needed for --boot both)' >&2; exit 1; }`);
    expect([mount > 0, copy > mount, lines.indexOf(`umount ${dirOf}`) > copy, check > copy, check < lines.indexOf(`truncate -s 10G ${img}`)]).toEqual([true, true, true, true, true]);
    expect(r.stdout).not.toContain('$BE_MOUNT');
    expect(lines.some((l) => /^mount_msdosfs "\/dev\/\$\{md\}p1" \//.test(l))).toBe(true);
    expect(lines.some((l) => /^cp \S+\/loader\.efi \/\S+\/EFI\/BOOT\/bootx64\.efi$/.test(l))).toBe(true);
    expect(lines.some((l) => /^zfs send -R \S+\/web@be-image-[0-9a-f]{8} \| zfs receive -u bimgplan\/ROOT\/web$/.test(l))).toBe(true);
    // zfsboot's host-wide steps are not there
    expect(r.stdout).not.toMatch(/geli|zpool export -a|zpool export -f|bsdinstall|kern\.disks/);
    expect(lines[lines.length - 2]).toBe(`sh /usr/share/examples/bhyve/vmrun.sh -m 2G -d ${img} fbsd`);
    expect(existsSync(img)).toBe(false);
  }, 60_000);

  it('refuses a BE without the boot code --boot needs, a pool name the host has, and a missing BE', async () => {
    const img = join(dir, 'bad.img');
    const uefi = await be([...R(), 'image', '--boot', 'uefi', 'bare', img]);
    expect(uefi.stderr).toBe("be: boot environment 'bare' has no /boot/loader.efi (needed for --boot uefi)\n");
    const bios = await be([...R(), 'image', '--boot', 'bios', 'bare', img]);
    expect(bios.stderr).toBe("be: boot environment 'bare' has no /boot/pmbr (needed for --boot bios)\n");
    const clash = await be([...R(), 'image', '--pool', bystander.pool, 'web', img]);
    expect(clash.stderr).toBe(`be: pool '${bystander.pool}' exists on this host: the image needs a pool name of its own (--pool)\n`);
    const missing = await be([...R(), 'image', 'nosuch', img]);
    expect(missing.stderr).toBe("be: boot environment 'nosuch' does not exist\n");
    expect(existsSync(img)).toBe(false);
    // the bare BE was mounted only to read its /boot, and is unmounted again
    expect((await execa('zfs', ['get', '-H', '-o', 'value', 'mounted', `${tp.root}/bare`])).stdout.trim()).toBe('no');
  }, 120_000);

  it('undoes everything when the BE does not fit: no image, no loop device, no pool, no snapshot', async () => {
    const at = (await beOk([...R(), 'mount', 'web'])).trim();
    await writeFile(join(at, 'usr', 'home', 'big.bin'), randomBytes(80 * 1024 * 1024));
    await beOk([...R(), 'umount', 'web']);
    const img = join(dir, 'small.img');
    const pool = `bimg${randomBytes(3).toString('hex')}`;
    const leftovers = async () => (await readdir(tmpdir())).filter((n) => n.startsWith('be-image.') || n.startsWith('be-esp.')).sort();
    const tmpBefore = await leftovers();
    const r = await be([...R(), 'image', '--size', '101M', '--pool', pool, 'web', img]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr.split('\n').filter(Boolean), r.stderr).toHaveLength(1);
    expect(r.stderr).toMatch(/^be: zfs exited 1: .*(space|quota)/i);
    expect(existsSync(img)).toBe(false);
    expect(await loopsOf(img)).toBe('');
    expect(await poolNames()).not.toContain(pool);
    expect((await execa('zfs', ['list', '-H', '-t', 'snapshot', '-o', 'name', '-r', `${tp.root}/web`])).stdout).toBe('');
    expect(await leftovers()).toEqual(tmpBefore);
  }, 180_000);
});
