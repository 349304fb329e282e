/**
 * `be jail` and `be ujail|unjail`, with bectl(8)'s semantics (sbin/bectl/bectl_jail.c): the BE
 * mounted, `jail -c` with path = the mount and bectl's defaults (persist, allow.mount,
 * allow.mount.devfs, enforce_statfs=1) plus host.hostname and mount.devfs, the utility (default
 * /bin/sh) as command=; afterwards the jail is removed, what its creation mounted is unmounted,
 * and the BE unmounted. -b (batch) starts the jail with no utility and leaves it standing; -U
 * keeps the jail and the mount after the utility ends. Parameters are set with -o and unset
 * with -u, in command-line order. FreeBSD programs driven: jail(8) (usr.sbin/jail/jail.c,
 * command.c, state.c, jaillex.l), jexec(8) (usr.sbin/jexec/jexec.c), jls(8) (usr.sbin/jls/jls.c).
 */
import { resolveBe } from '../be/context.js';
import type { BeContext } from '../be/context.js';
import { mountBe, mountedDatasets, umountBe } from '../be/access.js';
import { BeError } from '../sys/errors.js';
import { mountTable, isZfsMount, type MountEntry } from '../sys/platform.js';
import { render } from '../render/index.js';
import { requireFreeBSD, type BootMethod, type TestRunEnd } from './method.js';

/** -o PARAM=VALUE (a string) or -u PARAM ({ unset }), in command-line order. */
export type JailParamOp = string | { unset: string };

export interface JailOptions {
  /** -o and -u in command-line order; later ones win over the defaults and each other. */
  params?: JailParamOp[];
  /** ip4.addr (interface|address/mask form allowed by jail(8)). */
  ip4?: string;
  /** Give the jail its own network stack with this interface (vnet, vnet.interface). */
  vnetInterface?: string;
  /** Utility and arguments to run inside (default /bin/sh). */
  argv?: string[];
  /** -b: no utility; the jail is left standing (persist) and the BE mounted. */
  batch?: boolean;
  /** -U: the jail and the mount stay after the utility ends. */
  keep?: boolean;
}

export type JailParams = Array<[string, string | true]>;

/** Parameters bectl refuses too (bectl_jail.c disabled_params): they would fight the utility. */
const REFUSED = ['command', 'exec.start', 'persist', 'nopersist'];

/** The jail's name: the BE dataset with every character jail(8) would misread as '_'. */
export function jailName(be: string): string {
  return be.replace(/[^A-Za-z0-9_-]/g, '_');
}

function checkParamName(name: string): string {
  if (!/^[a-z][a-z0-9_.]*$/.test(name)) throw new BeError(`invalid jail parameter name '${name}'`);
  return name;
}

export function parseJailParam(text: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new BeError(`invalid jail parameter '${text}': expected PARAM=VALUE`);
  const name = checkParamName(text.slice(0, eq));
  if (REFUSED.some((r) => name === r || name.startsWith(`${r}.`))) throw new BeError(`jail parameter '${name}' is not allowed: be runs the command itself`);
  if (/[\n\0]/.test(text)) throw new BeError(`invalid jail parameter '${name}': one line only`);
  return [name, text.slice(eq + 1)];
}

/** The path given with -o path=DIR (the BE is mounted there, as bectl does), unless a later -u path dropped it. */
export function requestedPath(opts: JailOptions): string | undefined {
  let path: string | undefined;
  for (const op of opts.params ?? []) {
    if (typeof op !== 'string') {
      if (op.unset === 'path') path = undefined;
    } else if (op.startsWith('path=')) {
      path = op.slice(5);
      if (!path.startsWith('/')) throw new BeError(`invalid jail path '${path}': not an absolute pathname`);
    }
  }
  return path;
}

/**
 * The ordered parameter list for one BE: the defaults, ip4/vnet, then each -o (set) and -u
 * (unset) in turn. As in bectl, unsetting host.hostname or path puts be's default back, and
 * unsetting anything else (persist included) leaves it out of the jail.
 */
