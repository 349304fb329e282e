/**
 * jail(8): `jail -c` with path = the mounted BE, the parameters bectl(8) jail sets by default
 * (persist, allow.mount, allow.mount.devfs, enforce_statfs=1), host.hostname and mount.devfs,
 * optionally ip4.addr or a vnet interface; the command (default /bin/sh) runs inside, then the
 * jail is removed and the BE unmounted, as `bectl jail` does. `be unjail` removes one left running.
 */
import type { BeContext } from '../be/context.js';
import { mountBe, mountedDatasets, umountBe } from '../be/access.js';
import { BeError } from '../sys/errors.js';
import { render } from '../render/index.js';
import { requireFreeBSD, type BootMethod } from './method.js';

export interface JailOptions {
  /** -o PARAM=VALUE, later ones win over the defaults. */
  params?: string[];
  /** ip4.addr (interface|address/mask form allowed by jail(8)). */
  ip4?: string;
  /** Give the jail its own network stack with this interface (vnet, vnet.interface). */
  vnetInterface?: string;
  /** Command and arguments to run inside (default /bin/sh). */
  argv?: string[];
}

/** Parameters bectl refuses too: they would fight the command `be` runs. */
const REFUSED = ['command', 'exec.start', 'persist', 'nopersist'];

/** The jail's name: the BE dataset with every character jail(8) would misread as '_'. */
export function jailName(be: string): string {
  return be.replace(/[^A-Za-z0-9_-]/g, '_');
}

export function parseJailParam(text: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new BeError(`invalid jail parameter '${text}': expected PARAM=VALUE`);
  const name = text.slice(0, eq);
  if (!/^[a-z][a-z0-9_.]*$/.test(name)) throw new BeError(`invalid jail parameter name '${name}'`);
  if (REFUSED.some((r) => name === r || name.startsWith(`${r}.`))) throw new BeError(`jail parameter '${name}' is not allowed: be runs the command itself`);
  if (/[\n\0]/.test(text)) throw new BeError(`invalid jail parameter '${name}': one line only`);
  return [name, text.slice(eq + 1)];
}

/** The ordered parameter list for one BE (defaults, then the user's -o overrides). */
export function jailParams(be: string, path: string, opts: JailOptions): Array<[string, string | true]> {
  const params = new Map<string, string | true>([
    ['name', jailName(be)],
    ['path', path],
    ['host.hostname', be.slice(be.lastIndexOf('/') + 1)],
    ['mount.devfs', true],
    ['persist', true],
    ['allow.mount', 'true'],
    ['allow.mount.devfs', 'true'],
    ['enforce_statfs', '1'],
  ]);
  if (opts.ip4 !== undefined) {
    if (!/^([A-Za-z0-9]+\|)?\d{1,3}(\.\d{1,3}){3}(\/\d{1,2})?$/.test(opts.ip4)) throw new BeError(`invalid ip4.addr '${opts.ip4}'`);
    params.set('ip4.addr', opts.ip4);
  }
  if (opts.vnetInterface !== undefined) {
    if (!/^[A-Za-z][A-Za-z0-9_.]*$/.test(opts.vnetInterface)) throw new BeError(`invalid vnet interface '${opts.vnetInterface}'`);
    if (opts.ip4 !== undefined) throw new BeError('use either --ip4 or --vnet, not both');
    params.set('vnet', true);
    params.set('vnet.interface', opts.vnetInterface);
  }
  for (const p of opts.params ?? []) {
    const [k, v] = parseJailParam(p);
    if (k === 'name') throw new BeError(`jail parameter 'name' is set by be (${jailName(be)})`);
    params.set(k, v);
  }
  return [...params.entries()];
}

/** jail(8): `jail -c param=value ... command=CMD ARGS...` (command must come last). */
export function jailCreateArgv(params: Array<[string, string | true]>, argv: string[]): string[] {
  const out = ['jail', '-c', ...params.map(([k, v]) => (v === true ? k : `${k}=${v}`))];
  if (argv.length > 0) out.push(`command=${argv[0]}`, ...argv.slice(1));
  return out;
}

/** jail(8) -r: remove the jail (and unmount its devfs). */
export function jailRemoveArgv(name: string): string[] {
  return ['jail', '-r', name];
}

/** The same jail as a jail.conf(5) block, for a host that starts it with `service jail`. */
export function jailConf(params: Array<[string, string | true]>): string {
  const name = params.find(([k]) => k === 'name')![1] as string;
  const rest = params.filter(([k]) => k !== 'name' && k !== 'persist').map(([k, v]) => ({ k, v: v === true ? undefined : v }));
  return render('jail.conf', { name, params: rest });
}

export async function jailBe(ctx: BeContext, be: string, opts: JailOptions): Promise<number> {
  requireFreeBSD(ctx, 'jail(8)');
  const argv = opts.argv?.length ? opts.argv : ['/bin/sh'];
  jailParams(be, '/', opts); // refuse bad parameters before mounting anything
  const already = (await mountedDatasets(ctx, be)).get(be);
  const path = already ?? (await mountBe(ctx, be));
  const params = jailParams(be, path, opts);
  try {
    const r = await ctx.runner.change(jailCreateArgv(params, argv), { inherit: true, allowFailure: true });
    return r.status;
  } finally {
    await ctx.runner.change(jailRemoveArgv(jailName(be)), { allowFailure: true });
    if (already === undefined) await umountBe(ctx, be);
  }
}

export async function unjailBe(ctx: BeContext, be: string): Promise<void> {
  requireFreeBSD(ctx, 'jail(8)');
  await ctx.runner.change(jailRemoveArgv(jailName(be)));
  if ((await mountedDatasets(ctx, be)).size > 0) await umountBe(ctx, be);
}

export const jailMethod: BootMethod<JailOptions> = {
  name: 'jail',
  runsHere: (ctx) => ctx.flavour === 'freebsd',
  boot: jailBe,
  stop: (ctx, be) => unjailBe(ctx, be),
};
