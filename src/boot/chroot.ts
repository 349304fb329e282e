/**
 * chroot(8): mount the BE and its children (rc.d/zfsbe order), the pseudo file systems the
 * platform needs (Linux: proc and devtmpfs; FreeBSD: devfs), run a command inside, and unmount
 * everything afterwards, also when the command fails or `be` is interrupted.
 *
 * FreeBSD's usr.sbin/chroot/chroot.c exits 1 (err(1, …)) when it cannot enter the directory or
 * exec the command, the same status as a test saying "bad" (GNU chroot says 125-127). So the
 * command, and the #! interpreter of a script, are looked for inside the BE before chroot runs:
 * a missing one is a one-line error (a hunt run is aborted), never a verdict.
 */
import { closeSync, existsSync, openSync } from 'node:fs';
import { lstat, mkdir, open, readdir, readlink } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { BeContext } from '../be/context.js';
import { mountBe, mountedDatasets, umountBe } from '../be/access.js';
import { BeError } from '../sys/errors.js';
import { shQuote } from '../sys/shell.js';
import type { ZfsFlavour } from '../sys/platform.js';
import type { BootMethod } from './method.js';

export interface ChrootOptions {
  env?: Record<string, string>;
  timeoutMs?: number;
  onOutput?: (chunk: string) => void;
  /** Attach the command to be's terminal (interactive `be chroot`); output is then not collected. */
  inherit?: boolean;
  /** Forward SIGINT/SIGTERM/SIGHUP to the command and clean up before exiting (the CLI). */
  handleSignals?: boolean;
  /** In a printed plan: what the script does with the command's exit status. */
  scriptStatus?: (variable: string) => string[];
}

export interface ChrootResult {
  status: number;
  signal?: string;
  timedOut: boolean;
  output: string;
}

/** Pseudo file systems mounted inside the chroot, in mount order. */
export function platformMounts(flavour: ZfsFlavour, root: string): Array<{ argv: string[]; target: string }> {
  if (flavour === 'freebsd') return [{ argv: ['mount', '-t', 'devfs', 'devfs', join(root, 'dev')], target: join(root, 'dev') }];
  return [
    { argv: ['mount', '-t', 'proc', 'proc', join(root, 'proc')], target: join(root, 'proc') },
    { argv: ['mount', '-t', 'devtmpfs', 'devtmpfs', join(root, 'dev')], target: join(root, 'dev') },
  ];
}

/** The environment a command starts with inside the BE (not the host's). */
export function chrootEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: '/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin', HOME: '/root', TERM: process.env.TERM ?? 'dumb', ...extra };
}

/** A command that cannot start inside the BE: chroot(8) would exit 1 for it (chroot.c). */
export class ChrootCommandMissing extends BeError {}

async function present(root: string, path: string): Promise<boolean> {
  return lstat(join(root, path)).then(
    () => true,
    () => false,
  );
}

/** The #! interpreter of the file at PATH inside ROOT, if it is a script. */
async function interpreterOf(root: string, path: string): Promise<string | undefined> {
  const fh = await open(join(root, path), 'r').catch(() => undefined);
  if (!fh) return undefined;
  try {
    const buf = Buffer.alloc(256);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0).catch(() => ({ bytesRead: 0 }));
    const first = buf.subarray(0, bytesRead).toString('latin1').split('\n')[0];
    const m = /^#!\s*(\S+)/.exec(first);
    return m?.[1];
  } finally {
    await fh.close();
  }
}

/**
 * Why ARGV cannot start in the tree at ROOT (undefined when it can): the program is looked up as
 * execvp(3) does inside the chroot (a name without '/' along PATH), then a script's #! interpreter.
 */
export async function chrootCommandProblem(root: string, argv: string[], path = chrootEnv().PATH): Promise<string | undefined> {
  const cmd = argv[0];
  const candidates = cmd.includes('/') ? [posix.resolve('/', cmd)] : path.split(':').filter(Boolean).map((d) => posix.join(d, cmd));
  let found: string | undefined;
  for (const c of candidates) if (!found && (await present(root, c))) found = c;
  if (!found) return `${cmd}: not found in the boot environment${cmd.includes('/') ? '' : ` (PATH ${path})`}`;
  const interpreter = await interpreterOf(root, found);
  if (interpreter && !(await present(root, posix.resolve('/', interpreter)))) return `${found}: its interpreter ${interpreter} is not in the boot environment`;
  return undefined;
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
const SIGNAL_NUMBERS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };


/** Whether this process has a controlling terminal (from which a Ctrl-C would come). */
function hasTerminal(): boolean {
  try {
    closeSync(openSync('/dev/tty', 'r'));
    return true;
  } catch {
    return false;
  }
}

/**
 * Run ARGV inside the BE (a full dataset name). The BE is mounted for the run unless it is
 * mounted already (then it stays mounted); proc/dev are mounted and always unmounted again.
 */
