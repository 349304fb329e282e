import { describe, expect, it } from 'vitest';
import { tableReport, jsonReport, junitReport } from '../../src/hunt/report.js';
import { reportModel } from '../../src/hunt/html.js';
import { bisectReportText } from '../../src/hunt/bisect.js';
import { renderString } from '../../src/render/index.js';
import { readFileSync } from 'node:fs';
import type { HuntState, RunRecord } from '../../src/hunt/state.js';

function run(release: string, verdict: RunRecord['verdict'], metrics: Record<string, number> = {}, extra: Partial<RunRecord> = {}): RunRecord {
  const status = { good: 0, bad: 1, skip: 125, error: null }[verdict];
  return { release, run: 1, verdict, status, signal: null, reason: '', metrics, startedAt: '2026-11-21T10:00:00.000Z', durationMs: 1500, log: `logs/${release}/run-1.log`, ...extra };
}

const state: HuntState = {
  version: 1,
  id: 'run-0123456789ab',
  created: '2026-11-21T10:00:00.000Z',
  updated: '2026-11-21T10:05:00.000Z',
  command: ['be', 'hunt', 'run', '--releases', '13.0..13.3', '--test', 'my test.sh'],
  beVersion: '0.1.0',
  spec: { kind: 'run', releases: ['13.0', '13.1', '13.2', '13.3', '14.0'], test: { path: '/t/x.sh', name: 'x.sh', sha256: 'ab' }, method: 'chroot', runs: 1, timeoutMs: 600000, install: {} },
  prepared: {},
  sessions: [],
  runs: [
    run('13.0', 'good', { ratio: 0.5 }),
    run('13.1', 'skip'),
    run('13.2', 'bad', { ratio: 0.75 }),
    run('13.3', 'error', {}, { reason: 'timed out after 10m', signal: null }),
  ],
};

