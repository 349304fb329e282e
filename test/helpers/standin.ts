/**
 * A stand-in FreeBSD release for QEMU tests: the contract of a FreeBSD release's network boot
 * with Linux parts. Its kernel set holds /boot/pxeboot and /boot/loader.efi (iPXE scripts, what
 * the firmware fetches over TFTP by those names), /boot/kernel/kernel (a Linux kernel) and
 * /boot/kernel/initrd.gz: a busybox initramfs that, like FreeBSD's loader and kernel, takes the
 * root path from DHCP (option 17, `ip:/path`), gets the root's file handle with MOUNT v3 over UDP,
 * mounts it with NFSv3 over TCP, runs /etc/rc.local from it (chrooted) and powers off.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { cpioNewc, type CpioEntry } from './initramfs.js';
import type { FileSpec } from './mirror.js';

import { findKernel } from './kernel.js';

/** Kernel modules the initramfs loads, in order (the virtio-net NIC, then the NFSv3 client). */
export const MODULES = [
  'virtio_ring', 'virtio', 'virtio_pci_legacy_dev', 'virtio_pci_modern_dev', 'virtio_pci', 'failover', 'net_failover', 'virtio_net',
  'sunrpc', 'grace', 'lockd', 'netfs', 'fscache', 'nfs', 'nfs_acl', 'nfsv3',
];
/** scripts/install-deps puts the kernel's modules here (matching /usr/local/lib/be-test/vmlinuz). */
export const MODULE_DIR = process.env.BE_TEST_MODULES ?? '/usr/local/lib/be-test/modules';

export function missingParts(): string[] {
  return MODULES.map((m) => join(MODULE_DIR, `${m}.ko`)).filter((f) => !existsSync(f));
}

const INIT = `#!/bin/busybox sh
export PATH=/bin
busybox mount -t devtmpfs dev /dev
busybox mount -t proc proc /proc
busybox mount -t sysfs sys /sys
for m in ${MODULES.join(' ')}; do busybox insmod /lib/modules/$m.ko || echo "stand-in: insmod $m failed"; done
busybox ip link set lo up
i=0
while ! busybox ip link show eth0 >/dev/null 2>&1 && [ $i -lt 100 ]; do i=$((i+1)); busybox usleep 100000; done
busybox ip link set eth0 up
busybox udhcpc -i eth0 -f -q -n -t 30 -T 1 -O rootpath -s /bin/lease >/dev/null 2>&1
. /tmp/lease
echo "stand-in: lease $ip, root-path $rootpath"
server=\${rootpath%%:*}
busybox mkdir -p /mnt
if busybox mount -t nfs -o vers=3,proto=tcp,mountproto=udp,nolock,addr=$server "$rootpath" /mnt; then
  # as FreeBSD's kernel mounts devfs on the root's /dev before init runs rc
  busybox mkdir -p /mnt/dev && busybox mount -t devtmpfs dev /mnt/dev
  [ -x /mnt/etc/rc.local ] && BE_HUNT_POWEROFF=true busybox chroot /mnt /bin/sh /etc/rc.local
  busybox sync
  busybox umount /mnt/dev
  busybox umount /mnt
else
  echo "stand-in: NFS mount of $rootpath failed"
fi
busybox poweroff -f
`;

const LEASE = `#!/bin/busybox sh
case "$1" in
bound|renew)
  busybox ifconfig "$interface" "$ip" netmask "$subnet" up
  echo "ip='$ip' rootpath='$rootpath'" > /tmp/lease
  ;;
esac
`;

let initrd: Buffer | undefined;

export function standinInitramfs(): Buffer {
  if (initrd) return initrd;
  const busybox = readFileSync('/bin/busybox');
  const entries: CpioEntry[] = [
    { name: 'bin', mode: 0o040755 },
    { name: 'bin/busybox', mode: 0o100755, data: busybox },
    { name: 'bin/sh', mode: 0o100755, data: busybox },
    { name: 'bin/lease', mode: 0o100755, data: Buffer.from(LEASE) },
    { name: 'dev', mode: 0o040755 },
    { name: 'dev/console', mode: 0o020600, rdev: [5, 1] },
    { name: 'proc', mode: 0o040755 },
    { name: 'sys', mode: 0o040755 },
    { name: 'tmp', mode: 0o041777 },
    { name: 'lib', mode: 0o040755 },
    { name: 'lib/modules', mode: 0o040755 },
    ...MODULES.map((m) => ({ name: `lib/modules/${m}.ko`, mode: 0o100644, data: readFileSync(join(MODULE_DIR, `${m}.ko`)) })),
    { name: 'init', mode: 0o100755, data: Buffer.from(INIT) },
  ];
  initrd = gzipSync(cpioNewc(entries), { level: 6 });
  return initrd;
}

/** The iPXE script that stands for pxeboot and loader.efi: the kernel and initramfs from the same TFTP directory. */
export const IPXE_SCRIPT = '#!ipxe\nkernel kernel/kernel initrd=initrd.gz console=ttyS0 quiet loglevel=3 panic=-1\ninitrd kernel/initrd.gz\nboot\n';

/** The kernel set of a stand-in release: /boot as a FreeBSD release lays it out for a network boot. */
export function standinKernelSet(): Record<string, FileSpec> {
  return {
    'boot/pxeboot': IPXE_SCRIPT,
    'boot/loader.efi': IPXE_SCRIPT,
    'boot/kernel/kernel': readFileSync(findKernel()),
    'boot/kernel/initrd.gz': standinInitramfs(),
  };
}

/**
 * What QEMU runs of one test file could leave behind, and only theirs (other files boot VMs on the
 * same machine): namespaces and mount namespaces named PREFIX…, the servers whose argv names them,
 * QEMUs in such a namespace or named after one of BE_PIDS (be-PID-N), clones of POOL and their mounts.
 */
export async function vmLeftovers(prefix: string, pool: string, bePids: number[] = []): Promise<string[]> {
  const { execa } = await import('execa');
  const { readdir, readFile } = await import('node:fs/promises');
  const lines = async (argv: string[]) => (await execa(argv[0], argv.slice(1), { reject: false })).stdout.split('\n').filter(Boolean);
  const ns = (await readdir('/run/netns').catch(() => [] as string[])).filter((n) => n.startsWith(prefix));
  const mnt = (await readdir('/run/be-vm').catch(() => [] as string[])).filter((n) => n.startsWith(prefix));
  const servers = (await lines(['pgrep', '-af', prefix])).filter((l) => !l.includes('pgrep') && !l.includes('vitest'));
  const qemu: string[] = [];
  for (const l of await lines(['pgrep', '-af', '^qemu-system-x86_64 '])) {
    const inOurs = (await lines(['ip', 'netns', 'identify', l.split(' ')[0]])).some((n) => n.startsWith(prefix));
    if (inOurs || bePids.some((pid) => l.includes(` -name be-${pid}-`))) qemu.push(l);
  }
  const clones = (await lines(['zfs', 'list', '-H', '-o', 'name', '-r', pool])).filter((n) => n.includes('.run'));
  const mounts = (await readFile('/proc/mounts', 'utf8')).split('\n').filter((l) => l.split(' ')[0].startsWith(`${pool}/`) && l.includes('.run'));
  return [...ns, ...mnt, ...servers.filter((l) => !qemu.some((q) => q.split(' ')[0] === l.split(' ')[0])), ...qemu, ...clones, ...mounts];
}
