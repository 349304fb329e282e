import { BeError } from '../sys/errors.js';
import type { Verdict } from './verdict.js';
import type { HuntSpec, RunRecord } from './state.js';
import { releaseVerdict } from './summary.js';
import { compare, spread, percent, type Change } from './stats.js';
import { formatMetric } from './summary.js';

export interface BisectInput {
  /** Releases in order, from the known-good one to the known-bad one (both included). */
  ordered: string[];
  good: string;
  bad: string;
  /** Verdicts found so far (release → verdict). */
  verdicts: Map<string, Verdict>;
}

export type BisectStep =
  | { done: false; next: string; remaining: number }
  | { done: true; firstBad: string; lastGood: string; /** Releases that could not be tested and might be the first bad. */ suspects: string[]; aborted?: string };

/** The releases between good and bad (exclusive), in order; refuses a reversed or unknown range. */
export function bisectRange(ordered: string[], good: string, bad: string): string[] {
  const gi = ordered.indexOf(good);
  const bi = ordered.indexOf(bad);
  if (gi < 0) throw new BeError(`good release '${good}' is not in the release list`);
  if (bi < 0) throw new BeError(`bad release '${bad}' is not in the release list`);
  if (gi >= bi) throw new BeError(`good release '${good}' must come before bad release '${bad}'`);
  return ordered.slice(gi, bi + 1);
}

/** The most test runs a bisect over these releases may take: ceil(log2 n) + skips. */
export function runBound(rangeLength: number, skips: number): number {
  return Math.ceil(Math.log2(Math.max(rangeLength, 1))) + skips;
}

/**
 * One step of the search. The answer is one of the untested-or-unknown releases after the last
 * good and up to the first bad. Skipped releases are set aside (as git does) and the median of
 * the ones still testable is tried next, so every verdict halves what is left: at most
 * ceil(log2 n) runs plus one per skip.
 */
export function bisectStep(input: BisectInput): BisectStep {
  const range = bisectRange(input.ordered, input.good, input.bad);
  let lo = 0;
  let hi = range.length - 1;
  for (let i = 1; i < range.length - 1; i++) {
    const v = input.verdicts.get(range[i]);
    if (v === 'error') return { done: true, firstBad: range[hi], lastGood: range[lo], suspects: [], aborted: range[i] };
  }
  // The last good before the first bad seen (a "good" after a "bad" is ignored, as git would be confused too).
  for (let i = 1; i < range.length - 1; i++) {
    if (input.verdicts.get(range[i]) === 'bad') {
      hi = i;
      break;
    }
  }
  for (let i = 1; i < hi; i++) if (input.verdicts.get(range[i]) === 'good') lo = i;
  const candidates: string[] = [];
  const skipped: string[] = [];
  for (let i = lo + 1; i < hi; i++) {
    const v = input.verdicts.get(range[i]);
    if (v === 'skip') skipped.push(range[i]);
    else if (v === undefined) candidates.push(range[i]);
  }
  if (candidates.length === 0) {
    return { done: true, firstBad: range[hi], lastGood: range[lo], suspects: skipped };
  }
  return { done: false, next: candidates[Math.floor(candidates.length / 2)], remaining: candidates.length };
}

/**
 * What a bisect step makes of a release's runs: undefined while runs are owed, aborted ('error')
 * as soon as one run could not end in a verdict, a flaky release counted as --flaky says.
 */
export function bisectVerdict(runs: RunRecord[], needed: number, flaky: NonNullable<HuntSpec['flaky']> = 'bad'): Verdict | undefined {
  if (runs.some((r) => r.verdict === 'error')) return 'error';
  if (runs.length < needed) return undefined;
  const v = releaseVerdict(runs);
  return v === 'flaky' ? flaky : v === 'aborted' || v === 'pending' ? 'error' : v;
}

/** A metric's values over RUNS (runs that printed it). */
export function metricValues(runs: RunRecord[], name: string): number[] {
  return runs.map((r) => r.metrics[name]).filter((v): v is number => v !== undefined);
}

/**
 * bisect --metric: a release is "bad" once the metric moved from the good release's runs beyond
 * the noise in the direction asked, "good" while it did not, "skip" when its runs skipped or
 * printed too few values of it to tell.
 */
export function metricVerdict(baseline: number[], runs: RunRecord[], needed: number, metric: NonNullable<HuntSpec['metric']>): { verdict: Verdict | undefined; change?: Change } {
  if (runs.some((r) => r.verdict === 'error')) return { verdict: 'error' };
  if (runs.length < needed) return { verdict: undefined };
  const values = metricValues(runs.filter((r) => r.verdict !== 'skip'), metric.name);
  if (values.length === 0) return { verdict: 'skip' };
  const change = compare(baseline, values, metric.minChange);
  if (change.tooFew) return { verdict: 'skip', change };
  const moved = change.change !== null && (metric.direction === 'any' || change.change === metric.direction);
  return { verdict: moved ? 'bad' : 'good', change };
}

