/**
 * The hunt's methods: each --method value (chroot, jail, bhyve, qemu) is the boot registry's
 * method of that name (src/boot/index.ts), whose runTest runs the test once in the run's clone;
 * `be chroot`, `be jail`, `be bootnfs` and `be bootpxe --vmm qemu` boot with the same objects.
 */
import { bootMethods, type BootMethodName } from '../boot/index.js';
import type { Method } from './state.js';


/** The registry's methods a hunt runs tests with (pxe boots what be sharepxe serves, not a run's clone). */
export const HUNT_METHODS = ['chroot', 'jail', 'bhyve', 'qemu'] as const satisfies readonly Method[] & readonly BootMethodName[];

/** The boot method of a hunt's --method value (undefined for a name that is none). */
export function huntMethod(name: Method): (typeof bootMethods)[Method] | undefined {
  return (HUNT_METHODS as readonly string[]).includes(name) ? bootMethods[name] : undefined;
}
