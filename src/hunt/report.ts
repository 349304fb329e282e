import type { HuntState, RunRecord } from './state.js';
import { summarize, formatMetric, medianText, arrow, verdictText, durationText, RELEASE_VERDICTS, type HuntSummary, type MetricSummary } from './summary.js';
import { ALPHA, fewestRuns, percent } from './stats.js';
import { alignColumns } from '../sys/table.js';

const formatTable = (header: string[], rows: string[][]): string => alignColumns([header, ...rows], '  ');

export type ReportFormat = 'table' | 'json' | 'junit' | 'html';

/** Runs done of a release, "3/5" while some are still owed. */
function runsCell(done: number, asked: number): string {
  return done === 0 || done >= asked ? String(done) : `${done}/${asked}`;
}

/** A metric cell: median ± half the interquartile range, and ↑/↓ with the relative change when flagged. */
export function metricCell(m: MetricSummary | undefined): string {
  if (!m) return '-';
  const mark = m.change && m.relative !== null ? ` ${arrow(m.change)}${percent(m.relative)}` : '';
  return `${medianText(m)}${mark}`;
}

/** The lines under the table: each flagged change, releases too few runs to tell, flaky releases. */
export function notes(s: HuntSummary): string[] {
  const lines: string[] = [];
  const flaky = s.releases.filter((r) => r.verdict === 'flaky');
  if (flaky.length) lines.push(`flaky: ${flaky.map((r) => `${r.release} (${r.tally.bad} of ${r.runs.length} bad)`).join(', ')}`);
  const need = fewestRuns();
  for (const name of s.metricNames) {
    const compared = s.releases.filter((r) => r.metrics[name]?.from);
    if (!compared.length) continue;
    const few = compared.filter((r) => r.metrics[name].tooFew);
    const flagged = compared.filter((r) => r.metrics[name].change);
    for (const r of flagged) {
      const m = r.metrics[name];
      const before = s.releases.find((x) => x.release === m.from)!.metrics[name];
      lines.push(`${name}: ${arrow(m.change)} ${percent(m.relative!)} at ${r.release} (median ${medianText(m)}, range ${formatMetric(m.min)}..${formatMetric(m.max)}) from ${m.from} (median ${medianText(before)}, range ${formatMetric(before.min)}..${formatMetric(before.max)}), p = ${m.p!.toPrecision(2)}`);
    }
    if (few.length === compared.length) lines.push(`${name}: too few runs to tell a change from the noise (${need} runs per release are needed: --runs ${need})`);
    else if (few.length) lines.push(`${name}: too few runs to tell at ${few.map((r) => r.release).join(', ')} (${need} runs per release are needed)`);
    else if (!flagged.length) lines.push(`${name}: no change beyond the noise (Mann-Whitney U, p <= ${ALPHA}) and ${percent(s.minChange).slice(1)}`);
  }
  return lines;
}

/** The terminal table: verdict (with counts when flaky), runs, median duration and each metric's median ± spread per release, then the counts. */
export function tableReport(state: HuntState, opts: { minChange?: number } = {}): string {
  const s = summarize(state, opts);
  const header = ['RELEASE', 'VERDICT', 'RUNS', 'DURATION', ...s.metricNames];
  const rows = s.releases.map((r) => [r.release, verdictText(r), runsCell(r.runs.length, s.runsPerRelease), durationText(r.durationMs), ...s.metricNames.map((m) => metricCell(r.metrics[m]))]);
  const lines = [formatTable(header, rows), '', countsLine(s), ...notes(s)];
  if (s.bisect) lines.push('', s.bisect.text.trimEnd());
  return lines.join('\n');
}

export function countsLine(s: HuntSummary): string {
  const parts = RELEASE_VERDICTS.filter((v) => s.counts[v] > 0).map((v) => `${s.counts[v]} ${v}`);
  return `${s.releases.length} releases: ${parts.join(', ')}`;
}

function runWord(v: RunRecord['verdict']): string {
  return v === 'error' ? 'aborted' : v;
}