/** `13.4: median 20 ±0.5, range 19..21 over 5 runs` */
export function spreadLine(release: string, values: number[]): string {
  const s = spread(values);
  const half = (s.q3 - s.q1) / 2;
  return `${release}: median ${formatMetric(s.median)}${half ? ` ±${formatMetric(half)}` : ''}, range ${formatMetric(s.min)}..${formatMetric(s.max)} over ${s.n} run${s.n === 1 ? '' : 's'}`;
}

export interface MetricReport {
  name: string;
  direction: 'up' | 'down' | 'any';
  minChange: number;
  baseline: { release: string; values: number[] };
  firstMoved?: { release: string; values: number[]; change: Change };
  lastUnmoved: { release: string; values: number[] };
}

/** The block to paste into a bug report. */
export function bisectReportText(r: {
  range: string[];
  firstBad: string;
  lastGood: string;
  suspects: string[];
  skipped: string[];
  aborted?: { release: string; reason: string };
  runs: number;
  bound: number;
  test: string;
  method: string;
  command: string;
  beVersion: string;
  /** Runs per release, when more than one. */
  runsEach?: number;
  flaky?: { releases: string[]; as: string };
  metric?: MetricReport;
}): string {
  const lines: string[] = [];
  const m = r.metric;
  if (m && !r.aborted) {
    const way = m.direction === 'any' ? 'moved' : `went ${m.direction}`;
    lines.push(
      m.firstMoved
        ? `be hunt bisect: ${m.name} ${way} first in ${m.firstMoved.release} (${percent(m.firstMoved.change.relative)} from ${m.baseline.release}, beyond the noise)`
        : `be hunt bisect: ${m.name} did not move beyond the noise by ${percent(m.minChange).slice(1)} between ${r.range[0]} and ${r.range[r.range.length - 1]}`,
    );
  } else if (r.aborted) {
    lines.push(`be hunt bisect: aborted at ${r.aborted.release}: ${r.aborted.reason}`);
  } else if (r.suspects.length) {
    lines.push(`be hunt bisect: the first bad release is one of ${[...r.suspects, r.firstBad].join(' ')}`);
  } else {
    lines.push(`be hunt bisect: ${r.firstBad} is the first bad release`);
  }
  const row = (k: string, v: string) => lines.push(`${(k ? `${k}:` : '').padEnd(16)}${v}`);
  row('range searched', `${r.range[0]} (good) .. ${r.range[r.range.length - 1]} (bad), ${r.range.length} releases`);
  if (m && !r.aborted) {
    if (m.firstMoved) {
      row('first moved', r.suspects.length ? `${m.firstMoved.release} or earlier: ${r.suspects.join(' ')}` : m.firstMoved.release);
      row('last unmoved', m.lastUnmoved.release);
      row(m.name, spreadLine(m.firstMoved.release, m.firstMoved.values));
      row('', spreadLine(m.lastUnmoved.release, m.lastUnmoved.values));
      if (m.baseline.release !== m.lastUnmoved.release) row('', `${spreadLine(m.baseline.release, m.baseline.values)} (baseline)`);
      row('change', `${percent(m.firstMoved.change.relative)} from ${m.baseline.release}, exact Mann-Whitney U p = ${m.firstMoved.change.p.toPrecision(2)} (level 0.05), at least ${percent(m.minChange).slice(1)} asked`);
    } else {
      row(m.name, spreadLine(m.baseline.release, m.baseline.values));
    }
  } else if (!r.aborted) {
    row('first bad', r.suspects.length ? `${r.firstBad} or earlier: ${r.suspects.join(' ')}` : r.firstBad);
    row('last good', r.lastGood);
  }
  if (r.flaky?.releases.length) row('flaky', `${r.flaky.releases.join(' ')}, counted as ${r.flaky.as}`);
  if (r.skipped.length) row(m ? 'skipped' : 'skipped (125)', r.skipped.join(' '));
  const each = r.runsEach && r.runsEach > 1 ? ` releases × ${r.runsEach} runs` : '';
  row('test runs', `${r.runs}${each} (bound ceil(log2 ${r.range.length}) + ${r.skipped.length} skips = ${r.bound})${m ? `, besides ${m.baseline.release} as the baseline` : ''}`);
  row('test', `${r.test} by ${r.method}`);
  row('command', r.command);
  row('be version', r.beVersion);
  return `${lines.join('\n')}\n`;
}
