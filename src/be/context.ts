import { Runner } from '../sys/run.js';
import { Zfs } from '../zfs/zfs.js';
import { zfsFlavour, type ZfsFlavour } from '../sys/platform.js';
import { checkDatasetName, checkComponentName, parentOf, poolOf } from '../zfs/names.js';
import { BeError } from '../sys/errors.js';

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

export async function requireBe(ctx: BeContext, name: string): Promise<string> {
  const ds = await resolveBe(ctx, name);
  if (await ctx.zfs.exists(ds)) return ds;
  await requirePool(ctx, poolOf(ds)); // a missing pool is named as such
  throw new BeError(`boot environment '${name}' does not exist`);
}

export async function requirePool(ctx: BeContext, pool: string): Promise<Record<string, string>> {
  const props = await ctx.zfs.poolProps(pool, ['bootfs', 'altroot', 'health']);
  if (!props) throw new BeError(`pool '${pool}' does not exist`);
  return props;
}
