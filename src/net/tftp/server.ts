/**
 * A read-only TFTP server: RFC 1350 read requests (octet, netascii), RFC 2347/2348/2349/7440
 * options, one fresh UDP port (transfer ID) per transfer, retransmission with exponential
 * back-off, bounded concurrency and memory. Knows nothing of what it serves.
 */
import { createSocket, type RemoteInfo, type Socket, type SocketType } from 'node:dgram';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { readFileSync, promises as fsp } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { BeError } from '../../sys/errors.js';
import {
  decodePacket,
  encodeError,
  encodeOack,
  ErrorCode,
  Opcode,
  TftpDecodeError,
  toNetascii,
  transferMode,
  writeDataHeader,
  type RequestPacket,
  type TftpOption,
} from './packet.js';
import { MAX_BLKSIZE, MIN_BLKSIZE, negotiate, type NegotiationLimits } from './options.js';
import { openInRoot, PathError, requestPath } from './paths.js';
import { blockCount, BufferPool, FileSource, MemorySource, type BlockSource } from './source.js';
import { ErrorRateLimit } from './ratelimit.js';

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

interface Limits extends NegotiationLimits {
  maxTransfers: number;
  timeoutMs: number;
  maxTimeoutMs: number;
  retries: number;
  maxNetasciiBytes: number;
}

type State = 'opening' | 'oack' | 'data' | 'done';

/** One read transfer on its own socket. */
class Transfer {
  state: State = 'opening';
  /** A packet from the client arrived on the transfer port (not evictable any more). */
  confirmed = false;
  socket?: Socket;
  source?: BlockSource;
  blksize = 512;
  windowsize = 1;
  lastBlock = 1;
  /** Oldest unacknowledged block (absolute). */
  base = 1;
  /** Highest block sent so far (absolute). */
  sentEnd = 0;
  private oackPacket?: Buffer;
  /** Reusable DATA packet (header + one block). */
  private packet?: Buffer;
  private timer?: NodeJS.Timeout;
  private timerAt = 0;
  private deadline = 0;
  private baseTimeout: number;
  private interval: number;
  private retriesLeft: number;
  /**
   * Windowed transfers only: a duplicate ACK may resend the window once for its position. Lock-step
   * transfers never resend on a duplicate ACK (RFC 1123 §4.2.3.1): the timer alone retransmits.
   */
  private dupAllowed = false;
  /**
   * Highest block sent by the last duplicate-triggered resend: the client receives those blocks
   * twice and may acknowledge both copies, so duplicate ACKs up to here are echoes, not losses.
   */
  private echoEnd = 0;
  retransmits = 0;
  private readonly started = Date.now();

  constructor(
    private readonly server: TftpServer,
    readonly client: RemoteInfo,
    readonly file: string,
    private readonly limits: Limits,
  ) {
    this.baseTimeout = limits.timeoutMs;
    this.interval = limits.timeoutMs;
    this.retriesLeft = limits.retries;
  }

  get ended(): boolean {
    return this.state === 'done';
  }

  get key(): string {
    return `${this.client.address}:${this.client.port}`;
  }

  begin(socket: Socket, source: BlockSource, blksize: number, windowsize: number, oack: TftpOption[], timeoutSeconds?: number): void {
    this.socket = socket;
    this.source = source;
    this.blksize = blksize;
    this.windowsize = windowsize;
    this.lastBlock = blockCount(source.size, blksize);
    if (timeoutSeconds !== undefined) this.baseTimeout = this.interval = timeoutSeconds * 1000;
    socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    if (oack.length > 0) {
      this.state = 'oack';
      this.oackPacket = encodeOack(oack);
      this.sendOack();
    } else {
      this.state = 'data';
      this.sendWindow();
    }
  }

  private send(buf: Buffer): void {
    this.socket!.send(buf, this.client.port, this.client.address);
  }

  private sendOack(): void {
    this.send(this.oackPacket!);
    this.arm();
    this.server.awaitReply();
  }

