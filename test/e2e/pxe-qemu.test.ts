/**
 * End to end: QEMU PCs (TCG, e1000 with iPXE's ROM, `-boot n`) on a tap bridged inside a
 * network namespace to where `be pxe serve` runs.
 * - BIOS: the firmware gets a lease, fetches Debian's pxelinux.0 (the BIOS boot file), pxelinux
 *   fetches its config, a Linux kernel and a busybox initramfs over TFTP, and the initramfs
 *   prints a marker on the serial console.
 * - UEFI (OVMF): the firmware asks as an x64 UEFI client (option 93 = 7), is given the EFI boot
 *   file, an iPXE script, which loads the same kernel and initramfs over TFTP.
 * - proxyDHCP: dnsmasq, in a namespace of its own joined to the PC's bridge, is the lab's DHCP
 *   server and hands out addresses only; `be pxe serve --proxy` beside it gives the BIOS PC its
 *   boot file, and the PC boots as above.
 */
import { findKernel } from '../helpers/kernel.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { busyboxInitramfs } from '../helpers/initramfs.js';
import { startBe, type PxeProcess } from '../helpers/pxe.js';
import { watch, type Watched } from '../helpers/proc.js';

const PXELINUX = '/usr/lib/PXELINUX/pxelinux.0';
const LDLINUX = '/usr/lib/syslinux/modules/bios/ldlinux.c32';
const ROM = '/usr/lib/ipxe/qemu/pxe-e1000.rom';
const EFI_ROM = '/usr/lib/ipxe/qemu/efi-e1000.rom';
const OVMF = '/usr/share/ovmf/OVMF.fd';
const DNSMASQ = '/usr/sbin/dnsmasq';

async function ip(args: string[]): Promise<void> {
  await execa('ip', args);
}