export async function runInChroot(
  ctx: BeContext,
  be: string,
  argv: string[],
  opts: ChrootOptions = {},
): Promise<ChrootResult> {
  if (argv.length === 0) throw new BeError('chroot: no command');
  let pending: NodeJS.Signals | undefined;
  let forward: ((sig: NodeJS.Signals) => void) | undefined;
  const handler = (sig: NodeJS.Signals) => {
    pending = pending ?? sig;
    // On a terminal a Ctrl-C reaches the command as well as be; without one, a SIGINT be gets
    // (kill -INT from a script or a supervisor) is for both, so it is passed on.
    if (forward && (sig !== 'SIGINT' || !opts.inherit || !hasTerminal())) forward(sig);
  };
  if (opts.handleSignals) for (const s of SIGNALS) process.on(s, handler);
  const already = (await mountedDatasets(ctx, be)).get(be);
  let root = already;
  const done: string[] = [];
  try {
    if (root === undefined) root = await mountBe(ctx, be);
    for (const m of platformMounts(ctx.flavour, root)) {
      if (pending) break;
      await ctx.runner.act(`mkdir -p ${shQuote(m.target)}`, () => mkdir(m.target, { recursive: true }));
      await ctx.runner.change(m.argv);
      done.push(m.target);
    }
    if (pending) return { status: 128 + (SIGNAL_NUMBERS[pending] ?? 1), signal: pending, timedOut: false, output: '' };
    const env = chrootEnv(opts.env);
    if (ctx.zfs.planned.mounts.get(be)) {
      // mounted by the plan itself: its files are not there to look at yet, so the script looks
      const cmd = argv[0].includes('/') ? posix.resolve('/', argv[0]) : undefined;
      if (cmd) await ctx.runner.act(`[ -e ${shQuote(join(root, cmd))} ] || { echo ${shQuote(`be: ${cmd}: not found in the boot environment`)} >&2; exit 1; }`, async () => {});
    } else {
      const problem = await chrootCommandProblem(root, argv, env.PATH);
      if (problem) throw new ChrootCommandMissing(problem);
    }
    const r = await ctx.runner.stream(['chroot', root, ...argv], {
      env,
      cwd: '/',
      inherit: opts.inherit,
      timeoutMs: opts.timeoutMs,
      onOutput: opts.onOutput,
      onStart: (signal) => (forward = signal),
      scriptStatus: opts.scriptStatus,
    });
    const status = r.status ?? 128 + (SIGNAL_NUMBERS[r.signal ?? ''] ?? 1);
    return { status, signal: r.signal ?? undefined, timedOut: r.timedOut, output: r.output };
  } finally {
    forward = undefined;
    const errors: string[] = [];
    for (const target of done.reverse()) {
      const r = await ctx.runner.change(['umount', target], { allowFailure: true });
      if (r.status !== 0 && ctx.flavour !== 'freebsd') {
        // Something inside still holds it (a daemon the command left): detach it lazily.
        const lazy = await ctx.runner.change(['umount', '-l', target], { allowFailure: true });
        if (lazy.status !== 0) errors.push(target);
      } else if (r.status !== 0) errors.push(target);
    }
    if (already === undefined && root !== undefined) {
      try {
        await umountBe(ctx, be);
      } catch (error) {
        errors.push(`${be}: ${(error as Error).message}`);
      }
    }
    if (opts.handleSignals) for (const s of SIGNALS) process.off(s, handler);
    if (errors.length > 0) process.stderr.write(`be: could not unmount ${errors.join(', ')}\n`);
  }
}

export const chrootMethod: BootMethod<ChrootOptions & { argv?: string[] }> = {
  name: 'chroot',
  runsHere: () => true,
  async boot(ctx, be, opts) {
    const r = await runInChroot(ctx, be, opts.argv?.length ? opts.argv : ['/bin/sh'], opts);
    return r.status;
  },
  async stop(ctx, be) {
    const root = (await mountedDatasets(ctx, be)).get(be);
    if (root) await clearChroot(ctx, root);
    await umountBe(ctx, be);
  },
  /**
   * The BE mounted here so the command can be put in first, then run by runInChroot (proc/dev,
   * clean environment, time limit), unmounted afterwards. A command that cannot start in the BE
   * ends the run with a failure (FreeBSD's chroot would exit 1, a verdict).
   */
  async runTest(ctx, be, argv, run) {
    const dir = await mountBe(ctx, be);
    try {
      await run.place(dir);
      const r = await runInChroot(ctx, be, argv, { env: run.env, timeoutMs: run.timeoutMs, onOutput: run.onOutput, handleSignals: true, scriptStatus: run.scriptStatus }).catch((error) => {
        if (error instanceof ChrootCommandMissing) return { failure: error.message };
        throw error;
      });
      if ('failure' in r) return { status: null, signal: null, timedOut: false, output: '', failure: r.failure };
      return { status: r.signal ? null : r.status, signal: r.signal ?? null, timedOut: r.timedOut, output: r.output };
    } finally {
      await umountBe(ctx, be, true);
    }
  },
};

/**
 * Clear what a killed `be` left in a chroot at DIR: its processes, then proc/dev, so the BE's
 * datasets can be unmounted without forcing.
 */
export async function clearChroot(ctx: BeContext, dir: string): Promise<void> {
  await killChrooted(dir);
  for (const m of platformMounts(ctx.flavour, dir).reverse()) await ctx.runner.change(['umount', m.target], { allowFailure: true });
}

/**
 * End the processes still running inside a chroot at DIR (left by a `be` that was killed):
 * Linux shows each process's root in /proc/PID/root. Returns the pids signalled. FreeBSD runs
 * such tests in jails, which `jail -r` ends, so this is a no-op there.
 */
async function killChrooted(dir: string): Promise<number[]> {
  if (process.platform !== 'linux') return [];
  const killed: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const root = await readlink(`/proc/${entry}/root`).catch(() => '');
    if (root !== dir && !root.startsWith(`${dir}/`)) continue;
    try {
      process.kill(Number(entry), 'SIGKILL');
      killed.push(Number(entry));
    } catch {
      // already gone
    }
  }
  for (let i = 0; i < 50 && killed.some((pid) => existsSync(`/proc/${pid}`)); i++) await new Promise((r) => setTimeout(r, 40));
  return killed;
}
