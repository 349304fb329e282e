import type { BeContext } from '../be/context.js';
import { BeError } from '../sys/errors.js';
import { shQuote } from '../sys/shell.js';
import type { TestEnd } from './exec.js';
import type { Method } from './state.js';
import type { MethodRunner } from './be-host.js';

/**
 * chroot(8) into the clone: mounted here so the test can be put in first, then run by the boot
 * layer's runInChroot (proc/dev, clean environment, time limit), unmounted afterwards.
 */
const chrootRunner: MethodRunner = async (ctx, be, argv, opts) => {
  const { mountBe, umountBe } = await import('../be/access.js');
  const { runInChroot } = await import('../boot/chroot.js');
  const { rmdir } = await import('node:fs/promises');
  const dir = await mountBe(ctx, be);
  try {
    await opts.place(dir);
    const r = await runInChroot(ctx, be, argv, { env: opts.env, timeoutMs: opts.timeoutMs, onOutput: opts.onOutput, handleSignals: true });
    return { status: r.signal ? null : r.status, signal: r.signal ?? null, timedOut: r.timedOut, output: r.output };
  } finally {
    await umountBe(ctx, be, true);
    await rmdir(dir).catch(() => {});
  }
};

/** Run argv with a limit; the test and everything it started are killed when the time is up. */
export async function spawnLimited(argv: string[], opts: { env: Record<string, string>; timeoutMs: number; onOutput: (t: string) => void }): Promise<TestEnd> {
  const { spawn } = await import('node:child_process');
  return new Promise<TestEnd>((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { env: opts.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    let timedOut = false;
    const take = (b: Buffer) => {
      const t = b.toString();
      output += t;
      opts.onOutput(t);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, opts.timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new BeError(`cannot run ${argv[0]}: ${error.message}`, { command: argv }));
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, timedOut, output });
    });
  });
}

/** The plan of one hunt run in a jail: `jail -c` on the mounted clone with the test as command, then `jail -r`. */
export async function jailRunPlan(be: string, path: string, argv: string[]): Promise<{ create: string[]; remove: string[] }> {
  const { jailParams, jailCreateArgv, jailRemoveArgv, jailName } = await import('../boot/jail.js');
  // No persist: the jail ends with its command, whose exit status jail(8) returns.
  const params = jailParams(be, path, {}).filter(([k]) => k !== 'persist');
  return { create: jailCreateArgv(params, argv), remove: jailRemoveArgv(jailName(be)) };
}

/**
 * jail(8) on FreeBSD: the clone mounted, the test placed, `jail -c ... command=TEST` run with the
 * time limit, then `jail -r` (which also ends whatever a timed-out test left) and the unmount.
 */
const jailRunner: MethodRunner = async (ctx, be, argv, opts) => {
  if (ctx.flavour !== 'freebsd') throw new BeError("method 'jail' needs FreeBSD's jail(8); use --method chroot here");
  const { mountBe, umountBe } = await import('../be/access.js');
  const dir = await mountBe(ctx, be);
  const plan = await jailRunPlan(be, dir, argv);
  try {
    await opts.place(dir);
    const r = await spawnLimited(plan.create, opts);
    return r;
  } finally {
    await ctx.runner.change(plan.remove, { allowFailure: true });
    await umountBe(ctx, be, true);
  }
};

/** What the guest runs at boot for a bhyve hunt run: the test, its status on the console, power off. */
export function bhyveGuestRcLocal(argv: string[], env: Record<string, string>): string {
  const exports = Object.entries(env).map(([k, v]) => `export ${k}=${shQuote(v)}`);
  return ['#!/bin/sh', '# written by be hunt: run the test once, report its status on the console, power off', ...exports, `${argv.map(shQuote).join(' ')} </dev/null >/dev/console 2>&1`, 'echo "BE-HUNT-EXIT=$?" >/dev/console', 'poweroff', ''].join('\n');
}

/** The exit status a bhyve guest printed, if it printed one. */
export function parseGuestExit(console: string): number | undefined {
  const m = /^BE-HUNT-EXIT=(\d+)\r?$/m.exec(console);
  return m ? Number(m[1]) : undefined;
}

/** The plan of a bhyve hunt run (guest console on stdio so the status can be read), from the boot layer's argv builders. */
export async function bhyveRunPlan(o: { vm: string; hostPath: string; env: Array<[string, string]>; memory?: string; tap?: string; mac?: string }): Promise<string[][]> {
  const { bhyveloadArgv, bhyveArgv, bhyvectlDestroyArgv } = await import('../boot/bhyve.js');
  const memory = o.memory ?? '512M';
  return [
    bhyveloadArgv({ vm: o.vm, hostPath: o.hostPath, env: o.env, memory, console: 'stdio' }),
    bhyveArgv({ vm: o.vm, memory, tap: o.tap ?? 'tap0', mac: o.mac, console: 'stdio' }),
    bhyvectlDestroyArgv(o.vm),
  ];
}

function freebsdOnly(method: Method): MethodRunner {
  return async () => {
    throw new BeError(`method '${method}' is not runnable by be hunt yet: the guest needs its root over NFS (see be bootnfs); use --method chroot or jail`);
  };
}

export function methodRunners(): Record<Method, MethodRunner | undefined> {
  return { chroot: chrootRunner, jail: jailRunner, bhyve: freebsdOnly('bhyve') };
}

export type { BeContext };
