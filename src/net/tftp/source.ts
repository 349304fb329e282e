/**
 * Block sources: where a transfer's DATA payloads come from. Blocks are numbered from 1 (absolute,
 * not wrapped); block n holds bytes [(n-1)·blksize, n·blksize) of the content, and the last block
 * is shorter than blksize (empty when the size is a multiple of blksize).
 *
 * A file is read in chunks of whole blocks (about 64 KiB, at least one window) into at most three
 * buffers per transfer: the chunk holding the oldest unacknowledged block, the next one, and one
 * read ahead. A 64 MiB file therefore costs a transfer ~200 KiB, never the whole file.
 */
import { close, read, readSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

export interface BlockSource {
  readonly size: number;
  /** Make blocks first..last readable with `block`; undefined when they already are. */
  ensure(first: number, last: number): Promise<void> | undefined;
  /** The payload of block n (valid after `ensure` covered it, until `release` passes it). */
  block(n: number): Buffer;
  /** Blocks below n will not be asked for again. */
  release(below: number): void;
  close(): Promise<void>;
}

/** The number of DATA packets needed for `size` bytes (a final short or empty block included). */
export function blockCount(size: number, blksize: number): number {
  return Math.floor(size / blksize) + 1;
}

const EMPTY = Buffer.alloc(0);

/** Content already in memory (generated files, netascii conversions). */
export class MemorySource implements BlockSource {
  readonly size: number;
  constructor(
    private readonly data: Buffer,
    private readonly blksize: number,
  ) {
    this.size = data.length;
  }
  ensure(): undefined {
    return undefined;
  }
  block(n: number): Buffer {
    const start = (n - 1) * this.blksize;
    if (start >= this.data.length) return EMPTY;
    return this.data.subarray(start, Math.min(start + this.blksize, this.data.length));
  }
  release(): void {}
  async close(): Promise<void> {}
}

/** Reusable chunk buffers shared by a server's transfers, bounded in count. */
export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  private count = 0;
  constructor(private readonly maxBuffers = 64) {}
  take(size: number): Buffer {
    const list = this.free.get(size);
    const buf = list?.pop();
    if (buf) {
      this.count--;
      return buf;
    }
    return Buffer.allocUnsafeSlow(size);
  }
  give(buf: Buffer): void {
    if (this.count >= this.maxBuffers) return;
    let list = this.free.get(buf.length);
    if (!list) this.free.set(buf.length, (list = []));
    list.push(buf);
    this.count++;
  }
}

interface Chunk {
  buf: Buffer;
  /** Bytes of content in buf. */
  length: number;
  ready: boolean;
  loading?: Promise<void>;
  error?: Error;
}

/** Target bytes per file read. */
const CHUNK_BYTES = 64 * 1024;
/**
 * A thread-pool read that completes within this many ms counts as cached: the file's next chunks
 * are read synchronously. A synchronous read that takes longer sends the file back to the pool.
 */
const QUICK_READ_MS = 2;

function readFullySync(fd: number, buf: Buffer, length: number, position: number): void {
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) throw new Error('file shrank during transfer');
    done += n;
  }
}

function readFully(fd: number, buf: Buffer, length: number, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = 0;
    const step = (): void => {
      read(fd, buf, done, length - done, position + done, (err, n) => {
        if (err) return reject(err);
        if (n === 0) return reject(new Error('file shrank during transfer'));
        done += n;
        if (done >= length) resolve();
        else step();
      });
    };
    step();
  });
}

/**
 * An open regular file read ahead in chunks. The first chunk is read on the thread pool; while
 * reads come back quickly (the page cache), later chunks are read synchronously, which spares a
 * hand-off to a pool thread and back per chunk (on a small machine that wake-up, often on the
 * other CPU, costs more than the copy). A slow synchronous read sends the file back to the pool.
 */
