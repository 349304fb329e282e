/**
 * The statistics a hunt over repeated runs needs: a release's spread (median, quartiles, range)
 * and whether a metric moved between two releases by more than the noise.
 *
 * The comparison is the two-sided Mann-Whitney U (Wilcoxon rank-sum) test with its exact
 * permutation distribution, computed for the ranks actually seen (midranks when values tie), at
 * level ALPHA. A rank test assumes nothing about the shape of the noise (run times are skewed,
 * with a long tail), one outlying run cannot move it far, and with the few runs a hunt can afford
 * the exact distribution is cheap where a normal approximation or a bootstrap interval would be
 * rough. With n and m runs the smallest two-sided p there is is 2 / C(n+m, n): 0.0079 for 5
 * against 5, 0.029 for 4 against 4, but 0.1 for 3 against 3, where no difference can reach the
 * level: such releases are "too few runs to tell".
 */

/** The level of the rank test: a change is beyond the noise when its two-sided p is at most this. */
export const ALPHA = 0.05;
/** The smallest relative change of the median that is flagged by default (5%). */
export const DEFAULT_MIN_CHANGE = 0.05;

export interface Spread {
  n: number;
  median: number;
  min: number;
  max: number;
  /** First and third quartiles. */
  q1: number;
  q3: number;
}

/**
 * The P quantile (0..1) of sorted values by linear interpolation between the closest ranks
 * (Hyndman and Fan's type 7, the default of R and NumPy): position p·(n−1), counted from 0.
 */
export function quantile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const pos = p * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function spread(values: number[]): Spread {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, median: quantile(s, 0.5), min: s[0], max: s[s.length - 1], q1: quantile(s, 0.25), q3: quantile(s, 0.75) };
}

/** Ranks 1..n of VALUES in their order, tied values sharing the mean of their ranks. */
export function ranks(values: number[]): number[] {
  const order = values.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]);
  const out = new Array<number>(values.length);
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && order[j + 1][0] === order[i][0]) j++;
    const mid = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) out[order[k][1]] = mid;
    i = j + 1;
  }
  return out;
}

export interface RankTest {
  /** U of the first sample: the number of (a, b) pairs with a > b, ties counting one half. */
  u: number;
  /** Two-sided p, exact. */
  p: number;
  /** The smallest p any arrangement of these ranks could give: above ALPHA, no difference can be told. */
  minP: number;
}

/**
 * The exact two-sided Mann-Whitney U test of A against B: the share of all C(n+m, n) ways of
 * splitting the pooled ranks into groups of n and m whose rank sum is at least as far from its
 * mean as the one observed. Counted by dynamic programming over doubled (so whole) ranks.
 */
export function mannWhitney(a: number[], b: number[]): RankTest {
  const n = a.length;
  const m = b.length;
  if (n === 0 || m === 0) return { u: NaN, p: 1, minP: 1 };
  const r = ranks([...a, ...b]).map((x) => Math.round(x * 2));
  const observed = r.slice(0, n).reduce((s, x) => s + x, 0);
  const total = r.reduce((s, x) => s + x, 0);
  // count[k][s]: ways to choose k of the ranks seen so far with doubled sum s
  const maxSum = total;
  let count: Float64Array[] = Array.from({ length: n + 1 }, () => new Float64Array(maxSum + 1));
  count[0][0] = 1;
  for (const x of r) {
    const next = count.map((row) => Float64Array.from(row));
    for (let k = 1; k <= n; k++) {
      const from = count[k - 1];
      const to = next[k];
      for (let s = x; s <= maxSum; s++) to[s] += from[s - x];
    }
    count = next;
  }
  const mean = (total * n) / (n + m);
  const dev = Math.abs(observed - mean);
  let all = 0;
  let extreme = 0;
  let lowest = Infinity;
  let highest = -Infinity;
  count[n].forEach((c, s) => {
    if (c === 0) return;
    all += c;
    if (Math.abs(s - mean) >= dev - 1e-9) extreme += c;
    lowest = Math.min(lowest, s);
    highest = Math.max(highest, s);
  });
  const far = Math.max(mean - lowest, highest - mean);
  let atFar = 0;
  count[n].forEach((c, s) => {
    if (c && Math.abs(s - mean) >= far - 1e-9) atFar += c;
  });
  const u = observed / 2 - (n * (n + 1)) / 2;
  return { u, p: Math.min(1, extreme / all), minP: Math.min(1, atFar / all) };
}

export type Direction = 'up' | 'down';

export interface Change {
  /** Flagged direction, or null when the change is within the noise or below the minimum size. */
  change: Direction | null;
  /** (median after − median before) / |median before|; ±Infinity from a zero median. */
  relative: number;
  p: number;
  /** True when these runs are too few for any difference to reach ALPHA. */
  tooFew: boolean;
}

/** Whether AFTER differs from BEFORE beyond the noise (p ≤ ALPHA) and by at least MINCHANGE of the median. */
export function compare(before: number[], after: number[], minChange = DEFAULT_MIN_CHANGE): Change {
  const b = spread(before).median;
  const a = spread(after).median;
  const relative = a === b ? 0 : b === 0 ? (a > b ? Infinity : -Infinity) : (a - b) / Math.abs(b);
  const t = mannWhitney(after, before);
  const tooFew = t.minP > ALPHA;
  const flagged = !tooFew && t.p <= ALPHA && Math.abs(relative) >= minChange && relative !== 0;
  return { change: flagged ? (relative > 0 ? 'up' : 'down') : null, relative, p: t.p, tooFew };
}

/** The fewest runs per release (the same on both sides) at which a rank test can reach ALPHA. */
export function fewestRuns(): number {
  for (let n = 1; ; n++) if (mannWhitney(Array.from({ length: n }, (_, i) => i), Array.from({ length: n }, (_, i) => n + i)).minP <= ALPHA) return n;
}

/** "+12%", "-3.4%", "+∞%" for a relative change. */
export function percent(relative: number): string {
  if (!Number.isFinite(relative)) return relative > 0 ? '+∞%' : '-∞%';
  const v = relative * 100;
  const text = Math.abs(v) >= 10 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(1) : v.toFixed(2);
  return `${v >= 0 ? '+' : ''}${text.replace(/\.0+$/, '')}%`;
}

/** "5%", "12.5%" → a fraction; NaN when it is not a non-negative percentage. */
export function parsePercent(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*%\s*$/.exec(text);
  return m ? Number(m[1]) / 100 : NaN;
}
