import { createWriteStream, type WriteStream } from 'node:fs';
import { classify, parseMetrics, formatDuration, type RunEnd, type Verdict } from './verdict.js';
import { bisectStep, bisectRange, runBound, bisectReportText, bisectVerdict, metricVerdict, metricValues, type MetricReport } from './bisect.js';
import { releaseVerdict } from './summary.js';
import type { Change } from './stats.js';
import type { HuntProgress } from './progress.js';
import { BeError } from '../sys/errors.js';
import { HuntStore, runLogName, prepareLogName, type InstallFlags, type Method, type PreparedRecord, type RunOutcome, type RunRecord } from './state.js';
import { commandLine, formatMetric } from './summary.js';
import { runPool } from '../sys/pool.js';

/** Where a run's test goes inside its BE: chroot, jail and guest alike (a guest keeps its output and status there too). */
export const TEST_DIR = '/var/tmp/be-hunt';

/** The test a hunt runs: its bytes travel with the job, so a worker needs no shared file system. */
export interface TestScript {
  name: string;
  data: Buffer;
  sha256: string;
}

export interface RunRequest {
  hunt: string;
  release: string;
  run: number;
  method: Method;
  test: TestScript;
  timeoutMs: number;
  install: InstallFlags;
}

export interface TestEnd extends RunEnd {
  output: string;
  /** Time the run waited for its clone of @installed (made while the previous test ran, when it could be). */
  cloneMs?: number;
}

/** Where releases become BEs and tests run: boot environments on this host (be-host.ts). */
export interface ReleaseHost {
  /** Make the release's BE ready (install once, snapshot @installed); safe to call again. */
  prepare(release: string, install: InstallFlags, log: (text: string) => void): Promise<PreparedRecord>;
  /** One test run in a fresh clone of the release's @installed snapshot, destroyed afterwards. */
  runTest(req: RunRequest, prepared: PreparedRecord, onOutput: (text: string) => void): Promise<TestEnd>;
  /** Destroy what runs of dead processes on this host left behind; returns what went. */
  cleanup?(): Promise<string[]>;
  /** Start making the clone of a run to come (while the current test runs). */
  cloneAhead?(req: RunRequest): void;
  /** Wait for the work runs left in the background (destroying clones); returns what failed. */
  settle?(): Promise<string[]>;
}

/** Wall time during which at least one BE was being prepared (so parallel installs are not double counted). */
export class BusyClock {
  private active = 0;
  private since = 0;
  total = 0;
  constructor(private readonly now: () => number = () => performance.now()) {}
  start(): void {
    if (this.active++ === 0) this.since = this.now();
  }
  stop(): void {
    if (--this.active === 0) this.total += this.now() - this.since;
  }
}

/** Prepares each release at most once per process, whoever asks first. */
export class Preparer {
  private readonly pending = new Map<string, Promise<PreparedRecord>>();
  readonly clock = new BusyClock();
  constructor(
    private readonly host: ReleaseHost,
    private readonly install: InstallFlags,
    private readonly logFor: (release: string) => Promise<(text: string) => void>,
  ) {}

  prepare(release: string): Promise<PreparedRecord> {
    let p = this.pending.get(release);
    if (!p) {
      p = (async () => {
        const log = await this.logFor(release);
        this.clock.start();
        try {
          return await this.host.prepare(release, this.install, log);
        } finally {
          this.clock.stop();
        }
      })();
      this.pending.set(release, p);
    }
    return p;
  }
}

function openLog(path: string): { write: (t: string) => void; close: () => Promise<void> } {
  const stream: WriteStream = createWriteStream(path, { flags: 'w' });
  return {
    write: (t) => void stream.write(t),
    close: () => new Promise((resolve) => stream.end(resolve)),
  };
}

export interface RunOnceOptions {
  /** Told the prepared BE as soon as it is ready (before the test runs). */
  onPrepared?: (prepared: PreparedRecord) => Promise<unknown> | void;
  /** Runs the test in turn with others that cannot run beside it (one VM setup on a worker). */
  exclusive?: <T>(run: () => Promise<T>) => Promise<T>;
}

/**
 * The one run pipeline (local runs, bisect steps and broker workers): prepare the release once,
 * run the test in a fresh clone (one more try on a fresh clone when the clone, mount or start
 * failed, not the test), and classify how it ended. Never throws: a run that could not happen is
 * an aborted outcome with the reason.
 */
