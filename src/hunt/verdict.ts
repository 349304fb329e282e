/** How one test run ended, classified the way `git bisect run` reads exit codes. */
export type Verdict = 'good' | 'bad' | 'skip' | 'error';

export interface RunEnd {
  /** Exit status, when the test exited. */
  status?: number | null;
  /** The signal that killed it, when one did. */
  signal?: string | null;
  timedOut?: boolean;
  /** The limit that was hit, for the message. */
  timeoutMs?: number;
  /** Why there is no status to classify (a bhyve guest that wrote none): the run is aborted with it. */
  failure?: string;
}

export interface Classified {
  verdict: Verdict;
  /** Why a run was aborted (verdict 'error'); empty otherwise. */
  reason: string;
}

/**
 * 0 is good, 125 means "cannot test this one" (skip), 1–127 except 125 is bad; anything else
 * (128–255, a signal, a timeout) aborts the run, exactly as git-bisect(1) documents for `run`.
 */
export function classify(end: RunEnd): Classified {
  if (end.timedOut) return { verdict: 'error', reason: `timed out after ${formatDuration(end.timeoutMs ?? 0)}` };
  if (end.failure) return { verdict: 'error', reason: end.failure };
  if (end.signal) return { verdict: 'error', reason: `killed by ${end.signal}` };
  const s = end.status;
  if (s === undefined || s === null || !Number.isInteger(s)) return { verdict: 'error', reason: 'no exit status' };
  if (s === 0) return { verdict: 'good', reason: '' };
  if (s === 125) return { verdict: 'skip', reason: '' };
  if (s >= 1 && s <= 127) return { verdict: 'bad', reason: '' };
  return { verdict: 'error', reason: `exit status ${s} is above 127 (a crash, not a verdict)` };
}

/**
 * classify() as /bin/sh, for a hunt printed as a script: prints `LABEL: good`, `bad (exit N)`,
 * `skip (exit 125)` or `aborted: …` for the exit status in $VARIABLE (a time limit reached by
 * timeout(1) ends the test by a signal: above 127, aborted, as in a live run).
 */
export function shVerdict(variable: string, label: string): string[] {
  const v = `$${variable}`;
  return [
    `case ${v} in`,
    `  0) echo "${label}: good" ;;`,
    `  125) echo "${label}: skip (exit 125)" ;;`,
    `  [1-9] | [1-9][0-9] | 1[01][0-9] | 12[0-7]) echo "${label}: bad (exit ${v})" ;;`,
    `  *) echo "${label}: aborted: exit status ${v} is above 127 (a crash, not a verdict)" ;;`,
    'esac',
  ];
}

const METRIC = /^BE-METRIC[ \t]+([A-Za-z_][A-Za-z0-9_.:-]*)=[ \t]*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)[ \t]*\r?$/;

/** `BE-METRIC name=value` lines of a test's output, as numbers; the last value of a name wins. */
export function parseMetrics(output: string): Record<string, number> {
  const metrics: Record<string, number> = {};
  for (const line of output.split('\n')) {
    const m = METRIC.exec(line);
    if (!m) continue;
    const value = Number(m[2]);
    if (Number.isFinite(value)) metrics[m[1]] = value;
  }
  return metrics;
}

/** 10m, 90s, 1h30m, 500ms, or plain seconds → milliseconds. */
export function parseDuration(text: string): number {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.round(Number(t) * 1000);
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/gy;
  let total = 0;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(t))) {
    total += Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
    end = re.lastIndex;
  }
  if (t === '' || end !== t.length || total <= 0) return NaN;
  return Math.round(total);
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${Number.isInteger(s) ? s : s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  const rest = Math.round(s - m * 60);
  if (m < 60) return rest ? `${m}m${rest}s` : `${m}m`;
  const h = Math.floor(m / 60);
  return m % 60 ? `${h}h${m % 60}m` : `${h}h`;
}
