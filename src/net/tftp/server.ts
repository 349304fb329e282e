/**
 * A read-only TFTP server: RFC 1350 read requests (octet, netascii), RFC 2347/2348/2349/7440
 * options, one fresh UDP port (transfer ID) per transfer, retransmission with exponential
 * back-off, bounded concurrency and memory. Knows nothing of what it serves.
 *
 * This file is the request port and the server's lifecycle; config.ts checks the options,
 * content.ts finds what a request gets, transfer.ts runs one transfer, sockets.ts binds ports,
 * ratelimit.ts bounds the errors sent to strangers.
 */
import type { RemoteInfo, Socket, SocketType } from 'node:dgram';
import { promises as fsp } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { TftpError } from './errors.js';
import { decodePacket, encodeError, ErrorCode, Opcode, TftpDecodeError, transferMode, type RequestPacket } from './packet.js';
import { negotiate } from './options.js';
import { requestPath } from './paths.js';
import { BufferPool, FileSource, MemorySource, type BlockSource } from './source.js';
import { ErrorRateLimit } from './ratelimit.js';
import { serverConfig, type Limits, type TftpServerOptions, type TftpServerStats, type TftpTransferRecord } from './config.js';
import { findContent } from './content.js';
import { Transfer, type TransferHost } from './transfer.js';
import { TransferPorts, udpSocket } from './sockets.js';

export { blksizeCapFor } from './config.js';
export type { TftpFileContent, TftpFileProvider, TftpServerOptions, TftpServerStats, TftpTransferRecord } from './config.js';

/**
 * The server. `start()` binds the request port and resolves once listening; after that the
 * caller may drop privileges (process.setgid/setuid): transfers use fresh unprivileged ports and
 * files are opened per request. `stop()` ends every transfer and closes every socket.
 */
export class TftpServer implements TransferHost {
  private readonly opts: TftpServerOptions;
  private readonly limits: Limits;
  private readonly bindAddress: string;
  private readonly socketType: SocketType;
  private readonly pool = new BufferPool();
  private readonly transfers = new Set<Transfer>();
  private readonly byClient = new Map<string, Transfer>();
  private readonly ports: TransferPorts;
  private socket?: Socket;
  private rootReal?: string;
  private stopping = false;
  private readonly busyPollMs: number;
  /** Counters since start (read-only for callers). */
  readonly stats: TftpServerStats = { requestPackets: 0, transferPackets: 0, transfers: 0, completed: 0, refused: 0, errorsLimited: 0 };
  private readonly errorLimit: ErrorRateLimit;

  /** Throws a TftpError naming the bad option. */
  constructor(opts: TftpServerOptions) {
    this.opts = opts;
    const c = serverConfig(opts);
    this.bindAddress = c.bindAddress;
    this.socketType = c.socketType;
    this.limits = c.limits;
    this.busyPollMs = c.busyPollMs;
    this.errorLimit = new ErrorRateLimit(c.maxErrorsPerSecond);
    this.ports = new TransferPorts(c.socketType, c.bindAddress, c.portRange);
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
    if (this.socket) throw new TftpError('tftp: server already started');
    if (this.opts.root !== undefined) {
      try {
        this.rootReal = await fsp.realpath(this.opts.root);
      } catch {
        throw new TftpError(`tftp: root directory not found: ${this.opts.root}`);
      }
      const st = await fsp.stat(this.rootReal);
      if (!st.isDirectory()) throw new TftpError(`tftp: root is not a directory: ${this.opts.root}`);
    }
    const socket = udpSocket(this.socketType);
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException): void => {
        reject(new TftpError(`tftp: cannot bind ${this.bindAddress}:${this.opts.port ?? 69}: ${e.code ?? e.message}`, { cause: e }));
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
    if (!this.socket) throw new TftpError('tftp: server not started');
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
    const found = await findContent(rel, mode, { files: this.opts.files, rootReal: this.rootReal, maxNetasciiBytes: this.limits.maxNetasciiBytes });
    if ('code' in found) return abandon(found.code, found.message, found.result);
    const { content, opened } = found;
    if (t.ended || this.stopping) {
      await opened?.handle.close().catch(() => undefined);
      return;
    }
    const size = content ? content.length : opened.size;
    const { blksize, windowsize, timeoutSeconds, oack } = negotiate(req.options, this.limits, size);
    const source: BlockSource = content ? new MemorySource(content, blksize) : new FileSource(opened.handle, size, blksize, windowsize, this.pool);
    let socket: Socket;
    try {
      socket = await this.ports.open();
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
}

/** Create a server (not yet listening). Throws a TftpError naming a bad option. */
export function createTftpServer(opts: TftpServerOptions): TftpServer {
  return new TftpServer(opts);
}
