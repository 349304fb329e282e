/**
 * The pacing of the ACKs one journal sync releases together (src/net/dhcp/pace.ts): a burst's
 * worth leaves at once, the rest at the set rate per millisecond in the order made; a lone reply
 * after a quiet moment is not delayed; what waits is bounded, the oldest dropped first.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Pacer } from '../../src/net/dhcp/pace.js';

let now = 0;
beforeEach(() => {
  vi.useFakeTimers();
  now = 0;
});
afterEach(() => vi.useRealTimers());

function pacer(opts: { burst: number; perMs: number; max?: number }) {
  const sent: Array<[number, number]> = [];
  const dropped: number[] = [];
  const p = new Pacer<number>((n) => sent.push([n, now]), (n) => dropped.push(n), opts, () => now);
  /** Let `ms` milliseconds pass, one at a time, running the timers due. */
  const pass = (ms: number) => {
    for (let i = 0; i < ms; i++) {
      now += 1;
      vi.advanceTimersByTime(1);
    }
  };
  return { p, sent, dropped, pass };
}

describe('ACK pacing', () => {
  it('sends a burst at once and the rest at the rate, in order', () => {
    const { p, sent, pass } = pacer({ burst: 10, perMs: 4 });
    for (let n = 0; n < 30; n++) p.push(n);
    // the burst left synchronously, from inside push
    expect(sent.map(([n]) => n)).toEqual([...Array(10).keys()]);
    expect(p.waiting).toBe(20);
    pass(1);
    expect(sent).toHaveLength(14);
    pass(4);
    expect(sent.map(([n]) => n)).toEqual([...Array(30).keys()]);
    // never more than the burst plus the rate in any millisecond window
    for (let t = 0; t <= 5; t++) expect(sent.filter(([, at]) => at === t).length).toBeLessThanOrEqual(t === 0 ? 10 : 4);
    expect(p.waiting).toBe(0);
  });

  it('does not delay a lone reply after a quiet moment, nor one behind nothing', () => {
    const { p, sent, pass } = pacer({ burst: 2, perMs: 1 });
    p.push(1);
    p.push(2);
    p.push(3);
    expect(sent.map(([n]) => n)).toEqual([1, 2]);
    pass(1);
    expect(sent.map(([n]) => n)).toEqual([1, 2, 3]);
    pass(10);
    p.push(4);
    expect(sent.at(-1)).toEqual([4, now]);
  });

  it('keeps at most max waiting, dropping the oldest first', () => {
    const { p, sent, dropped, pass } = pacer({ burst: 1, perMs: 1, max: 3 });
    for (let n = 0; n < 6; n++) p.push(n);
    expect(sent.map(([n]) => n)).toEqual([0]);
    expect(dropped).toEqual([1, 2]);
    pass(3);
    expect(sent.map(([n]) => n)).toEqual([0, 3, 4, 5]);
  });

  it('forgets what waits when cleared', () => {
    const { p, sent, pass } = pacer({ burst: 1, perMs: 1 });
    p.push(0);
    p.push(1);
    p.clear();
    pass(5);
    expect(sent.map(([n]) => n)).toEqual([0]);
    expect(p.waiting).toBe(0);
  });
});
