/**
 * The TFTP server's options, counters and log records, and their validation into the limits it
 * enforces (one line naming the bad value, as a TftpError).
 */
import { isIP } from 'node:net';
import { availableParallelism, networkInterfaces } from 'node:os';
import { readFileSync } from 'node:fs';
import type { SocketType } from 'node:dgram';
import { TftpError } from './errors.js';
import { MAX_BLKSIZE, MIN_BLKSIZE, type NegotiationLimits } from './options.js';

/** Content a caller serves from memory; `undefined` falls through to the root directory. */
export type TftpFileContent = Buffer | Uint8Array | string;
export type TftpFileProvider =
  | Map<string, TftpFileContent>
  | ((path: string) => TftpFileContent | undefined | Promise<TftpFileContent | undefined>);

/** Counters since start. */
export interface TftpServerStats {
  /** Datagrams that arrived on the request port. */
  requestPackets: number;
  /** Datagrams that arrived on transfer ports (from the client or from anyone else). */
  transferPackets: number;
  /** Transfers started (a file was opened and a socket bound). */
  transfers: number;
  /** Transfers that completed. */
  completed: number;
  /** Requests answered with an error instead of a transfer. */
  refused: number;
  /** Error replies not sent because their source was over `maxErrorsPerSecond`. */
  errorsLimited: number;
}

/** One finished (or refused) request, as logged. */
export interface TftpTransferRecord {
  /** "address:port" of the client. */
  client: string;
  /** The file name as requested. */
  file: string;
  /** Bytes the client acknowledged. */
  bytes: number;
  /** Size of the content served (undefined when the request was refused). */
  size?: number;
  ms: number;
  /** "ok", or why the transfer ended. */
  result: string;
  ok: boolean;
  blksize?: number;
  windowsize?: number;
  /** Packets sent again after a timeout or a duplicate ACK. */
  retransmits?: number;
}

export interface TftpServerOptions {
  /** Directory served (resolved once at start). Optional when `files` serves everything. */
  root?: string;
  /** Files served from memory, looked up by the cleaned relative path (e.g. "pxelinux.cfg/default"). */
  files?: TftpFileProvider;
  /** IP address to bind (default 0.0.0.0). Bind a specific address on multi-homed hosts. */
  address?: string;
  /** UDP port for requests (default 69; 0 picks a free one). */
  port?: number;
  /**
   * Ports for transfers, [low, high] inclusive (default: any free port the kernel picks), so a
   * firewall can let TFTP through with one rule (tftpd-hpa's --port-range).
   */
  portRange?: [number, number];
  /**
   * Largest blksize granted. Default: the MTU of the interface holding `address`, minus 32 bytes
   * of IPv4+UDP+TFTP headers (52 for IPv6); 1468 (Ethernet) when bound to the wildcard or the
   * MTU is unknown.
   */
  maxBlksize?: number;
  /** Interface MTU to derive the blksize cap from, when the caller knows it (e.g. on FreeBSD). */
  mtu?: number;
  /** Largest windowsize granted (default 64). */
  maxWindowsize?: number;
  /** Largest blksize × windowsize granted (default 1 MiB). */
  maxWindowBytes?: number;
  /** Largest RFC 2349 timeout option accepted, in seconds (default 30; larger is ignored). */
  maxTimeoutSeconds?: number;
  /** Concurrent transfers (default 128); past it, requests get an error. */
  maxTransfers?: number;
  /** First retransmission timeout in ms when the client negotiated none (default 1000). */
  timeoutMs?: number;
  /** Back-off doubles the timeout up to this (default 8000 ms). */
  maxTimeoutMs?: number;
  /** Retransmissions of one packet before giving up (default 5). */
  retries?: number;
  /** Serve netascii requests (default true); such files are converted in memory, up to this size. */
  maxNetasciiBytes?: number;
  /**
   * After sending, keep polling for the client's reply this long (µs) before sleeping, like
   * Linux's net.core.busy_read (default 50, at most 1000; 0 turns it off). Lock-step (windowsize
   * 1) transfers run about three times faster with it on a two-CPU machine; the cost is at most
   * this much CPU time per packet sent when clients answer slower.
   */
  busyPollMicros?: number;
  /**
   * Error packets sent to one source address a second, at most (default 50; 0 sends none): each
   * source has a token bucket of this size in a fixed-size table.
   */
  maxErrorsPerSecond?: number;
  /**
   * Worker threads running the transfers (default: one per CPU, `os.availableParallelism()`; 0
   * runs them on the server's own thread). Requests, path checks and file opening stay on the
   * server's thread. Workers need the built worker entry (tftp-worker.js beside the server's
   * built code, or `workerScript`); without it transfers run on the server's thread.
   */
  workers?: number;
  /** Path of the built worker entry, when it is not tftp-worker.js beside the server's code. */
  workerScript?: string;
  /** Called once per transfer or refused request. */
  log?: (line: string, record: TftpTransferRecord) => void;
}

