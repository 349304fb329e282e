import type { HuntState } from './state.js';
import { summarize, durationText, verdictText } from './summary.js';
import { countsLine, metricCell, notes } from './report.js';
import { timeline, metricChart } from './charts.js';

/** What templates/report.html.hbs is given: everything precomputed, the template only draws. */
export function reportModel(state: HuntState, opts: { minChange?: number } = {}): Record<string, unknown> {
  const s = summarize(state, opts);
  return {
    id: s.id,
    test: s.test,
    method: s.method,
    beVersion: s.beVersion,
    updated: s.updated,
    command: s.command,
    countsLine: countsLine(s),
    notes: notes(s),
    releases: s.releases,
    metricNames: s.metricNames,
    timeline: timeline(s),
    charts: s.metricNames.map((m) => metricChart(s, m)),
    bisect: s.bisect,
    rows: s.releases.map((r) => ({
      release: r.release,
      verdict: r.verdict,
      word: verdictText(r),
      runs: r.runs.length,
      duration: durationText(r.durationMs),
      metrics: s.metricNames.map((m) => ({ text: metricCell(r.metrics[m]), change: r.metrics[m]?.change ?? '' })),
    })),
  };
}
