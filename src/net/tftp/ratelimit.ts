/**
 * Per-source rate limit for the error packets a TFTP server sends to strangers, in a fixed-size
 * table: memory stays the same whatever the number of sources (spoofed or not).
 *
 * Each slot is a token bucket (capacity `perSecond`, refilled at `perSecond` tokens a second)
 * keyed by the source address, not its port: a flood from one host is one source whatever ports it
 * uses. A source whose slot another address holds shares that slot's bucket until the bucket has
 * refilled, so rotating addresses buys no more than `SLOTS × perSecond` replies a second in all.
 */
import { performance } from 'node:perf_hooks';

/** Slots in the table (a power of two). */
export const RATE_SLOTS = 1024;

export class ErrorRateLimit {
  private readonly owners: (string | undefined)[] = new Array<string | undefined>(RATE_SLOTS);
  private readonly tokens = new Float64Array(RATE_SLOTS);
  private readonly stamps = new Float64Array(RATE_SLOTS);

  constructor(
    private readonly perSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** True when one more error reply to `address` is allowed now (and counts it). */
  allow(address: string): boolean {
    if (this.perSecond <= 0) return false;
    const slot = slotOf(address);
    const t = this.now();
    const owner = this.owners[slot];
    let tokens: number;
    if (owner === undefined) {
      tokens = this.perSecond;
    } else {
      tokens = Math.min(this.perSecond, this.tokens[slot] + ((t - this.stamps[slot]) / 1000) * this.perSecond);
    }
    // A full bucket holds no history: the slot passes to the new address.
    if (owner !== address && tokens >= this.perSecond) this.owners[slot] = address;
    this.stamps[slot] = t;
    if (tokens < 1) {
      this.tokens[slot] = tokens;
      return false;
    }
    this.tokens[slot] = tokens - 1;
    return true;
  }
}

/** FNV-1a over the address text, folded to a slot. */
function slotOf(address: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < address.length; i++) {
    h ^= address.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) & (RATE_SLOTS - 1);
}
