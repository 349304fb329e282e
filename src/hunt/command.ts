import { readFile, stat, mkdir } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import type { BeContext } from '../be/context.js';
import { forkContext } from '../be/context.js';
import { BeError, UsageError } from '../sys/errors.js';
import { VERSION } from '../sys/version.js';
import { resolveReleaseSpec, naturalCompare, type ReleaseTable } from './releases.js';
import { parseDuration } from './verdict.js';
import { parsePercent, fewestRuns, DEFAULT_MIN_CHANGE } from './stats.js';
import { makeHuntProgress, type HuntProgress } from './progress.js';
import { HuntStore, DEFAULT_HUNTS_DIR, huntId, latestHunt, type HuntSpec, type InstallFlags, type Method } from './state.js';
import type { TestScript } from './exec.js';
import { DEFAULT_VM, type VmSettings } from './methods.js';
import { requireFreeBSD } from '../boot/method.js';

interface CommonOpts {
  test: string;
  method?: string;
  timeout: string;
  state?: string;
  fresh?: boolean;
  source?: string;
  arch?: string;
  sets?: string[];
  cache?: string;
  offline?: boolean;
  broker?: string;
  tube: string;
  ttr: number;
  wait?: string;
  vmAddress?: string;
  vmServer?: string;
  vmTap?: string;
  vmMemory?: string;
  vmCpus?: number;
  argv: string[];
  /** Where progress lines go (default: standard error, a block redrawn in place on a terminal). */
  progress?: (line: string) => void;
  quiet?: boolean;
  minChange?: string;
}

/** --min-change 5% → 0.05 (undefined when not given). */
export function minChangeOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const v = parsePercent(text);
  if (!Number.isFinite(v)) throw new UsageError(`invalid --min-change '${text}': expected a percentage such as 5%`);
  return v;
}

/** Progress lines and the run tracker: given lines (tests, -n), nothing with -q, else standard error. */
function progressOf(opts: Pick<CommonOpts, 'progress' | 'quiet'>): { line: (text: string) => void; tracker?: HuntProgress } {
  if (opts.progress) return { line: opts.progress };
  const tracker = makeHuntProgress({ quiet: opts.quiet });
  return { line: (text) => tracker.line(text), tracker };
}