export class FileSource implements BlockSource {
  readonly size: number;
  private readonly chunkBlocks: number;
  private readonly chunks = new Map<number, Chunk>();
  private readonly spare: Buffer[] = [];
  private closed = false;
  private syncReads = false;
  /** Chunks below this index were released already. */
  private kept = 0;

  constructor(
    /** A raw descriptor this source owns (closed by `close`). */
    private readonly fd: number,
    size: number,
    private readonly blksize: number,
    windowsize: number,
    private readonly pool: BufferPool,
  ) {
    this.size = size;
    this.chunkBlocks = Math.max(windowsize, Math.floor(CHUNK_BYTES / blksize), 1);
  }

  private chunkOf(block: number): number {
    return Math.floor((block - 1) / this.chunkBlocks);
  }

  private load(index: number): Chunk {
    let chunk = this.chunks.get(index);
    if (chunk) return chunk;
    const bytes = this.chunkBlocks * this.blksize;
    const start = index * bytes;
    const length = Math.max(0, Math.min(bytes, this.size - start));
    chunk = { buf: length === 0 ? EMPTY : (this.spare.pop() ?? this.pool.take(bytes)), length, ready: length === 0 };
    this.chunks.set(index, chunk);
    if (!chunk.ready && this.syncReads) {
      const t0 = performance.now();
      try {
        readFullySync(this.fd, chunk.buf, length, start);
        chunk.ready = true;
      } catch (e) {
        chunk.error = e as Error;
      }
      if (performance.now() - t0 > QUICK_READ_MS) this.syncReads = false;
    } else if (!chunk.ready) {
      const c = chunk;
      const t0 = performance.now();
      c.loading = readFully(this.fd, c.buf, length, start).then(
        () => {
          c.ready = true;
          this.syncReads = performance.now() - t0 <= QUICK_READ_MS;
        },
        (err: Error) => {
          c.error = err;
          throw err;
        },
      );
      // A read-ahead nobody waits for must not become an unhandled rejection.
      c.loading.catch(() => undefined);
    }
    return chunk;
  }

  ensure(first: number, last: number): Promise<void> | undefined {
    if (this.closed) return Promise.reject(new Error('source closed'));
    const c1 = this.chunkOf(first);
    const c2 = this.chunkOf(last);
    const waits: Promise<void>[] = [];
    for (let c = c1; c <= c2; c++) {
      const chunk = this.load(c);
      if (chunk.error) return Promise.reject(chunk.error);
      if (!chunk.ready) waits.push(chunk.loading!);
    }
    // Read ahead one chunk past the window while the client works through this one.
    const next = c2 + 1;
    if (next * this.chunkBlocks * this.blksize < this.size) this.load(next);
    if (waits.length === 0) return undefined;
    return Promise.all(waits).then(() => undefined);
  }

  block(n: number): Buffer {
    const chunk = this.chunks.get(this.chunkOf(n));
    if (!chunk || !chunk.ready) throw new Error(`block ${n} not loaded`);
    const offset = ((n - 1) % this.chunkBlocks) * this.blksize;
    if (offset >= chunk.length) return EMPTY;
    return chunk.buf.subarray(offset, Math.min(offset + this.blksize, chunk.length));
  }

  release(below: number): void {
    const keep = this.chunkOf(below);
    if (keep <= this.kept) return;
    this.kept = keep;
    for (const [index, chunk] of this.chunks) {
      if (index < keep && chunk.ready) {
        this.chunks.delete(index);
        if (chunk.buf !== EMPTY) this.spare.push(chunk.buf);
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const pending = [...this.chunks.values()].filter((c) => !c.ready && !c.error).map((c) => c.loading!.catch(() => undefined));
    await Promise.all(pending);
    for (const c of this.chunks.values()) if (c.buf !== EMPTY) this.spare.push(c.buf);
    this.chunks.clear();
    for (const b of this.spare.splice(0)) this.pool.give(b);
    await new Promise<void>((resolve) => close(this.fd, () => resolve()));
  }
}
