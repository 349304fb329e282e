import type { HuntState } from './state.js';
import { alignColumns } from '../sys/table.js';
import { summarize, formatMetric, verdictWord, durationText, type HuntSummary } from './summary.js';

const formatTable = (header: string[], rows: string[][]): string => alignColumns([header, ...rows], '  ');

export type ReportFormat = 'table' | 'json' | 'junit' | 'html';

/** The terminal table: verdict, runs, duration and each metric per release, then the counts. */
export function tableReport(state: HuntState): string {
  const s = summarize(state);
  const header = ['RELEASE', 'VERDICT', 'RUNS', 'DURATION', ...s.metricNames];
  const rows = s.releases.map((r) => [
    r.release,
    verdictWord(r.verdict) + (r.verdict === 'error' && r.reason ? ` (${r.reason})` : ''),
    String(r.runs.length),
    durationText(r.durationMs),
    ...s.metricNames.map((m) => formatMetric(r.metrics[m])),
  ]);
  const lines = [formatTable(header, rows), '', countsLine(s)];
  if (s.bisect) lines.push('', s.bisect.text.trimEnd());
  return lines.join('\n');
}

export function countsLine(s: HuntSummary): string {
  const parts = (['good', 'bad', 'skip', 'error', 'pending'] as const).filter((v) => s.counts[v] > 0).map((v) => `${s.counts[v]} ${verdictWord(v)}`);
  return `${s.releases.length} releases: ${parts.join(', ')}`;
}

export function jsonReport(state: HuntState): string {
  const s = summarize(state);
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
      counts: s.counts,
      releases: s.releases.map((r) => ({
        release: r.release,
        verdict: r.verdict,
        reason: r.reason || undefined,
        durationMs: r.durationMs === null ? null : Math.round(r.durationMs),
        metrics: r.metrics,
        runs: r.runs,
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
  const cases: string[] = [];
  let failures = 0;
  let errors = 0;
  let skipped = 0;
  let total = 0;
  let time = 0;
  for (const r of s.releases) {
    const runs = r.runs.length ? r.runs : [];
    for (const run of runs) {
      total++;
      time += run.durationMs / 1000;
      const name = state.spec.runs > 1 ? `${r.release} run ${run.run}` : r.release;
      const metrics = Object.entries(run.metrics).map(([k, v]) => `      <property name="metric.${xml(k)}" value="${v}"/>`);
      const body: string[] = [];
      if (metrics.length) body.push('    <properties>', ...metrics, '    </properties>');
      if (run.verdict === 'bad') {
        failures++;
        body.push(`    <failure message="${xml(`test exited ${run.status}`)}" type="bad"/>`);
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
    `<testsuite name="${xml(`be hunt ${s.id} (${s.test} by ${s.method})`)}" tests="${total}" failures="${failures}" errors="${errors}" skipped="${skipped}" time="${time.toFixed(3)}" timestamp="${xml(s.updated.replace(/\.\d+Z$/, ''))}">`,
    ...cases,
    '</testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}
