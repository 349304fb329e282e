// `be hunt run` and `be hunt bisect` on this host or through a broker: the spec from the flags
// (src/hunt/spec.ts), the state opened, progress shown, the runs carried out, the report made.
// Loaded by src/cli/hunt.ts when one of these commands runs.
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { BeContext } from '../be/context.js';
import { forkContext } from '../be/context.js';
import { BeError } from '../sys/errors.js';
import { VERSION } from '../sys/version.js';
import { cleanupVmLeftovers } from '../boot/vmnet.js';
import { makeHuntProgress, type HuntProgress } from '../hunt/progress.js';
import { HuntStore, DEFAULT_HUNTS_DIR, huntId, type HuntSpec } from '../hunt/state.js';
import { bisectWith, runBisect, runMatrix, type TestScript } from '../hunt/exec.js';
import { BeHost } from '../hunt/be-host.js';
import { DEFAULT_VM, type VmSettings } from '../boot/index.js';
import { Collector, runBrokered } from '../hunt/collector.js';
import { parseBroker, checkTube } from '../hunt/protocol.js';
import { tableReport } from '../hunt/report.js';
import { bisectHunt, checkMethod, runHunt, waitMs, type BisectFlags, type RunFlags } from '../hunt/spec.js';

/** What the CLI adds to a hunt's flags: its command line, and where its progress goes. */
export interface Invocation {
  argv: string[];
  /** Where progress lines go (default: standard error, a block redrawn in place on a terminal). */
  progress?: (line: string) => void;
  quiet?: boolean;
}

/** Progress lines and the run tracker: given lines (tests, -n), nothing with -q, else standard error. */
function progressOf(opts: Pick<Invocation, 'progress' | 'quiet'>): { line: (text: string) => void; tracker?: HuntProgress } {
  if (opts.progress) return { line: opts.progress };
  const tracker = makeHuntProgress({ quiet: opts.quiet });
  return { line: (text) => tracker.line(text), tracker };
}

function brokerOptions(opts: RunFlags | BisectFlags, test: TestScript, progress: (line: string) => void) {
  return { broker: parseBroker(opts.broker!), tube: checkTube(opts.tube), ttr: opts.ttr, test, progress, waitMs: waitMs(opts.wait) };
}

async function openStore(spec: HuntSpec, opts: { state?: string; fresh?: boolean; argv: string[] }): Promise<HuntStore> {
  const dir = resolve(opts.state ?? join(DEFAULT_HUNTS_DIR, huntId(spec)));
  await mkdir(dir, { recursive: true });
  return HuntStore.open(dir, spec, { command: ['be', ...opts.argv], beVersion: VERSION, fresh: opts.fresh });
}

/**
 * Ctrl-C (or SIGTERM) stops a hunt cleanly: no new run starts, the running tests get the signal,
 * their clones are destroyed and the state keeps every finished run. A second signal exits at once.
 */
async function interruptible<T>(store: HuntStore, progress: (line: string) => void, body: (stopped: () => boolean) => Promise<T>): Promise<T> {
  let signal: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (signal) process.exit(130);
    signal = sig;
    progress(`be: ${sig}: stopping after the runs in progress (again to quit at once)`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const value = await body(() => signal !== undefined);
    if (signal) throw new BeError(`interrupted; run the same command again to resume (state in ${store.dir})`, { exitCode: 130 });
    return value;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export function stderrLine(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** The releases as BEs of this host, after what runs of dead processes left behind is gone. */
export async function localHost(ctx: BeContext, vm: VmSettings = DEFAULT_VM, progress: (line: string) => void = stderrLine): Promise<BeHost> {
  const host = new BeHost(() => forkContext(ctx), vm);
  for (const ns of await cleanupVmLeftovers(ctx)) progress(`removed VM network ${ns}, left by a run that did not finish`);
  const gone = await host.cleanup();
  for (const g of gone) progress(`destroyed ${g}, left by a run that did not finish`);
  return host;
}

export async function huntRun(ctx: BeContext, opts: RunFlags & Invocation): Promise<string> {
  const { spec, test, vm, minChange } = await runHunt(ctx, opts);
  const { line: progress, tracker } = progressOf(opts);
  if (!opts.broker) checkMethod(ctx, spec.method, opts.jobs);
  const bopts = opts.broker ? brokerOptions(opts, test, progress) : undefined;
  const store = await openStore(spec, opts);
  if (minChange !== undefined) await store.update((s) => void (s.minChange = minChange));
  const releases = spec.releases;
  progress(`hunt ${store.state.id}: ${releases.length} release${releases.length === 1 ? '' : 's'}${spec.runs > 1 ? ` × ${spec.runs} runs` : ''}, state in ${store.dir}`);
  try {
    if (bopts) {
      await runBrokered(store, bopts);
    } else {
      const host = await localHost(ctx, vm, progress);
      await interruptible(store, progress, (stopped) => runMatrix(store, host, { jobs: opts.jobs, test, progress, tracker, stopped }));
    }
  } finally {
    tracker?.stop();
  }
  return tableReport(store.state);
}

export async function huntBisect(ctx: BeContext, opts: BisectFlags & Invocation): Promise<string> {
  const { spec, test, vm, minChange } = await bisectHunt(ctx, opts);
  const { line: progress, tracker } = progressOf(opts);
  if (!opts.broker) checkMethod(ctx, spec.method, 1);
  const bopts = opts.broker ? brokerOptions(opts, test, progress) : undefined;
  const store = await openStore(spec, opts);
  if (minChange !== undefined) await store.update((s) => void (s.minChange = minChange));
  const runs = spec.runs;
  progress(`hunt ${store.state.id}: bisect ${opts.good}..${opts.bad}${opts.metric ? ` for a move of ${opts.metric}` : ''}${runs > 1 ? `, ${runs} runs a release` : ''}, state in ${store.dir}`);
  try {
    if (bopts) {
      // Each step is one job on the tube: bisect is sequential, whichever worker takes it.
      const collector = await Collector.open(store, bopts);
      try {
        return await interruptible(store, progress, (stopped) =>
          bisectWith(store, undefined, async (release, run) => {
            const [rec] = await collector.collect([{ release, run }]);
            return rec;
          }, { progress, tracker, stopped }),
        );
      } finally {
        await collector.close();
      }
    }
    const host = await localHost(ctx, vm, progress);
    return await interruptible(store, progress, (stopped) => runBisect(store, host, { jobs: 1, test, progress, tracker, stopped }));
  } finally {
    tracker?.stop();
  }
}
