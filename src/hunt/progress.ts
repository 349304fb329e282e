import { formatDuration } from './verdict.js';

/**
 * A hunt's progress while it runs. On a terminal: a block redrawn in place under the lines
 * printed so far — runs done of the total with an estimate of the time left, then one line per
 * job with the release and run it is testing; messages and finished runs scroll above it. Not on
 * a terminal: each message and finished run as a plain line, with the count and the estimate.
 * Quiet: nothing.
 */
export interface HuntProgress {
  /** A message or a finished run's line. */
  line(text: string): void;
  /** TOTAL runs to do (AT_MOST: a bisect's bound, not a count), JOBS at a time. */
  start(total: number, jobs: number, atMost?: boolean): void;
  /** Job JOB (0-based) starts run RUN of RELEASE. */
  begin(job: number, release: string, run: number): void;
  /** Job JOB finished its run (its line comes through line()). */
  end(job: number): void;
  stop(): void;
}

export const quietHuntProgress: HuntProgress = { line() {}, start() {}, begin() {}, end() {}, stop() {} };

interface Clock {
  now(): number;
}

/** Counts and the estimate: the mean time of the runs done so far, times the runs left, over the jobs. */
class Tally {
  total = 0;
  jobs = 1;
  atMost = false;
  done = 0;
  spent = 0;
  readonly started = new Map<number, { release: string; run: number; at: number }>();
  constructor(readonly clock: Clock) {}

  finish(job: number): void {
    const s = this.started.get(job);
    if (!s) return;
    this.started.delete(job);
    this.done++;
    this.spent += this.clock.now() - s.at;
  }

  left(): string {
    const remaining = Math.max(this.total - this.done, 0);
    if (remaining === 0) return '';
    if (this.done === 0) return 'time left not known yet';
    const each = this.spent / this.done;
    const ms = (each * remaining) / Math.max(1, Math.min(this.jobs, remaining));
    return `about ${formatDuration(Math.max(1000, Math.round(ms / 1000) * 1000))} left${this.atMost ? ' at most' : ''}`;
  }

  head(): string {
    const left = this.left();
    return `${this.done} of ${this.atMost ? 'at most ' : ''}${this.total} runs done${left ? `, ${left}` : ''}`;
  }
}

/** Plain lines (a pipe or a log): each finished run gets the count and the estimate after it. */
export function lineHuntProgress(write: (line: string) => void, clock: Clock = { now: () => Date.now() }): HuntProgress {
  const t = new Tally(clock);
  let finished = false;
  return {
    line(text) {
      if (finished) {
        finished = false;
        write(`${text} [${t.head()}]`);
      } else write(text);
    },
    start(total, jobs, atMost = false) {
      t.total = total;
      t.jobs = jobs;
      t.atMost = atMost;
    },
    begin(job, release, run) {
      t.started.set(job, { release, run, at: clock.now() });
    },
    end(job) {
      t.finish(job);
      finished = true;
    },
    stop() {},
  };
}

/** The block redrawn in place on a terminal COLUMNS wide (each line cut to fit, the last column free). */
export function terminalHuntProgress(stream: { write(text: string): unknown; columns?: number }, clock: Clock = { now: () => Date.now() }, tickMs = 1000): HuntProgress {
  const t = new Tally(clock);
  let drawn = 0;
  let active = false;
  let timer: NodeJS.Timeout | undefined;
  const width = () => Math.max(20, (stream.columns || 80) - 1);
  const cut = (s: string) => (s.length > width() ? `${s.slice(0, width() - 1)}…` : s);
  const block = (): string[] => {
    const lines = [t.head()];
    for (let j = 0; j < t.jobs; j++) {
      const s = t.started.get(j);
      const who = t.jobs > 1 ? `job ${j + 1}: ` : '';
      const secs = s ? Math.round((clock.now() - s.at) / 1000) : 0;
      lines.push(s ? `${who}testing ${s.release} run ${s.run} (${secs ? formatDuration(secs * 1000) : '0s'})` : `${who}idle`);
    }
    return lines.map(cut);
  };
  /** Move to the top of the block, clear it, print TEXT lines, draw the block again (when running). */
  const redraw = (above: string[] = []) => {
    let out = drawn ? `\r\x1b[${drawn}A\x1b[J` : '';
    for (const l of above) out += `${l}\n`;
    const now = active ? block() : [];
    for (const l of now) out += `${l}\n`;
    drawn = now.length;
    if (out) stream.write(out);
  };
  return {
    line(text) {
      redraw([text]);
    },
    start(total, jobs, atMost = false) {
      t.total = total;
      t.jobs = Math.max(1, Math.min(jobs, total || 1));
      t.atMost = atMost;
      active = true;
      redraw();
      timer = setInterval(() => redraw(), tickMs);
      timer.unref();
    },
    begin(job, release, run) {
      t.started.set(job, { release, run, at: clock.now() });
      redraw();
    },
    end(job) {
      t.finish(job);
      redraw();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      active = false;
      redraw();
    },
  };
}

export function makeHuntProgress(opts: { quiet?: boolean; stream?: NodeJS.WriteStream } = {}): HuntProgress {
  if (opts.quiet) return quietHuntProgress;
  const stream = opts.stream ?? process.stderr;
  if (stream.isTTY) return terminalHuntProgress(stream);
  return lineHuntProgress((l) => stream.write(`${l}\n`));
}