const DEFAULT_BLKSIZE_CAP = 1468;
/** IPv4 (20) + UDP (8) + TFTP DATA (4) header bytes: blksize 1468 fills a 1500-byte MTU. */
const HEADERS_V4 = 32;
const HEADERS_V6 = 52;

/** The blksize cap for a bind address: its interface's MTU minus headers, else 1468. */
export function blksizeCapFor(address: string, mtu?: number): number {
  const headers = isIP(address) === 6 ? HEADERS_V6 : HEADERS_V4;
  const clamp = (n: number): number => Math.max(MIN_BLKSIZE, Math.min(MAX_BLKSIZE, n));
  if (mtu !== undefined) return clamp(mtu - headers);
  if (address === '0.0.0.0' || address === '::') return DEFAULT_BLKSIZE_CAP;
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (!addrs?.some((a) => a.address === address)) continue;
    try {
      const ifMtu = Number(readFileSync(`/sys/class/net/${name}/mtu`, 'utf8').trim());
      if (Number.isInteger(ifMtu) && ifMtu > 0) return clamp(ifMtu - headers);
    } catch {
      /* no sysfs (FreeBSD): fall back */
    }
  }
  return DEFAULT_BLKSIZE_CAP;
}

/** What the server enforces, after defaults and validation. */
export interface Limits extends NegotiationLimits {
  maxTransfers: number;
  timeoutMs: number;
  maxTimeoutMs: number;
  retries: number;
  maxNetasciiBytes: number;
}

/** Options checked and defaults filled in. */
export interface ServerConfig {
  bindAddress: string;
  socketType: SocketType;
  limits: Limits;
  /** Busy-poll time after each send, in ms (0: off). */
  busyPollMs: number;
  maxErrorsPerSecond: number;
  portRange?: [number, number];
  /** Worker threads for transfers (0: none). */
  workers: number;
}

/** Check OPTS (throws a TftpError naming the bad value) and fill in the defaults. */
export function serverConfig(opts: TftpServerOptions): ServerConfig {
  const bindAddress = opts.address ?? '0.0.0.0';
  const family = isIP(bindAddress);
  if (family === 0) throw new TftpError(`tftp: bind address is not an IP address: ${bindAddress}`);
  if (opts.root === undefined && opts.files === undefined) throw new TftpError('tftp: nothing to serve: give a root directory or files');
  const positive = (name: string, v: number | undefined, dflt: number, min = 1): number => {
    if (v === undefined) return dflt;
    if (!Number.isFinite(v) || v < min) throw new TftpError(`tftp: ${name} must be a number >= ${min}: ${v}`);
    return Math.floor(v);
  };
  const maxBlksize = opts.maxBlksize !== undefined ? positive('maxBlksize', opts.maxBlksize, 0, MIN_BLKSIZE) : blksizeCapFor(bindAddress, opts.mtu);
  const limits: Limits = {
    maxBlksize: Math.min(maxBlksize, MAX_BLKSIZE),
    maxWindowsize: Math.min(positive('maxWindowsize', opts.maxWindowsize, 64), 65535),
    maxWindowBytes: positive('maxWindowBytes', opts.maxWindowBytes, 1024 * 1024, MIN_BLKSIZE),
    maxTimeoutSeconds: Math.min(positive('maxTimeoutSeconds', opts.maxTimeoutSeconds, 30), 255),
    maxTransfers: positive('maxTransfers', opts.maxTransfers, 128),
    timeoutMs: positive('timeoutMs', opts.timeoutMs, 1000),
    maxTimeoutMs: positive('maxTimeoutMs', opts.maxTimeoutMs, 8000),
    retries: positive('retries', opts.retries, 5, 0),
    maxNetasciiBytes: positive('maxNetasciiBytes', opts.maxNetasciiBytes, 4 * 1024 * 1024, 0),
  };
  const maxErrorsPerSecond = positive('maxErrorsPerSecond', opts.maxErrorsPerSecond, 50, 0);
  const busyPollMs = Math.min(positive('busyPollMicros', opts.busyPollMicros, 50, 0), 1000) / 1000;
  if (opts.portRange) {
    const [low, high] = opts.portRange;
    if (!Number.isInteger(low) || !Number.isInteger(high) || low < 1 || high > 65535 || low > high) {
      throw new TftpError(`tftp: port range must be LOW:HIGH within 1-65535: ${low}:${high}`);
    }
  }
  const workers = Math.min(positive('workers', opts.workers, availableParallelism(), 0), 64);
  return { bindAddress, socketType: family === 6 ? 'udp6' : 'udp4', limits, busyPollMs, maxErrorsPerSecond, portRange: opts.portRange, workers };
}
