import type { HuntState, RunRecord } from './state.js';
import type { Verdict } from './verdict.js';
import { formatDuration } from './verdict.js';

export type ReleaseVerdict = Verdict | 'pending';

export interface ReleaseSummary {
  release: string;
  verdict: ReleaseVerdict;
  runs: RunRecord[];
  /** Mean duration of the finished runs. */
  durationMs: number | null;
  /** Mean of each metric over the runs that printed it. */
  metrics: Record<string, number>;
  reason: string;
}

export interface HuntSummary {
  id: string;
  kind: 'run' | 'bisect';
  test: string;
  method: string;
  releases: ReleaseSummary[];
  metricNames: string[];
  counts: Record<ReleaseVerdict, number>;
  command: string;
  beVersion: string;
  created: string;
  updated: string;
  bisect?: HuntState['bisect'];
}

/** A release is bad if any run was bad, then aborted if any aborted, skipped if all skipped, else good. */
function releaseVerdict(runs: RunRecord[]): ReleaseVerdict {
  if (runs.length === 0) return 'pending';
  for (const v of ['bad', 'error'] as const) if (runs.some((r) => r.verdict === v)) return v;
  if (runs.every((r) => r.verdict === 'skip')) return 'skip';
  return 'good';
}

export function summarize(state: HuntState): HuntSummary {
  const metricNames = new Set<string>();
  const releases = state.spec.releases.map((release): ReleaseSummary => {
    const runs = state.runs.filter((r) => r.release === release).sort((a, b) => a.run - b.run);
    const sums: Record<string, { total: number; n: number }> = {};
    for (const r of runs) {
      for (const [k, v] of Object.entries(r.metrics)) {
        metricNames.add(k);
        sums[k] ??= { total: 0, n: 0 };
        sums[k].total += v;
        sums[k].n++;
      }
    }
    const metrics = Object.fromEntries(Object.entries(sums).map(([k, { total, n }]) => [k, total / n]));
    const durationMs = runs.length ? runs.reduce((a, r) => a + r.durationMs, 0) / runs.length : null;
    const reason = runs.find((r) => r.reason)?.reason ?? '';
    return { release, verdict: releaseVerdict(runs), runs, durationMs, metrics, reason };
  });
  const counts = { good: 0, bad: 0, skip: 0, error: 0, pending: 0 } as Record<ReleaseVerdict, number>;
  for (const r of releases) counts[r.verdict]++;
  return {
    id: state.id,
    kind: state.spec.kind,
    test: state.spec.test.name,
    method: state.spec.method,
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
  if (v === undefined) return '-';
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(4)));
}

export function verdictWord(v: ReleaseVerdict): string {
  return { good: 'good', bad: 'bad', skip: 'skip', error: 'aborted', pending: 'pending' }[v];
}

export function durationText(ms: number | null): string {
  return ms === null ? '-' : formatDuration(ms);
}
