// `be -n hunt bisect` prints the search as sh (bisectScript): run by sh over the same verdicts,
// it must test the same releases in the same order and end with the same answer as the live
// loop (bisectWith over bisectStep). Each run's recorded lines are stood in for by what such
// lines leave behind: the test's exit status in $be_status and the run's verdict line.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bisectScript, bisectRange } from '../../src/hunt/bisect.js';
import { bisectWith } from '../../src/hunt/exec.js';
import { classify, shVerdict } from '../../src/hunt/verdict.js';
import { HuntStore, type HuntSpec, type RunRecord } from '../../src/hunt/state.js';

let dir: string;
beforeAll(async () => void (dir = await mkdtemp(join(tmpdir(), 'be-bisect-script.'))));
afterAll(async () => rm(dir, { recursive: true, force: true }));

interface Case {
  releases: string[];
  /** Exit status of each run of each release (run 1 first); releases not named exit 0. */
  status: Record<string, number[]>;
  runs: number;
  flaky?: 'bad' | 'good' | 'skip';
}

let n = 0;

/** The live bisect over the case: its step lines, runs (release run N: verdict) and report. */
async function live(c: Case): Promise<{ steps: string[]; runs: string[]; report: string[] }> {
  const spec: HuntSpec = { kind: 'bisect', releases: c.releases, test: { path: '/t/t.sh', name: 't.sh', sha256: 'ab' }, method: 'chroot', runs: c.runs, timeoutMs: 60_000, install: {}, good: c.releases[0], bad: c.releases[c.releases.length - 1], ...(c.flaky && c.flaky !== 'bad' ? { flaky: c.flaky } : {}) };
  const store = await HuntStore.open(join(dir, `live-${n++}`), spec, { command: ['be', 'hunt', 'bisect'], beVersion: '0.1.0' });
  const lines: string[] = [];
  const runOne = async (release: string, run: number): Promise<RunRecord> => {
    const status = c.status[release]?.[run - 1] ?? 0;
    const v = classify({ status });
    const rec: RunRecord = { release, run, verdict: v.verdict, status, signal: null, reason: v.reason, metrics: {}, startedAt: new Date(0).toISOString(), durationMs: 1, log: '' };
    await store.recordRun(rec);
    return rec;
  };
  const text = await bisectWith(store, undefined, runOne, { progress: (l) => lines.push(l) });
  const runs = store.state.runs.map((r) => `${r.release} run ${r.run}: ${r.verdict === 'error' ? `aborted: ${r.reason}` : r.verdict}`);
  return { steps: lines.filter((l) => l.startsWith('bisect: ')), runs, report: text.trimEnd().split('\n').filter((l) => !l.startsWith('command:')) };
}

/** The printed bisect over the same case, run by sh. */
async function printed(c: Case): Promise<{ steps: string[]; runs: string[]; report: string[]; script: string }> {
  const range = bisectRange(c.releases, c.releases[0], c.releases[c.releases.length - 1]);
  const runs = new Map(range.slice(1, -1).map((r) => [r, Array.from({ length: c.runs }, (_, k) => [`be_status=${c.status[r]?.[k] ?? 0}`, ...shVerdict('be_status', `${r} run ${k + 1}`)])]));
  const script = ['#!/bin/sh', 'set -e', ...bisectScript({ range, runs, runsEach: c.runs, flaky: c.flaky ?? 'bad', test: 't.sh', method: 'chroot', beVersion: '0.1.0' })].join('\n');
  await execa('sh', ['-n'], { input: script });
  const out = (await execa('sh', ['-c', script])).stdout.split('\n');
  const verdict = / run \d+: /;
  return {
    steps: out.filter((l) => l.startsWith('bisect: ')),
    runs: out.filter((l) => verdict.test(l)).map((l) => l.replace(/ \((exit \d+)\)$/, '')),
    report: out.slice(out.findIndex((l) => l.startsWith('be hunt bisect: '))),
    script,
  };
}

async function same(c: Case): Promise<Awaited<ReturnType<typeof printed>>> {
  const [a, b] = [await live(c), await printed(c)];
  expect({ steps: b.steps, runs: b.runs, report: b.report }, JSON.stringify(c)).toEqual(a);
  return b;
}

const RELEASES = ['13.0', '13.1', '13.2', '13.3', '13.4', '13.5', '14.0'];

describe('a printed bisect searches as the live one does', () => {
  it('skips what exits 125 and names the first bad release', async () => {
    const b = await same({ releases: RELEASES, status: { '13.3': [125], '13.5': [1], '14.0': [1] }, runs: 1 });
    expect(b.report[0]).toBe('be hunt bisect: 13.5 is the first bad release');
    expect(b.steps).toEqual(['bisect: 5 releases left to test, trying 13.3', 'bisect: 4 releases left to test, trying 13.4', 'bisect: 1 release left to test, trying 13.5']);
    expect(b.report).toContain('skipped (125):  13.3');
  });

  it('counts a release whose runs disagree as --flaky says, and names the suspects a skip leaves', async () => {
    const status = { '13.3': [125, 125], '13.4': [0, 1], '13.5': [1, 1] };
    const skip = await same({ releases: RELEASES, status, runs: 2, flaky: 'skip' });
    expect(skip.report[0]).toBe('be hunt bisect: the first bad release is one of 13.3 13.4 13.5');
    expect(skip.report).toContain('flaky:          13.4 (1 of 2 bad), counted as skip');
    expect((await same({ releases: RELEASES, status, runs: 2 })).report[0]).toBe('be hunt bisect: the first bad release is one of 13.3 13.4');
    expect((await same({ releases: RELEASES, status, runs: 2, flaky: 'good' })).report[0]).toBe('be hunt bisect: 13.5 is the first bad release');
  });

  it('stops at an aborted run, as git bisect run does, with its reason', async () => {
    const b = await same({ releases: RELEASES, status: { '13.3': [0, 130], '13.5': [1, 1] }, runs: 2 });
    expect(b.report[0]).toBe('be hunt bisect: aborted at 13.3: exit status 130 is above 127 (a crash, not a verdict)');
    // the run after the aborted one is not made
    expect(b.runs).toEqual(['13.3 run 1: good', '13.3 run 2: aborted: exit status 130 is above 127 (a crash, not a verdict)']);
  });

  it('tests nothing between neighbours', async () => {
    const b = await same({ releases: ['13.5', '14.0'], status: {}, runs: 1 });
    expect([b.steps, b.runs, b.report[0]]).toEqual([[], [], 'be hunt bisect: 14.0 is the first bad release']);
  });

  it('agrees on any verdicts (random cases: good, bad, skip, aborted; 1 to 3 runs; every --flaky)', async () => {
    let seed = 11;
    const random = (k: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % k);
    for (let i = 0; i < 40; i++) {
      const releases = Array.from({ length: 2 + random(9) }, (_, k) => `1${k}.0`);
      const runs = 1 + random(3);
      const status: Record<string, number[]> = {};
      for (const r of releases) status[r] = Array.from({ length: runs }, () => [0, 0, 1, 1, 125, 130, 3][random(7)]);
      await same({ releases, status, runs, flaky: (['bad', 'good', 'skip'] as const)[random(3)] });
    }
  }, 60_000);
});
