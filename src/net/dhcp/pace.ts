/**
 * Replies leave as a flow, not a wall. An ACK leaves only once its lease is on disk, and one
 * journal sync makes every lease committed while the previous one ran durable at once; a disk
 * whose flush stalls for 100 ms and more (seen on virtual disks) so releases thousands of ACKs in
 * one instant, more than the receive buffer of a relay agent or of a client's host holds (a
 * Linux socket's default, 208 KiB, holds about 160 DHCP replies). Paced, they leave `burst` at
 * once and then `perMs` a millisecond, in the order they were made; while nothing waits, a reply
 * leaves at once, as without the pacer.
 *
 * Bounded: at most `max` replies wait; past that the oldest waiting one is dropped (its client
 * retries, as after a loss on the wire) and counted by `onDrop`.
 */
export interface PaceOptions {
  /** Replies that may leave at once after a quiet moment (default 128). */
  burst?: number;
  /** Replies per millisecond once the burst is spent (default 32: 32,000 a second). */
  perMs?: number;
  /** Replies that may wait (default 8192). */
  max?: number;
}

export class Pacer<T> {
  private readonly burst: number;
  private readonly perMs: number;
  private readonly max: number;
  private tokens: number;
  private last: number;
  private queue: T[] = [];
  private head = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly out: (item: T) => void,
    private readonly onDrop: (item: T) => void,
    opts: PaceOptions = {},
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.burst = opts.burst ?? 128;
    this.perMs = opts.perMs ?? 32;
    this.max = opts.max ?? 8192;
    this.tokens = this.burst;
    this.last = clock();
  }

  /** Replies waiting for their turn. */
  get waiting(): number {
    return this.queue.length - this.head;
  }

  push(item: T): void {
    if (this.waiting === 0) {
      this.refill();
      if (this.tokens >= 1) {
        this.tokens--;
        return this.out(item);
      }
    }
    if (this.waiting >= this.max) {
      const oldest = this.queue[this.head]!;
      this.queue[this.head++] = undefined as T;
      this.onDrop(oldest);
    }
    this.queue.push(item);
    this.timer ??= setTimeout(this.release, 1);
  }

  /** Forget what waits (the sockets are closing). */
  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue = [];
    this.head = 0;
  }

  private refill(): void {
    const now = this.clock();
    this.tokens = Math.min(this.burst, this.tokens + (now - this.last) * this.perMs);
    this.last = now;
  }

  private readonly release = (): void => {
    this.timer = undefined;
    this.refill();
    while (this.tokens >= 1 && this.head < this.queue.length) {
      this.tokens--;
      const item = this.queue[this.head]!;
      this.queue[this.head++] = undefined as T;
      this.out(item);
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else {
      if (this.head > 4096) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      this.timer = setTimeout(this.release, 1);
    }
  };
}
