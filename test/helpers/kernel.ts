/** A Linux kernel for QEMU guests: BE_TEST_KERNEL, the newest readable /boot/vmlinuz-*, or the one scripts/install-deps unpacks. */
import { accessSync, constants, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export const UNPACKED_KERNEL = '/usr/local/lib/be-test/vmlinuz';

function readable(p: string): boolean {
  try {
    accessSync(p, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

export function findKernel(): string {
  const candidates = [
    process.env.BE_TEST_KERNEL,
    UNPACKED_KERNEL,
    ...(existsSync('/boot') ? readdirSync('/boot').filter((n) => n.startsWith('vmlinuz-')).sort().reverse().map((n) => join('/boot', n)) : []),
  ].filter((p): p is string => !!p);
  const found = candidates.find(readable);
  if (!found) throw new Error(`no Linux kernel to boot: set BE_TEST_KERNEL or run scripts/install-deps (looked at ${candidates.join(', ')})`);
  return found;
}
