import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { be, beOk, BE_BIN } from '../helpers/cli.js';
import { makeTestPool, type TestPool } from '../helpers/zfs.js';
import { decodePng, countColours } from './hunt-png.js';
// the demo's own mirror: eight releases with a regression, a flaky release and a metric step planted
import { buildHuntMirror, bootMs, expectedVerdict, RELEASES, REGRESSION, FLAKY, STEP, WILD, RUNS } from '../../scripts/hunt-mirror.mjs';

let pool: TestPool;
let dir: string;
let test: string;
let common: string[];
const install = () => ['-p', join(dir, 'mirror'), '--sets', 'base', '--cache', join(dir, 'cache'), '--method', 'chroot'];

interface Metric {
  n: number;
  median: number;
  min: number;
  max: number;
  q1: number;
  q3: number;
  change: string | null;
  relative: number | null;
}
interface Report {
  releases: Array<{ release: string; verdict: string; counts: Record<string, number>; metrics: Record<string, Metric>; runs: Array<{ run: number; exit: number; durationMs: number; metrics: Record<string, number> }> }>;
}

beforeAll(async () => {
  pool = await makeTestPool('768M');
  dir = await mkdtemp(join(tmpdir(), 'be-hunt-stats-'));
  test = buildHuntMirror(join(dir, 'mirror'));
  common = ['-R', pool.root];
}, 120_000);

afterAll(async () => {
  await pool?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
}, 60_000);

const esc = (s: string) => s.replace(/\./g, '\\.');

