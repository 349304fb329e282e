/**
 * The lease table's durable journal: the file format is leases.ts's. Every record committed
 * during one event-loop turn is written with one write + fdatasync, and only then are their
 * callbacks run (the server sends its ACKs there). At every open, and while serving once the
 * journal holds 4 times as many records as there are leases, the file is compacted: the live
 * table is written to `<file>.tmp`, fsync'd and renamed over the journal, so the file on disk is
 * always whole. While serving this runs beside the journal, a slice of the table per event-loop
 * turn, so that a big table does not stop the server for the tens of milliseconds its encoding and
 * fsync take (see `startCompaction`).
 */
import { openSync, closeSync, fsyncSync, writeSync, renameSync, readFileSync, existsSync, fdatasync, fsync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { encodeRecords, LeaseTable, readLeaseFile, recordLine, snapshotRecord, type JournalRecord, type Lease } from './leases.js';

function writeAll(fd: number, data: Buffer): void {
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off);
}

export type CommitCallback = (err: Error | null) => void;

/** Records encoded and written per event-loop turn by a compaction while serving. */
const COMPACT_SLICE = 1000;

/** A compaction running beside the journal (see `LeaseStore.startCompaction`). */
interface Compaction {
  /** The temp file (`<file>.tmp`), open for writing. */
  fd: number;
  /** The table when it began. */
  entries: Array<Lease | [number, number]>;
  /** Entries written so far. */
  next: number;
  /** Lines committed since it began (they follow the table in the new file). */
  tail: string[];
  /** The table is in the temp file and fsync'd: the journal can move there between two rounds. */
  ready: boolean;
}

/**
 * The table plus its durable journal. Without a path it keeps leases in memory only and
 * commits at once.
 */
export class LeaseStore {
  readonly table: LeaseTable;
  private fd: number | null = null;
  private pending: string[] = [];
  private callbacks: CommitCallback[] = [];
  private flushing = false;
  private scheduled = false;
  private linesSinceCompact = 0;
  /** Compact after this many appended records (default: 1000, or 4× the live leases if more). */
  private compactAfter: number | undefined;
  private compactFailed = false;
  private compaction?: Compaction;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  /** Number of write+fdatasync rounds done (for tests and benches). */
  syncs = 0;
  /** Records in the write+fdatasync round now running. */
  private inFlight = 0;

  private constructor(
    readonly path: string | undefined,
    table: LeaseTable,
    private readonly onError: (msg: string) => void,
  ) {
    this.table = table;
  }

  /** Open (creating if needed) and replay the journal, then compact it. Call before dropping privileges. */
  static open(path: string | undefined, onError: (msg: string) => void = () => {}, compactAfter?: number): LeaseStore {
    if (!path) return new LeaseStore(undefined, new LeaseTable(), onError);
    const { table, skipped } = readLeaseFile(path);
    if (skipped) onError(`lease file ${path}: skipped ${skipped} unreadable line(s)`);
    const store = new LeaseStore(path, table, onError);
    store.compactAfter = compactAfter;
    store.compactNow();
    if (store.fd === null) {
      // Could not compact: append after the old contents, ending a torn last line first.
      store.fd = openSync(path, 'a', 0o644);
      const text = existsSync(path) ? readFileSync(path) : Buffer.alloc(0);
      if (text.length && text[text.length - 1] !== 0x0a) writeSync(store.fd, '\n');
    }
    return store;
  }

  /**
   * Apply a change to the table now and make it durable with the current batch; `done` runs
   * after the batch is on disk (or failed to get there).
   */
  commit(rec: JournalRecord, done?: CommitCallback): void {
    this.table.apply(rec);
    if (this.fd === null || this.closed) {
      if (done) done(this.closed && this.path ? new Error('lease store closed') : null);
      return;
    }
    const line = recordLine(rec);
    this.pending.push(line);
    this.compaction?.tail.push(line);
    if (done) this.callbacks.push(done);
    this.schedule();
  }

  /** Records committed and not yet on disk (waiting for the next round, or in the running one). */
  get backlog(): number {
    return this.pending.length + this.inFlight;
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (this.flushing || this.fd === null) return;
    if (this.compaction?.ready) return this.switchJournal(this.compaction);
    if (this.pending.length === 0) return this.settle();
    this.flushing = true;
    const data = Buffer.from(this.pending.join(''));
    const callbacks = this.callbacks;
    const lines = this.pending.length;
    this.inFlight = lines;
    this.pending = [];
    this.callbacks = [];
    const fd = this.fd;
    const finish = (err: Error | null) => {
      this.syncs++;
      this.inFlight = 0;
      this.linesSinceCompact += lines;
      if (err) this.onError(`lease journal ${this.path}: ${err.message}`);
      for (const cb of callbacks) cb(err);
      if (!err && this.linesSinceCompact > (this.compactAfter ?? Math.max(1000, 4 * this.table.size))) this.startCompaction();
      this.flushing = false;
      this.flush();
    };
    // The append goes to the page cache at once (no thread-pool round trip); the sync is the wait.
    try {
      writeAll(fd, data);
    } catch (e) {
      return finish(e as Error);
    }
    fdatasync(fd, (e) => finish(e));
  }

