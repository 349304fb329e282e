import { BeError } from '../sys/errors.js';
import type { Verdict } from './verdict.js';

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
}): string {
  const lines: string[] = [];
  if (r.aborted) {
    lines.push(`be hunt bisect: aborted at ${r.aborted.release}: ${r.aborted.reason}`);
  } else if (r.suspects.length) {
    lines.push(`be hunt bisect: the first bad release is one of ${[...r.suspects, r.firstBad].join(' ')}`);
  } else {
    lines.push(`be hunt bisect: ${r.firstBad} is the first bad release`);
  }
  const row = (k: string, v: string) => lines.push(`${`${k}:`.padEnd(16)}${v}`);
  row('range searched', `${r.range[0]} (good) .. ${r.range[r.range.length - 1]} (bad), ${r.range.length} releases`);
  if (!r.aborted) {
    row('first bad', r.suspects.length ? `${r.firstBad} or earlier: ${r.suspects.join(' ')}` : r.firstBad);
    row('last good', r.lastGood);
  }
  if (r.skipped.length) row('skipped (125)', r.skipped.join(' '));
  row('test runs', `${r.runs} (bound ceil(log2 ${r.range.length}) + ${r.skipped.length} skips = ${r.bound})`);
  row('test', `${r.test} by ${r.method}`);
  row('command', r.command);
  row('be version', r.beVersion);
  return `${lines.join('\n')}\n`;
}
