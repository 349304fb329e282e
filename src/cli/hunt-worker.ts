// `be worker`: serve hunt runs from a beanstalkd tube on this host's BEs.
// Loaded by src/cli/hunt.ts when the command runs.
import { resolve } from 'node:path';
import type { BeContext } from '../be/context.js';
import { parseBroker, checkTube } from '../hunt/protocol.js';
import { serveWorker } from '../hunt/worker.js';
import { vmSettings } from '../hunt/spec.js';
import { localHost, stderrLine } from './hunt-run.js';

export async function worker(ctx: BeContext, opts: { broker: string; tube: string; jobs: number; state: string; source?: string; vmAddress?: string; vmServer?: string; vmTap?: string; vmMemory?: string; vmCpus?: number }): Promise<void> {
  const broker = parseBroker(opts.broker);
  const tube = checkTube(opts.tube);
  const host = await localHost(ctx, vmSettings(opts), stderrLine);
  // A stopped worker goes at once: its test gets the signal too, and beanstalkd hands the job on.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(128 + (sig === 'SIGINT' ? 2 : 15)));
  await serveWorker({
    broker,
    tube,
    jobs: opts.jobs,
    logDir: resolve(opts.state),
    host,
    log: stderrLine,
    source: opts.source ? (/^[a-z]+:\/\//i.test(opts.source) ? opts.source : resolve(opts.source)) : undefined,
  });
}