export async function runOnce(host: ReleaseHost, preparer: Preparer, req: RunRequest, onOutput: (text: string) => void, opts: RunOnceOptions = {}): Promise<{ outcome: RunOutcome; prepared?: PreparedRecord }> {
  const startedAt = new Date();
  const t0 = performance.now();
  let output = '';
  const take = (t: string) => {
    output += t;
    onOutput(t);
  };
  let end: TestEnd;
  let prepared: PreparedRecord | undefined;
  let failed: string | undefined;
  try {
    prepared = await preparer.prepare(req.release);
    await opts.onPrepared?.(prepared);
    const test = () => host.runTest(req, prepared!, take);
    const attempt = () => (opts.exclusive ? opts.exclusive(test) : test());
    try {
      end = await attempt();
    } catch (error) {
      take(`\nbe: ${(error as Error).message.split('\n')[0]}; trying once more\n`);
      await new Promise((r) => setTimeout(r, 500));
      end = await attempt();
    }
  } catch (error) {
    const message = (error as Error).message.split('\n')[0];
    take(`\nbe: ${message}\n`);
    failed = `could not run: ${message}`;
    end = { status: null, signal: null, output: '', timedOut: false };
  }
  const c = failed ? { verdict: 'error' as const, reason: failed } : classify({ ...end, timeoutMs: req.timeoutMs });
  const outcome: RunOutcome = {
    release: req.release,
    run: req.run,
    verdict: c.verdict,
    status: end.status ?? null,
    signal: end.signal ?? null,
    reason: c.reason,
    metrics: parseMetrics(end.output || output),
    startedAt: startedAt.toISOString(),
    durationMs: Math.round(performance.now() - t0),
    ...(end.cloneMs !== undefined ? { cloneMs: Math.round(end.cloneMs) } : {}),
  };
  return { outcome, prepared };
}

/** One local run through the pipeline, its log written beside the state and its record saved. */
export async function runAndRecord(store: HuntStore, host: ReleaseHost, preparer: Preparer, req: RunRequest): Promise<RunRecord> {
  await store.logDir(req.release);
  const logName = runLogName(req.release, req.run);
  const log = openLog(store.path(logName));
  let result: Awaited<ReturnType<typeof runOnce>>;
  try {
    result = await runOnce(host, preparer, req, log.write, {
      onPrepared: (prepared) => (store.state.prepared[req.release] ? undefined : store.recordPrepared(req.release, prepared)),
    });
  } finally {
    await log.close();
  }
  const record: RunRecord = { ...result.outcome, log: logName };
  await store.recordRun(record);
  return record;
}

export function runLine(r: RunRecord, runs: number): string {
  const metrics = Object.entries(r.metrics).map(([k, v]) => `${k}=${formatMetric(v)}`);
  const what = r.verdict === 'error' ? `aborted: ${r.reason}` : r.verdict === 'bad' ? `bad (exit ${r.status})` : r.verdict === 'skip' ? 'skip (exit 125)' : 'good';
  return `${r.release}${runs > 1 ? ` run ${r.run}` : ''}: ${what} in ${formatDuration(r.durationMs)}${metrics.length ? ` ${metrics.join(' ')}` : ''}`;
}

export interface HuntOptions {
  jobs: number;
  test: TestScript;
  progress: (line: string) => void;
  /** Told when each run starts and ends (the terminal's progress block, the plain lines' counts). */
  tracker?: HuntProgress;
  /** True once the user asked to stop (Ctrl-C): no new runs start. */
  stopped?: () => boolean;
}

/** The runs a hunt still owes (release order, then run number). */
export function pendingRuns(store: HuntStore): Array<{ release: string; run: number }> {
  const todo: Array<{ release: string; run: number }> = [];
  for (const release of store.state.spec.releases) {
    for (let run = 1; run <= store.state.spec.runs; run++) if (!store.finished(release, run)) todo.push({ release, run });
  }
  return todo;
}

export function requestFor(store: HuntStore, test: TestScript, release: string, run: number): RunRequest {
  const spec = store.state.spec;
  return { hunt: store.state.id, release, run, method: spec.method, test, timeoutMs: spec.timeoutMs, install: spec.install };
}

