/**
 * Option negotiation for a read request: RFC 2347 (OACK), 2348 (blksize), 2349 (timeout, tsize),
 * 7440 (windowsize). Pure: limits and the file size in, the values to use and the OACK out.
 */
import type { TftpOption } from './packet.js';

/** RFC 2348 bounds for blksize. */
export const MIN_BLKSIZE = 8;
export const MAX_BLKSIZE = 65464;
/** RFC 1350 block size when no blksize is negotiated. */
export const DEFAULT_BLKSIZE = 512;

export interface NegotiationLimits {
  /** Largest blksize granted (8..65464). */
  maxBlksize: number;
  /** Largest windowsize granted. */
  maxWindowsize: number;
  /** Largest blksize × windowsize granted (bounds per-transfer memory and bursts). */
  maxWindowBytes: number;
  /** Largest timeout option (seconds) accepted; larger requests are ignored, not echoed. */
  maxTimeoutSeconds: number;
}

export interface Negotiated {
  blksize: number;
  windowsize: number;
  /** Retransmission timeout the client asked for, in seconds, when accepted. */
  timeoutSeconds?: number;
  /** Options to acknowledge, in the order the client sent them; empty means no OACK. */
  oack: TftpOption[];
}

/** A decimal option value, or undefined when it is not one (signs, spaces, hex are refused). */
function decimal(value: string): number | undefined {
  if (!/^[0-9]{1,12}$/.test(value)) return undefined;
  return Number(value);
}

/**
 * Decide the transfer parameters for a read request. Unknown options and invalid values are
 * ignored (RFC 2347: the server simply leaves them out of the OACK); values above a limit are
 * lowered to it where the RFC lets the server answer with a smaller value (blksize, windowsize).
 */
export function negotiate(requested: TftpOption[], limits: NegotiationLimits, size: number): Negotiated {
  let blksize = DEFAULT_BLKSIZE;
  let windowsize = 1;
  let timeoutSeconds: number | undefined;
  const accepted = new Map<string, string>();

  const blk = requested.find((o) => o.name === 'blksize');
  if (blk) {
    const n = decimal(blk.value);
    if (n !== undefined && n >= MIN_BLKSIZE) {
      blksize = Math.min(n, MAX_BLKSIZE, Math.max(MIN_BLKSIZE, limits.maxBlksize));
      accepted.set('blksize', String(blksize));
    }
  }
  for (const o of requested) {
    if (o.name === 'windowsize') {
      const n = decimal(o.value);
      if (n !== undefined && n >= 1 && n <= 65535) {
        const byBytes = Math.max(1, Math.floor(limits.maxWindowBytes / blksize));
        windowsize = Math.max(1, Math.min(n, limits.maxWindowsize, byBytes));
        accepted.set('windowsize', String(windowsize));
      }
    } else if (o.name === 'timeout') {
      const n = decimal(o.value);
      if (n !== undefined && n >= 1 && n <= 255 && n <= limits.maxTimeoutSeconds) {
        timeoutSeconds = n;
        accepted.set('timeout', String(n));
      }
    } else if (o.name === 'tsize') {
      if (decimal(o.value) !== undefined) accepted.set('tsize', String(size));
    }
  }
  const oack = requested.filter((o) => accepted.has(o.name)).map((o) => ({ name: o.name, value: accepted.get(o.name)! }));
  return { blksize, windowsize, timeoutSeconds, oack };
}