  private sendWindow(): void {
    if (this.state !== 'data') return;
    const first = this.base;
    const last = Math.min(first + this.windowsize - 1, this.lastBlock);
    this.arm();
    let pending: Promise<void> | undefined;
    try {
      pending = this.source!.ensure(first, last);
    } catch (e) {
      return this.fail(ErrorCode.NOT_DEFINED, 'read error', (e as Error).message);
    }
    if (pending) {
      pending.then(
        () => {
          if (this.state === 'data' && this.base === first) this.transmit(first, last);
        },
        (e: Error) => this.fail(ErrorCode.NOT_DEFINED, 'read error', e.message),
      );
      return;
    }
    this.transmit(first, last);
  }

  private transmit(first: number, last: number): void {
    const source = this.source!;
    const socket = this.socket!;
    for (let n = first; n <= last; n++) {
      const payload = source.block(n);
      // One packet buffer is reused while the kernel takes every send at once (the usual case);
      // while a send is still queued it owns that buffer, so this packet gets a fresh one.
      let packet = this.packet;
      if (!packet || socket.getSendQueueCount() !== 0) {
        packet = Buffer.allocUnsafe(4 + this.blksize);
        this.packet ??= packet;
      }
      writeDataHeader(packet, n);
      payload.copy(packet, 4);
      const length = 4 + payload.length;
      this.send(length === packet.length ? packet : packet.subarray(0, length));
    }
    if (last > this.sentEnd) this.sentEnd = last;
    this.server.awaitReply();
  }

  /**
   * (Re)start the retransmission clock. One timer per transfer is kept and only moved earlier:
   * re-arming per ACK just moves the deadline, which keeps lock-step transfers cheap.
   */
  private arm(): void {
    this.deadline = performance.now() + this.interval;
    if (this.timer && this.timerAt <= this.deadline) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = this.deadline;
    this.timer = setTimeout(this.onTimer, this.interval);
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    if (this.state === 'done') return;
    const left = this.deadline - performance.now();
    if (left > 0.5) {
      this.timerAt = this.deadline;
      this.timer = setTimeout(this.onTimer, left);
      return;
    }
    this.onTimeout();
  };

  private onTimeout(): void {
    if (this.retriesLeft-- <= 0) return this.fail(ErrorCode.NOT_DEFINED, 'timed out', 'timed out');
    this.interval = Math.min(this.interval * 2, Math.max(this.limits.maxTimeoutMs, this.baseTimeout));
    this.retransmits++;
    if (this.state === 'oack') this.sendOack();
    else this.resendWindow();
  }

  /** Send the current window again; its blocks may reach the client twice, and so may their ACKs. */
  private resendWindow(): void {
    this.echoEnd = Math.max(this.echoEnd, Math.min(this.base + this.windowsize - 1, this.lastBlock));
    this.sendWindow();
  }

  private progress(): void {
    this.confirmed = true;
    this.retriesLeft = this.limits.retries;
    this.interval = this.baseTimeout;
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    this.server.stats.transferPackets++;
    if (this.state === 'done') return;
    if (rinfo.port !== this.client.port || rinfo.address !== this.client.address) {
      // RFC 1350: a packet from another TID gets error 5 and the transfer goes on.
      if (this.server.errorAllowed(rinfo)) this.socket!.send(encodeError(ErrorCode.UNKNOWN_TID, 'unknown transfer ID'), rinfo.port, rinfo.address);
      return;
    }
    if (msg.length < 4) return;
    const op = msg.readUInt16BE(0);
    if (op === Opcode.ACK) this.onAck(msg.readUInt16BE(2));
    else if (op === Opcode.ERROR) {
      let text = '';
      try {
        const p = decodePacket(msg);
        if (p.op === Opcode.ERROR) text = p.message;
      } catch {
        /* keep the code only */
      }
      const code = msg.readUInt16BE(2);
      this.finish(`client error ${code}${text ? `: ${text.slice(0, 80)}` : ''}`, false);
    }
    // Anything else from the client's port is ignored; our timer drives recovery.
  }