/** One `be hunt` invocation on a state: its wall time, time spent preparing and runs done are kept in `sessions`. */
export async function session<T>(store: HuntStore, preparer: { clock: BusyClock } | undefined, body: () => Promise<T>): Promise<T> {
  const started = new Date();
  const t0 = performance.now();
  const before = store.state.runs.length;
  const entry = { started: started.toISOString(), wallMs: 0, prepareMs: 0, runsDone: 0 };
  await store.update((s) => s.sessions.push(entry));
  try {
    return await body();
  } finally {
    entry.wallMs = Math.round(performance.now() - t0);
    entry.prepareMs = Math.round(preparer?.clock.total ?? 0);
    entry.runsDone = store.state.runs.length - before;
    await store.save();
  }
}

/** Every release × run still owed, N at a time, each in its own clone. */
export async function runMatrix(store: HuntStore, host: ReleaseHost, opts: HuntOptions): Promise<void> {
  const preparer = new Preparer(host, store.state.spec.install, (release) => prepareLog(store, release));
  await session(store, preparer, async () => {
    const todo = pendingRuns(store);
    const jobs = Math.max(1, Math.min(opts.jobs, todo.length));
    opts.tracker?.start(todo.length, jobs);
    // which of the N job lines of the progress display a run takes
    const free = Array.from({ length: jobs }, (_, job) => job);
    const runOne = async ({ release, run }: (typeof todo)[number], k: number) => {
      // the next run's clone is made while this one runs
      if (k + 1 < todo.length) host.cloneAhead?.(requestFor(store, opts.test, todo[k + 1].release, todo[k + 1].run));
      const job = free.shift()!;
      opts.tracker?.begin(job, release, run);
      let rec: RunRecord;
      try {
        rec = await runAndRecord(store, host, preparer, requestFor(store, opts.test, release, run));
      } finally {
        opts.tracker?.end(job);
        free.push(job);
        free.sort((x, y) => x - y);
      }
      opts.progress(runLine(rec, store.state.spec.runs));
    };
    try {
      await runPool(todo, jobs, runOne, { stopped: opts.stopped });
    } finally {
      await settle(host, opts.progress);
    }
  });
}

async function settle(host: ReleaseHost, progress: (line: string) => void): Promise<void> {
  for (const problem of (await host.settle?.()) ?? []) progress(`be: ${problem}`);
}

async function prepareLog(store: HuntStore, release: string): Promise<(text: string) => void> {
  await store.logDir(release);
  const stream = createWriteStream(store.path(prepareLogName(release)), { flags: 'a' });
  return (t) => void stream.write(t);
}

/** One test run of a release, recorded in the state: here (runAndRecord) or through the broker. */
export type RunOne = (release: string, run: number) => Promise<RunRecord>;

/** Binary search between --good and --bad on this host; verdicts already in the state are reused. */
export async function runBisect(store: HuntStore, host: ReleaseHost, opts: HuntOptions): Promise<string> {
  const preparer = new Preparer(host, store.state.spec.install, (release) => prepareLog(store, release));
  try {
    return await bisectWith(store, preparer, (release, run) => runAndRecord(store, host, preparer, requestFor(store, opts.test, release, run)), opts);
  } finally {
    await settle(host, opts.progress);
  }
}

