/**
 * Progress of downloads and extractions: a bar per task (bytes, rate, ETA) from cli-progress
 * when stderr is a terminal, otherwise one plain line per step; `quiet` silences both.
 */
import cliProgress from 'cli-progress';

export interface ProgressTask {
  /** Bytes done so far (absolute). */
  update(done: number): void;
  /** The total, once known (a download learns it from the server). */
  setTotal(total: number): void;
  finish(summary?: string): void;
}

export interface Progress {
  task(label: string, total: number): ProgressTask;
  /** A one-line message (suppressed when quiet). */
  info(line: string): void;
  stop(): void;
}

export function humanBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export const quietProgress: Progress = {
  task: () => ({ update() {}, setTotal() {}, finish() {} }),
  info() {},
  stop() {},
};

/** Plain lines, one per step, for logs and pipes. */
export function lineProgress(write: (line: string) => void): Progress {
  return {
    task(label, total) {
      const started = Date.now();
      write(`${label}${total > 0 ? ` (${humanBytes(total)})` : ''}`);
      return {
        update() {},
        setTotal() {},
        finish(summary) {
          const secs = (Date.now() - started) / 1000;
          if (summary) write(`${label}: ${summary} in ${secs.toFixed(1)}s`);
        },
      };
    },
    info: write,
    stop() {},
  };
}

/** How wide a bar line's parts around the bar get at most: label, percentage, sizes, rate, ETA. */
const LABEL = 24;
const FULL = ' {label} |{bar}| {percentage}% {doneh}/{totalh} {rate}/s ETA {eta_formatted}';
const FULL_AROUND = 1 + LABEL + 3 + 5 + 20 + 12 + 11;
const SHORT = ' {label} |{bar}| {percentage}% {doneh}/{totalh}';
const SHORT_AROUND = 1 + LABEL + 3 + 5 + 20;

/**
 * The bar line for a terminal COLUMNS wide: with rate and ETA where a bar of 20 still fits
 * beside them, else without; the bar takes the rest (10 to 40), and the last column stays free.
 */
export function barLayout(columns: number): { format: string; barsize: number } {
  const room = columns - 1;
  if (room - FULL_AROUND >= 20) return { format: FULL, barsize: Math.min(40, room - FULL_AROUND) };
  return { format: SHORT, barsize: Math.max(10, Math.min(40, room - SHORT_AROUND)) };
}

/** Bars on a terminal. cli-progress is loaded only when a terminal asks for it. */
export async function barProgress(stream: NodeJS.WriteStream): Promise<Progress> {
  const { format, barsize } = barLayout(stream.columns || 80);
  const multi = new cliProgress.MultiBar(
    {
      stream,
      clearOnComplete: false,
      hideCursor: true,
      format,
      barsize,
      formatValue: (v) => String(v),
    },
    cliProgress.Presets.shades_classic,
  );
  // Bars are on the screen from the first task to stop(). Messages meanwhile are printed below
  // them at stop(): cli-progress's own log() loses them when stop() comes before the next frame,
  // and a frame that prints one skips redrawing the bars that did not change (they vanish).
  let drawing = false;
  const held: string[] = [];
  return {
    task(label, total) {
      drawing = true;
      const started = Date.now();
      let size = total;
      const bar = multi.create(Math.max(total, 1), 0, { label: label.padEnd(LABEL).slice(0, LABEL), doneh: '0 B', totalh: humanBytes(total), rate: '0 B' });
      return {
        update(done) {
          const secs = Math.max((Date.now() - started) / 1000, 0.001);
          bar.update(Math.min(done, Math.max(size, 1)), { doneh: humanBytes(done), rate: humanBytes(done / secs) });
        },
        setTotal(n) {
          size = n;
          bar.setTotal(Math.max(n, 1));
          bar.update({ totalh: humanBytes(n) });
        },
        finish() {
          bar.update(Math.max(size, 1), { doneh: humanBytes(size) });
          bar.stop();
        },
      };
    },
    info(line) {
      if (drawing) held.push(line);
      else stream.write(`${line}\n`);
    },
    stop() {
      if (!drawing) return;
      drawing = false;
      multi.stop();
      for (const line of held.splice(0)) stream.write(`${line}\n`);
    },
  };
}

export async function makeProgress(opts: { quiet?: boolean; stream?: NodeJS.WriteStream } = {}): Promise<Progress> {
  if (opts.quiet) return quietProgress;
  const stream = opts.stream ?? process.stderr;
  if (stream.isTTY) return barProgress(stream);
  return lineProgress((l) => stream.write(`${l}\n`));
}
