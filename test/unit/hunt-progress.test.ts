import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { lineHuntProgress, makeHuntProgress, terminalHuntProgress, type HuntProgress } from '../../src/hunt/progress.js';

/**
 * A terminal COLUMNS wide, read back as a person sees it: text, CR, LF, cursor up (ESC[nA) and
 * clear to the end of the screen (ESC[J) acted on a grid, long lines wrapped; any other escape fails the test.
 */
class Terminal {
  readonly isTTY = true;
  raw = '';
  private rows: string[] = [''];
  private row = 0;
  private col = 0;
  constructor(readonly columns: number) {}
  write(text: string): boolean {
    this.raw += text;
    for (const m of text.matchAll(/\x1b\[(\d*)([A-Za-z])|\r|\n|[^\x1b\r\n]/gu)) {
      const [all, num, cmd] = m;
      if (all === '\n') {
        this.row++;
        this.col = 0;
        while (this.rows.length <= this.row) this.rows.push('');
      } else if (all === '\r') this.col = 0;
      else if (cmd === 'A') this.row = Math.max(0, this.row - Number(num || 1));
      else if (cmd === 'J') {
        this.rows[this.row] = this.rows[this.row].slice(0, this.col);
        this.rows.length = this.row + 1;
      } else if (cmd !== undefined) throw new Error(`the terminal does not know ESC[${num}${cmd}`);
      else {
        if (this.col >= this.columns) {
          // autowrap, as a terminal does
          this.row++;
          this.col = 0;
          while (this.rows.length <= this.row) this.rows.push('');
        }
        const line = this.rows[this.row].padEnd(this.col);
        this.rows[this.row] = line.slice(0, this.col) + all + line.slice(this.col + 1);
        this.col++;
      }
    }
    return true;
  }
  screen(): string[] {
    const lines = this.rows.map((r) => r.trimEnd());
    while (lines.length && lines[lines.length - 1] === '') lines.pop();
    return lines;
  }
}

/** Time moves only when the test says (the terminal's block is redrawn every second meanwhile). */
function clock() {
  return { now: () => Date.now(), advance: (ms: number) => void vi.advanceTimersByTime(ms) };
}

beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
});
afterEach(() => {
  vi.useRealTimers();
});

/** Four runs of two releases, two jobs at a time, each run 10 s. */
function drive(p: HuntProgress, c: ReturnType<typeof clock>, look: (when: string) => void) {
  p.line('hunt run-abc: 2 releases × 2 runs, state in /var/db/be/hunts/run-abc');
  p.start(4, 2);
  p.begin(0, '13.0', 1);
  p.begin(1, '13.0', 2);
  c.advance(4000);
  look('two running');
  c.advance(6000);
  p.end(0);
  p.line('13.0 run 1: good in 10s boot_ms=99');
  p.begin(0, '14.0', 1);
  look('one done');
  p.end(1);
  p.line('13.0 run 2: good in 10s boot_ms=100');
  p.begin(1, '14.0', 2);
  c.advance(10_000);
  p.end(0);
  p.line('14.0 run 1: bad (exit 1) in 10s boot_ms=130');
  p.end(1);
  p.line('14.0 run 2: bad (exit 1) in 10s boot_ms=131');
  p.stop();
}

describe('hunt progress on a terminal', () => {
  it('a block redrawn in place: runs done of the total, time left, one line per job; finished runs scroll above it', () => {
    const tty = new Terminal(60);
    const c = clock();
    const seen: Record<string, string[]> = {};
    drive(terminalHuntProgress(tty, c), c, (when) => (seen[when] = tty.screen()));
    expect(seen['two running']).toEqual(['hunt run-abc: 2 releases × 2 runs, state in /var/db/be/hunts', '/run-abc', '0 of 4 runs done, time left not known yet', 'job 1: testing 13.0 run 1 (4s)', 'job 2: testing 13.0 run 2 (4s)']);
    // one run of 10 s done, three left on two jobs: about 15 s
    expect(seen['one done']).toEqual(['hunt run-abc: 2 releases × 2 runs, state in /var/db/be/hunts', '/run-abc', '13.0 run 1: good in 10s boot_ms=99', '1 of 4 runs done, about 15s left', 'job 1: testing 14.0 run 1 (0s)', 'job 2: testing 13.0 run 2 (10s)']);
    // at the end the block is gone: only the lines a log would keep
    expect(tty.screen()).toEqual([
      'hunt run-abc: 2 releases × 2 runs, state in /var/db/be/hunts', '/run-abc',
      '13.0 run 1: good in 10s boot_ms=99',
      '13.0 run 2: good in 10s boot_ms=100',
      '14.0 run 1: bad (exit 1) in 10s boot_ms=130',
      '14.0 run 2: bad (exit 1) in 10s boot_ms=131',
    ]);
  });

  it('one job: no job numbers', () => {
    const tty = new Terminal(80);
    const c = clock();
    const p = terminalHuntProgress(tty, c);
    p.start(3, 1, true);
    p.begin(0, '13.2', 1);
    c.advance(2000);
    p.line('bisect: 3 releases left to test, trying 13.2');
    expect(tty.screen()).toEqual(['bisect: 3 releases left to test, trying 13.2', '0 of at most 3 runs done, time left not known yet', 'testing 13.2 run 1 (2s)']);
    p.stop();
  });
});

describe('hunt progress on a pipe and with -q', () => {
  it('plain lines, each finished run with the count and the estimate, no escapes', () => {
    const lines: string[] = [];
    const c = clock();
    drive(lineHuntProgress((l) => lines.push(l), c), c, () => {});
    expect(lines).toEqual([
      'hunt run-abc: 2 releases × 2 runs, state in /var/db/be/hunts/run-abc',
      '13.0 run 1: good in 10s boot_ms=99 [1 of 4 runs done, about 15s left]',
      '13.0 run 2: good in 10s boot_ms=100 [2 of 4 runs done, about 10s left]',
      '14.0 run 1: bad (exit 1) in 10s boot_ms=130 [3 of 4 runs done, about 10s left]',
      '14.0 run 2: bad (exit 1) in 10s boot_ms=131 [4 of 4 runs done]',
    ]);
  });

  it('a stream that is not a terminal gets plain lines; quiet gets nothing', () => {
    const pipe = { isTTY: false, out: '', write(t: string) { this.out += t; return true; } };
    const p = makeHuntProgress({ stream: pipe as unknown as NodeJS.WriteStream });
    p.start(1, 1);
    p.begin(0, '13.0', 1);
    p.end(0);
    p.line('13.0: good in 1s');
    expect(pipe.out).toMatch(/^13\.0: good in 1s \[1 of 1 runs done\]\n$/);
    const quiet = { isTTY: true, out: '', write(t: string) { this.out += t; return true; } };
    const q = makeHuntProgress({ quiet: true, stream: quiet as unknown as NodeJS.WriteStream });
    q.line('x');
    q.start(1, 1);
    q.stop();
    expect(quiet.out).toBe('');
  });
});