/** The bisect loop: runs by RUNONE (each step a release's --runs runs) until the first bad (or first moved) release is known. */
export async function bisectWith(store: HuntStore, preparer: { clock: BusyClock } | undefined, runOne: RunOne, opts: Pick<HuntOptions, 'progress' | 'stopped' | 'tracker'>): Promise<string> {
  const spec = store.state.spec;
  const n = spec.runs;
  const runsOf = (release: string) => store.state.runs.filter((r) => r.release === release).sort((a, b) => a.run - b.run);
  /** Every run a release still owes, one after the other; false when the user stopped. */
  const test = async (release: string, what: string): Promise<boolean> => {
    opts.progress(what);
    for (let run = 1; run <= n; run++) {
      if (store.finished(release, run)) continue;
      if (opts.stopped?.()) return false;
      opts.tracker?.begin(0, release, run);
      const rec = await runOne(release, run);
      opts.tracker?.end(0);
      opts.progress(runLine(rec, n));
      // An aborted run is in the state now and stops the bisect at the next step, as `git bisect run` does.
      if (rec.verdict === 'error') break;
    }
    return true;
  };
  return session(store, preparer, async () => {
    const range = bisectRange(spec.releases, spec.good!, spec.bad!);
    const metric = spec.metric;
    // at most: the bound's steps of N runs each (and the baseline's with --metric), less those done
    const most = (runBound(range.length, 0) + (metric ? 2 : 0)) * n;
    opts.tracker?.start(Math.max(most - store.state.runs.length, 1), 1, true);
    let baseline: number[] = [];
    if (metric) {
      if (!(await test(spec.good!, `bisect: measuring ${metric.name} in ${spec.good} (the baseline)`))) return '';
      const runs = runsOf(spec.good!);
      const aborted = runs.find((r) => r.verdict === 'error');
      if (aborted) throw new BeError(`bisect --metric: the baseline ${spec.good} was aborted: ${aborted.reason}`);
      baseline = metricValues(runs.filter((r) => r.verdict !== 'skip'), metric.name);
      if (baseline.length < n) throw new BeError(`bisect --metric: the test printed BE-METRIC ${metric.name} in ${baseline.length} of ${n} runs of ${spec.good} (see the logs in ${store.dir})`);
    }
    const changes = new Map<string, Change | undefined>();
    const verdictOf = (release: string): Verdict | undefined => {
      if (!metric) return bisectVerdict(runsOf(release), n, spec.flaky);
      const v = metricVerdict(baseline, runsOf(release), n, metric);
      changes.set(release, v.change);
      return v.verdict;
    };
    for (;;) {
      if (opts.stopped?.()) return '';
      const verdicts = new Map<string, Verdict>();
      for (const r of range.slice(1, -1)) {
        const v = verdictOf(r);
        if (v) verdicts.set(r, v);
      }
      const step = bisectStep({ ordered: spec.releases, good: spec.good!, bad: spec.bad!, verdicts });
      if (step.done && metric && !step.aborted && step.firstBad === spec.bad && !step.suspects.length && verdictOf(spec.bad!) === undefined) {
        // Nothing in between moved: the bad end is the answer only if it did move.
        if (!(await test(spec.bad!, `bisect: no release in between moved; measuring ${spec.bad}`))) return '';
      }
      if (step.done) {
        const tested = range.slice(1, -1).filter((r) => verdicts.has(r));
        const skipped = tested.filter((r) => verdicts.get(r) === 'skip');
        const bound = runBound(range.length, skipped.length);
        const aborted = step.aborted ? { release: step.aborted, reason: runsOf(step.aborted).find((r) => r.verdict === 'error')?.reason ?? '' } : undefined;
        const flaky = range.filter((r) => releaseVerdict(runsOf(r)) === 'flaky');
        let metricReport: MetricReport | undefined;
        if (metric) {
          const valuesOf = (r: string) => (r === spec.good ? baseline : metricValues(runsOf(r).filter((x) => x.verdict !== 'skip'), metric.name));
          const badVerdict = step.firstBad === spec.bad ? verdictOf(spec.bad!) : 'bad';
          const moved = badVerdict === 'bad' ? step.firstBad : undefined;
          metricReport = {
            ...metric,
            baseline: { release: spec.good!, values: baseline },
            lastUnmoved: { release: step.lastGood, values: valuesOf(step.lastGood) },
            firstMoved: moved ? { release: moved, values: valuesOf(moved), change: changes.get(moved)! } : undefined,
          };
        }
        const text = bisectReportText({
          range,
          firstBad: step.firstBad,
          lastGood: step.lastGood,
          suspects: step.suspects,
          skipped,
          aborted,
          runs: tested.length,
          bound,
          test: spec.test.name,
          method: spec.method,
          command: commandLine(store.state.command),
          beVersion: store.state.beVersion,
          runsEach: n,
          flaky: flaky.length ? { releases: flaky.map((r) => `${r} (${runsOf(r).filter((x) => x.verdict === 'bad').length} of ${runsOf(r).length} bad)`), as: metric ? 'measured' : (spec.flaky ?? 'bad') } : undefined,
          metric: metricReport,
        });
        await store.update((s) => {
          s.bisect = { firstBad: metricReport && !metricReport.firstMoved ? '' : step.firstBad, lastGood: step.lastGood, suspects: step.suspects, aborted: step.aborted, runs: tested.length, bound, text, ...(flaky.length ? { flaky } : {}) };
        });
        return text;
      }
      if (!(await test(step.next, `bisect: ${step.remaining} release${step.remaining === 1 ? '' : 's'} left to test, trying ${step.next}`))) return '';
    }
  });
}
