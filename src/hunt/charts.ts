import type { HuntSummary, ReleaseVerdict } from './summary.js';
import { formatMetric, verdictWord, durationText } from './summary.js';

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
}

export interface MetricChart {
  name: string;
  width: number;
  height: number;
  /** polyline points attribute for each run of consecutive values. */
  lines: string[];
  points: ChartPoint[];
  yTicks: Array<{ y: number; labelX: number; label: string }>;
  xLabels: Array<{ x: number; y: number; label: string }>;
  plot: { left: number; top: number; right: number; bottom: number };
}

const COLOURS: Record<ReleaseVerdict, string> = { good: '#2e9e44', bad: '#d0312d', skip: '#a0a0a0', error: '#e0a000', pending: '#ffffff' };

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
      word: verdictWord(r.verdict),
      x: round(i * cell + 1),
      width: round(Math.max(cell - 2, 1)),
      labelX: round(i * cell + cell / 2),
      title: `${r.release}: ${verdictWord(r.verdict)}${r.reason ? ` (${r.reason})` : ''}, ${durationText(r.durationMs)}`,
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

/** A line chart of one metric across the releases (gaps where a release printed no value). */
export function metricChart(s: HuntSummary, name: string, width = 1000, height = 260): MetricChart {
  const plot = { left: 70, top: 16, right: width - 16, bottom: height - 44 };
  const values = s.releases.map((r) => r.metrics[name]);
  const present = values.filter((v): v is number => v !== undefined);
  let min = Math.min(...present);
  let max = Math.max(...present);
  if (min === max) {
    const pad = Math.abs(min) * 0.1 || 1;
    min -= pad;
    max += pad;
  }
  const n = s.releases.length;
  const xAt = (i: number) => round(n === 1 ? (plot.left + plot.right) / 2 : plot.left + ((plot.right - plot.left) * i) / (n - 1));
  const yAt = (v: number) => round(plot.bottom - ((plot.bottom - plot.top) * (v - min)) / (max - min));
  const lines: string[] = [];
  let current: string[] = [];
  const points: ChartPoint[] = [];
  values.forEach((v, i) => {
    if (v === undefined) {
      if (current.length) lines.push(current.join(' '));
      current = [];
      return;
    }
    const p = { x: xAt(i), y: yAt(v), release: s.releases[i].release, value: formatMetric(v) };
    points.push(p);
    current.push(`${p.x},${p.y}`);
  });
  if (current.length) lines.push(current.join(' '));
  const every = Math.max(1, Math.ceil(n / 16));
  return {
    name,
    width,
    height,
    lines,
    points,
    yTicks: ticks(min, max).map((v) => ({ y: yAt(v), labelX: plot.left - 6, label: formatMetric(v) })),
    xLabels: s.releases.map((r, i) => ({ x: xAt(i), y: plot.bottom + 18, label: r.release })).filter((_, i) => i % every === 0 || i === n - 1),
    plot,
  };
}