export function jsonReport(state: HuntState, opts: { minChange?: number } = {}): string {
  const s = summarize(state, opts);
  return JSON.stringify(
    {
      id: s.id,
      kind: s.kind,
      test: s.test,
      method: s.method,
      command: s.command,
      beVersion: s.beVersion,
      created: s.created,
      updated: s.updated,
      runsPerRelease: s.runsPerRelease,
      level: ALPHA,
      minChange: s.minChange,
      counts: s.counts,
      releases: s.releases.map((r) => ({
        release: r.release,
        verdict: r.verdict,
        counts: r.tally,
        reason: r.reason || undefined,
        durationMs: r.durationMs === null ? null : Math.round(r.durationMs),
        metrics: Object.fromEntries(
          Object.entries(r.metrics).map(([k, m]) => [k, { n: m.n, median: m.median, min: m.min, max: m.max, q1: m.q1, q3: m.q3, change: m.change, relative: m.relative, p: m.p, from: m.from, tooFew: m.tooFew }]),
        ),
        runs: r.runs.map((x) => ({
          run: x.run,
          verdict: runWord(x.verdict),
          exit: x.status,
          signal: x.signal,
          reason: x.reason || undefined,
          durationMs: x.durationMs,
          metrics: x.metrics,
          startedAt: x.startedAt,
          cloneMs: x.cloneMs,
          log: x.log,
          worker: x.worker,
          workerLog: x.workerLog,
        })),
      })),
      bisect: s.bisect,
    },
    null,
    2,
  );
}

function xml(text: string): string {
  // Characters XML 1.0 cannot carry at all are dropped; the rest escaped.
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '').replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** JUnit XML: one testcase per release and run; bad is a failure, aborted an error, 125 skipped. */
export function junitReport(state: HuntState, logText: (log: string) => string = () => ''): string {
  const s = summarize(state);
  let flaky = 0;
  const cases: string[] = [];
  let failures = 0;
  let errors = 0;
  let skipped = 0;
  let total = 0;
  let time = 0;
  for (const r of s.releases) {
    const runs = r.runs.length ? r.runs : [];
    const isFlaky = r.verdict === 'flaky';
    if (isFlaky) flaky++;
    const flakyText = `flaky: ${r.tally.bad} of ${r.runs.length} runs bad`;
    for (const run of runs) {
      total++;
      time += run.durationMs / 1000;
      const name = state.spec.runs > 1 ? `${r.release} run ${run.run}` : r.release;
      const metrics = Object.entries(run.metrics).map(([k, v]) => `      <property name="metric.${xml(k)}" value="${v}"/>`);
      if (isFlaky) metrics.unshift(`      <property name="flaky" value="${xml(`${r.tally.bad} of ${r.runs.length} runs bad`)}"/>`);
      const body: string[] = [];
      if (metrics.length) body.push('    <properties>', ...metrics, '    </properties>');
      if (run.verdict === 'bad') {
        failures++;
        body.push(isFlaky ? `    <failure message="${xml(`test exited ${run.status} (${flakyText})`)}" type="flaky"/>` : `    <failure message="${xml(`test exited ${run.status}`)}" type="bad"/>`);
      } else if (run.verdict === 'error') {
        errors++;
        body.push(`    <error message="${xml(run.reason)}" type="aborted"/>`);
      } else if (run.verdict === 'skip') {
        skipped++;
        body.push('    <skipped message="test exited 125 (cannot test)"/>');
      }
      const out = logText(run.log);
      if (out) body.push(`    <system-out>${xml(out)}</system-out>`);
      const open = `  <testcase classname="be.hunt.${xml(s.test)}" name="${xml(name)}" time="${(run.durationMs / 1000).toFixed(3)}"`;
      cases.push(body.length ? `${open}>\n${body.join('\n')}\n  </testcase>` : `${open}/>`);
    }
  }
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="be hunt" tests="${total}" failures="${failures}" errors="${errors}" skipped="${skipped}" time="${time.toFixed(3)}">`,
    `<testsuite name="${xml(`be hunt ${s.id} (${s.test} by ${s.method})`)}"${flaky ? ` flaky="${flaky}"` : ''} tests="${total}" failures="${failures}" errors="${errors}" skipped="${skipped}" time="${time.toFixed(3)}" timestamp="${xml(s.updated.replace(/\.\d+Z$/, ''))}">`,
    ...cases,
    '</testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}
