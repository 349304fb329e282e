import { describe, expect, it } from 'vitest';
import { ALPHA, compare, fewestRuns, mannWhitney, parsePercent, percent, quantile, ranks, spread } from '../../src/hunt/stats.js';

describe('spread of a release’s runs', () => {
  it('median and quartiles by linear interpolation (type 7), worked by hand', () => {
    // 5 values: positions 0..4, q1 at 1, median at 2, q3 at 3
    expect(spread([5, 1, 4, 2, 3])).toEqual({ n: 5, median: 3, min: 1, max: 5, q1: 2, q3: 4 });
    // 4 values: q1 at position 0.75 → 1 + 0.75·(2−1); median at 1.5; q3 at 2.25 → 3 + 0.25·(4−3)
    expect(spread([4, 3, 2, 1])).toEqual({ n: 4, median: 2.5, min: 1, max: 4, q1: 1.75, q3: 3.25 });
    // 6 values 10..60: q1 at 1.25 → 22.5, median at 2.5 → 35, q3 at 3.75 → 47.5
    expect(spread([60, 10, 50, 20, 40, 30])).toMatchObject({ median: 35, q1: 22.5, q3: 47.5 });
    expect(spread([7])).toEqual({ n: 1, median: 7, min: 7, max: 7, q1: 7, q3: 7 });
    expect(quantile([], 0.5)).toBeNaN();
  });

  it('tied values share the mean of their ranks', () => {
    expect(ranks([10, 20, 20, 5, 20])).toEqual([2, 4, 4, 1, 4]);
  });
});

describe('exact Mann-Whitney U', () => {
  it('5 against 5 fully apart: U = 0, p = 2/252 = 0.0079', () => {
    const t = mannWhitney([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]);
    expect(t.u).toBe(0);
    expect(t.p).toBeCloseTo(2 / 252, 12);
    expect(t.minP).toBeCloseTo(2 / 252, 12);
  });

  it('agrees with the published critical value for n1 = n2 = 5 at 0.05 two-sided (U ≤ 2)', () => {
    // U = 2: the U distribution for 5,5 has 1, 1, 2, 3 arrangements at U = 0, 1, 2, 3 out of 252
    const at2 = mannWhitney([1, 2, 3, 4, 7], [5, 6, 8, 9, 10]);
    expect(at2.u).toBe(2);
    expect(at2.p).toBeCloseTo((2 * (1 + 1 + 2)) / 252, 12);
    expect(at2.p).toBeLessThanOrEqual(ALPHA);
    const at3 = mannWhitney([1, 2, 3, 5, 7], [4, 6, 8, 9, 10]);
    expect(at3.u).toBe(3);
    expect(at3.p).toBeCloseTo((2 * (1 + 1 + 2 + 3)) / 252, 12);
    expect(at3.p).toBeGreaterThan(ALPHA);
  });

  it('with ties, p is the share of all splits of the pooled ranks at least as extreme (checked by listing them)', () => {
    const a = [3, 3, 4, 5];
    const b = [1, 2, 3, 3, 2];
    const pooled = ranks([...a, ...b]);
    const obs = pooled.slice(0, a.length).reduce((s, x) => s + x, 0);
    const mean = (pooled.reduce((s, x) => s + x, 0) * a.length) / pooled.length;
    let all = 0;
    let extreme = 0;
    const pick = (from: number, left: number, sum: number) => {
      if (left === 0) {
        all++;
        if (Math.abs(sum - mean) >= Math.abs(obs - mean) - 1e-9) extreme++;
        return;
      }
      for (let i = from; i <= pooled.length - left; i++) pick(i + 1, left - 1, sum + pooled[i]);
    };
    pick(0, a.length, 0);
    expect(all).toBe(126); // C(9, 4)
    expect(mannWhitney(a, b).p).toBeCloseTo(extreme / all, 12);
  });

  it('3 against 3 can never reach the level: the smallest p is 2/20 = 0.1', () => {
    expect(mannWhitney([1, 2, 3], [4, 5, 6]).minP).toBeCloseTo(0.1, 12);
    expect(compare([1, 2, 3], [40, 50, 60]).tooFew).toBe(true);
    expect(compare([1, 2, 3], [40, 50, 60]).change).toBeNull();
    expect(fewestRuns()).toBe(4);
  });
});

describe('a change between two releases', () => {
  const noisy = [100, 101, 99, 102, 98];
  it('is flagged up or down only beyond the noise and at least the minimum size', () => {
    expect(compare(noisy, [120, 121, 119, 122, 118])).toMatchObject({ change: 'up', tooFew: false });
    expect(compare(noisy, [80, 81, 79, 82, 78]).change).toBe('down');
    expect(compare(noisy, [80, 81, 79, 82, 78]).relative).toBeCloseTo(-0.2, 12);
    // beyond the noise but 3%: below the default 5%, flagged with --min-change 2%
    const small = [103, 104, 102, 105, 101];
    expect(compare(noisy, small).p).toBeLessThanOrEqual(ALPHA);
    expect(compare(noisy, small).change).toBeNull();
    expect(compare(noisy, small, 0.02).change).toBe('up');
    // a big median move that the runs do not support: one side overlaps the other
    expect(compare(noisy, [100, 150, 99, 160, 98]).change).toBeNull();
  });

  it('percent and --min-change text', () => {
    expect(percent(0.2)).toBe('+20%');
    expect(percent(-0.034)).toBe('-3.4%');
    expect(percent(0)).toBe('+0%');
    expect(percent(Infinity)).toBe('+∞%');
    expect(parsePercent('5%')).toBe(0.05);
    expect(parsePercent('12.5%')).toBe(0.125);
    expect(parsePercent('5')).toBeNaN();
    expect(parsePercent('-5%')).toBeNaN();
  });
});
