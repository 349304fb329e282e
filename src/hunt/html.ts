import type { HuntState } from './state.js';
import { summarize, formatMetric, verdictWord, durationText } from './summary.js';
import { countsLine } from './report.js';
import { timeline, metricChart } from './charts.js';

/** What templates/report.html.hbs is given: everything precomputed, the template only draws. */
export function reportModel(state: HuntState): Record<string, unknown> {
  const s = summarize(state);
  return {
    id: s.id,
    test: s.test,
    method: s.method,
    beVersion: s.beVersion,
    updated: s.updated,
    command: s.command,
    countsLine: countsLine(s),
    releases: s.releases,
    metricNames: s.metricNames,
    timeline: timeline(s),
    charts: s.metricNames.map((m) => metricChart(s, m)),
    bisect: s.bisect,
    rows: s.releases.map((r) => ({
      release: r.release,
      verdict: r.verdict,
      word: verdictWord(r.verdict),
      reason: r.verdict === 'error' ? r.reason : '',
      runs: r.runs.length,
      duration: durationText(r.durationMs),
      metrics: s.metricNames.map((m) => formatMetric(r.metrics[m])),
    })),
  };
}
