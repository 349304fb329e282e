import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { barLayout, makeProgress, type Progress } from '../../src/install/progress.js';

/**
 * Where progress goes, read back as a person sees it: on a terminal the escape sequences that
 * cli-progress writes through readline (cursor to a column, up/down, clear line or below, cursor
 * and autowrap on/off) are acted on a grid of COLUMNS; a newline is CR LF as a tty sends it.
 */
class Screen extends Writable {
  readonly isTTY: boolean;
  readonly columns: number | undefined;
  raw = '';
  private rows: string[][] = [[]];
  private row = 0;
  private col = 0;
  private autowrap = true;
  cursorHidden = false;

  constructor(opts: { tty: boolean; columns?: number }) {
    super();
    this.isTTY = opts.tty;
    this.columns = opts.columns;
  }

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    const text = chunk.toString();
    this.raw += text;
    this.feed(text);
    done();
  }

  private line(): string[] {
    while (this.rows.length <= this.row) this.rows.push([]);
    return this.rows[this.row];
  }

  private feed(text: string): void {
    const width = this.columns ?? Infinity;
    for (const m of text.matchAll(/\x1b\[(\?)?(\d*)([A-Za-z])|\x1b[78]|\r|\n|[^\x1b\r\n]/gu)) {
      const [all, priv, num, cmd] = m;
      const n = num === '' || num === undefined ? undefined : Number(num);
      if (all === '\n') {
        this.row++;
        this.col = 0;
      } else if (all === '\r') {
        this.col = 0;
      } else if (cmd === undefined && all.startsWith('\x1b')) {
        // save/restore cursor: cli-progress does not use them
      } else if (priv) {
        if (n === 25) this.cursorHidden = cmd === 'l';
        if (n === 7) this.autowrap = cmd === 'h';
      } else if (cmd === 'A') {
        this.row = Math.max(0, this.row - (n ?? 1));
      } else if (cmd === 'B') {
        this.row += n ?? 1;
      } else if (cmd === 'C') {
        this.col += n ?? 1;
      } else if (cmd === 'D') {
        this.col = Math.max(0, this.col - (n ?? 1));
      } else if (cmd === 'G') {
        this.col = (n ?? 1) - 1;
      } else if (cmd === 'K') {
        const line = this.line();
        if ((n ?? 0) === 0) line.length = Math.min(line.length, this.col);
        else if (n === 1) for (let i = 0; i <= this.col && i < line.length; i++) line[i] = ' ';
        else line.length = 0;
      } else if (cmd === 'J') {
        this.line().length = Math.min(this.line().length, this.col);
        this.rows.length = this.row + 1;
      } else if (cmd !== undefined) {
        throw new Error(`the screen does not know ESC[${priv ?? ''}${num}${cmd}`);
      } else {
        if (this.col >= width) {
          if (this.autowrap) {
            this.row++;
            this.col = 0;
          } else this.col = width - 1;
        }
        const line = this.line();
        while (line.length < this.col) line.push(' ');
        line[this.col++] = all;
      }
    }
  }

  /** The lines on the screen, without trailing blanks. */
  screen(): string[] {
    const lines = this.rows.map((r) => r.join('').trimEnd());
    while (lines.length && lines[lines.length - 1] === '') lines.pop();
    return lines;
  }
}

const MB = 1024 * 1024;
const frame = () => new Promise<void>((resolve) => setTimeout(resolve, 250)); // cli-progress draws 10 times a second

/** What `be install` does with its progress: a message, a download learning its size, an extraction, a message. */
async function drive(progress: Progress, mid?: () => Promise<void>): Promise<void> {
  progress.info('release 14.1-RELEASE (amd64): /pub/FreeBSD/releases/amd64/14.1-RELEASE');
  const fetch = progress.task('fetch base.txz', 0);
  fetch.setTotal(2 * MB);
  fetch.update(MB);
  const extract = progress.task('extract base', 3 * MB);
  await mid?.();
  fetch.update(2 * MB);
  fetch.finish('2097152 bytes');
  extract.update(3 * MB);
  extract.finish('done');
  progress.info('configured /etc/rc.conf /etc/fstab /boot/loader.conf');
  progress.stop();
}

