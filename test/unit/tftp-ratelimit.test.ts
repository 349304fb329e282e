import { describe, expect, it } from 'vitest';
import { ErrorRateLimit, RATE_SLOTS } from '../../src/net/tftp/ratelimit.js';

describe('tftp error rate limit', () => {
  it('allows a source its bucket, then its refill rate, and other sources their own', () => {
    let now = 0;
    const limit = new ErrorRateLimit(10, () => now);
    const burst = Array.from({ length: 100 }, () => limit.allow('192.0.2.1')).filter(Boolean).length;
    expect(burst).toBe(10);
    expect(limit.allow('192.0.2.2')).toBe(true);
    now += 500; // half a second: five more
    expect(Array.from({ length: 100 }, () => limit.allow('192.0.2.1')).filter(Boolean).length).toBe(5);
    now += 10_000; // refilled, never above the bucket
    expect(Array.from({ length: 100 }, () => limit.allow('192.0.2.1')).filter(Boolean).length).toBe(10);
  });

  it('gives sources that rotate addresses no more than the fixed table holds, however many there are', () => {
    const now = 0;
    const limit = new ErrorRateLimit(5, () => now);
    let allowed = 0;
    for (let i = 0; i < 200_000; i++) if (limit.allow(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`)) allowed++;
    expect(allowed).toBeLessThanOrEqual(RATE_SLOTS * 5);
    expect(allowed).toBeGreaterThan(RATE_SLOTS);
  });

  it('shares one bucket per source between limits on one table, as the threads running transfers do', () => {
    let now = 0;
    const first = new ErrorRateLimit(10, () => now);
    const second = new ErrorRateLimit(10, () => now, first.table);
    let allowed = 0;
    for (let i = 0; i < 100; i++) if ((i % 2 ? first : second).allow('192.0.2.1')) allowed++;
    expect(allowed).toBe(10);
    now += 1000;
    expect(second.allow('192.0.2.1')).toBe(true);
    expect(new ErrorRateLimit(10, () => now).allow('192.0.2.1')).toBe(true); // a table of its own
  });

  it('sends nothing when the rate is 0', () => {
    expect(new ErrorRateLimit(0).allow('192.0.2.1')).toBe(false);
  });
});
