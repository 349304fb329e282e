import { describe, expect, it } from 'vitest';
import { negotiate, type NegotiationLimits } from '../../src/net/tftp/index.js';

const limits: NegotiationLimits = { maxBlksize: 1468, maxWindowsize: 64, maxWindowBytes: 1024 * 1024, maxTimeoutSeconds: 30 };
const opts = (o: Record<string, string>) => Object.entries(o).map(([name, value]) => ({ name, value }));

describe('tftp option negotiation', () => {
  it('sends no OACK and uses RFC 1350 values without options', () => {
    expect(negotiate([], limits, 1000)).toEqual({ blksize: 512, windowsize: 1, timeoutSeconds: undefined, oack: [] });
  });

  it('grants blksize, windowsize, timeout and answers tsize with the size, in request order', () => {
    const n = negotiate(opts({ tsize: '0', blksize: '1400', windowsize: '16', timeout: '3' }), limits, 123456);
    expect(n.blksize).toBe(1400);
    expect(n.windowsize).toBe(16);
    expect(n.timeoutSeconds).toBe(3);
    expect(n.oack).toEqual(opts({ tsize: '123456', blksize: '1400', windowsize: '16', timeout: '3' }));
  });

  it('lowers blksize to the interface cap and windowsize to its limits', () => {
    const n = negotiate(opts({ blksize: '65464', windowsize: '65535' }), limits, 1);
    expect(n.oack).toEqual(opts({ blksize: '1468', windowsize: '64' }));
    const big = negotiate(opts({ blksize: '65464', windowsize: '64' }), { ...limits, maxBlksize: 65464 }, 1);
    expect(big.blksize * big.windowsize).toBeLessThanOrEqual(1024 * 1024);
    expect(big.windowsize).toBe(16);
  });

  it('ignores invalid values instead of acknowledging them', () => {
    const n = negotiate(opts({ blksize: '7', windowsize: '0', timeout: '256', tsize: '-1' }), limits, 10);
    expect(n).toEqual({ blksize: 512, windowsize: 1, timeoutSeconds: undefined, oack: [] });
    const junk = negotiate(opts({ blksize: '1e3', windowsize: ' 4', timeout: '0x10', tsize: 'abc' }), limits, 10);
    expect(junk.oack).toEqual([]);
    const huge = negotiate(opts({ blksize: '99999999999999999999', windowsize: '4294967297' }), limits, 10);
    expect(huge.oack).toEqual([]);
  });

  it('refuses a timeout above the configured cap (the npm client sends milliseconds)', () => {
    expect(negotiate(opts({ timeout: '3000' }), limits, 1).oack).toEqual([]);
    expect(negotiate(opts({ timeout: '31' }), limits, 1).oack).toEqual([]);
    expect(negotiate(opts({ timeout: '30' }), limits, 1).timeoutSeconds).toBe(30);
  });

  it('leaves unknown options out', () => {
    expect(negotiate(opts({ rollover: '0', multicast: '', blksize: '1024' }), limits, 1).oack).toEqual(opts({ blksize: '1024' }));
  });
});