  private onAck(wire: number): void {
    if (this.state === 'oack') {
      if (wire !== 0) return;
      this.progress();
      this.state = 'data';
      this.sendWindow();
      return;
    }
    if (this.state !== 'data') return;
    const prev = this.base - 1;
    const abs = prev + ((wire - prev) & 0xffff);
    if (abs > prev && abs <= this.sentEnd) {
      // An ACK inside the window is the client's loss report: the window restarts after it, which
      // is this position's one resend. An ACK of the whole window allows one resend on a duplicate.
      this.dupAllowed = this.windowsize > 1 && abs === this.sentEnd && abs > this.echoEnd;
      this.base = abs + 1;
      this.progress();
      this.source!.release(this.base);
      if (this.base > this.lastBlock) {
        this.finish('ok', true);
        return;
      }
      this.sendWindow();
    } else if (abs === prev && this.dupAllowed && this.sentEnd >= this.base) {
      // RFC 7440: the client saw nothing of the new window; resend it once for this position.
      this.dupAllowed = false;
      this.confirmed = true;
      this.retransmits++;
      this.resendWindow();
    }
    // Any other duplicate (every one in lock-step) is ignored: the timer drives recovery.
  }

  /** Bytes the client acknowledged so far. */
  get bytesAcked(): number {
    if (!this.source) return 0;
    return Math.min(this.source.size, (this.base - 1) * this.blksize);
  }

  fail(code: number, message: string, result: string): void {
    if (this.state === 'done') return;
    try {
      this.socket?.send(encodeError(code, message), this.client.port, this.client.address);
    } catch {
      /* socket already gone */
    }
    this.finish(result, false);
  }

  finish(result: string, ok: boolean): void {
    if (this.state === 'done') return;
    this.state = 'done';
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const socket = this.socket;
    const source = this.source;
    if (socket) {
      // Let sends queued this tick (the final error) leave before closing.
      setImmediate(() => {
        try {
          socket.close();
        } catch {
          /* already closed */
        }
        void source?.close();
      });
    } else {
      void source?.close();
    }
    this.server.transferEnded(this, {
      client: this.key,
      file: this.file,
      bytes: ok ? (source?.size ?? 0) : this.bytesAcked,
      size: source?.size,
      ms: Date.now() - this.started,
      result,
      ok,
      blksize: this.blksize,
      windowsize: this.windowsize,
      retransmits: this.retransmits,
    });
  }
}

/** Resolve the lookup of IP literals synchronously (dgram would otherwise defer every send a tick). */
function literalLookup(family: 4 | 6) {
  return (host: string, _opts: unknown, cb: (err: Error | null, address: string, family: number) => void): void => {
    cb(null, host, family);
  };
}

/**
 * The server. `start()` binds the request port and resolves once listening; after that the
 * caller may drop privileges (process.setgid/setuid): transfers use fresh unprivileged ports and
 * files are opened per request. `stop()` ends every transfer and closes every socket.
 */
export class TftpServer {
  private readonly opts: TftpServerOptions;
  private readonly limits: Limits;
  private readonly bindAddress: string;
  private readonly socketType: SocketType;
  private readonly pool = new BufferPool();
  private readonly transfers = new Set<Transfer>();
  private readonly byClient = new Map<string, Transfer>();
  private socket?: Socket;
  private rootReal?: string;
  private stopping = false;
  private readonly busyPollMs: number;
  /** Next port to try in portRange; ports our own transfers hold are skipped. */
  private nextPort = 0;
  private readonly portsInUse = new Set<number>();
  /** Counters since start (read-only for callers). */
  readonly stats: TftpServerStats = { requestPackets: 0, transferPackets: 0, transfers: 0, completed: 0, refused: 0, errorsLimited: 0 };
  private readonly errorLimit: ErrorRateLimit;

