/** The boot methods, siblings behind one interface (see method.ts). */
import { chrootMethod } from './chroot.js';
import { jailMethod } from './jail.js';
import { bhyveNfsMethod } from './bhyve.js';
import { pxeMethod } from './pxe.js';

export const bootMethods = {
  chroot: chrootMethod,
  jail: jailMethod,
  'bhyve-nfs': bhyveNfsMethod,
  pxe: pxeMethod,
} as const;

export type BootMethodName = keyof typeof bootMethods;
export type { BootMethod } from './method.js';
export { runInChroot } from './chroot.js';
