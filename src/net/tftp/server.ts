/**
 * A read-only TFTP server: RFC 1350 read requests (octet, netascii), RFC 2347/2348/2349/7440
 * options, one fresh UDP port (transfer ID) per transfer, retransmission with exponential
 * back-off, bounded concurrency and memory. Knows nothing of what it serves.
 *
 * This file is the request port and the server's lifecycle; config.ts checks the options,
 * content.ts finds what a request gets (paths.ts confines it to the root and opens it),
 * workers.ts hands transfers to worker threads, runner.ts and transfer.ts run them, sockets.ts
 * binds ports, ratelimit.ts bounds the errors sent to strangers.
 */
import type { RemoteInfo, Socket, SocketType } from 'node:dgram';
import { promises as fsp } from 'node:fs';
import { TftpError } from './errors.js';
import { decodePacket, encodeError, ErrorCode, Opcode, TftpDecodeError, transferMode, type RequestPacket } from './packet.js';
import { negotiate } from './options.js';
import { closeFd, requestPath } from './paths.js';
import { ErrorRateLimit } from './ratelimit.js';
import { serverConfig, type Limits, type ServerConfig, type TftpServerOptions, type TftpServerStats, type TftpTransferRecord } from './config.js';
import { findContent } from './content.js';
import { TransferPorts, udpSocket } from './sockets.js';
import type { TransferSpec } from './runner.js';
import { createRunners, defaultWorkerScript, WorkerRunner, type Runner } from './workers.js';

export { blksizeCapFor } from './config.js';
export type { TftpFileContent, TftpFileProvider, TftpServerOptions, TftpServerStats, TftpTransferRecord } from './config.js';

/** A request being opened or a transfer running, as the server's thread sees it. */
interface Slot {
  id: number;
  key: string;
  client: RemoteInfo;
  file: string;
  /** The client answered on the transfer port (not evictable any more). */
  confirmed: boolean;
  phase: 'opening' | 'running' | 'done';
  runner?: Runner;
  /** The port it holds from the port range. */
  port?: number;
  /** Why it was ended while still opening, to end it once it runs. */
  cancel?: [code: number, message: string, result: string];
}

/**
 * The server. `start()` binds the request port, starts the worker threads and resolves once
 * listening; after that the caller may drop privileges (process.setgid/setuid, which apply to the
 * workers too): transfers use fresh unprivileged ports and files are opened per request.
 * `stop()` ends every transfer and closes every socket and worker.
 */
export class TftpServer {
  private readonly opts: TftpServerOptions;
  private readonly config: ServerConfig;
  private readonly limits: Limits;
  private readonly bindAddress: string;
  private readonly socketType: SocketType;
  private readonly slots = new Map<number, Slot>();
  /** Every slot whose transfer has not reported its end (also those evicted), by id. */
  private readonly live = new Map<number, Slot>();
  private readonly byClient = new Map<string, Slot>();
  private readonly ports: TransferPorts;
  private runners: Runner[] = [];
  private counters: Float64Array<ArrayBufferLike> = new Float64Array(0);
  private nextId = 1;
  private socket?: Socket;
  private rootReal?: string;
  private stopping = false;
  private readonly errorLimit: ErrorRateLimit;
  private readonly counts = { requestPackets: 0, transfers: 0, completed: 0, refused: 0, errorsLimited: 0 };

  /** Throws a TftpError naming the bad option. */
  constructor(opts: TftpServerOptions) {
    this.opts = opts;
    const c = serverConfig(opts);
    this.config = c;
    this.bindAddress = c.bindAddress;
    this.socketType = c.socketType;
    this.limits = c.limits;
    this.errorLimit = new ErrorRateLimit(c.maxErrorsPerSecond);
    this.ports = new TransferPorts(c.portRange);
  }

  /** Counters since start (a snapshot). */
  get stats(): TftpServerStats {
    let transferPackets = 0;
    let limited = 0;
    for (let i = 0; i < this.counters.length; i += 2) {
      transferPackets += this.counters[i];
      limited += this.counters[i + 1];
    }
    return { ...this.counts, transferPackets, errorsLimited: this.counts.errorsLimited + limited };
  }

  /** The blksize cap in force. */
  get maxBlksize(): number {
    return this.limits.maxBlksize;
  }

  /** Transfers running or being opened. */
  get activeTransfers(): number {
    return this.slots.size;
  }

  /** Threads running transfers (0: they run on the server's own thread). */
  get workerThreads(): number {
    return this.runners.filter((r) => r instanceof WorkerRunner).length;
  }