async function releaseTable(arch?: string): Promise<ReleaseTable> {
  const { knownReleases, compareVersions, hostArch } = await import('../install/index.js');
  const compare = (a: string, b: string) => {
    try {
      return compareVersions(a.replace(/-.*$/, ''), b.replace(/-.*$/, '')) || naturalCompare(a, b);
    } catch {
      return naturalCompare(a, b);
    }
  };
  return { known: knownReleases(arch ?? hostArch()), compare };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const fileIo = {
  async readFile(path: string) {
    const st = await stat(path).catch(() => undefined);
    if (!st?.isFile()) return undefined;
    return readFile(path, 'utf8');
  },
  readStdin,
};

export async function loadTest(path: string): Promise<TestScript> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (error) {
    throw new BeError(`cannot read test '${path}': ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const name = basename(path).replace(/[^A-Za-z0-9_.+-]/g, '_') || 'test';
  return { name, data, sha256: createHash('sha256').update(data).digest('hex') };
}

function method(ctx: BeContext, opts: CommonOpts): Method {
  const m = opts.method ?? (ctx.flavour === 'freebsd' ? 'jail' : 'chroot');
  if (m !== 'chroot' && m !== 'jail' && m !== 'bhyve' && m !== 'qemu') throw new UsageError(`invalid method '${m}': expected chroot, jail, bhyve or qemu`);
  return m;
}

function installFlags(opts: CommonOpts): InstallFlags {
  const flags: InstallFlags = {};
  if (opts.source) flags.source = /^[a-z]+:\/\//i.test(opts.source) ? opts.source : resolve(opts.source);
  if (opts.arch) flags.arch = opts.arch;
  if (opts.sets?.length) flags.sets = opts.sets;
  if (opts.cache) flags.cache = resolve(opts.cache);
  if (opts.offline) flags.offline = true;
  return flags;
}

/** The bhyve guest's network and memory (host-specific: not part of the hunt's identity). */
function vmSettings(opts: Pick<CommonOpts, 'vmAddress' | 'vmServer' | 'vmTap' | 'vmMemory' | 'vmCpus'>): VmSettings {
  return { address: opts.vmAddress ?? DEFAULT_VM.address, server: opts.vmServer, tap: opts.vmTap ?? DEFAULT_VM.tap, memory: opts.vmMemory ?? DEFAULT_VM.memory, cpus: opts.vmCpus };
}

/** bhyve runs need FreeBSD (refused here before anything is changed; -n still plans them); one VM at a time. */
function checkMethod(ctx: BeContext, m: Method, jobs: number): void {
  if (m !== 'bhyve') return;
  requireFreeBSD(ctx, 'hunt --method bhyve (bhyve(8))');
  if (jobs > 1) throw new UsageError('--method bhyve runs one VM at a time: drop --jobs (or use more workers)');
}

function waitMs(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (!Number.isFinite(ms)) throw new UsageError(`invalid --wait '${text}': expected e.g. 90s, 10m, 1h`);
  return ms;
}

async function brokerOptions(opts: CommonOpts, test: TestScript) {
  const { parseBroker, checkTube } = await import('./protocol.js');
  return { broker: parseBroker(opts.broker!), tube: checkTube(opts.tube), ttr: opts.ttr, test, progress: opts.progress ?? stderrLine, waitMs: waitMs(opts.wait) };
}

function timeoutMs(text: string): number {
  const ms = parseDuration(text);
  if (!Number.isFinite(ms)) throw new UsageError(`invalid --timeout '${text}': expected e.g. 90s, 10m, 1h`);
  return ms;
}

async function openStore(spec: HuntSpec, opts: CommonOpts): Promise<HuntStore> {
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

function stderrLine(line: string): void {
  process.stderr.write(`${line}\n`);
}

async function localHost(ctx: BeContext, vm: VmSettings = DEFAULT_VM, progress: (line: string) => void = stderrLine) {
  const { BeHost } = await import('./be-host.js');
  const host = new BeHost(() => forkContext(ctx), vm);
  const { cleanupVmLeftovers } = await import('../boot/vmnet.js');
  for (const ns of await cleanupVmLeftovers(ctx)) progress(`removed VM network ${ns}, left by a run that did not finish`);
  const gone = await host.cleanup();
  for (const g of gone) progress(`destroyed ${g}, left by a run that did not finish`);
  return host;
}

export async function huntRun(ctx: BeContext, opts: CommonOpts & { releases: string; jobs: number; runs: number }): Promise<string> {
  const table = await releaseTable(opts.arch);
  const releases = await resolveReleaseSpec(opts.releases, table, fileIo);
  const test = await loadTest(opts.test);
  const spec: HuntSpec = { kind: 'run', releases, test: { path: resolve(opts.test), name: test.name, sha256: test.sha256 }, method: method(ctx, opts), runs: opts.runs, timeoutMs: timeoutMs(opts.timeout), install: installFlags(opts) };
  const vm = vmSettings(opts);
  const minChange = minChangeOf(opts.minChange);
  const { line: progress, tracker } = progressOf(opts);
  if (!opts.broker) checkMethod(ctx, spec.method, opts.jobs);
  const bopts = opts.broker ? await brokerOptions({ ...opts, progress }, test) : undefined;
  const store = await openStore(spec, opts);
  if (minChange !== undefined) await store.update((s) => void (s.minChange = minChange));
  progress(`hunt ${store.state.id}: ${releases.length} release${releases.length === 1 ? '' : 's'}${spec.runs > 1 ? ` × ${spec.runs} runs` : ''}, state in ${store.dir}`);
  try {
    if (bopts) {
      const { runBrokered } = await import('./collector.js');
      await runBrokered(store, bopts);
    } else {
      const { runMatrix } = await import('./exec.js');
      const host = await localHost(ctx, vm, progress);
      await interruptible(store, progress, (stopped) => runMatrix(store, host, { jobs: opts.jobs, test, progress, tracker, stopped }));
    }
  } finally {
    tracker?.stop();
  }
  const { tableReport } = await import('./report.js');
  return tableReport(store.state);
}

export async function huntBisect(ctx: BeContext, opts: CommonOpts & { good: string; bad: string; releases?: string; runs?: number; flaky?: string; metric?: string; up?: boolean; down?: boolean }): Promise<string> {
  const minChange = minChangeOf(opts.minChange);
  if (opts.flaky !== undefined && !['bad', 'good', 'skip'].includes(opts.flaky)) throw new UsageError(`invalid --flaky '${opts.flaky}': expected bad, good or skip`);
  if (opts.up && opts.down) throw new UsageError('--up and --down: give one direction (or neither, for a move either way)');
  if (!opts.metric) {
    for (const [given, flag] of [[opts.up, '--up'], [opts.down, '--down'], [minChange !== undefined, '--min-change']] as const) if (given) throw new UsageError(`${flag}: only with --metric NAME`);
  } else {
    if (!/^[A-Za-z_][A-Za-z0-9_.:-]*$/.test(opts.metric)) throw new UsageError(`invalid --metric '${opts.metric}': expected a BE-METRIC name (letters, digits, _ . : -)`);
    if (opts.flaky !== undefined) throw new UsageError('--flaky: not used with --metric (a metric bisect measures every run)');
    if (opts.runs !== undefined && opts.runs < fewestRuns()) throw new UsageError(`--runs ${opts.runs}: too few runs to tell a change from the noise; --metric needs at least ${fewestRuns()} per release`);
  }
  const runs = opts.runs ?? (opts.metric ? 5 : 1);
  const table = await releaseTable(opts.arch);
  const releases = await resolveReleaseSpec(opts.releases ?? `${opts.good}..${opts.bad}`, table, fileIo);
  for (const r of [opts.good, opts.bad]) if (!releases.includes(r)) throw new BeError(`release '${r}' is not among the releases to search`);
  const { bisectRange } = await import('./bisect.js');
  bisectRange(releases, opts.good, opts.bad);
  const test = await loadTest(opts.test);
  const spec: HuntSpec = {
    kind: 'bisect',
    releases,
    test: { path: resolve(opts.test), name: test.name, sha256: test.sha256 },
    method: method(ctx, opts),
    runs,
    timeoutMs: timeoutMs(opts.timeout),
    install: installFlags(opts),
    good: opts.good,
    bad: opts.bad,
    ...(opts.flaky && opts.flaky !== 'bad' ? { flaky: opts.flaky as 'good' | 'skip' } : {}),
    ...(opts.metric ? { metric: { name: opts.metric, direction: opts.up ? ('up' as const) : opts.down ? ('down' as const) : ('any' as const), minChange: minChange ?? DEFAULT_MIN_CHANGE } } : {}),
  };
  const { line: progress, tracker } = progressOf(opts);
  if (!opts.broker) checkMethod(ctx, spec.method, 1);
  const bopts = opts.broker ? await brokerOptions({ ...opts, progress }, test) : undefined;
  const store = await openStore(spec, opts);
  if (minChange !== undefined) await store.update((s) => void (s.minChange = minChange));
  progress(`hunt ${store.state.id}: bisect ${opts.good}..${opts.bad}${opts.metric ? ` for a move of ${opts.metric}` : ''}${runs > 1 ? `, ${runs} runs a release` : ''}, state in ${store.dir}`);
  try {
    if (bopts) {
      // Each step is one job on the tube: bisect is sequential, whichever worker takes it.
      const { Collector } = await import('./collector.js');
      const { bisectWith } = await import('./exec.js');
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
    const { runBisect } = await import('./exec.js');
    const host = await localHost(ctx, vmSettings(opts), progress);
    return await interruptible(store, progress, (stopped) => runBisect(store, host, { jobs: 1, test, progress, tracker, stopped }));
  } finally {
    tracker?.stop();
  }
}

const REPORT_FORMATS = ['table', 'json', 'junit', 'html'];

export async function huntReport(opts: { state?: string; format: string; out?: string; minChange?: string }): Promise<string | undefined> {
  // the flags first: a bad one is named before any state is looked for
  if (!REPORT_FORMATS.includes(opts.format)) throw new UsageError(`invalid --format '${opts.format}': expected ${REPORT_FORMATS.join(', ')}`);
  const analysis = { minChange: minChangeOf(opts.minChange) };
  const dir = resolve(opts.state ?? (await latestHunt()));
  const state = await HuntStore.read(dir);
  if (!state) throw new BeError(`no hunt in '${dir}'`);
  const report = await import('./report.js');
  let text: string;
  switch (opts.format) {
    case 'table':
      text = report.tableReport(state, analysis);
      break;
    case 'json':
      text = report.jsonReport(state, analysis);
      break;
    case 'junit': {
      const { readFileSync } = await import('node:fs');
      text = report.junitReport(state, (log) => {
        try {
          return readFileSync(join(dir, log), 'utf8').slice(-8192);
        } catch {
          return '';
        }
      });
      break;
    }
    case 'html': {
      const { reportModel } = await import('./html.js');
      const { render } = await import('../render/index.js');
      text = render('report.html', reportModel(state, analysis));
      break;
    }
    default:
      throw new UsageError(`invalid --format '${opts.format}': expected ${REPORT_FORMATS.join(', ')}`);
  }
  if (!opts.out) return text;
  const { writeFileAtomic } = await import('../sys/files.js');
  await writeFileAtomic(resolve(opts.out), text.endsWith('\n') ? text : `${text}\n`);
  return undefined;
}

export async function worker(ctx: BeContext, opts: { broker: string; tube: string; jobs: number; state: string; source?: string; vmAddress?: string; vmServer?: string; vmTap?: string; vmMemory?: string; vmCpus?: number }): Promise<void> {
  const { parseBroker, checkTube } = await import('./protocol.js');
  const { serveWorker } = await import('./worker.js');
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
