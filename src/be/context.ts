import { Runner } from '../sys/run.js';
import { Zfs } from '../zfs/zfs.js';
import { zfsFlavour, type ZfsFlavour } from '../sys/platform.js';
import { checkDatasetName, checkComponentName, parentOf, poolOf } from '../zfs/names.js';
import { BeError } from '../sys/errors.js';

/**
 * libbe's be_error_t (lib/libbe/be.h), which bectl(8) exits with (sbin/bectl/bectl.c returns
 * each verb's libbe result as its status). INIT is no be_error_t: libbe_init failing (no pool
 * for the BE root, or no ZFS root without one) makes bectl's main return -1, status 255.
 */
export const BE_ERR = {
  INVALIDNAME: 1,
  EXISTS: 2,
  NOENT: 3,
  DESTROYACT: 5,
  DESTROYMNT: 6,
  NOORIGIN: 11,
  MOUNTED: 12,
  ZFSOPEN: 14,
  ZFSCLONE: 15,
  UNKNOWN: 19,
  HASCLONES: 21,
  INIT: 255,
} as const;

/** Everything a BE operation needs, passed in (no globals). */
export interface BeContext {
  runner: Runner;
  zfs: Zfs;
  flavour: ZfsFlavour;
  /** -R / BE_ROOT, when given. */
  beRoot?: string;
}

export function makeContext(opts: { dryRun?: boolean; verbose?: boolean; beRoot?: string; env?: NodeJS.ProcessEnv } = {}): BeContext {
  const env = opts.env ?? process.env;
  const runner = new Runner({ dryRun: opts.dryRun, verbose: opts.verbose });
  const root = opts.beRoot ?? (env.BE_ROOT || undefined);
  const flavour = zfsFlavour(env);
  return { runner, zfs: new Zfs(runner, flavour === 'zfs-fuse'), flavour, beRoot: root === undefined ? undefined : checkDatasetName(root, 'BE root') };
}

/** A context for work beside CTX's (parallel hunt runs): its own undo stack, the same plan and settings. */
export function forkContext(ctx: BeContext): BeContext {
  const runner = ctx.runner.fork();
  return { ...ctx, runner, zfs: new Zfs(runner, ctx.flavour === 'zfs-fuse') };
}

/** The BE root: -R/BE_ROOT, else the parent of the first pool's bootfs, else zroot/ROOT. */
export async function resolveBeRoot(ctx: BeContext): Promise<string> {
  if (ctx.beRoot) return ctx.beRoot;
  const pools = await ctx.zfs.pools(['bootfs']);
  for (const { bootfs } of pools.values()) {
    if (bootfs && bootfs !== '-' && parentOf(bootfs)) return parentOf(bootfs)!;
  }
  return 'zroot/ROOT';
}

/** A BE name is either a full dataset path (bd/be/test) or a short name under the BE root. */
export async function resolveBe(ctx: BeContext, name: string): Promise<string> {
  if (name.includes('/')) return checkDatasetName(name, 'BE');
  checkComponentName(name, 'BE');
  return `${await resolveBeRoot(ctx)}/${name}`;
}

/** The BE's dataset; a missing one is libbe's BE_ERR_NOENT (be_exists), or MISSING where libbe says otherwise. */
export async function requireBe(ctx: BeContext, name: string, missing: number = BE_ERR.NOENT): Promise<string> {
  const ds = await resolveBe(ctx, name);
  if (await ctx.zfs.exists(ds)) return ds;
  await requirePool(ctx, poolOf(ds)); // a missing pool is named as such
  throw new BeError(`boot environment '${name}' does not exist`, { libbe: missing });
}

/** The pool's properties; a missing pool is where libbe_init (lib/libbe/be.c: zpool_open) fails. */
export async function requirePool(ctx: BeContext, pool: string): Promise<Record<string, string>> {
  const props = await ctx.zfs.poolProps(pool, ['bootfs', 'altroot', 'health']);
  if (!props) throw new BeError(`pool '${pool}' does not exist`, { libbe: BE_ERR.INIT });
  return props;
}
