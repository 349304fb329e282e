import type { BeContext } from '../be/context.js';
import { BeError } from '../sys/errors.js';
import type { Method } from './state.js';
import type { MethodRunner } from './be-host.js';
import type { TestEnd } from './exec.js';

/**
 * chroot(8) into the mounted clone with a clean environment, output streamed, a time limit that
 * kills the whole process group. (Runs here and on FreeBSD alike.)
 */
const chrootRunner: MethodRunner = async (ctx, be, argv, opts) => {
  const { mountBe, umountBe } = await import('../be/access.js');
  const { rmdir } = await import('node:fs/promises');
  const dir = await mountBe(ctx, be);
  try {
    await opts.place(dir);
    return await spawnLimited(['chroot', dir, ...argv], opts);
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

function freebsdOnly(method: Method): MethodRunner {
  return async () => {
    throw new BeError(`method '${method}' needs FreeBSD (${method === 'jail' ? 'jail(8)' : 'bhyve(8)'}); use --method chroot here`);
  };
}

export function methodRunners(): Record<Method, MethodRunner | undefined> {
  return { chroot: chrootRunner, jail: freebsdOnly('jail'), bhyve: freebsdOnly('bhyve') };
}

export type { BeContext };