  /** Bind the request port and start the workers; resolves with the bound address once listening. */
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
    try {
      await this.startRunners();
    } catch (e) {
      socket.close();
      throw e;
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

  private async startRunners(): Promise<void> {
    const c = this.config;
    const script = this.opts.workerScript ?? defaultWorkerScript();
    const { runners, counters } = createRunners(
      c.workers,
      script,
      { socketType: c.socketType, bindAddress: c.bindAddress, limits: c.limits, busyPollMs: c.busyPollMs, maxErrorsPerSecond: c.maxErrorsPerSecond, rateTable: this.errorLimit.table },
      { confirmed: (id) => this.onConfirmed(id), ended: (id, record) => this.onEnded(id, record) },
    );
    this.runners = runners;
    this.counters = new Float64Array(counters);
    try {
      await Promise.all(runners.map((r) => (r instanceof WorkerRunner ? r.ready() : undefined)));
    } catch (e) {
      await Promise.all(runners.map((r) => r.stop(ErrorCode.NOT_DEFINED, 'server shutting down').catch(() => undefined)));
      throw new TftpError(`tftp: cannot start worker threads from ${script}: ${(e as Error).message}`, { cause: e });
    }
  }

  address(): { address: string; port: number } {
    if (!this.socket) throw new TftpError('tftp: server not started');
    const a = this.socket.address();
    return { address: a.address, port: a.port };
  }

  /** End all transfers and close all sockets and workers. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    // Requests still being opened see `stopping` and close what they opened.
    for (const slot of this.slots.values()) if (slot.phase === 'opening') this.drop(slot);
    await Promise.all(this.runners.map((r) => r.stop(ErrorCode.NOT_DEFINED, 'server shutting down')));
    const socket = this.socket;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  /** Whether an error packet may go to this source now (counted when it may not). */
  private errorAllowed(rinfo: RemoteInfo): boolean {
    if (this.errorLimit.allow(rinfo.address)) return true;
    this.counts.errorsLimited++;
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
    this.counts.refused++;
    this.reply(rinfo, code, message);
    this.logRecord({ client: `${rinfo.address}:${rinfo.port}`, file, bytes: 0, ms: 0, result: `refused: ${message}`, ok: false });
  }

  /** The slot no longer counts against maxTransfers (its transfer may still be closing). */
  private drop(slot: Slot): void {
    slot.phase = 'done';
    this.slots.delete(slot.id);
    if (this.byClient.get(slot.key) === slot) this.byClient.delete(slot.key);
  }

  /** End a slot with an error to its client: now if it runs, once it runs if it is still opening. */
  private end(slot: Slot, code: number, message: string, result: string): void {
    if (slot.phase === 'running') slot.runner!.cancel(slot.id, code, message, result);
    else if (slot.phase === 'opening') slot.cancel = [code, message, result];
    this.drop(slot);
  }

  private onConfirmed(id: number): void {
    const slot = this.live.get(id);
    if (slot) slot.confirmed = true;
  }

  private onEnded(id: number, record: TftpTransferRecord): void {
    const slot = this.live.get(id);
    if (!slot) return;
    this.live.delete(id);
    if (slot.port !== undefined) this.ports.release(slot.port);
    if (slot.phase !== 'done') this.drop(slot);
    if (record.ok) this.counts.completed++;
    this.logRecord({ ...record, client: slot.key, file: slot.file });
  }

  private onRequest(msg: Buffer, rinfo: RemoteInfo): void {
    this.counts.requestPackets++;
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
    if (this.slots.size >= this.limits.maxTransfers && !this.evictOne()) {
      return this.refuse(rinfo, req.filename, ErrorCode.NOT_DEFINED, 'too many transfers, try again');
    }
    const slot: Slot = { id: this.nextId++, key, client: rinfo, file: req.filename, confirmed: false, phase: 'opening' };
    this.slots.set(slot.id, slot);
    this.byClient.set(key, slot);
    this.open(slot, req, mode).catch(() => {
      if (slot.phase !== 'done') this.drop(slot);
    });
  }

  /** Make room by ending the oldest transfer whose client never answered (spoofed or dead). */
  private evictOne(): boolean {
    for (const slot of this.slots.values()) {
      if (!slot.confirmed && slot.phase === 'running') {
        this.end(slot, ErrorCode.NOT_DEFINED, 'server busy', 'evicted: no answer from client');
        return true;
      }
    }
    return false;
  }

  /** The runner with the fewest transfers. */
  private pickRunner(): Runner {
    let best = this.runners[0];
    for (const r of this.runners) if (r.load < best.load) best = r;
    return best;
  }

  private async open(slot: Slot, req: RequestPacket, mode: 'octet' | 'netascii'): Promise<void> {
    const rinfo = slot.client;
    // Evicted or stopped meanwhile (the phase changes under the awaits below).
    const gone = (): boolean => slot.phase === 'done' || this.stopping;
    const abandon = (code: number, message: string, result: string): void => {
      this.counts.refused++;
      this.reply(rinfo, code, message);
      if (slot.phase !== 'done') this.drop(slot);
      this.logRecord({ client: slot.key, file: slot.file, bytes: 0, ms: 0, result, ok: false });
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
    if (gone()) {
      if (opened) await closeFd(opened.fd);
      return;
    }
    const size = content ? content.length : opened.size;
    const { blksize, windowsize, timeoutSeconds, oack } = negotiate(req.options, this.limits, size);
    const spec: TransferSpec = {
      id: slot.id,
      client: { address: rinfo.address, port: rinfo.port },
      file: req.filename,
      ...(opened ? { fd: opened.fd } : { content }),
      size,
      blksize,
      windowsize,
      oack,
      timeoutSeconds,
      port: 0,
    };
    const runner = this.pickRunner();
    let lastError = this.ports.exhausted();
    for (const port of this.ports.candidates()) {
      if (gone()) {
        this.ports.release(port);
        break;
      }
      // Its events may come as soon as it runs.
      this.live.set(slot.id, slot);
      try {
        await runner.start({ ...spec, port });
      } catch (e) {
        this.live.delete(slot.id);
        this.ports.release(port);
        lastError = (e as Error).message;
        continue; // taken by another program: try the next one
      }
      // Running: the runner owns the descriptor now and reports the end.
      if (this.config.portRange) slot.port = port;
      this.counts.transfers++;
      slot.runner = runner;
      if (gone()) {
        const [code, message, result] = slot.cancel ?? [ErrorCode.NOT_DEFINED, 'server shutting down', 'server stopped'];
        runner.cancel(slot.id, code, message, result);
      } else slot.phase = 'running';
      return;
    }
    if (opened) await closeFd(opened.fd);
    if (gone()) return;
    abandon(ErrorCode.NOT_DEFINED, 'no free port', `failed: ${lastError}`);
  }
}

/** Create a server (not yet listening). Throws a TftpError naming a bad option. */
export function createTftpServer(opts: TftpServerOptions): TftpServer {
  return new TftpServer(opts);
}
