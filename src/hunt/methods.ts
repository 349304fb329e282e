import type { BeContext } from '../be/context.js';
import { BeError } from '../sys/errors.js';
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
    const r = await runInChroot(ctx, be, argv, { env: opts.env, timeoutMs: opts.timeoutMs, onOutput: opts.onOutput });
    return { status: r.signal ? null : r.status, signal: r.signal ?? null, timedOut: r.timedOut, output: r.output };
  } finally {
    await umountBe(ctx, be, true);
    await rmdir(dir).catch(() => {});
  }
};

function freebsdOnly(method: Method): MethodRunner {
  return async () => {
    throw new BeError(`method '${method}' needs FreeBSD (${method === 'jail' ? 'jail(8)' : 'bhyve(8)'}); use --method chroot here`);
  };
}

export function methodRunners(): Record<Method, MethodRunner | undefined> {
  return { chroot: chrootRunner, jail: freebsdOnly('jail'), bhyve: freebsdOnly('bhyve') };
}

export type { BeContext };
