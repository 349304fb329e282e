/**
 * Per-source rate limit for the error packets a TFTP server sends to strangers, in a fixed-size
 * table: memory stays the same whatever the number of sources (spoofed or not).
 *
 * Each slot is a token bucket (capacity `perSecond`, refilled at `perSecond` tokens a second)
 * keyed by the source address, not its port: a flood from one host is one source whatever ports it
 * uses. A source whose slot another address holds shares that slot's bucket until the bucket has
 * refilled, so rotating addresses buys no more than `SLOTS × perSecond` replies a second in all.
 * The table lives in shared memory, so every thread running transfers draws on the same buckets.
 */
import { performance } from 'node:perf_hooks';

/** Slots in the table (a power of two). */
export const RATE_SLOTS = 1024;

/** Bytes of shared memory one table needs: a lock and an owner (Int32), tokens and a stamp (Float64). */
const TABLE_BYTES = RATE_SLOTS * (2 * 4 + 2 * 8);

/** Milliseconds on a clock every thread of the process shares (performance.now() is per thread). */
const processClock = (): number => performance.timeOrigin + performance.now();

/**
 * A table of buckets, in shared memory so that the threads running transfers share one limit: a
 * source gets `perSecond` error replies in all, not per thread. Pass `table` to another thread's
 * ErrorRateLimit to share it.
 */
export class ErrorRateLimit {
  readonly table: SharedArrayBuffer;
  /** [lock, owner] per slot; an owner is a 32-bit hash of the address (0: none). */
  private readonly meta: Int32Array;
  /** [tokens, stamp] per slot. */
  private readonly buckets: Float64Array;

  constructor(
    private readonly perSecond: number,
    private readonly now: () => number = processClock,
    table?: SharedArrayBuffer,
  ) {
    this.table = table ?? new SharedArrayBuffer(TABLE_BYTES);
    this.buckets = new Float64Array(this.table, 0, 2 * RATE_SLOTS);
    this.meta = new Int32Array(this.table, 2 * RATE_SLOTS * 8, 2 * RATE_SLOTS);
  }

  /** True when one more error reply to `address` is allowed now (and counts it). */
  allow(address: string): boolean {
    if (this.perSecond <= 0) return false;
    const hash = hashOf(address);
    const slot = hash & (RATE_SLOTS - 1);
    const owner = hash === 0 ? 1 : hash;
    const lock = 2 * slot;
    // A slot is held for a few instructions: spin (no thread ever blocks holding it).
    while (Atomics.compareExchange(this.meta, lock, 0, 1) !== 0);
    try {
      const t = this.now();
      const held = this.meta[lock + 1];
      let tokens: number;
      if (held === 0) tokens = this.perSecond;
      else tokens = Math.min(this.perSecond, this.buckets[lock] + ((t - this.buckets[lock + 1]) / 1000) * this.perSecond);
      // A full bucket holds no history: the slot passes to the new address.
      if (held !== owner && tokens >= this.perSecond) this.meta[lock + 1] = owner;
      this.buckets[lock + 1] = t;
      if (tokens < 1) {
        this.buckets[lock] = tokens;
        return false;
      }
      this.buckets[lock] = tokens - 1;
      return true;
    } finally {
      Atomics.store(this.meta, lock, 0);
    }
  }
}

/** FNV-1a over the address text. */
function hashOf(address: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < address.length; i++) {
    h ^= address.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}