  constructor(opts: TftpServerOptions) {
    this.opts = opts;
    this.bindAddress = opts.address ?? '0.0.0.0';
    const family = isIP(this.bindAddress);
    if (family === 0) throw new BeError(`tftp: bind address is not an IP address: ${this.bindAddress}`);
    this.socketType = family === 6 ? 'udp6' : 'udp4';
    if (opts.root === undefined && opts.files === undefined) throw new BeError('tftp: nothing to serve: give a root directory or files');
    const positive = (name: string, v: number | undefined, dflt: number, min = 1): number => {
      if (v === undefined) return dflt;
      if (!Number.isFinite(v) || v < min) throw new BeError(`tftp: ${name} must be a number >= ${min}: ${v}`);
      return Math.floor(v);
    };
    const maxBlksize = opts.maxBlksize !== undefined ? positive('maxBlksize', opts.maxBlksize, 0, MIN_BLKSIZE) : blksizeCapFor(this.bindAddress, opts.mtu);
    this.limits = {
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
    this.errorLimit = new ErrorRateLimit(positive('maxErrorsPerSecond', opts.maxErrorsPerSecond, 50, 0));
    this.busyPollMs = Math.min(positive('busyPollMicros', opts.busyPollMicros, 50, 0), 1000) / 1000;
    if (opts.portRange) {
      const [low, high] = opts.portRange;
      if (!Number.isInteger(low) || !Number.isInteger(high) || low < 1 || high > 65535 || low > high) {
        throw new BeError(`tftp: port range must be LOW:HIGH within 1-65535: ${low}:${high}`);
      }
      this.nextPort = low + Math.floor(Math.random() * (high - low + 1));
    }
  }

  /** The blksize cap in force. */
  get maxBlksize(): number {
    return this.limits.maxBlksize;
  }

  /** Busy polling: the loop keeps turning (polling sockets without sleeping) until then. */
  private pollUntil = 0;
  private polling = false;
  private readonly poll = (): void => {
    if (performance.now() < this.pollUntil && !this.stopping) setImmediate(this.poll);
    else this.polling = false;
  };

  /**
   * Called after a transfer sent: poll for the reply for `busyPollMicros` instead of sleeping. A
   * pending immediate makes the event loop poll with a zero timeout, so an ACK that comes back
   * within that time is read with no wake-up of a sleeping thread, which on a small machine costs
   * more than the whole packet's work.
   */
  awaitReply(): void {
    if (this.busyPollMs <= 0) return;
    this.pollUntil = performance.now() + this.busyPollMs;
    if (!this.polling) {
      this.polling = true;
      setImmediate(this.poll);
    }
  }

  /** Transfers running or being opened. */
  get activeTransfers(): number {
    return this.transfers.size;
  }

  /** Bind the request port; resolves with the bound address once listening. */
  async start(): Promise<{ address: string; port: number }> {
    if (this.socket) throw new BeError('tftp: server already started');
    if (this.opts.root !== undefined) {
      try {
        this.rootReal = await fsp.realpath(this.opts.root);
      } catch {
        throw new BeError(`tftp: root directory not found: ${this.opts.root}`);
      }
      const st = await fsp.stat(this.rootReal);
      if (!st.isDirectory()) throw new BeError(`tftp: root is not a directory: ${this.opts.root}`);
    }
    const socket = createSocket({ type: this.socketType, lookup: literalLookup(this.socketType === 'udp6' ? 6 : 4) as never });
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException): void => {
        reject(new BeError(`tftp: cannot bind ${this.bindAddress}:${this.opts.port ?? 69}: ${e.code ?? e.message}`, { cause: e }));
      };
      socket.once('error', onError);
      socket.bind({ address: this.bindAddress, port: this.opts.port ?? 69, exclusive: true }, () => {
        socket.off('error', onError);
        resolve();
      });
    });
    socket.on('error', () => undefined);
    try {
      socket.setRecvBufferSize(4 * 1024 * 1024);
    } catch {
      /* the kernel caps it; fine */
    }
    socket.on('message', (msg, rinfo) => {
      try {
        this.onRequest(msg, rinfo);
      } catch {
        /* a packet never takes the server down */
      }
    });
    this.socket = socket;
    return this.address();
  }

  address(): { address: string; port: number } {
    if (!this.socket) throw new BeError('tftp: server not started');
    const a = this.socket.address();
    return { address: a.address, port: a.port };
  }

  /** End all transfers and close all sockets. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const t of [...this.transfers]) t.fail(ErrorCode.NOT_DEFINED, 'server shutting down', 'server stopped');
    const socket = this.socket;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
    // Transfer sockets close on the next turn of the loop.
    await new Promise((r) => setImmediate(r));
  }

  /** Whether an error packet may go to this source now (counted when it may not). */
  errorAllowed(rinfo: RemoteInfo): boolean {
    if (this.errorLimit.allow(rinfo.address)) return true;
    this.stats.errorsLimited++;
    return false;
  }

  /**
   * An error from the request port, within the source's rate. With `bound` (the size of a packet
   * that is no request) the reply is never larger than it: the text is shortened to fit, and a
   * packet too short for even an empty error message gets nothing.
   */
  private reply(rinfo: RemoteInfo, code: number, message: string, bound?: number): void {
    let packet = encodeError(code, message);
    if (bound !== undefined && packet.length > bound) {
      if (bound < 5) return;
      packet = encodeError(code, message.slice(0, bound - 5));
    }
    if (!this.errorAllowed(rinfo)) return;
    this.socket?.send(packet, rinfo.port, rinfo.address);
  }

  private logRecord(record: TftpTransferRecord): void {
    if (!this.opts.log) return;
    const size = record.size !== undefined ? `/${record.size}` : '';
    const extra = record.blksize ? ` blksize=${record.blksize} windowsize=${record.windowsize} retransmits=${record.retransmits ?? 0}` : '';
    const line = `tftp ${record.client} ${JSON.stringify(record.file)} ${record.bytes}${size} bytes ${record.ms} ms ${record.result}${extra}`;
    try {
      this.opts.log(line, record);
    } catch {
      /* a logger's failure is not the transfer's */
    }
  }

  private refuse(rinfo: RemoteInfo, file: string, code: number, message: string): void {
    this.stats.refused++;
    this.reply(rinfo, code, message);
    this.logRecord({ client: `${rinfo.address}:${rinfo.port}`, file, bytes: 0, ms: 0, result: `refused: ${message}`, ok: false });
  }

  /** Called by a transfer when it ends. */
  transferEnded(t: Transfer, record: TftpTransferRecord): void {
    this.transfers.delete(t);
    if (record.ok) this.stats.completed++;
    else if (!t.socket) this.stats.refused++;
    if (this.byClient.get(t.key) === t) this.byClient.delete(t.key);
    this.logRecord(record);
  }

  private onRequest(msg: Buffer, rinfo: RemoteInfo): void {
    this.stats.requestPackets++;
    if (this.stopping || msg.length < 2) return;
    const op = msg.readUInt16BE(0);
    // An error is never answered (RFC 1350: no error loops between two hosts). Anything else that
    // is no request gets ERROR 4 (illegal TFTP operation), never larger than what came in, so the
    // port reflects nothing bigger than it is sent.
    if (op === Opcode.ERROR) return;
    if (op !== Opcode.RRQ && op !== Opcode.WRQ) return this.reply(rinfo, ErrorCode.ILLEGAL_OPERATION, 'illegal TFTP operation', msg.length);
    let req: RequestPacket;
    try {
      req = decodePacket(msg) as RequestPacket;
    } catch (e) {
      const code = e instanceof TftpDecodeError ? e.code : ErrorCode.ILLEGAL_OPERATION;
      this.reply(rinfo, code, 'malformed request', msg.length);
      return;
    }
    if (req.op === Opcode.WRQ) return this.refuse(rinfo, req.filename, ErrorCode.ACCESS_VIOLATION, 'read-only server');
    const mode = transferMode(req.mode);
    if (mode !== 'octet' && mode !== 'netascii') return this.refuse(rinfo, req.filename, ErrorCode.ILLEGAL_OPERATION, 'unsupported mode');
    const key = `${rinfo.address}:${rinfo.port}`;
    const existing = this.byClient.get(key);
    // A retransmitted request while we are still negotiating: our own timer answers it.
    if (existing && !existing.confirmed) return;
    if (this.transfers.size >= this.limits.maxTransfers && !this.evictOne()) {
      return this.refuse(rinfo, req.filename, ErrorCode.NOT_DEFINED, 'too many transfers, try again');
    }
    const t = new Transfer(this, rinfo, req.filename, this.limits);
    this.transfers.add(t);
    this.byClient.set(key, t);
    this.open(t, req, mode).catch(() => {
      if (t.state !== 'done') t.finish('internal error', false);
    });
  }

  /** Make room by ending the oldest transfer whose client never answered (spoofed or dead). */
  private evictOne(): boolean {
    for (const t of this.transfers) {
      if (!t.confirmed && t.state !== 'opening') {
        t.fail(ErrorCode.NOT_DEFINED, 'server busy', 'evicted: no answer from client');
        return true;
      }
    }
    return false;
  }

  private async open(t: Transfer, req: RequestPacket, mode: 'octet' | 'netascii'): Promise<void> {
    const rinfo = t.client;
    const abandon = (code: number, message: string, result: string): void => {
      this.reply(rinfo, code, message);
      t.finish(result, false);
    };
    let rel: string;
    try {
      rel = requestPath(req.filename);
    } catch (e) {
      return abandon(ErrorCode.ACCESS_VIOLATION, 'access violation', `refused: ${(e as Error).message}`);
    }
    // 1. Memory files, 2. the root directory.
    let content: Buffer | undefined;
    const files = this.opts.files;
    if (files) {
      let found: TftpFileContent | undefined;
      try {
        found = files instanceof Map ? files.get(rel) : await files(rel);
      } catch {
        found = undefined;
      }
      if (found !== undefined) content = typeof found === 'string' ? Buffer.from(found, 'utf8') : Buffer.isBuffer(found) ? found : Buffer.from(found.buffer, found.byteOffset, found.byteLength);
    }
    let opened: Awaited<ReturnType<typeof openInRoot>> | undefined;
    if (!content) {
      if (this.rootReal === undefined) return abandon(ErrorCode.FILE_NOT_FOUND, 'file not found', 'refused: file not found');
      try {
        opened = await openInRoot(this.rootReal, rel);
      } catch (e) {
        if (e instanceof PathError && e.kind === 'not-found') return abandon(ErrorCode.FILE_NOT_FOUND, 'file not found', 'refused: file not found');
        return abandon(ErrorCode.ACCESS_VIOLATION, 'access violation', `refused: ${(e as Error).message}`);
      }
    }
    if (t.ended || this.stopping) {
      await opened?.handle.close().catch(() => undefined);
      return;
    }
    if (mode === 'netascii' && opened) {
      if (opened.size > this.limits.maxNetasciiBytes) {
        await opened.handle.close().catch(() => undefined);
        return abandon(ErrorCode.DISK_FULL, 'file too large for netascii', 'refused: file too large for netascii');
      }
      try {
        const buffer = Buffer.allocUnsafe(opened.size);
        const { bytesRead } = await opened.handle.read(buffer, 0, opened.size, 0);
        content = buffer.subarray(0, bytesRead);
      } finally {
        await opened.handle.close().catch(() => undefined);
        opened = undefined;
      }
    }
    if (mode === 'netascii' && content) content = toNetascii(content);
    const size = content ? content.length : opened!.size;
    const { blksize, windowsize, timeoutSeconds, oack } = negotiate(req.options, this.limits, size);
    const source: BlockSource = content ? new MemorySource(content, blksize) : new FileSource(opened!.handle, size, blksize, windowsize, this.pool);
    let socket: Socket;
    try {
      socket = await this.transferSocket();
    } catch (e) {
      await source.close();
      return abandon(ErrorCode.NOT_DEFINED, 'no free port', `failed: ${(e as Error).message}`);
    }
    if (t.ended || this.stopping) {
      socket.close();
      await source.close();
      return;
    }
    this.stats.transfers++;
    t.begin(socket, source, blksize, windowsize, oack, timeoutSeconds);
  }

  /** A socket for one transfer: any free port, or the first free one of portRange. */
  private async transferSocket(): Promise<Socket> {
    const range = this.opts.portRange;
    if (!range) return this.bindTransferSocket(0);
    const [low, high] = range;
    let lastError: Error = new Error(`every port of ${low}:${high} is in use`);
    for (let tries = high - low + 1; tries > 0; tries--) {
      const port = this.nextPort;
      this.nextPort = port >= high ? low : port + 1;
      if (this.portsInUse.has(port)) continue;
      try {
        const socket = await this.bindTransferSocket(port);
        this.portsInUse.add(port);
        socket.once('close', () => this.portsInUse.delete(port));
        return socket;
      } catch (e) {
        lastError = e as Error; // taken by another program: try the next one
      }
    }
    throw lastError;
  }

  private bindTransferSocket(port: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = createSocket({ type: this.socketType, lookup: literalLookup(this.socketType === 'udp6' ? 6 : 4) as never });
      const onError = (e: Error): void => {
        try {
          socket.close();
        } catch {
          /* not open */
        }
        reject(e);
      };
      socket.once('error', onError);
      socket.bind({ address: this.bindAddress, port, exclusive: true }, () => {
        socket.off('error', onError);
        socket.on('error', () => undefined);
        resolve(socket);
      });
    });
  }
}

/** Create a server (not yet listening). */
export function createTftpServer(opts: TftpServerOptions): TftpServer {
  return new TftpServer(opts);
}
