import { BeError } from '../sys/errors.js';
import { shQuote } from '../sys/shell.js';
import { shVerdict, type Verdict } from './verdict.js';
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

/** What a printed bisect needs: its range, each release's runs as recorded shell lines, and how to report. */
export interface BisectScriptInput {
  /** The releases from --good to --bad, both included. */
  range: string[];
  /**
   * The shell lines of each run of each release between the ends, in run order: a run's lines
   * leave its test's exit status in $be_status and end with the lines that print its verdict.
   */
  runs: Map<string, string[][]>;
  /** --runs: how many runs a release gets (fewer when one is aborted). */
  runsEach: number;
  flaky: NonNullable<HuntSpec['flaky']> | 'bad';
  test: string;
  method: string;
  beVersion: string;
}

/** The row of bisectReportText as printf arguments: the label padded, then the value (shell words). */
function shRow(label: string, value: string): string {
  return `printf '%s%s\\n' ${shQuote((label ? `${label}:` : '').padEnd(16))} ${value}`;
}

/**
 * `be hunt bisect` as a /bin/sh program: one function per release between --good and --bad runs
 * its recorded runs (stopping at an aborted one, as the live loop does) and counts their
 * verdicts, read by the same shVerdict rule the runs print theirs with; the search is
 * bisectStep's (an aborted release ends it, the last good before the first bad, skipped releases
 * set aside, the middle one of the untested tried next); a release whose runs disagree counts as
 * --flaky; the end is bisectReportText's block (without the command line: the script has none).
 */
