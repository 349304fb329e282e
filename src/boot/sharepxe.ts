/**
 * `be sharepxe BE`: `be pxe serve` for one boot environment. The TFTP root is the BE's /boot
 * (the firmware fetches `pxeboot` or `loader.efi` from there) and DHCP hands out root-path
 * `<address>:<directory the BE is shared from>`, the path `be sharenfs` exports. FreeBSD's
 * pxeboot and loader.efi read everything else (loader.conf, the kernel, modules) over NFS from
 * that root path, then the kernel mounts it as /.
 *
 * A loader built for TFTP instead (LOADER_TFTP_SUPPORT) asks for `<root path>/boot/...` (libsa
 * prefixes every name with the root path): `bootFilesByRootPath` serves those names from the same
 * /boot, so both kinds of loader boot the BE.
 *
 * The BE is mounted where `be sharenfs` would share it from (unless it is mounted already) and
 * left mounted when the server stops, since its NFS export serves the booted machines.
 *
 * The root path follows the loader's reading of it: stand/libsa/bootp.c copies option 17 into
 * `rootpath[FNAME_SIZE]` (128 bytes with its NUL, stand/libsa/net.h; older loaders overflow it),
 * and stand/libsa/net.c `net_parse_rootpath` takes `ip:/path` (the part before ':' through
 * inet_addr, so a dotted address, not a host name) as an NFS root. A longer root path is refused
 * before anything is mounted.
 */
import { join } from 'node:path';
import { readFile, realpath, stat } from 'node:fs/promises';
import type { BeContext } from '../be/context.js';
import { requireBe } from '../be/context.js';
import { mountBe, mountedDatasets } from '../be/access.js';
import { defaultShareDir } from '../share/share.js';
import { BeError } from '../sys/errors.js';
import { shQuote } from '../sys/shell.js';
import type { PxeInput } from '../pxe/settings.js';

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
  const already = (await mountedDatasets(ctx, be)).get(be);
  const target = already ?? (await defaultShareDir(ctx, be));
  const rootPath = input['root-path'] ?? (typeof input.address === 'string' ? `${input.address}:${target}` : undefined);
  if (typeof rootPath === 'string' && Buffer.byteLength(rootPath) > MAX_ROOT_PATH) {
    throw new BeError(`root path '${rootPath}' is ${Buffer.byteLength(rootPath)} bytes: FreeBSD's loader keeps at most ${MAX_ROOT_PATH} (share the BE from a shorter path)`);
  }
  let dir = already;
  let mounted = false;
  if (dir === undefined) {
    dir = await mountBe(ctx, be, target);
    mounted = true;
  }
  const boot = join(dir, 'boot');
  const missing = `boot environment '${name}' has no /boot directory (looked in ${boot})`;
  const check = async () => {
    if (!(await stat(boot).catch(() => undefined))?.isDirectory()) throw new BeError(missing);
  };
  // A mount only the plan has made is not there to look into: the plan looks when it runs.
  if (ctx.zfs.planned.mounts.get(be) === dir) await ctx.runner.act(`[ -d ${shQuote(boot)} ] || { echo ${shQuote(`be: ${missing}`)} >&2; exit 1; }`, check);
  else await check();
  const out: PxeInput = { ...input };
  out['tftp-root'] ??= boot;
  if (out['root-path'] === undefined && typeof input.address === 'string') out['root-path'] = `${input.address}:${dir}`;
  return { be, dir, mounted, input: out };
}

/** Longest root path (DHCP option 17) the loader keeps: FNAME_SIZE 128 of stand/libsa/net.h, less the NUL. */
export const MAX_ROOT_PATH = 127;

/** Largest file served under the root-path prefix (read whole into memory per request). */
export const MAX_PREFIXED_FILE = 256 * 1024 * 1024;

/**
 * TFTP names `<dir without leading slash>/boot/<file>` → the file under DIR/boot, confined to it
 * after resolving symlinks; anything else falls through to the TFTP root.
 */
export function bootFilesByRootPath(dir: string): (rel: string) => Promise<Buffer | undefined> {
  const prefix = `${dir.replace(/^\/+/, '').replace(/\/+$/, '')}/boot/`;
  return async (rel) => {
    if (!rel.startsWith(prefix) || rel.length === prefix.length) return undefined;
    const bootReal = await realpath(join(dir, 'boot')).catch(() => undefined);
    const real = await realpath(join(dir, 'boot', rel.slice(prefix.length))).catch(() => undefined);
    if (!bootReal || !real || !real.startsWith(`${bootReal}/`)) return undefined;
    const st = await stat(real).catch(() => undefined);
    if (!st?.isFile() || st.size > MAX_PREFIXED_FILE) return undefined;
    return readFile(real);
  };
}