describe('be hunt run --runs 5 over 8 releases on zfs-fuse BEs', () => {
  const state = () => join(dir, 'run');
  let stderr = '';

  it('a release whose test fails on 2 of 5 runs is flaky with its counts, never good; the metric step is flagged there and nowhere else', async () => {
    const r = await be([...common, 'hunt', 'run', '--releases', RELEASES.join(','), '--runs', String(RUNS), '--jobs', '2', '--test', test, '--state', state(), ...install()]);
    expect(r.exitCode, r.stderr).toBe(0);
    stderr = r.stderr;
    const report: Report = JSON.parse(await beOk(['hunt', 'report', '--state', state(), '--format', 'json']));
    expect(report.releases.map((x) => [x.release, x.verdict])).toEqual(RELEASES.map((rel) => [rel, expectedVerdict(rel)]));
    const flaky = report.releases.find((x) => x.release === FLAKY)!;
    expect(flaky.counts).toEqual({ good: 3, bad: 2, skip: 0, aborted: 0 });
    expect(flaky.runs.map((x) => [x.run, x.exit])).toEqual([1, 2, 3, 4, 5].map((n) => [n, n === 2 || n === 4 ? 1 : 0]));
    // each run's own value is kept; median and quartiles are those of the five values
    const values = bootMs();
    for (const x of report.releases) {
      expect(x.runs.map((run) => run.metrics.boot_ms)).toEqual(values[x.release]);
      const sorted = [...values[x.release]].sort((a, b) => a - b);
      expect(x.metrics.boot_ms).toMatchObject({ n: 5, median: sorted[2], min: sorted[0], max: sorted[4], q1: sorted[1], q3: sorted[3] });
    }
    // flagged at the step only: not at the noisy release whose median is 6% off
    expect(report.releases.map((x) => [x.release, x.metrics.boot_ms.change])).toEqual(RELEASES.map((rel) => [rel, rel === STEP ? 'up' : null]));
    const wild = report.releases.find((x) => x.release === WILD)!.metrics.boot_ms;
    expect(Math.abs(wild.relative!)).toBeGreaterThan(0.05);
    const step = report.releases.find((x) => x.release === STEP)!.metrics.boot_ms;
    expect(step.relative).toBeGreaterThan(0.25);
    // the table: counts for the flaky release, median ± spread, the arrow and relative size at the step
    expect(r.stdout).toMatch(new RegExp(`^${esc(FLAKY)}\\s+flaky \\(2 of 5 bad\\)\\s+5\\s`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^${esc(STEP)}\\s+good\\s+5\\s+\\S+\\s+\\d+(\\.\\d+)? ±\\d+(\\.\\d+)? ↑\\+\\d+%$`, 'm'));
    expect(r.stdout.split('\n').filter((l) => /[↑↓]/.test(l) && /^\d/.test(l))).toHaveLength(1);
    expect(r.stdout).toContain(`8 releases: 5 good, 2 bad, 1 flaky`);
    expect(r.stdout).toContain(`flaky: ${FLAKY} (2 of 5 bad)`);
    expect(r.stdout).toMatch(new RegExp(`^boot_ms: ↑ \\+\\d+% at ${esc(STEP)} \\(median .*\\) from ${esc(RELEASES[RELEASES.indexOf(STEP) - 1])} `, 'm'));
  }, 600_000);

  it('progress on a pipe: one plain line per run with the runs done of the total and the time left', () => {
    const lines = stderr.split('\n').filter((l) => / run \d: /.test(l));
    expect(lines).toHaveLength(RELEASES.length * RUNS);
    expect(lines.map((l) => /\[(\d+) of 40 runs done/.exec(l)?.[1])).toEqual(lines.map((_, i) => String(i + 1)));
    expect(lines[0]).toMatch(/\[1 of 40 runs done, about \d+\S* left\]$/);
    expect(lines[lines.length - 1]).toMatch(/\[40 of 40 runs done\]$/);
    expect(stderr).not.toMatch(/\x1b\[/);
  });

  it('-q prints the report and nothing else', async () => {
    const r = await be([...common, 'hunt', 'run', '-q', '--releases', RELEASES.join(','), '--runs', String(RUNS), '--test', test, '--state', state(), ...install()]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('8 releases: 5 good, 2 bad, 1 flaky');
  }, 60_000);

  it('progress on a terminal (a pty): a block redrawn in place with runs done, time left and one line per job', async () => {
    // python's pty.spawn gives be a terminal on its standard streams and copies what it draws
    const args = [BE_BIN, ...common, 'hunt', 'run', '--releases', RELEASES.slice(0, 2).join(','), '--runs', '2', '--jobs', '2', '--test', test, '--state', join(dir, 'tty'), ...install()];
    const r = await execa('python3', ['-c', 'import pty, sys; sys.exit(pty.spawn(sys.argv[1:]) >> 8)', ...args], { reject: false, env: { COLUMNS: '100' } });
    expect(r.exitCode, r.stdout).toBe(0);
    const raw = r.stdout;
    expect(raw).toMatch(/\x1b\[\d+A\x1b\[J/); // moved up over the block and cleared it
    expect(raw).toMatch(/0 of 4 runs done, time left not known yet\r?\n/);
    expect(raw).toMatch(/[123] of 4 runs done, about \d+\S* left\r?\n/);
    expect(raw).toMatch(new RegExp(`job 1: testing ${esc(RELEASES[0])} run 1 \\(\\d+\\S*\\)`));
    expect(raw).toMatch(/job 2: testing \S+ run \d \(\d+\S*\)/);
    // finished runs are plain lines above the block (no count: the block has it), the report after it
    expect(raw).toMatch(new RegExp(`${esc(RELEASES[0])} run 1: good in \\S+ boot_ms=[\\d.]+\\r?\\n`));
    expect(raw).not.toMatch(/runs done\]/);
    expect(raw).toContain('2 releases: 2 good');
  }, 120_000);

  it('JUnit marks the flaky release; the HTML report draws error bars and marks the step in Chromium', async () => {
    const junit = await beOk(['hunt', 'report', '--state', state(), '--format', 'junit']);
    expect(junit).toMatch(/<testsuite [^>]*flaky="1"/);
    expect(junit).toContain(`<property name="flaky" value="2 of 5 runs bad"/>`);
    expect((junit.match(/type="flaky"/g) ?? []).length).toBe(2);
    expect((junit.match(/type="bad"/g) ?? []).length).toBe(2 * RUNS);
    const html = join(dir, 'report.html');
    await beOk(['hunt', 'report', '--state', state(), '--format', 'html', '--out', html]);
    const profile = await mkdtemp(join(tmpdir(), 'be-chromium-'));
    const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', `--user-data-dir=${profile}`];
    try {
      const dom = (await execa('chromium', [...flags, '--dump-dom', `file://${html}`], { timeout: 60_000 })).stdout;
      expect([...dom.matchAll(/<g class="error-bar" data-release="([^"]+)"/g)].map((m) => m[1])).toEqual(RELEASES);
      expect([...dom.matchAll(/<g class="change" data-release="([^"]+)" data-change="(\w+)"/g)].map((m) => [m[1], m[2]])).toEqual([[STEP, 'up']]);
      expect([...dom.matchAll(/data-verdict="(\w+)"/g)].map((m) => m[1])).toEqual(RELEASES.map(expectedVerdict));
      const shot = join(dir, 'report.png');
      await execa('chromium', [...flags, `--screenshot=${shot}`, '--window-size=1100,760', `file://${html}`], { timeout: 60_000 });
      const counts = countColours(decodePng(await readFile(shot)), { flaky: '#8e44ad', mark: '#e05a00', box: '#9fb9e6', whisker: '#555555' }, 10);
      expect(counts.flaky).toBeGreaterThan(60 * 20); // the flaky release's cell
      expect(counts.mark).toBeGreaterThan(30); // the ▲ and its +30%
      expect(counts.box).toBeGreaterThan(RELEASES.length * 20); // interquartile boxes
      expect(counts.whisker).toBeGreaterThan(RELEASES.length * 10);
      await mkdir(new URL('../../docs/', import.meta.url), { recursive: true });
      await copyFile(shot, new URL('../../docs/hunt-report.png', import.meta.url));
    } finally {
      await rm(profile, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('be hunt bisect with repeated runs', () => {
  it('--flaky bad (the default): the flaky release is the first bad, and the report says it was flaky', async () => {
    const r = await be([...common, 'hunt', 'bisect', '--good', RELEASES[0], '--bad', RELEASES[RELEASES.length - 1], '--runs', String(RUNS), '--test', test, '--state', join(dir, 'bisect-flaky-bad'), ...install()]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`be hunt bisect: ${FLAKY} is the first bad release`);
    expect(r.stdout).toMatch(new RegExp(`^flaky: +${esc(FLAKY)} \\(2 of 5 bad\\), counted as bad$`, 'm'));
  }, 300_000);

  it('--flaky good: the regression is found past the flaky release', async () => {
    const r = await be([...common, 'hunt', 'bisect', '--good', RELEASES[0], '--bad', RELEASES[RELEASES.length - 1], '--runs', String(RUNS), '--flaky', 'good', '--test', test, '--state', join(dir, 'bisect-flaky-good'), ...install()]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`be hunt bisect: ${REGRESSION} is the first bad release`);
    expect(r.stdout).toMatch(new RegExp(`^flaky: +${esc(FLAKY)} \\(2 of 5 bad\\), counted as good$`, 'm'));
  }, 300_000);

  it('--metric boot_ms --up finds the step within ceil(log2 n) + skips steps, with both medians and spreads', async () => {
    const state = join(dir, 'bisect-metric');
    const r = await be([...common, 'hunt', 'bisect', '--good', RELEASES[0], '--bad', RELEASES[RELEASES.length - 1], '--metric', 'boot_ms', '--up', '--test', test, '--state', state, ...install()]);
    expect(r.exitCode, r.stderr).toBe(0);
    const before = RELEASES[RELEASES.indexOf(STEP) - 1];
    expect(r.stdout).toMatch(new RegExp(`^be hunt bisect: boot_ms went up first in ${esc(STEP)} \\(\\+\\d+% from ${esc(RELEASES[0])}, beyond the noise\\)$`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^first moved: +${esc(STEP)}$`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^last unmoved: +${esc(before)}$`, 'm'));
    const values = bootMs();
    const median = (rel: string) => String([...values[rel]].sort((a, b) => a - b)[2]);
    expect(r.stdout).toMatch(new RegExp(`^boot_ms: +${esc(STEP)}: median ${esc(median(STEP))} ±\\S+, range \\S+ over 5 runs$`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^ +${esc(before)}: median ${esc(median(before))}( ±\\S+)?, range \\S+ over 5 runs$`, 'm'));
    const s = JSON.parse(await readFile(join(state, 'hunt.json'), 'utf8'));
    const tested = new Set<string>(s.runs.map((x: { release: string }) => x.release));
    tested.delete(RELEASES[0]); // the baseline
    expect(s.runs.length).toBe((tested.size + 1) * 5);
    expect(tested.size).toBeLessThanOrEqual(Math.ceil(Math.log2(RELEASES.length)));
    expect(r.stdout).toMatch(new RegExp(`^test runs: +${tested.size} releases × 5 runs \\(bound ceil\\(log2 8\\) \\+ 0 skips = 3\\), besides ${esc(RELEASES[0])} as the baseline$`, 'm'));
  }, 300_000);

  it('refuses too few runs for a metric bisect, and flags that belong to --metric without it', async () => {
    const base = [...common, 'hunt', 'bisect', '--good', RELEASES[0], '--bad', RELEASES[1], '--test', test, '--state', join(dir, 'refused'), ...install()];
    const few = await be([...base, '--metric', 'boot_ms', '--runs', '3']);
    expect([few.exitCode, few.stderr]).toEqual([2, 'be: --runs 3: too few runs to tell a change from the noise; --metric needs at least 4 per release\n']);
    const up = await be([...base, '--up']);
    expect([up.exitCode, up.stderr]).toEqual([2, 'be: --up: only with --metric NAME\n']);
    const flaky = await be([...base, '--flaky', 'maybe']);
    expect([flaky.exitCode, flaky.stderr]).toEqual([2, "be: invalid --flaky 'maybe': expected bad, good or skip\n"]);
    const pct = await be([...common, 'hunt', 'run', '--releases', RELEASES[0], '--test', test, '--min-change', 'five', '--state', join(dir, 'refused'), ...install()]);
    expect([pct.exitCode, pct.stderr]).toEqual([2, "be: invalid --min-change 'five': expected a percentage such as 5%\n"]);
  }, 60_000);
});