  /** Nothing to write, nothing running: wake `drain`'s waiters. */
  private settle(): void {
    if (this.flushing || this.pending.length || this.compaction) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  /** Resolves when every committed record is on disk (and a compaction that was running has ended). */
  drain(): Promise<void> {
    if (this.fd === null || (!this.flushing && this.pending.length === 0 && !this.compaction)) return Promise.resolve();
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      if (!this.flushing && !this.scheduled) this.flush();
    });
  }

  /**
   * Compact while serving. The table as it is now goes to `<file>.tmp` a slice per event-loop turn
   * and is fsync'd there on the thread pool, while rounds go on appending to the journal and every
   * line committed meanwhile is also kept (`tail`). Between two rounds the journal then moves to
   * the new file: `switchJournal`.
   */
  private startCompaction(): void {
    if (!this.path || this.compactFailed || this.compaction || this.closed) return;
    let fd: number;
    try {
      fd = openSync(this.tmpPath, 'w', 0o644);
    } catch (e) {
      return this.compactionFailed(undefined, e as Error);
    }
    const c: Compaction = { fd, entries: this.table.snapshot(), next: 0, tail: [], ready: false };
    this.compaction = c;
    const slice = (): void => {
      if (this.compaction !== c) return;
      if (this.closed) return this.compactionFailed(c);
      const end = Math.min(c.entries.length, c.next + COMPACT_SLICE);
      let text = '';
      for (let i = c.next; i < end; i++) text += recordLine(snapshotRecord(c.entries[i]!));
      c.next = end;
      try {
        writeAll(c.fd, Buffer.from(text));
      } catch (e) {
        return this.compactionFailed(c, e as Error);
      }
      if (c.next < c.entries.length) return void setImmediate(slice);
      c.entries = [];
      fdatasync(c.fd, (e) => {
        if (this.compaction !== c) return;
        if (e || this.closed) return this.compactionFailed(c, e ?? undefined);
        c.ready = true;
        this.flush();
      });
    };
    setImmediate(slice);
  }

  /**
   * Move the journal to the compacted file, between two rounds (nothing in flight; commits made
   * meanwhile wait in `pending` as they do during a round). The lines committed since the
   * compaction began and already written to the old journal are appended and fsync'd before the
   * rename, and the directory is fsync'd after it, before the next round's callbacks: a crash at
   * any point leaves a file holding every record whose callback ran.
   */
  private switchJournal(c: Compaction): void {
    this.flushing = true;
    this.compaction = undefined;
    // the last `pending.length` tail lines are not written anywhere yet: the next round writes them to the new file
    const written = c.tail.slice(0, c.tail.length - this.pending.length);
    const fail = (e?: Error) => {
      this.flushing = false;
      this.compactionFailed(c, e);
      this.flush();
    };
    try {
      writeAll(c.fd, Buffer.from(written.join('')));
    } catch (e) {
      return fail(e as Error);
    }
    fdatasync(c.fd, (e) => {
      if (e || this.closed || this.fd === null) return fail(e ?? undefined);
      try {
        renameSync(this.tmpPath, this.path!);
      } catch (err) {
        return fail(err as Error);
      }
      const old = this.fd;
      this.fd = c.fd;
      closeSync(old);
      this.linesSinceCompact = written.length;
      const resume = () => {
        this.flushing = false;
        this.flush();
      };
      let dfd: number;
      try {
        dfd = openSync(dirname(this.path!), 'r');
      } catch {
        return resume();
      }
      // some filesystems refuse fsync on a directory; the rename itself is still atomic
      fsync(dfd, () => {
        closeSync(dfd);
        resume();
      });
    });
  }

  /** A compaction could not be done: drop its temp file; the journal goes on where it is, and no compaction is tried again. */
  private compactionFailed(c: Compaction | undefined, e?: Error): void {
    if (c) {
      if (this.compaction === c) this.compaction = undefined;
      try {
        closeSync(c.fd);
      } catch {
        // already closed
      }
    }
    try {
      unlinkSync(this.tmpPath);
    } catch {
      // nothing to clean
    }
    if (e) {
      this.compactFailed = true;
      this.onError(`lease file ${this.path}: cannot compact (${e.message}); appending only`);
    }
    this.settle();
  }

  /**
   * Rewrite the file from the table at once: temp file, fsync, rename, fsync the directory (at open,
   * before anything is served). If the directory is not writable (privileges dropped), it stops
   * trying and keeps appending.
   */
  private compactNow(): void {
    if (!this.path || this.compactFailed) return;
    try {
      const tfd = openSync(this.tmpPath, 'w', 0o644);
      try {
        writeAll(tfd, Buffer.from(encodeRecords(this.table.records())));
        fsyncSync(tfd);
      } finally {
        closeSync(tfd);
      }
      renameSync(this.tmpPath, this.path);
      try {
        const dfd = openSync(dirname(this.path), 'r');
        try {
          fsyncSync(dfd);
        } finally {
          closeSync(dfd);
        }
      } catch {
        // Some filesystems refuse fsync on directories; the rename itself is still atomic.
      }
      const old = this.fd;
      this.fd = openSync(this.path, 'a', 0o644);
      if (old !== null) closeSync(old);
      this.linesSinceCompact = 0;
    } catch (e) {
      this.compactionFailed(undefined, e as Error);
    }
  }

  private get tmpPath(): string {
    return `${this.path}.tmp`;
  }

  /** Flush and close. Records committed afterwards stay in memory only. */
  async close(): Promise<void> {
    await this.drain();
    this.closed = true;
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
    }
  }
}
