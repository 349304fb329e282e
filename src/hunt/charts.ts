import type { HuntSummary, ReleaseVerdict } from './summary.js';
import { formatMetric, verdictText, durationText, medianText } from './summary.js';
import { percent } from './stats.js';

/** Geometry for the report's inline SVG: computed here, drawn by templates/report.html.hbs. */
export interface TimelineCell {
  release: string;
  verdict: ReleaseVerdict;
  word: string;
  x: number;
  width: number;
  labelX: number;
  title: string;
}

export interface ChartPoint {
  x: number;
  y: number;
  release: string;
  value: string;
  /** The error bar: min..max whiskers (y of each end) and the interquartile box. */
  bar?: { yMin: number; yMax: number; yQ1: number; yQ3: number; boxHeight: number; capLeft: number; capRight: number; boxX: number; boxWidth: number };
}

/** A flagged change at a release: an arrow above (up) or below (down) its point. */
export interface ChartMark {
  x: number;
  y: number;
  release: string;
  change: 'up' | 'down';
  symbol: string;
  label: string;
  labelX: number;
}

export interface MetricChart {
  name: string;
  width: number;
  height: number;
  /** polyline points attribute for each run of consecutive values. */
  lines: string[];
  points: ChartPoint[];
  marks: ChartMark[];
  yTicks: Array<{ y: number; labelX: number; label: string }>;
  xLabels: Array<{ x: number; y: number; label: string }>;
  plot: { left: number; top: number; right: number; bottom: number };
}

const COLOURS: Record<ReleaseVerdict, string> = { good: '#2e9e44', bad: '#d0312d', flaky: '#8e44ad', skip: '#a0a0a0', aborted: '#e0a000', pending: '#ffffff' };

export function verdictColour(v: ReleaseVerdict): string {
  return COLOURS[v];
}

export function timeline(s: HuntSummary, width = 1000): { width: number; height: number; cells: Array<TimelineCell & { colour: string }> } {
  const n = Math.max(s.releases.length, 1);
  const cell = width / n;
  return {
    width,
    height: 64,
    cells: s.releases.map((r, i) => ({
      release: r.release,
      verdict: r.verdict,
      word: r.verdict,
      x: round(i * cell + 1),
      width: round(Math.max(cell - 2, 1)),
      labelX: round(i * cell + cell / 2),
      title: `${r.release}: ${verdictText(r)}, ${durationText(r.durationMs)}`,
      colour: COLOURS[r.verdict],
    })),
  };
}

function round(v: number): number {
  return Math.round(v * 10) / 10;
}

/** Three or so readable tick values covering [min, max]. */
function ticks(min: number, max: number): number[] {
  if (min === max) return [min];
  const raw = (max - min) / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((st) => st >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** A line chart of one metric's medians across the releases, with error bars and flagged changes (gaps where a release printed no value). */
export function metricChart(s: HuntSummary, name: string, width = 1000, height = 260): MetricChart {
  const plot = { left: 70, top: 24, right: width - 16, bottom: height - 44 };
  const stats = s.releases.map((r) => r.metrics[name]);
  const present = stats.filter((m) => m !== undefined);
  let min = Math.min(...present.map((m) => m.min));
  let max = Math.max(...present.map((m) => m.max));
  if (min === max) {
    const pad = Math.abs(min) * 0.1 || 1;
    min -= pad;
    max += pad;
  }
  // room above and below the whiskers for the marks of flagged changes
  const room = (max - min) * 0.12;
  min -= room;
  max += room;
  const n = s.releases.length;
  const xAt = (i: number) => round(n === 1 ? (plot.left + plot.right) / 2 : plot.left + ((plot.right - plot.left) * i) / (n - 1));
  const yAt = (v: number) => round(plot.bottom - ((plot.bottom - plot.top) * (v - min)) / (max - min));
  const lines: string[] = [];
  let current: string[] = [];
  const points: ChartPoint[] = [];
  const marks: ChartMark[] = [];
  const box = Math.min(14, Math.max(4, (plot.right - plot.left) / Math.max(n, 1) / 4));
  stats.forEach((m, i) => {
    if (m === undefined) {
      if (current.length) lines.push(current.join(' '));
      current = [];
      return;
    }
    const x = xAt(i);
    const p: ChartPoint = { x, y: yAt(m.median), release: s.releases[i].release, value: `${medianText(m)} (${m.n} run${m.n === 1 ? '' : 's'}, ${formatMetric(m.min)}..${formatMetric(m.max)})` };
    if (m.n > 1) p.bar = { yMin: yAt(m.min), yMax: yAt(m.max), yQ1: yAt(m.q1), yQ3: yAt(m.q3), boxHeight: round(Math.max(yAt(m.q1) - yAt(m.q3), 1)), capLeft: round(x - box / 2), capRight: round(x + box / 2), boxX: round(x - box / 2), boxWidth: round(box) };
    points.push(p);
    current.push(`${p.x},${p.y}`);
    if (m.change && m.relative !== null) {
      const up = m.change === 'up';
      const y = up ? yAt(m.max) - 8 : yAt(m.min) + 14;
      marks.push({ x, y, release: p.release, change: m.change, symbol: up ? '▲' : '▼', label: percent(m.relative), labelX: round(x + 9) });
    }
  });
  if (current.length) lines.push(current.join(' '));
  const every = Math.max(1, Math.ceil(n / 16));
  return {
    name,
    width,
    height,
    lines,
    points,
    marks,
    yTicks: ticks(min, max).map((v) => ({ y: yAt(v), labelX: plot.left - 6, label: formatMetric(v) })),
    xLabels: s.releases.map((r, i) => ({ x: xAt(i), y: plot.bottom + 18, label: r.release })).filter((_, i) => i % every === 0 || i === n - 1),
    plot,
  };
}
