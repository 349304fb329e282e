import { describe, expect, it } from 'vitest';
import { classify, parseMetrics, parseDuration } from '../../src/hunt/verdict.js';
import { parseReleaseText, naturalCompare, resolveReleaseSpec } from '../../src/hunt/releases.js';
import { bisectStep, runBound, bisectVerdict, metricVerdict } from '../../src/hunt/bisect.js';
import type { RunRecord } from '../../src/hunt/state.js';

describe('verdicts follow git bisect run', () => {
  it('0 is good, 125 skip, 1-127 bad, the rest aborts with a reason', () => {
    expect(classify({ status: 0 }).verdict).toBe('good');
    expect(classify({ status: 125 }).verdict).toBe('skip');
    for (const s of [1, 2, 124, 126, 127]) expect(classify({ status: s }).verdict).toBe('bad');
    expect(classify({ status: 128 })).toEqual({ verdict: 'error', reason: 'exit status 128 is above 127 (a crash, not a verdict)' });
    expect(classify({ status: 255 }).verdict).toBe('error');
    expect(classify({ status: null, signal: 'SIGSEGV' })).toEqual({ verdict: 'error', reason: 'killed by SIGSEGV' });
    expect(classify({ status: 0, timedOut: true, timeoutMs: 600_000 })).toEqual({ verdict: 'error', reason: 'timed out after 10m' });
  });

  it('reads BE-METRIC lines as numbers, ignoring anything else', () => {
    const out = 'hello\nBE-METRIC manpages=412\nBE-METRIC ratio=0.75\r\nBE-METRIC bad=abc\n  BE-METRIC indented=1\nBE-METRIC ratio=0.8\nBE-METRIC neg=-2e3\n';
    expect(parseMetrics(out)).toEqual({ manpages: 412, ratio: 0.8, neg: -2000 });
  });

  it('parses durations', () => {
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('90')).toBe(90_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('10 minutes')).toBeNaN();
    expect(parseDuration('')).toBeNaN();
  });
});

const table = { known: ['9.0', '9.1', '9.2', '10.0', '10.4', '11.0', '13.2', '14.0', '14.1', '14.2'], compare: naturalCompare };

describe('release lists', () => {
  it('takes comma lists, ranges from the release table and files with comments, in release order', () => {
    expect(parseReleaseText('14.0,13.2', table)).toEqual(['13.2', '14.0']);
    expect(parseReleaseText('9.1..10.4', table)).toEqual(['9.1', '9.2', '10.0', '10.4']);
    expect(parseReleaseText('# the hunt\n13.2\n\n14.0 # first with the fix\n9.0..9.1\n13.2\n', table)).toEqual(['9.0', '9.1', '13.2', '14.0']);
  });

  it('refuses reversed ranges, empty ranges and bad names with the value named', () => {
    expect(() => parseReleaseText('14.1..9.0', table)).toThrow("invalid release range '14.1..9.0': 14.1 comes after 9.0");
    expect(() => parseReleaseText('15.0..15.9', table)).toThrow("release range '15.0..15.9' matches no known release");
    expect(() => parseReleaseText('13.2,../etc', table)).toThrow(/invalid release/);
    expect(() => parseReleaseText('# nothing\n', table)).toThrow('no releases given');
  });

  it('reads a file, standard input, or the text itself', async () => {
    const io = { readFile: async (p: string) => (p === 'rel.txt' ? '13.2\n14.0\n' : undefined), readStdin: async () => '9.0\n' };
    expect(await resolveReleaseSpec('rel.txt', table, io)).toEqual(['13.2', '14.0']);
    expect(await resolveReleaseSpec('-', table, io)).toEqual(['9.0']);
    expect(await resolveReleaseSpec('9.0..9.2', table, io)).toEqual(['9.0', '9.1', '9.2']);
    await expect(resolveReleaseSpec('./missing/list', table, io)).rejects.toThrow("release file './missing/list' does not exist");
  });
});

/** Drive the bisect with a truth function and count test runs. */
function simulate(ordered: string[], good: string, bad: string, truth: (r: string) => 'good' | 'bad' | 'skip') {
  const verdicts = new Map<string, 'good' | 'bad' | 'skip'>();
  for (;;) {
    const step = bisectStep({ ordered, good, bad, verdicts });
    if (step.done) return { ...step, runs: verdicts.size, skips: [...verdicts.values()].filter((v) => v === 'skip').length };
    if (verdicts.has(step.next)) throw new Error(`tested ${step.next} twice`);
    verdicts.set(step.next, truth(step.next));
  }
}