describe('install progress on a terminal: bars drawn in place', () => {
  it('80 columns: bars that fit, redrawn over themselves, messages above and below them, the cursor back', async () => {
    const tty = new Screen({ tty: true, columns: 80 });
    let midway: string[] = [];
    await drive(await makeProgress({ stream: tty as unknown as NodeJS.WriteStream }), async () => {
      await frame();
      midway = tty.screen();
    });
    const bar = (filled: number, width: number) => `|${'\u2588'.repeat(filled)}${'\u2591'.repeat(width - filled)}|`;
    const { barsize } = barLayout(80);
    expect(midway).toEqual([
      'release 14.1-RELEASE (amd64): /pub/FreeBSD/releases/amd64/14.1-RELEASE',
      ` fetch base.txz           ${bar(Math.round(barsize / 2), barsize)} 50% 1.0 MB/2.0 MB`,
      ` extract base             ${bar(0, barsize)} 0% 0 B/3.0 MB`,
    ]);
    expect(tty.cursorHidden).toBe(false); // shown again at the end
    expect(tty.raw).toContain('\x1b[?25l'); // hidden while drawing
    // The same two lines were drawn over (no scrolled copies), then the message below them.
    expect(tty.screen()).toEqual([
      'release 14.1-RELEASE (amd64): /pub/FreeBSD/releases/amd64/14.1-RELEASE',
      ` fetch base.txz           ${bar(barsize, barsize)} 100% 2.0 MB/2.0 MB`,
      ` extract base             ${bar(barsize, barsize)} 100% 3.0 MB/3.0 MB`,
      'configured /etc/rc.conf /etc/fstab /boot/loader.conf',
    ]);
    for (const line of tty.screen()) expect(line.length).toBeLessThan(80);
  });

  it('a wide terminal shows rate and ETA; every line fits from 60 to 200 columns', async () => {
    const wide = new Screen({ tty: true, columns: 132 });
    await drive(await makeProgress({ stream: wide as unknown as NodeJS.WriteStream }));
    const [, fetchLine, extractLine] = wide.screen();
    expect(fetchLine).toMatch(/^ fetch base\.txz {11}\|\u2588{40}\| 100% 2\.0 MB\/2\.0 MB [0-9.]+ [KMGT]?B\/s ETA \d+s$/);
    expect(extractLine).toMatch(/^ extract base {13}\|\u2588{40}\| 100% 3\.0 MB\/3\.0 MB [0-9.]+ [KMGT]?B\/s ETA \d+s$/);
    for (const columns of [60, 72, 80, 100, 120, 200]) {
      const tty = new Screen({ tty: true, columns });
      await drive(await makeProgress({ stream: tty as unknown as NodeJS.WriteStream }));
      const bars = tty.screen().filter((l) => l.includes('|'));
      expect(bars).toHaveLength(2);
      for (const line of bars) {
        expect(line).toContain('| 100% ');
        expect(line.length, `${columns} columns: '${line}'`).toBeLessThan(columns);
      }
    }
  });

  it('a message with no bar yet is printed at once; a run with no task draws nothing else', async () => {
    const tty = new Screen({ tty: true, columns: 80 });
    const progress = await makeProgress({ stream: tty as unknown as NodeJS.WriteStream });
    progress.info('release 14.1-RELEASE (amd64): /pub');
    expect(tty.raw).toBe('release 14.1-RELEASE (amd64): /pub\n');
    progress.stop();
    expect(tty.raw).toBe('release 14.1-RELEASE (amd64): /pub\n');
  });
});

describe('install progress elsewhere: one line per step; nothing when quiet', () => {
  it('a pipe or log file gets plain lines, no escape sequences, no carriage returns', async () => {
    const log = new Screen({ tty: false });
    await drive(await makeProgress({ stream: log as unknown as NodeJS.WriteStream }), frame);
    expect(log.raw).not.toMatch(/[\x1b\r]/);
    const lines = log.raw.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(6);
    expect(lines.slice(0, 3)).toEqual(['release 14.1-RELEASE (amd64): /pub/FreeBSD/releases/amd64/14.1-RELEASE', 'fetch base.txz', 'extract base (3.0 MB)']);
    expect(lines[3]).toMatch(/^fetch base\.txz: 2097152 bytes in \d+\.\ds$/);
    expect(lines[4]).toMatch(/^extract base: done in \d+\.\ds$/);
    expect(lines[5]).toBe('configured /etc/rc.conf /etc/fstab /boot/loader.conf');
    // the first line waited a frame: its time is counted
    expect(Number(/in (\d+\.\d)s$/.exec(lines[3])![1])).toBeGreaterThanOrEqual(0.2);
  });

  it('quiet writes nothing, on a terminal or not', async () => {
    for (const tty of [true, false]) {
      const out = new Screen({ tty, columns: 80 });
      await drive(await makeProgress({ quiet: true, stream: out as unknown as NodeJS.WriteStream }), frame);
      expect(out.raw).toBe('');
    }
  });
});
