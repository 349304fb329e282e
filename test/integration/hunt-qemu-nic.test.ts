/**
 * The guest's NIC against the iPXE ROM it boots with, in the real QEMU and the real ROM files:
 * SeaBIOS (src/optionroms.c) runs a PCI device's option ROM only when the ROM's PCI data structure
 * ("PCIR") names that device's vendor and device ID, so the BIOS guest's virtio-net must be the
 * device Debian's pxe-virtio.rom names, or iPXE never runs and the guest never asks for a lease.
 * OVMF loads the ROM's EFI image (code type 3) whatever the ID; iPXE's driver in it checks the ID.
 */
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { readFile } from 'node:fs/promises';
import { qemuArgv, type Firmware } from '../../src/boot/qemu.js';

interface RomImage { vendor: number; device: number; codeType: number }

/** The images of a PCI expansion ROM (PCI Firmware Specification 3.0, 5.1): 55 AA, the PCIR structure, the last-image flag. */
function romImages(rom: Buffer): RomImage[] {
  const out: RomImage[] = [];
  for (let off = 0; off + 0x1a <= rom.length;) {
    expect(rom.readUInt16LE(off), `ROM image signature at ${off}`).toBe(0xaa55);
    const pcir = off + rom.readUInt16LE(off + 0x18);
    expect(rom.subarray(pcir, pcir + 4).toString('latin1')).toBe('PCIR');
    out.push({ vendor: rom.readUInt16LE(pcir + 4), device: rom.readUInt16LE(pcir + 6), codeType: rom[pcir + 0x14] });
    if (rom[pcir + 0x15] & 0x80) break;
    off += rom.readUInt16LE(pcir + 0x10) * 512;
  }
  return out;
}

/** The NIC of be's QEMU argv as QEMU itself presents it on the PCI bus (monitor `info pci`), without booting. */
async function nicId(firmware: Firmware): Promise<{ id: string; romfile: string }> {
  const argv = qemuArgv({ name: 'bqm-nic', firmware, accel: 'tcg', memory: '64M', cpus: 1, tap: 'unused', mac: '52:54:00:aa:bb:cc', console: 'stdio' });
  const device = argv[argv.indexOf('-device') + 1];
  const romfile = /romfile=([^,]+)/.exec(device)![1];
  // the same -device, on a netdev that needs nothing from the host
  const r = await execa('qemu-system-x86_64', ['-machine', 'pc', '-accel', 'tcg', '-nodefaults', '-display', 'none', '-S', '-monitor', 'stdio', '-netdev', 'hubport,id=net0,hubid=0', '-device', device], { input: 'info pci\nquit\n', reject: false, timeout: 60_000 });
  const id = /Ethernet controller: PCI device ([0-9a-f]{4}:[0-9a-f]{4})/.exec(r.stdout)?.[1];
  expect(id, `${r.stdout}\n${r.stderr}`).toBeTruthy();
  return { id: id!, romfile };
}

const hex = (n: number) => n.toString(16).padStart(4, '0');

describe("the QEMU guest's virtio-net NIC and iPXE's ROM", () => {
  it("BIOS: the NIC is the device the ROM's x86 image names, so SeaBIOS runs it (the non-transitional virtio-net, 1af4:1041)", async () => {
    const { id, romfile } = await nicId('bios');
    const x86 = romImages(await readFile(romfile)).filter((i) => i.codeType === 0);
    expect(x86.length).toBe(1);
    expect(id).toBe(`${hex(x86[0].vendor)}:${hex(x86[0].device)}`);
    expect(id).toBe('1af4:1041');
  }, 90_000);

  it('UEFI: a virtio-net NIC whose ROM carries an EFI image for virtio (the transitional device, 1af4:1000, which older FreeBSD drives too)', async () => {
    const { id, romfile } = await nicId('uefi');
    const images = romImages(await readFile(romfile));
    expect(images.some((i) => i.codeType === 3 && i.vendor === 0x1af4)).toBe(true);
    expect(id).toBe('1af4:1000');
  }, 90_000);
});