export function bisectScript(o: BisectScriptInput): string[] {
  const middle = o.range.slice(1, -1);
  const last = o.range.length - 1;
  const out: string[] = [];
  out.push(
    '# a run\'s verdict, by the rule its own line was printed with: counted for its release',
    'be_tally() {',
    '  be_said=$(',
    ...shVerdict('be_status', 'run').map((l) => `    ${l}`),
    '  )',
    '  case $be_said in',
    "    'run: good') be_good=$((be_good + 1)) ;;",
    "    'run: bad '*) be_bad=$((be_bad + 1)) ;;",
    "    'run: skip '*) be_skip=$((be_skip + 1)) ;;",
    "    *) be_aborted=${be_said#'run: aborted: '} ;;",
    '  esac',
    '}',
  );
  middle.forEach((release, k) => {
    const i = k + 1;
    const runs = o.runs.get(release);
    if (!runs?.length) throw new BeError(`internal: no recorded runs of ${release}`);
    out.push(`# ${release}: ${runs.length} run${runs.length === 1 ? '' : 's'}, each in a fresh clone`, `be_test_${i}() {`, 'be_good=0 be_bad=0 be_skip=0 be_aborted=');
    runs.forEach((lines, r) => {
      out.push(...lines, 'be_tally');
      if (r + 1 < runs.length) out.push('if [ -n "$be_aborted" ]; then return 0; fi');
    });
    out.push('}');
  });
  const bound = runBound(o.range.length, 0);
  out.push(
    '# a release\'s verdict from its runs\' (bisectVerdict): aborted, flaky as --flaky says, bad, good, skip',
    'be_judge() {',
    '  be_n=$((be_good + be_bad + be_skip))',
    '  if [ -n "$be_aborted" ]; then be_n=$((be_n + 1)); fi',
    `  if [ "$be_good" -gt 0 ] && [ "$be_bad" -gt 0 ]; then eval "be_f_$1=\\"\\$be_r_$1 ($be_bad of $be_n bad)\\""; fi`,
    '  if [ -n "$be_aborted" ]; then be_v=error',
    `  elif [ "$be_good" -gt 0 ] && [ "$be_bad" -gt 0 ]; then be_v=${o.flaky}`,
    '  elif [ "$be_bad" -gt 0 ]; then be_v=bad',
    '  elif [ "$be_good" -gt 0 ]; then be_v=good',
    '  else be_v=skip',
    '  fi',
    '  eval "be_v_$1=$be_v"',
    '}',
    ...o.range.map((r, i) => `be_r_${i}=${shQuote(r)}`),
    '# the search (bisectStep)',
    'be_abort=0',
    'while :; do',
    '  be_i=1',
    `  while [ "$be_i" -lt ${last} ]; do`,
    '    eval "be_v=\\${be_v_$be_i-}"',
    '    if [ "$be_v" = error ]; then be_abort=$be_i; break; fi',
    '    be_i=$((be_i + 1))',
    '  done',
    '  if [ "$be_abort" -gt 0 ]; then break; fi',
    `  be_hi=${last} be_i=1`,
    `  while [ "$be_i" -lt ${last} ]; do`,
    '    eval "be_v=\\${be_v_$be_i-}"',
    '    if [ "$be_v" = bad ]; then be_hi=$be_i; break; fi',
    '    be_i=$((be_i + 1))',
    '  done',
    '  be_lo=0 be_i=1',
    '  while [ "$be_i" -lt "$be_hi" ]; do',
    '    eval "be_v=\\${be_v_$be_i-}"',
    '    if [ "$be_v" = good ]; then be_lo=$be_i; fi',
    '    be_i=$((be_i + 1))',
    '  done',
    '  be_todo= be_count=0 be_suspects= be_i=$((be_lo + 1))',
    '  while [ "$be_i" -lt "$be_hi" ]; do',
    '    eval "be_v=\\${be_v_$be_i-} be_r=\\$be_r_$be_i"',
    '    case $be_v in',
    '      skip) be_suspects="$be_suspects $be_r" ;;',
    '      \'\') be_todo="$be_todo $be_i" be_count=$((be_count + 1)) ;;',
    '    esac',
    '    be_i=$((be_i + 1))',
    '  done',
    '  if [ "$be_count" -eq 0 ]; then break; fi',
    '  set -- $be_todo',
    '  shift $((be_count / 2))',
    '  eval "be_r=\\$be_r_$1"',
    '  if [ "$be_count" -eq 1 ]; then be_s=; else be_s=s; fi',
    '  echo "bisect: $be_count release$be_s left to test, trying $be_r"',
    '  "be_test_$1"',
    '  be_judge "$1"',
    'done',
    '# the report (bisectReportText)',
    'be_tested=0 be_skips=0 be_skipped= be_flaky= be_i=1',
    `while [ "$be_i" -lt ${last} ]; do`,
    '  eval "be_v=\\${be_v_$be_i-} be_r=\\$be_r_$be_i be_f=\\${be_f_$be_i-}"',
    '  if [ -n "$be_v" ]; then be_tested=$((be_tested + 1)); fi',
    '  if [ "$be_v" = skip ]; then be_skipped="$be_skipped $be_r" be_skips=$((be_skips + 1)); fi',
    '  if [ -n "$be_f" ]; then be_flaky="$be_flaky $be_f"; fi',
    '  be_i=$((be_i + 1))',
    'done',
    `eval "be_first=\\$be_r_$be_hi be_lastgood=\\$be_r_$be_lo"`,
    'if [ "$be_abort" -gt 0 ]; then',
    '  eval "be_r=\\$be_r_$be_abort"',
    '  echo "be hunt bisect: aborted at $be_r: $be_aborted"',
    'elif [ -n "$be_suspects" ]; then',
    '  echo "be hunt bisect: the first bad release is one of${be_suspects} $be_first"',
    'else',
    '  echo "be hunt bisect: $be_first is the first bad release"',
    'fi',
    shRow('range searched', shQuote(`${o.range[0]} (good) .. ${o.range[last]} (bad), ${o.range.length} releases`)),
    'if [ "$be_abort" -eq 0 ]; then',
    `  if [ -n "$be_suspects" ]; then ${shRow('first bad', '"$be_first or earlier:$be_suspects"')}; else ${shRow('first bad', '"$be_first"')}; fi`,
    `  ${shRow('last good', '"$be_lastgood"')}`,
    'fi',
    `if [ -n "$be_flaky" ]; then ${shRow('flaky', `"\${be_flaky# }, counted as ${o.flaky}"`)}; fi`,
    `if [ -n "$be_skipped" ]; then ${shRow('skipped (125)', '"${be_skipped# }"')}; fi`,
    shRow('test runs', `"$be_tested${o.runsEach > 1 ? ` releases × ${o.runsEach} runs` : ''} (bound ceil(log2 ${o.range.length}) + $be_skips skips = $((${bound} + be_skips)))"`),
    shRow('test', shQuote(`${o.test} by ${o.method}`)),
    shRow('be version', shQuote(o.beVersion)),
  );
  return out;
}
