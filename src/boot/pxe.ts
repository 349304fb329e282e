/**
 * PXE boot of a BE in bhyve(8): UEFI firmware (edk2-bhyve's BHYVE_UEFI.fd) and virtio-net on a
 * tap bridged to where `be sharepxe` answers DHCP and TFTP; the firmware does the rest.
 *
 * usr.sbin/bhyve/bhyverun.c `do_open`: with `-l bootrom,FILE` bhyve creates the VM itself (no
 * bhyveload), and a VM that exists already is reinitialised; without a bootrom a VM bhyveload
 * did not set up "cannot be booted" (exit 4). The firmware path is the sysutils/edk2 package's,
 * not part of FreeBSD's sources. Exit statuses are read as in bhyve.ts (a reboot boots again).
 */
import type { BeContext } from '../be/context.js';
import { requireFreeBSD, checkVmName, checkMemory, checkTap, checkMac, nmdmDevice, type BootMethod } from './method.js';
import { bhyveArgv, runVm, stopVm } from './bhyve.js';
import { BeError } from '../sys/errors.js';

export const UEFI_FIRMWARE = '/usr/local/share/uefi-firmware/BHYVE_UEFI.fd';

export interface PxeBootOptions {
  vm: string;
  tap?: string;
  memory?: string;
  mac?: string;
  cpus?: number;
  nmdm?: number;
  firmware?: string;
}

export function pxeBhyveArgv(o: PxeBootOptions): string[] {
  const firmware = o.firmware ?? UEFI_FIRMWARE;
  if (!firmware.startsWith('/') || /\s|,/.test(firmware)) throw new BeError(`invalid firmware path '${firmware}'`);
  return bhyveArgv({
    vm: checkVmName(o.vm),
    memory: checkMemory(o.memory ?? '1G'),
    cpus: o.cpus,
    tap: checkTap(o.tap ?? 'tap0'),
    mac: o.mac === undefined ? undefined : checkMac(o.mac),
    console: nmdmDevice(o.nmdm ?? 0),
    bootrom: firmware,
  });
}

/** The BE is served by `be sharepxe`; here it only names what is booted. */
export async function bootPxe(ctx: BeContext, _be: string, opts: PxeBootOptions): Promise<number> {
  requireFreeBSD(ctx, 'bhyve(8)');
  const argv = pxeBhyveArgv(opts);
  return runVm(ctx, opts.vm, undefined, argv);
}

export const pxeMethod: BootMethod<PxeBootOptions> = {
  name: 'pxe',
  runsHere: (ctx) => ctx.flavour === 'freebsd',
  boot: bootPxe,
  stop: stopVm,
  /**
   * No test runs: the guest boots whatever `be sharepxe` serves on the tap, not the BE given
   * here, so a run could not tell which BE its status came from (bhyve boots the BE itself).
   */
  async runTest() {
    throw new BeError("method 'pxe' runs no tests: its guest boots what be sharepxe serves, not the BE given; use bhyve (NFS root) or qemu");
  },
};