describe('hunt reports', () => {
  it('table: verdict, runs, duration and metrics per release, pending ones too', () => {
    const t = tableReport(state);
    expect(t.split('\n')[0]).toMatch(/^RELEASE\s+VERDICT\s+RUNS\s+DURATION\s+ratio$/);
    expect(t).toMatch(/^13\.0\s+good\s+1\s+1\.5s\s+0\.5$/m);
    expect(t).toMatch(/^13\.1\s+skip\s+1\s+1\.5s\s+-$/m);
    expect(t).toMatch(/^13\.3\s+aborted \(timed out after 10m\)\s+1/m);
    expect(t).toMatch(/^14\.0\s+pending\s+0\s+-\s+-$/m);
    expect(t).toContain('5 releases: 1 good, 1 bad, 1 skip, 1 aborted, 1 pending');
  });

  it('JSON carries every run', () => {
    const j = JSON.parse(jsonReport(state));
    expect(j.releases.map((r: { verdict: string }) => r.verdict)).toEqual(['good', 'skip', 'bad', 'aborted', 'pending']);
    expect(j.releases[3].runs[0]).toMatchObject({ run: 1, verdict: 'aborted', exit: null, reason: 'timed out after 10m', durationMs: 1500 });
    expect(j.releases[0].metrics.ratio).toEqual({ n: 1, median: 0.5, min: 0.5, max: 0.5, q1: 0.5, q3: 0.5, change: null, relative: null, p: null, from: null, tooFew: false });
    expect(j.command).toBe("be hunt run --releases 13.0..13.3 --test 'my test.sh'");
  });

  it('JUnit: bad is a failure, aborted an error, 125 skipped, output escaped', () => {
    const x = junitReport(state, (log) => (log.includes('13.2') ? 'a < b & "c"\u0001\n' : ''));
    expect(x).toMatch(/<testsuites name="be hunt" tests="4" failures="1" errors="1" skipped="1"/);
    expect(x).toContain('<failure message="test exited 1" type="bad"/>');
    expect(x).toContain('<error message="timed out after 10m" type="aborted"/>');
    expect(x).toContain('<skipped message="test exited 125 (cannot test)"/>');
    expect(x).toContain('<system-out>a &lt; b &amp; &quot;c&quot;\n</system-out>');
    expect(x).toContain('<property name="metric.ratio" value="0.75"/>');
  });

  it('HTML: a timeline cell per release and a chart per metric, escaped, nothing fetched', () => {
    const html = renderString(readFileSync(new URL('../../templates/report.html.hbs', import.meta.url), 'utf8'), reportModel({ ...state, spec: { ...state.spec, test: { ...state.spec.test, name: '<x>.sh' } } }), 'report.html');
    expect([...html.matchAll(/data-verdict="(\w+)"/g)].map((m) => m[1])).toEqual(['good', 'skip', 'bad', 'aborted', 'pending']);
    expect(html).toContain('<svg class="metric" data-metric="ratio"');
    expect((html.match(/<circle /g) ?? []).length).toBe(2);
    expect(html).toContain('&lt;x&gt;.sh');
    expect(html).not.toMatch(/<script|(src|href)="http/);
  });

  it('bisect block names the range, first bad, last good, skips, runs against the bound, command and version', () => {
    const text = bisectReportText({ range: ['13.0', '13.1', '13.2', '13.3'], firstBad: '13.2', lastGood: '13.0', suspects: ['13.1'], skipped: ['13.1'], runs: 2, bound: 3, test: 'x.sh', method: 'chroot', command: 'be hunt bisect --good 13.0 --bad 13.3 --test x.sh', beVersion: '0.1.0' });
    expect(text).toBe(
      [
        'be hunt bisect: the first bad release is one of 13.1 13.2',
        'range searched: 13.0 (good) .. 13.3 (bad), 4 releases',
        'first bad:      13.2 or earlier: 13.1',
        'last good:      13.0',
        'skipped (125):  13.1',
        'test runs:      2 (bound ceil(log2 4) + 1 skips = 3)',
        'test:           x.sh by chroot',
        'command:        be hunt bisect --good 13.0 --bad 13.3 --test x.sh',
        'be version:     0.1.0',
        '',
      ].join('\n'),
    );
  });
});

describe('be hunt report on the command line', () => {
  it('names a bad --format before looking for any hunt (exit 2, one line)', async () => {
    const { be } = await import('../helpers/cli.js');
    const r = await be(['hunt', 'report', '--format', 'pdf', '--state', '/nonexistent/hunt']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toBe("be: invalid --format 'pdf': expected table, json, junit, html\n");
  });
});

describe('hunt reports over repeated runs', () => {
  const runs = (release: string, verdicts: Array<RunRecord['verdict']>, values: number[]) =>
    verdicts.map((v, i) => run(release, v, { ms: values[i] }, { run: i + 1, log: `logs/${release}/run-${i + 1}.log` }));
  const many: HuntState = {
    ...state,
    spec: { ...state.spec, releases: ['13.0', '13.1', '13.2', '13.3'], runs: 5 },
    runs: [
      ...runs('13.0', ['good', 'good', 'good', 'good', 'good'], [100, 101, 99, 102, 98]),
      ...runs('13.1', ['good', 'bad', 'good', 'bad', 'good'], [100, 103, 97, 101, 99]),
      ...runs('13.2', ['bad', 'bad', 'bad', 'bad', 'bad'], [120, 121, 119, 122, 118]),
      ...runs('13.3', ['bad', 'bad', 'bad'], [150, 151, 149]),
    ],
  };

  it('table: flaky with counts, median ± half the IQR, the arrow and size of a flagged change, too few runs said', () => {
    const t = tableReport(many);
    expect(t).toMatch(/^13\.0\s+good\s+5\s+1\.5s\s+100 ±1$/m);
    expect(t).toMatch(/^13\.1\s+flaky \(2 of 5 bad\)\s+5\s+1\.5s\s+100 ±1$/m);
    expect(t).toMatch(/^13\.2\s+bad\s+5\s+1\.5s\s+120 ±1 ↑\+20%$/m);
    // 3 runs against 5: the smallest p is 2/56 = 0.036, a change can be told
    expect(t).toMatch(/^13\.3\s+bad\s+3\/5\s+1\.5s\s+150 ±0\.5 ↑\+25%$/m);
    expect(t).toContain('4 releases: 1 good, 2 bad, 1 flaky');
    expect(t).toContain('flaky: 13.1 (2 of 5 bad)');
    expect(t).toMatch(/^ms: ↑ \+20% at 13\.2 \(median 120 ±1, range 118\.\.122\) from 13\.1 \(median 100 ±1, range 97\.\.103\), p = 0\.0079$/m);
    const few = tableReport({ ...many, spec: { ...many.spec, runs: 1 }, runs: [run('13.0', 'good', { ms: 1 }), run('13.1', 'good', { ms: 2 })] });
    expect(few).toContain('ms: too few runs to tell a change from the noise (4 runs per release are needed: --runs 4)');
    expect(few).toMatch(/^13\.1\s+good\s+1\s+1\.5s\s+2$/m);
  });

  it('JSON: per release verdict and counts, per metric median, min, max, q1, q3 and change', () => {
    const j = JSON.parse(jsonReport(many));
    expect(j.releases.map((r: { verdict: string }) => r.verdict)).toEqual(['good', 'flaky', 'bad', 'bad']);
    expect(j.releases[1].counts).toEqual({ good: 3, bad: 2, skip: 0, aborted: 0 });
    expect(j.releases[1].metrics.ms).toMatchObject({ n: 5, median: 100, min: 97, max: 103, q1: 99, q3: 101, change: null, from: '13.0' });
    expect(j.releases[2].metrics.ms).toMatchObject({ median: 120, change: 'up', relative: 0.2, from: '13.1' });
    expect(j.releases[1].runs.map((r: { exit: number; metrics: { ms: number } }) => [r.exit, r.metrics.ms])).toEqual([[0, 100], [1, 103], [0, 97], [1, 101], [0, 99]]);
    // --min-change 30%: neither the +20% nor the +25% is flagged
    expect(JSON.parse(jsonReport(many, { minChange: 0.3 })).releases.map((r: { metrics: { ms: { change: string | null } } }) => r.metrics.ms.change)).toEqual([null, null, null, null]);
  });

  it('JUnit marks the flaky release; HTML draws an error bar per release and marks the change', () => {
    const x = junitReport(many);
    expect(x).toMatch(/<testsuite [^>]*flaky="1"/);
    expect((x.match(/<property name="flaky" value="2 of 5 runs bad"\/>/g) ?? []).length).toBe(5);
    expect(x).toContain('<failure message="test exited 1 (flaky: 2 of 5 runs bad)" type="flaky"/>');
    const html = renderString(readFileSync(new URL('../../templates/report.html.hbs', import.meta.url), 'utf8'), reportModel(many), 'report.html');
    expect([...html.matchAll(/<g class="error-bar" data-release="([^"]+)"/g)].map((m) => m[1])).toEqual(['13.0', '13.1', '13.2', '13.3']);
    expect([...html.matchAll(/<g class="change" data-release="([^"]+)" data-change="(\w+)"/g)].map((m) => [m[1], m[2]])).toEqual([['13.2', 'up'], ['13.3', 'up']]);
    expect(html).toContain('<td class="v-flaky">flaky (2 of 5 bad)</td>');
  });
});
