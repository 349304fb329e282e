/**
 * `be sharepxe BE`: `be pxe serve` for one boot environment. The TFTP root is the BE's /boot
 * (the firmware fetches `pxeboot` or `loader.efi` from there) and DHCP hands out root-path
 * `<address>:<directory the BE is shared from>`, the path `be sharenfs` exports. FreeBSD's
 * pxeboot and loader.efi read everything else (loader.conf, the kernel, modules) over NFS from
 * that root path, then the kernel mounts it as /.
 *
 * The BE is mounted where `be sharenfs` would share it from (unless it is mounted already) and
 * left mounted when the server stops, since its NFS export serves the booted machines.
 */
import { join } from 'node:path';
import { stat } from 'node:fs/promises';
import type { BeContext } from '../be/context.js';
import { requireBe } from '../be/context.js';
import { mountBe, mountedDatasets } from '../be/access.js';
import { defaultShareDir } from '../share/share.js';
import { BeError } from '../sys/errors.js';
import type { PxeInput } from './pxeserve.js';

export interface SharePxePlan {
  be: string;
  /** Where the BE is mounted (and shared from). */
  dir: string;
  /** Whether this run mounted it. */
  mounted: boolean;
  /** The input for `be pxe serve`, with tftp-root and root-path filled in. */
  input: PxeInput;
}

/** Mount the BE if needed and fill in tftp-root = <BE>/boot and root-path = address:<BE dir>. */
export async function prepareSharePxe(ctx: BeContext, name: string, input: PxeInput): Promise<SharePxePlan> {
  const be = await requireBe(ctx, name);
  let dir = (await mountedDatasets(ctx, be)).get(be);
  let mounted = false;
  if (dir === undefined) {
    dir = await mountBe(ctx, be, await defaultShareDir(ctx, be));
    mounted = true;
  }
  const boot = join(dir, 'boot');
  const st = await stat(boot).catch(() => undefined);
  if (!st?.isDirectory()) throw new BeError(`boot environment '${name}' has no /boot directory (looked in ${boot})`);
  const out: PxeInput = { ...input };
  out['tftp-root'] ??= boot;
  if (out['root-path'] === undefined && typeof input.address === 'string') out['root-path'] = `${input.address}:${dir}`;
  return { be, dir, mounted, input: out };
}