export function jailParams(be: string, path: string, opts: JailOptions): JailParams {
  const hostname = be.slice(be.lastIndexOf('/') + 1);
  const params = new Map<string, string | true>([
    ['name', jailName(be)],
    ['path', path],
    ['host.hostname', hostname],
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
  for (const op of opts.params ?? []) {
    if (typeof op === 'string') {
      const [k, v] = parseJailParam(op);
      if (k === 'name') throw new BeError(`jail parameter 'name' is set by be (${jailName(be)})`);
      params.set(k, v);
      continue;
    }
    const k = checkParamName(op.unset);
    if (k === 'name') throw new BeError(`jail parameter 'name' is set by be (${jailName(be)})`);
    if (k === 'host.hostname') params.set(k, hostname);
    else if (k === 'path') params.set(k, path);
    else params.delete(k);
  }
  return [...params.entries()];
}

/**
 * jail(8) -c (usr.sbin/jail/jail.c): `jail -c param=value ... [command=UTILITY ARG...]`; every
 * word after command= is an argument of the utility, so it comes last. Without a utility the
 * jail needs persist: the kernel refuses a new jail that neither persists nor gets a process
 * attached ("new jail must persist or attach", sys/kern/kern_jail.c).
 */
export function jailCreateArgv(params: JailParams, argv: string[] = []): string[] {
  const out = ['jail', '-c', ...params.map(([k, v]) => (v === true ? k : `${k}=${v}`))];
  if (argv.length > 0) out.push(`command=${argv[0]}`, ...argv.slice(1));
  return out;
}

/**
 * jail(8) -r JAIL (usr.sbin/jail/jail.c, state.c running_jail): a jail given by name or jid and
 * absent from jail.conf is known to jail(8) only by its name and jid, so none of its stop
 * steps run (command.c stopcommands: no umount of mount.devfs, mount.fdescfs, mount.procfs,
 * mount); only jail_remove(2) is done. jail.c refuses param=value words after -r, so the
 * creation's parameters cannot be given back: the caller unmounts (jailCleanupMounts), as
 * bectl's bectl_jail_cleanup does.
 */
export function jailRemoveArgv(jail: string): string[] {
  return ['jail', '-r', jail];
}

/**
 * jexec(8) JAIL UTILITY ARG... (usr.sbin/jexec/jexec.c): jail_getid, jail_attach, chdir("/"),
 * then execvp: jexec becomes the utility, so its exit status (or signal) is the utility's own.
 * jexec's own failures (no such jail, attach, exec) exit 1 after an `jexec: ...` line (err(3)).
 */
export function jexecArgv(jail: string, argv: string[]): string[] {
  if (argv.length === 0) throw new BeError('jexec: no command');
  return ['jexec', jail, ...argv];
}

/**
 * umount(8) of one directory a jail had mounted under its path: the command jail(8)'s own stop
 * step would run (usr.sbin/jail/command.c, IP_MOUNT_DEVFS going down: `/sbin/umount PATH/dev`).
 */
export function umountArgv(dir: string): string[] {
  return ['umount', dir];
}

/** jail(8)'s reading of a boolean parameter (usr.sbin/jail/config.c bool_param): bare name, "true", or a non-zero number. */
function isOn(v: string | true | undefined): boolean {
  if (v === undefined) return false;
  if (v === true) return true;
  return v.toLowerCase() === 'true' || (/^-?\d+$/.test(v) && Number(v) !== 0);
}

/**
 * What must be unmounted under PATH once the jail is removed, deepest first. From the mount
 * TABLE (a real run): every mount at or under PATH that is not ZFS, as bectl_jail_cleanup does;
 * a failed command= makes jail(8) undo its own start steps (command.c next_command runs them
 * backwards), so what is already gone is not unmounted again. Without a table (a plan's jail,
 * not made yet): what the parameters make jail(8) mount, in command.c's stopcommands order: mount.procfs
 * (PATH/proc), mount.fdescfs (PATH/dev/fd), mount.devfs (PATH/dev), then each `mount` entry.
 */
export function jailCleanupMounts(path: string, params: JailParams | undefined, table?: MountEntry[]): string[] {
  const under = (dir: string) => dir === path || dir.startsWith(`${path.replace(/\/$/, '')}/`);
  if (table) {
    const dirs = table.filter((e) => !isZfsMount(e) && under(e.target)).map((e) => e.target);
    return [...new Set(dirs)].sort((a, b) => b.length - a.length || (a < b ? 1 : -1));
  }
  const p = new Map(params ?? []);
  const dirs: string[] = [];
  if (isOn(p.get('mount.procfs'))) dirs.push(`${path}/proc`);
  if (isOn(p.get('mount.fdescfs'))) dirs.push(`${path}/dev/fd`);
  if (isOn(p.get('mount.devfs'))) dirs.push(`${path}/dev`);
  const entry = p.get('mount');
  if (typeof entry === 'string') {
    const target = entry.trim().split(/[ \t]+/)[1];
    if (target) dirs.push(target);
  }
  return dirs;
}

/** A jail.conf(5) string as jaillex.l reads it: single-quoted (no $variable expansion), \ and ' escaped. */
export function jailConfString(value: string): string {
  return `'${value.replace(/[\\']/g, (c) => `\\${c}`)}'`;
}

/**
 * The same jail as a jail.conf(5) block for `service jail start NAME` (templates/jail.conf.hbs,
 * read by usr.sbin/jail/jaillex.l and jailparse.y). It keeps persist: with neither persist nor
 * exec.start/command the kernel refuses the jail (sys/kern/kern_jail.c).
 */
export function jailConf(params: JailParams): string {
  const name = params.find(([k]) => k === 'name')![1] as string;
  const rest = params.filter(([k]) => k !== 'name').map(([k, v]) => ({ k, v: v === true ? undefined : jailConfString(v) }));
  return render('jail.conf', { name, params: rest });
}

/**
 * Remove the jail, then unmount what it left under PATH (see jailCleanupMounts): what the mount
 * table shows; for a removal a plan only records, also what the jail's PARAMS make jail(8) mount,
 * which the table cannot show before the plan runs.
 */
export async function removeJail(ctx: BeContext, jail: string, path: string, params?: JailParams): Promise<void> {
  const removal = await ctx.runner.change(jailRemoveArgv(jail), { allowFailure: true });
  const table = await mountTable(ctx.runner, ctx.flavour);
  let dirs = jailCleanupMounts(path, params, table);
  if (removal.pending) {
    const planned = jailCleanupMounts(path, params).filter((dir) => !dirs.includes(dir));
    // deepest first, as the table's are: planned ones in stop order when the table has none
    if (dirs.length === 0) dirs = planned;
    else dirs = [...dirs, ...planned].sort((a, b) => b.length - a.length || (a < b ? 1 : -1));
  }
  const failed: string[] = [];
  for (const dir of dirs) {
    if ((await ctx.runner.change(umountArgv(dir), { allowFailure: true })).status !== 0) failed.push(dir);
  }
  if (failed.length > 0) throw new BeError(`could not unmount ${failed.join(', ')} after removing jail ${jail}`);
}

export async function jailBe(ctx: BeContext, be: string, opts: JailOptions): Promise<number> {
  requireFreeBSD(ctx, 'jail(8)');
  const argv = opts.batch ? [] : opts.argv?.length ? opts.argv : ['/bin/sh'];
  // Refuse bad parameters before mounting anything.
  const wanted = requestedPath(opts);
  const draft = jailParams(be, wanted ?? '/', opts);
  if (argv.length === 0 && !draft.some(([k]) => k === 'persist')) throw new BeError('jail -b needs persist (a jail with no command must persist): drop -u persist');
  const already = (await mountedDatasets(ctx, be)).get(be);
  if (already !== undefined && wanted !== undefined && already !== wanted) throw new BeError(`boot environment '${be}' is already mounted at ${already}, not ${wanted}`);
  const path = already ?? (await mountBe(ctx, be, wanted));
  const params = jailParams(be, path, opts);
  let status: number;
  // jail(8) handles no signals (usr.sbin/jail): be outlives a Ctrl-C (the terminal gives it to
  // jail and the utility) or passes SIGTERM/SIGHUP on, so the cleanup below always runs.
  let forward: ((sig: NodeJS.Signals) => void) | undefined;
  let caught: NodeJS.Signals | undefined;
  const handler = (sig: NodeJS.Signals) => {
    caught = caught ?? sig;
    if (sig !== 'SIGINT' || !process.stdin.isTTY) forward?.(sig);
  };
  for (const sig of JAIL_SIGNALS) process.on(sig, handler);
  try {
    const r = await ctx.runner.stream(jailCreateArgv(params, argv), { inherit: true, onStart: (signal) => (forward = signal) });
    status = r.status ?? 128 + (r.signal === 'SIGINT' ? 2 : r.signal === 'SIGHUP' ? 1 : 15);
  } catch (error) {
    if (already === undefined) await umountBe(ctx, be);
    throw error;
  } finally {
    for (const sig of JAIL_SIGNALS) process.off(sig, handler);
  }
  if (caught && status === 0) status = 128 + (caught === 'SIGINT' ? 2 : caught === 'SIGHUP' ? 1 : 15);
  if (!caught && (opts.keep || (opts.batch && status === 0))) return status;
  await removeJail(ctx, jailName(be), path, params);
  if (already === undefined) await umountBe(ctx, be);
  return status;
}

const JAIL_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** A running jail as jls(8) lists it. */
export interface JailEntry {
  jid: string;
  name: string;
  path: string;
}

/** jls(8) listing jid, name and path of every jail (usr.sbin/jls/jls.c print_jail). */
export function jlsArgv(): string[] {
  return ['jls', 'jid', 'name', 'path'];
}

/** jls(8)'s lines: values separated by one space, quoted by quoted_print when they hold spaces or quotes. */
export function parseJls(text: string): JailEntry[] {
  const out: JailEntry[] = [];
  for (const line of text.split('\n')) {
    const words: string[] = [];
    let i = 0;
    while (i < line.length) {
      if (line[i] === ' ') {
        i++;
        continue;
      }
      const q = line[i] === '"' || line[i] === "'" ? line[i++] : '';
      let w = '';
      while (i < line.length && (q ? line[i] !== q : line[i] !== ' ')) {
        if (line[i] === '\\' && i + 1 < line.length) i++;
        w += line[i++];
      }
      if (q) i++;
      words.push(w);
    }
    if (words.length === 3 && /^\d+$/.test(words[0])) out.push({ jid: words[0], name: words[1], path: words[2] });
  }
  return out;
}

/**
 * The running jails (jls on FreeBSD); undefined where jls cannot tell: a host that does not run
 * FreeBSD's programs (a FreeBSD plan made elsewhere; a live run there was refused before).
 */
async function listJails(ctx: BeContext): Promise<JailEntry[] | undefined> {
  if (ctx.flavour !== 'freebsd' || ctx.runner.system !== 'freebsd') return undefined;
  return parseJls((await ctx.runner.query(jlsArgv())).stdout);
}

/**
 * Which jail `be unjail TARGET` removes. A TARGET that names a BE means that BE's jail (the jail
 * whose path is where the BE is mounted, else the one be names after it), so a numeric BE name
 * is never read as a jail id; otherwise TARGET is a jid or a jail name, and that jail's path
 * must be a BE's mount (bectl: "not a BE").
 */
export async function locateJail(ctx: BeContext, target: string): Promise<{ jail: string; path?: string; be?: string }> {
  const ds = target.includes('@') ? undefined : await resolveBe(ctx, target).catch(() => undefined);
  const isBe = ds !== undefined && (await ctx.zfs.exists(ds));
  const jails = await listJails(ctx);
  if (isBe) {
    const path = (await mountedDatasets(ctx, ds)).get(ds);
    const found = jails?.find((j) => path !== undefined && j.path === path) ?? jails?.find((j) => j.name === jailName(ds));
    if (jails && !found) throw new BeError(`boot environment '${target}' has no jail`);
    return { jail: found?.jid ?? jailName(ds), path: path ?? found?.path, be: ds };
  }
  if (!jails) {
    ctx.runner.note(`jls would find jail ${target} and the BE mounted at its path`);
    return { jail: target };
  }
  const found = jails.find((j) => (/^\d+$/.test(target) ? j.jid === target : j.name === target));
  if (!found) throw new BeError(`no jail or boot environment '${target}'`);
  const mount = (await mountTable(ctx.runner, ctx.flavour)).find((e) => isZfsMount(e) && e.target === found.path);
  if (!mount) throw new BeError(`jail '${target}' is not a boot environment's (${found.path} is not a mounted BE)`);
  return { jail: found.jid, path: found.path, be: mount.source };
}

/** `be unjail TARGET`: remove the jail, unmount what it left under its path, unmount its BE. */
export async function unjail(ctx: BeContext, target: string): Promise<void> {
  requireFreeBSD(ctx, 'jail(8)');
  const found = await locateJail(ctx, target);
  if (found.path !== undefined) await removeJail(ctx, found.jail, found.path, jailParams(found.be ?? target, found.path, {}));
  else await ctx.runner.change(jailRemoveArgv(found.jail));
  if (found.be !== undefined && (await mountedDatasets(ctx, found.be)).size > 0) await umountBe(ctx, found.be);
}

/** One test run in a jail, as argv: create, run the test, remove, then what is left to unmount. */
export interface JailRunPlan {
  /** jail(8) -c of a persistent jail on the mounted BE (no command: it stands until removed). */
  create: string[];
  /** jexec(8) of the test in it: its exit status is the test's own. */
  exec: string[];
  /** jail(8) -r by name, which runs none of the jail's stop steps. */
  remove: string[];
  /** umount(8) of what the creation mounted (devfs on <path>/dev), after the removal, before the BE's unmount. */
  umount: string[][];
}

/**
 * The plan of one test run in a jail: `jail -c` with persist and no command, `jexec NAME TEST`
 * (usr.sbin/jexec/jexec.c execs the test, so its status is the test's: jail(8) would turn any
 * failed command= into "failed" and exit 1, usr.sbin/jail/command.c finish_command),
 * `jail -r NAME`, then `umount <path>/dev` (jail -r by name leaves devfs).
 */
export async function jailRunPlan(be: string, path: string, argv: string[]): Promise<JailRunPlan> {
  const params = jailParams(be, path, {});
  const name = jailName(be);
  return { create: jailCreateArgv(params), exec: jexecArgv(name, argv), remove: jailRemoveArgv(name), umount: jailCleanupMounts(path, params).map(umountArgv) };
}

/**
 * A jexec run's end as the test's (usr.sbin/jexec/jexec.c): jexec execvp()s the test in its own
 * place, so the status or signal is the test's and is classified as is (125 skip, above 127
 * aborted). Only jexec's own failures (the jail gone, jail_attach, chdir, execvp) exit 1 with
 * an err(3) line `jexec: ...` last: those abort the run rather than count as "bad".
 */
export function jexecEnd(r: { status: number | null; signal: string | null; timedOut: boolean; output: string }): TestRunEnd {
  const end: TestRunEnd = { status: r.status, signal: r.signal, timedOut: r.timedOut, output: r.output };
  if (r.status === 1 && !r.timedOut) {
    const m = /^jexec: (.+)$/.exec(r.output.trimEnd().split('\n').pop() ?? '');
    if (m) return { ...end, status: null, failure: `jexec could not start the test: ${m[1]}` };
  }
  return end;
}

export const jailMethod: BootMethod<JailOptions> = {
  name: 'jail',
  runsHere: (ctx) => ctx.flavour === 'freebsd',
  boot: jailBe,
  stop: (ctx, be) => unjail(ctx, be),
  /**
   * The BE mounted, the test placed, a persistent jail created on it, the test run by jexec with
   * the time limit, then `jail -r` (which also ends whatever a timed-out test left), the unmount
   * of the jail's devfs and the BE's unmount.
   */
  async runTest(ctx, be, argv, run) {
    if (ctx.flavour !== 'freebsd') throw new BeError("method 'jail' needs FreeBSD's jail(8); use --method chroot here");
    const dir = await mountBe(ctx, be);
    const plan = await jailRunPlan(be, dir, argv);
    try {
      await run.place(dir);
      await ctx.runner.change(plan.create);
      return jexecEnd(await ctx.runner.stream(plan.exec, { env: run.env, timeoutMs: run.timeoutMs, onOutput: run.onOutput, scriptStatus: run.scriptStatus }));
    } finally {
      try {
        await removeJail(ctx, jailName(be), dir, jailParams(be, dir, {}));
      } finally {
        await umountBe(ctx, be, true);
      }
    }
  },
};
