import type { HuntState, RunRecord } from './state.js';
import { formatDuration } from './verdict.js';
import { compare, spread, DEFAULT_MIN_CHANGE, type Direction, type Spread } from './stats.js';

/** A release's verdict over its runs: the six words the reports use, as written. */
export type ReleaseVerdict = 'good' | 'bad' | 'skip' | 'aborted' | 'pending' | 'flaky';
export const RELEASE_VERDICTS: ReleaseVerdict[] = ['good', 'bad', 'flaky', 'skip', 'aborted', 'pending'];

/** How many of a release's runs ended each way. */
export interface Tally {
  good: number;
  bad: number;
  skip: number;
  aborted: number;
}

/** One metric of one release over its runs, and how it changed from the previous release that has it. */
export interface MetricSummary extends Spread {
  values: number[];
  /** Flagged change against the previous release: beyond the noise and at least --min-change. */
  change: Direction | null;
  /** Relative change of the median from the previous release (null for the first). */
  relative: number | null;
  /** Exact two-sided Mann-Whitney p against the previous release (null for the first). */
  p: number | null;
  /** The release compared against. */
  from: string | null;
  /** Too few runs on either side for any change to be told from the noise. */
  tooFew: boolean;
}

export interface ReleaseSummary {
  release: string;
  verdict: ReleaseVerdict;
  tally: Tally;
  runs: RunRecord[];
  /** Median duration of the runs. */
  durationMs: number | null;
  metrics: Record<string, MetricSummary>;
  reason: string;
}

export interface HuntSummary {
  id: string;
  kind: 'run' | 'bisect';
  test: string;
  method: string;
  /** Runs asked for per release. */
  runsPerRelease: number;
  minChange: number;
  releases: ReleaseSummary[];
  metricNames: string[];
  counts: Record<ReleaseVerdict, number>;
  command: string;
  beVersion: string;
  created: string;
  updated: string;
  bisect?: HuntState['bisect'];
}

export function tally(runs: RunRecord[]): Tally {
  const t: Tally = { good: 0, bad: 0, skip: 0, aborted: 0 };
  for (const r of runs) t[r.verdict === 'error' ? 'aborted' : r.verdict]++;
  return t;
}

/**
 * A release's verdict: flaky when its runs disagree between good and bad (whatever else they
 * did), then aborted if a run could not end in a verdict, bad, good (runs that skipped aside),
 * skip when every run skipped, pending with no run yet.
 */
export function releaseVerdict(runs: RunRecord[]): ReleaseVerdict {
  if (runs.length === 0) return 'pending';
  const t = tally(runs);
  if (t.good && t.bad) return 'flaky';
  if (t.aborted) return 'aborted';
  if (t.bad) return 'bad';
  if (t.good) return 'good';
  return 'skip';
}

/** `flaky (3 of 5 bad)`, `aborted (timed out after 1s)`, `good`. */
export function verdictText(r: Pick<ReleaseSummary, 'verdict' | 'tally' | 'reason'>): string {
  const n = r.tally.good + r.tally.bad + r.tally.skip + r.tally.aborted;
  if (r.verdict === 'flaky') return `flaky (${r.tally.bad} of ${n} bad)`;
  if (r.verdict === 'aborted' && r.reason) return `aborted (${r.reason})`;
  return r.verdict;
}

function metricsOf(runs: RunRecord[]): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const r of runs) for (const [k, v] of Object.entries(r.metrics)) (out[k] ??= []).push(v);
  return out;
}

export function summarize(state: HuntState, opts: { minChange?: number } = {}): HuntSummary {
  const minChange = opts.minChange ?? state.minChange ?? DEFAULT_MIN_CHANGE;
  const metricNames = new Set<string>();
  const previous = new Map<string, { release: string; values: number[] }>();
  const releases = state.spec.releases.map((release): ReleaseSummary => {
    const runs = state.runs.filter((r) => r.release === release).sort((a, b) => a.run - b.run);
    const metrics: Record<string, MetricSummary> = {};
    for (const [name, values] of Object.entries(metricsOf(runs))) {
      metricNames.add(name);
      const before = previous.get(name);
      const c = before ? compare(before.values, values, minChange) : undefined;
      metrics[name] = { ...spread(values), values, change: c?.change ?? null, relative: c ? c.relative : null, p: c ? c.p : null, from: before?.release ?? null, tooFew: c?.tooFew ?? false };
      previous.set(name, { release, values });
    }
    const durationMs = runs.length ? spread(runs.map((r) => r.durationMs)).median : null;
    const reason = runs.find((r) => r.reason)?.reason ?? '';
    return { release, verdict: releaseVerdict(runs), tally: tally(runs), runs, durationMs, metrics, reason };
  });
  const counts = Object.fromEntries(RELEASE_VERDICTS.map((v) => [v, 0])) as Record<ReleaseVerdict, number>;
  for (const r of releases) counts[r.verdict]++;
  return {
    id: state.id,
    kind: state.spec.kind,
    test: state.spec.test.name,
    method: state.spec.method,
    runsPerRelease: state.spec.runs,
    minChange,
    releases,
    metricNames: [...metricNames].sort(),
    counts,
    command: commandLine(state.command),
    beVersion: state.beVersion,
    created: state.created,
    updated: state.updated,
    bisect: state.bisect,
  };
}

/** A command line as a user would type it (quoted only where the shell needs it). */
export function commandLine(argv: string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_.,:=@%+\/-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

export function formatMetric(v: number | undefined): string {
  if (v === undefined || Number.isNaN(v)) return '-';
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(4)));
}

/** `12.5`, or `12.5 ±0.75` (half the interquartile range) over several runs. */
export function medianText(m: MetricSummary | undefined): string {
  if (!m) return '-';
  if (m.n === 1 || m.q3 === m.q1) return formatMetric(m.median);
  return `${formatMetric(m.median)} ±${formatMetric((m.q3 - m.q1) / 2)}`;
}

export function arrow(d: Direction | null): string {
  return d === 'up' ? '↑' : d === 'down' ? '↓' : '';
}

export function durationText(ms: number | null): string {
  return ms === null ? '-' : formatDuration(ms);
}