describe('bisect over releases', () => {
  const ordered = Array.from({ length: 40 }, (_, i) => `r${String(i).padStart(2, '0')}`);
  it('finds every possible first bad within ceil(log2 n) + skips runs', () => {
    for (let first = 1; first < ordered.length; first++) {
      for (const skip of [undefined, first - 1, first + 1, 7, 20]) {
        const truth = (r: string) => (r === ordered[skip ?? -1] ? 'skip' : ordered.indexOf(r) >= first ? 'bad' : 'good');
        const result = simulate(ordered, ordered[0], ordered[39], truth);
        expect(result.runs).toBeLessThanOrEqual(runBound(ordered.length, result.skips));
        if (skip === first - 1 && skip > 0) {
          // The release before the first bad could not be tested: it may be the first bad.
          expect(result.suspects).toEqual([ordered[skip]]);
          expect(result.firstBad).toBe(ordered[first]);
        } else if (skip === first && first < 39) {
          expect(result.suspects).toEqual([ordered[first]]);
          expect(result.firstBad).toBe(ordered[first + 1]);
        } else {
          expect(result.firstBad).toBe(ordered[first]);
          expect(result.lastGood).toBe(ordered[first - 1]);
        }
      }
    }
  });

  it('stops on an aborted run like git bisect run does', () => {
    const step = bisectStep({ ordered: ['a1', 'b2', 'c3'], good: 'a1', bad: 'c3', verdicts: new Map([['b2', 'error']]) });
    expect(step).toMatchObject({ done: true, aborted: 'b2' });
  });

  it('refuses a good release after the bad one', () => {
    expect(() => bisectStep({ ordered: ['a1', 'b2'], good: 'b2', bad: 'a1', verdicts: new Map() })).toThrow("good release 'b2' must come before bad release 'a1'");
  });
});

describe('a bisect step over repeated runs', () => {
  const rec = (verdict: RunRecord['verdict'], ms?: number, run = 1): RunRecord => ({ release: 'r', run, verdict, status: { good: 0, bad: 1, skip: 125, error: null }[verdict], signal: null, reason: '', metrics: ms === undefined ? {} : { ms }, startedAt: '', durationMs: 1, log: '' });
  const all = (vs: Array<RunRecord['verdict']>) => vs.map((v, i) => rec(v, undefined, i + 1));

  it('waits for every run, counts a flaky release as --flaky says, stops at an aborted run', () => {
    expect(bisectVerdict(all(['good', 'good']), 3)).toBeUndefined();
    expect(bisectVerdict(all(['good', 'bad', 'good']), 3)).toBe('bad');
    expect(bisectVerdict(all(['good', 'bad', 'good']), 3, 'good')).toBe('good');
    expect(bisectVerdict(all(['good', 'bad', 'good']), 3, 'skip')).toBe('skip');
    expect(bisectVerdict(all(['good', 'skip', 'good']), 3)).toBe('good');
    expect(bisectVerdict(all(['good', 'error']), 3)).toBe('error');
  });

  it('--metric: bad once the runs moved from the baseline in the direction asked, skip when they cannot tell', () => {
    const base = [100, 101, 99, 102, 98];
    const runs = (values: number[]) => values.map((v, i) => rec('good', v, i + 1));
    const up = { name: 'ms', direction: 'up' as const, minChange: 0.05 };
    expect(metricVerdict(base, runs([120, 121, 119, 122, 118]), 5, up).verdict).toBe('bad');
    expect(metricVerdict(base, runs([80, 81, 79, 82, 78]), 5, up).verdict).toBe('good');
    expect(metricVerdict(base, runs([80, 81, 79, 82, 78]), 5, { ...up, direction: 'any' }).verdict).toBe('bad');
    expect(metricVerdict(base, runs([103, 104, 102, 105, 101]), 5, up).verdict).toBe('good'); // beyond the noise, but 3%
    expect(metricVerdict(base, runs([120, 121]), 5, up).verdict).toBeUndefined();
    expect(metricVerdict(base, [rec('skip', undefined, 1), rec('skip', undefined, 2)], 2, up).verdict).toBe('skip');
    expect(metricVerdict(base, runs([120]), 1, up).verdict).toBe('skip'); // 1 against 5: too few to tell
  });
});
