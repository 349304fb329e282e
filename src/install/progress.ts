/**
 * Progress of downloads and extractions: a bar per task (bytes, rate, ETA) from cli-progress
 * when stderr is a terminal, otherwise one plain line per step; `quiet` silences both.
 */
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

/** Bars on a terminal. cli-progress is loaded only when a terminal asks for it. */
export async function barProgress(stream: NodeJS.WriteStream): Promise<Progress> {
  const { default: cliProgress } = await import('cli-progress');
  const multi = new cliProgress.MultiBar(
    {
      stream,
      clearOnComplete: false,
      hideCursor: true,
      format: ' {label} |{bar}| {percentage}% {doneh}/{totalh} {rate}/s ETA {eta_formatted}',
      formatValue: (v, _o, type) => String(v),
    },
    cliProgress.Presets.shades_classic,
  );
  return {
    task(label, total) {
      const started = Date.now();
      let size = total;
      const bar = multi.create(Math.max(total, 1), 0, { label: label.padEnd(24).slice(0, 24), doneh: '0 B', totalh: humanBytes(total), rate: '0 B' });
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
      multi.log(`${line}\n`);
    },
    stop() {
      multi.stop();
    },
  };
}

export async function makeProgress(opts: { quiet?: boolean; stream?: NodeJS.WriteStream } = {}): Promise<Progress> {
  if (opts.quiet) return quietProgress;
  const stream = opts.stream ?? process.stderr;
  if (stream.isTTY) return barProgress(stream);
  return lineProgress((l) => stream.write(`${l}\n`));
}
