import { describe, expect, it } from 'vitest';
import { PROBE_STATUS, probeArgv, probeBootSector, qemuArgv, checkFirmware, checkCpus } from '../../src/boot/qemu.js';
import { nextVm, vmGaneshaConf, vmPxeArgs } from '../../src/boot/vmnet.js';

const value = (argv: string[], flag: string) => argv[argv.indexOf(flag) + 1];

describe('qemuArgv', () => {
  const base = { name: 'be-1-0', accel: 'tcg' as const, memory: '512M', cpus: 2, tap: 'tap0', mac: '52:54:00:aa:bb:cc', console: { file: '/tmp/c.log' } };

  it('BIOS: iPXE option ROM on the NIC, network first, serial into the log, the guest power-off ends QEMU', () => {
    const argv = qemuArgv({ ...base, firmware: 'bios' });
    expect(argv[0]).toBe('qemu-system-x86_64');
    expect(value(argv, '-accel')).toBe('tcg');
    expect(value(argv, '-m')).toBe('512M');
    expect(value(argv, '-smp')).toBe('2');
    expect(argv).not.toContain('-bios');
    expect(value(argv, '-netdev')).toBe('tap,id=net0,ifname=tap0,script=no,downscript=no');
    expect(value(argv, '-device')).toBe('virtio-net-pci,disable-legacy=on,netdev=net0,mac=52:54:00:aa:bb:cc,romfile=/usr/lib/ipxe/qemu/pxe-virtio.rom,bootindex=1');
    expect(value(argv, '-serial')).toBe('file:/tmp/c.log');
    expect(argv).toContain('-no-reboot');
  });

  it('UEFI: OVMF with the EFI driver ROM; KVM; the terminal as console', () => {
    const argv = qemuArgv({ ...base, firmware: 'uefi', accel: 'kvm', memory: '1G', console: 'stdio' });
    expect(value(argv, '-bios')).toBe('/usr/share/ovmf/OVMF.fd');
    expect(value(argv, '-device')).toBe('virtio-net-pci,netdev=net0,mac=52:54:00:aa:bb:cc,romfile=/usr/lib/ipxe/qemu/efi-virtio.rom,bootindex=1');
    expect(value(argv, '-accel')).toBe('kvm');
    expect(value(argv, '-m')).toBe('1G');
    expect(value(argv, '-serial')).toBe('stdio');
  });

  it('refuses bad values with the value named', () => {
    expect(() => checkFirmware('coreboot')).toThrow("invalid firmware 'coreboot': expected bios or uefi");
    expect(() => checkCpus('0')).toThrow("invalid CPU count '0'");
    expect(() => qemuArgv({ ...base, firmware: 'bios', memory: 'lots' })).toThrow("invalid memory size 'lots'");
    expect(() => qemuArgv({ ...base, firmware: 'bios', mac: 'nope' })).toThrow("invalid MAC address 'nope'");
  });
});

describe('the KVM probe guest', () => {
  it('is a boot sector that writes to isa-debug-exit, so only a guest that ran exits with its status', () => {
    const b = probeBootSector();
    expect(b.length).toBe(512);
    expect(b.readUInt16LE(510)).toBe(0xaa55);
    // mov al, imm8; out 0xf4, al
    expect(b[0]).toBe(0xb0);
    expect([b[2], b[3]]).toEqual([0xe6, 0xf4]);
    expect(PROBE_STATUS).toBe((b[1] << 1) | 1);
    const argv = probeArgv('/tmp/p.img');
    expect(value(argv, '-accel')).toBe('kvm');
    expect(argv).toContain('isa-debug-exit,iobase=0xf4,iosize=0x04');
  });
});

describe("a VM's network and servers, against what FreeBSD's loader and kernel ask", () => {
  const a = nextVm(4242, 3);

  it('a namespace named after be\'s pid, a /29 of its own: server .1, guest .2', () => {
    expect(a.ns).toMatch(/-4242-3$/);
    expect(a.prefix).toBe(29);
    const [h, g] = [a.host, a.guest].map((ip) => ip.split('.').map(Number));
    expect(h.slice(0, 3)).toEqual(g.slice(0, 3));
    expect(h[3] % 8).toBe(1);
    expect(g[3]).toBe(h[3] + 1);
    expect(nextVm(4242, 4).host).not.toBe(a.host);
  });

  it("ganesha: NFSv3 and MOUNT over UDP for the loader (stand/libsa/nfs.c, rpc.c), NFSv3 over TCP on 2049 for the kernel (sys/nfs/nfs_diskless.c), root unsquashed, the guest alone", () => {
    const conf = vmGaneshaConf({ path: '/be/run1', guest: a.guest, bind: a.host });
    const core = /NFS_CORE_PARAM \{([^}]*)\}/.exec(conf)![1];
    expect(core).toMatch(/Protocols = 3;/);
    expect(core).toMatch(/Enable_UDP = true;/);
    expect(core).toMatch(/NFS_Port = 2049;/);
    expect(core).toMatch(new RegExp(`Bind_addr = ${a.host.replace(/\./g, '\\.')};`));
    const exp = conf.slice(conf.indexOf('EXPORT {'));
    expect(exp).toContain('Path = "/be/run1";');
    expect(exp).toMatch(/Protocols = 3/);
    // no Transports line: ganesha's default is UDP and TCP
    expect(exp).not.toMatch(/Transports/);
    expect(exp).toContain('Squash = No_Root_Squash;');
    expect(exp).toContain('Access_Type = None;');
    expect(exp).toContain(`CLIENT { Clients = ${a.guest}; Access_Type = RW; }`);
    expect((conf.match(/EXPORT \{/g) ?? []).length).toBe(1);
  });

  it("pxe serve: the guest's address reserved, the boot files from the BE's /boot, root-path as ip:/path (stand/libsa/net.c net_parse_rootpath)", () => {
    const args = vmPxeArgs(a, { path: '/be/run1', mac: '52:54:00:aa:bb:cc', bootBios: 'pxeboot', bootEfi: 'loader.efi' });
    expect(value(args, '--interface')).toBe('br0');
    expect(value(args, '--host')).toBe(`52:54:00:aa:bb:cc=${a.guest}`);
    expect(value(args, '--range')).toBe(`${a.guest}-${a.guest}`);
    expect(value(args, '--tftp-root')).toBe('/be/run1/boot');
    expect([value(args, '--boot-bios'), value(args, '--boot-efi')]).toEqual(['pxeboot', 'loader.efi']);
    // the loader's compatibility form: strsep at ':', inet_addr of the left part, the rest the path
    const rootPath = value(args, '--root-path');
    const [ip, path] = [rootPath.slice(0, rootPath.indexOf(':')), rootPath.slice(rootPath.indexOf(':') + 1)];
    expect(ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(ip).toBe(a.host);
    expect(path).toBe('/be/run1');
    // no scheme (nfs://): the loader's default protocol is NFS
    expect(rootPath).not.toMatch(/^[a-z]+:\/\//);
  });
});