/** Namespace NS with bridge br0 at ADDRESS/24 and tap0 on it, for QEMU's NIC. */
async function tapLan(ns: string, address: string): Promise<void> {
  await ip(['netns', 'add', ns]);
  await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
  await ip(['-n', ns, 'link', 'add', 'br0', 'type', 'bridge']);
  await ip(['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'br0']);
  await ip(['-n', ns, 'link', 'set', 'br0', 'up']);
  await ip(['-n', ns, 'tuntap', 'add', 'dev', 'tap0', 'mode', 'tap']);
  await ip(['-n', ns, 'link', 'set', 'tap0', 'master', 'br0']);
  await ip(['-n', ns, 'link', 'set', 'tap0', 'up']);
}

async function waitForFile(path: string, needle: string, ms: number, alive: () => boolean): Promise<string> {
  const until = Date.now() + ms;
  for (;;) {
    const text = await readFile(path, 'latin1').catch(() => '');
    if (text.includes(needle)) return text;
    if (!alive()) throw new Error(`QEMU exited before printing ${needle}; serial console:\n${text.slice(-3000)}`);
    if (Date.now() > until) throw new Error(`no ${needle} on the serial console within ${ms / 1000} s; console:\n${text.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe('PXE boot of a QEMU guest from be pxe serve', () => {
  const tag = randomBytes(3).toString('hex');
  const ns = `bepxe-${tag}`;
  const net = `10.${randomInt(100, 250)}.${randomInt(1, 250)}`;
  const address = `${net}.1`;
  const nonce = randomBytes(4).toString('hex');
  const marker = `BE-PXE-OK-${nonce}`;
  const randomMac = () => `52:54:00:${randomBytes(3).toString('hex').match(/../g)!.join(':')}`;
  let dir = '';
  let server: PxeProcess | undefined;
  let qemu: ResultPromise | undefined;
  let qemuAlive = false;

  /** Boot a QEMU PC from the network; resolves with its serial console once MARK shows up. */
  async function bootGuest(name: string, mac: string, firmware: string[], rom: string, mark: string, netns = ns): Promise<string> {
    const log = join(dir, `${name}.serial.log`);
    qemu = execa('ip', [
      'netns', 'exec', netns, 'qemu-system-x86_64', '-accel', 'tcg', '-m', '256', '-smp', '1', ...firmware,
      '-netdev', 'tap,id=n0,ifname=tap0,script=no,downscript=no',
      '-device', `e1000,netdev=n0,mac=${mac},romfile=${rom},bootindex=1`,
      '-boot', 'n', '-display', 'none', '-monitor', 'none', '-serial', `file:${log}`, '-no-reboot',
    ], { reject: false, stdin: 'ignore' });
    qemuAlive = true;
    const running = qemu;
    void running.then(() => (qemuAlive = false));
    try {
      return await waitForFile(log, mark, 240_000, () => qemuAlive);
    } finally {
      if (qemuAlive) running.kill('SIGKILL');
      await running.catch(() => {});
    }
  }

  beforeAll(async () => {
    for (const f of [PXELINUX, LDLINUX, ROM, EFI_ROM, OVMF, DNSMASQ]) if (!existsSync(f)) throw new Error(`${f} missing: run scripts/install-deps`);
    dir = await mkdtemp(join(tmpdir(), 'be-pxe-e2e-'));
    const root = join(dir, 'tftp');
    await mkdir(join(root, 'pxelinux.cfg'), { recursive: true });
    await copyFile(PXELINUX, join(root, 'pxelinux.0'));
    await copyFile(LDLINUX, join(root, 'ldlinux.c32'));
    await copyFile(findKernel(), join(root, 'vmlinuz'));
    // the marker is put together at run time: it appears in no file the guest is sent
    await writeFile(join(root, 'initrd.gz'), busyboxInitramfs(`n=${nonce}; echo BE-PXE-OK-$n > /dev/ttyS0`));
    await writeFile(join(root, 'boot-efi.ipxe'), '#!ipxe\nkernel vmlinuz initrd=initrd.gz console=ttyS0 quiet panic=1 loglevel=3\ninitrd initrd.gz\nboot\n');
    await writeFile(join(root, 'pxelinux.cfg', 'default'), [
      'SERIAL 0 115200',
      'DEFAULT linux',
      'PROMPT 0',
      'TIMEOUT 0',
      'LABEL linux',
      '  KERNEL vmlinuz',
      '  INITRD initrd.gz',
      '  APPEND console=ttyS0 quiet panic=1 loglevel=3',
      '',
    ].join('\n'));
    // the server drops to nobody: the tree must be readable by anyone
    await chmod(dir, 0o755);
    await execa('chmod', ['-R', 'a+rX', root]);

    await tapLan(ns, address);
  }, 60_000);

  afterAll(async () => {
    if (qemu && qemuAlive) qemu.kill('SIGKILL');
    await qemu?.catch(() => {});
    await server?.stop().catch(() => {});
    await execa('ip', ['netns', 'del', ns], { reject: false });
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a BIOS PC gets a lease, loads pxelinux.0, its config, a kernel and an initramfs, and runs it', async () => {
    server = startBe(ns, [
      // br0 has no carrier until QEMU opens the tap: the server finds its subnet all the same
      'pxe', 'serve', '--address', address, '--interface', 'br0', '--range', `${net}.100-${net}.120`,
      '--tftp-root', join(dir, 'tftp'), '--boot-bios', 'pxelinux.0', '--boot-efi', 'boot-efi.ipxe',
      '--lease-file', join(dir, 'leases', 'leases'),
    ]);
    await server.waitFor(/^running as nobody/);
    const mac = randomMac();
    const console = await bootGuest('bios', mac, [], ROM, marker);
    expect(console).toContain(marker);

    const lease = server.lines.find((l) => l.startsWith('dhcp DHCPACK') && l.includes(` to ${mac}`));
    expect(lease, server.lines.join('\n')).toMatch(new RegExp(`^dhcp DHCPACK ${net.replace(/\./g, '\\.')}\\.(1[01]\\d|120) to ${mac}`));
    for (const file of ['pxelinux.0', 'ldlinux.c32', 'pxelinux.cfg/default', 'vmlinuz', 'initrd.gz']) {
      const done = server.lines.find((l) => l.startsWith('tftp ') && l.includes(`"${file}"`) && / ok\b/.test(l));
      expect(done, `transfer of ${file}:\n${server.lines.join('\n')}`).toBeTruthy();
    }
    expect(server.lines.some((l) => l.includes('"boot-efi.ipxe"'))).toBe(false);
  }, 300_000);

  it('a UEFI PC is given the EFI boot file, which loads the kernel and initramfs', async () => {
    if (!server) throw new Error('the server did not start');
    const before = server.lines.length;
    const mac = randomMac();
    const console = await bootGuest('uefi', mac, ['-bios', OVMF], EFI_ROM, marker);
    expect(console).toContain(marker);
    const lines = server.lines.slice(before);
    expect(lines.some((l) => l.startsWith('dhcp DHCPACK') && l.includes(` to ${mac}`)), lines.join('\n')).toBe(true);
    for (const file of ['boot-efi.ipxe', 'vmlinuz', 'initrd.gz']) {
      expect(lines.some((l) => l.startsWith('tftp ') && l.includes(`"${file}"`) && / ok\b/.test(l)), `transfer of ${file}:\n${lines.join('\n')}`).toBe(true);
    }
    expect(lines.some((l) => l.includes('"pxelinux.0"'))).toBe(false);

    expect(await server.stop()).toBe(0);
    expect(server.lines.at(-1)).toMatch(/^stopped; 2 leases kept in /);
  }, 300_000);

  it('with --proxy beside the lab\'s own DHCP server (dnsmasq), a BIOS PC takes its address from dnsmasq and its boot file from be', async () => {
    // lab: the PC's tap and be on br0; lab-dhcp: the lab's DHCP server, another machine on the same
    // wire (a veth into the bridge). dnsmasq has no boot options: without be the PC cannot boot.
    const lab = `bepxl-${tag}`;
    const labDhcp = `bepxd-${tag}`;
    const lnet = `10.${randomInt(100, 250)}.${randomInt(1, 250)}`;
    const beAddress = `${lnet}.1`;
    const dnsmasqAddress = `${lnet}.2`;
    const leaseFile = join(dir, 'dnsmasq.leases');
    const mac = randomMac();
    let dnsmasq: Watched | undefined;
    let proxy: PxeProcess | undefined;
    try {
      await tapLan(lab, beAddress);
      await ip(['netns', 'add', labDhcp]);
      await ip(['-n', labDhcp, 'link', 'set', 'lo', 'up']);
      await ip(['-n', labDhcp, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'dhcp0', 'netns', lab]);
      await ip(['-n', labDhcp, 'addr', 'add', `${dnsmasqAddress}/24`, 'dev', 'eth0']);
      await ip(['-n', labDhcp, 'link', 'set', 'eth0', 'up']);
      await ip(['-n', lab, 'link', 'set', 'dhcp0', 'master', 'br0']);
      await ip(['-n', lab, 'link', 'set', 'dhcp0', 'up']);

      dnsmasq = watch([
        'ip', 'netns', 'exec', labDhcp, DNSMASQ, '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts',
        '--port=0', '--interface=eth0', '--bind-interfaces', `--dhcp-range=${lnet}.150,${lnet}.170,255.255.255.0,10m`,
        `--dhcp-leasefile=${leaseFile}`, `--pid-file=${join(dir, 'dnsmasq.pid')}`, '--log-dhcp', '--log-facility=-',
      ], { name: 'dnsmasq' });
      await dnsmasq.waitFor(/DHCP, IP range/);

      proxy = startBe(lab, [
        'pxe', 'serve', '--proxy', '--address', beAddress, '--tftp-root', join(dir, 'tftp'), '--boot-bios', 'pxelinux.0',
      ]);
      await proxy.waitFor(/^running as nobody/);
      expect(proxy.lines.join('\n')).toMatch(new RegExp(`^dhcp proxyDHCP server ${beAddress.replace(/\./g, '\\.')} listening on 0\\.0\\.0\\.0:67 and 4011$`, 'm'));

      const console = await bootGuest('proxy', mac, [], ROM, marker, lab);
      expect(console).toContain(marker);

      // the address is dnsmasq's: in its lease file and its log, from its range
      const inRange = `${lnet.replace(/\./g, '\\.')}\\.(1[5-6]\\d|170)`;
      const lease = (await readFile(leaseFile, 'utf8')).split('\n').find((l) => l.split(' ')[1] === mac);
      expect(lease, `dnsmasq leases:\n${await readFile(leaseFile, 'utf8')}`).toMatch(new RegExp(`^\\d+ ${mac} ${inRange} `));
      const pcAddress = lease!.split(' ')[2];
      const dnsmasqLog = dnsmasq.lines.join('\n');
      expect(dnsmasqLog).toContain(`DHCPACK(eth0) ${pcAddress} ${mac}`);
      // dnsmasq sent neither a boot file nor a TFTP server (options 66, 67): those came from be
      expect(dnsmasqLog, dnsmasqLog).toMatch(/sent size: +\d+ option: +54 server-identifier/);
      expect(dnsmasqLog, dnsmasqLog).not.toMatch(/sent size: +\d+ option: +6[67] /);

      // be: proxyDHCP answers on 67 (iPXE takes the boot file from the offer; were it to ask on
      // 4011 too, it would be from dnsmasq's address), no address of its own, and the TFTP
      // transfers come from the address dnsmasq gave
      const lines = proxy.lines;
      const all = lines.join('\n');
      expect(lines, all).toContain(`dhcp proxyDHCP offer pxelinux.0 to ${mac}`);
      const dhcpLines = lines.filter((l) => l.startsWith('dhcp '));
      expect(dhcpLines.filter((l) => !/^dhcp proxyDHCP (server |offer pxelinux\.0 to |ack pxelinux\.0 to )/.test(l)), all).toEqual([]);
      expect(dhcpLines.filter((l) => l.startsWith('dhcp proxyDHCP ack') && l !== `dhcp proxyDHCP ack pxelinux.0 to ${mac} at ${pcAddress}`), all).toEqual([]);
      for (const file of ['pxelinux.0', 'ldlinux.c32', 'pxelinux.cfg/default', 'vmlinuz', 'initrd.gz']) {
        const done = lines.find((l) => l.startsWith(`tftp ${pcAddress}:`) && l.includes(`"${file}"`) && / ok\b/.test(l));
        expect(done, `transfer of ${file}:\n${all}`).toBeTruthy();
      }

      expect(await proxy.stop()).toBe(0);
      // proxy mode keeps no lease journal
      expect(proxy.lines.at(-1)).toBe('stopped');
    } finally {
      await proxy?.stop().catch(() => {});
      await dnsmasq?.stop();
      await execa('ip', ['netns', 'del', lab], { reject: false });
      await execa('ip', ['netns', 'del', labDhcp], { reject: false });
    }
  }, 300_000);
});
