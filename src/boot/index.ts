/**
 * The boot methods, siblings behind one interface (see method.ts): the one registry that the
 * `be` verbs (src/cli/boot.ts) and the hunt (--method chroot, jail, bhyve, qemu) look them up in.
 */
import { chrootMethod } from './chroot.js';
import { jailMethod } from './jail.js';
import { bhyveNfsMethod } from './bhyve.js';
import { pxeMethod } from './pxe.js';
import { qemuMethod } from './qemuboot.js';

export const bootMethods = {
  chroot: chrootMethod,
  jail: jailMethod,
  bhyve: bhyveNfsMethod,
  pxe: pxeMethod,
  qemu: qemuMethod,
} as const;

export type BootMethodName = keyof typeof bootMethods;

/** The method NAME names, if it is one (a name read from a job or a file). */
export function bootMethod(name: string): (typeof bootMethods)[BootMethodName] | undefined {
  return Object.hasOwn(bootMethods, name) ? bootMethods[name as BootMethodName] : undefined;
}

export { DEFAULT_VM, type BootMethod, type TestRun, type TestRunEnd, type VmSettings } from './method.js';
export { runInChroot, clearChroot } from './chroot.js';
/** What `be jail --conf` prints, and the QEMU flags' checks (bootnfs/bootpxe --vm-*). */
export { jailConf, jailParams, requestedPath } from './jail.js';
export { checkCpus, checkFirmware } from './qemu.js';
