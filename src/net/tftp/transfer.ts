/**
 * One read transfer on its own socket (its transfer ID): DATA and OACK out, ACKs in, with
 * retransmission on a timer and exponential back-off. Lock-step transfers never resend on a
 * duplicate ACK (RFC 1123 §4.2.3.1, the Sorcerer's Apprentice); windowed ones (RFC 7440) resend a
 * window once for a duplicate ACK of its position. Packets leave through direct calls where
 * native.ts has them (a whole window in one segmented send on Linux), else through dgram; they
 * arrive through the runner's batch reads (batch.ts, `drain`) or through dgram ('message').
 */
import type { Socket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { decodePacket, encodeError, encodeOack, ErrorCode, Opcode, writeDataHeader, type TftpOption } from './packet.js';
import { blockCount, type BlockSource } from './source.js';
import { nativeSocket, type NativeSocket } from './native.js';
import type { Limits, TftpTransferRecord } from './config.js';

/** An address and port (a transfer's client, or a stranger). */
export interface Peer {
  address: string;
  port: number;
}

/** What a transfer needs of the thread that runs it. */
export interface TransferHost {
  /** Called for each datagram that arrives on a transfer port. */
  countPacket(): void;
  /** Called after each send of a lock-step transfer (busy polling for the reply). */
  awaitReply(t: Transfer): void;
  /** Whether an error packet may go to this stranger now (rate limit). */
  errorAllowed(peer: Peer): boolean;
  /** Called once, when the client first answers on the transfer port. */
  transferConfirmed(t: Transfer): void;
  /** Called once when the transfer has ended and its socket is closed. */
  transferEnded(t: Transfer, record: TftpTransferRecord): void;
}

type State = 'opening' | 'oack' | 'data' | 'done';

/** One read transfer on its own socket. */
export class Transfer {
  state: State = 'opening';
  /** A packet from the client arrived on the transfer port (not evictable any more). */
  confirmed = false;
  socket?: Socket;
  /** Direct system calls on the socket (native.ts), where available. */
  native?: NativeSocket;
  source?: BlockSource;
  blksize = 512;
  windowsize = 1;
  lastBlock = 1;
  /** Oldest unacknowledged block (absolute). */
  base = 1;
  /** Highest block sent so far (absolute). */
  sentEnd = 0;
  private oackPacket?: Buffer;
  /** Reusable DATA packet (header + one block), or a whole window of them for segmented sends. */
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
    private readonly server: TransferHost,
    readonly id: number,
    readonly client: Peer,
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
    this.native = nativeSocket(socket, this.client);
    // A window leaves in one send, cut into its DATA packets by the kernel (Linux UDP GSO).
    if (windowsize > 1) this.native?.segment(4 + blksize);
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

  /**
   * Send LENGTH bytes of BUF to the client: a direct call where it can, else dgram (which may keep
   * the bytes queued: transmit then leaves the buffer to it).
   */
  private send(buf: Buffer, length = buf.length): void {
    const socket = this.socket!;
    // Queued dgram sends go first: the direct call must not overtake them.
    if (this.native && socket.getSendQueueCount() === 0 && this.native.send(buf, length)) return;
    socket.send(length === buf.length ? buf : buf.subarray(0, length), this.client.port, this.client.address);
  }

  private sendOack(): void {
    this.send(this.oackPacket!);
    this.arm();
    this.server.awaitReply(this);
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
    const size = 4 + this.blksize;
    // Packets are laid out one after another in one buffer: a segmented send takes up to
    // `segmentsPerSend` of them at once; otherwise each leaves on its own. A direct send has
    // handed the bytes to the kernel when it returns, so the buffer is reused.
    const group = Math.max(1, Math.min(this.native?.segmentsPerSend ?? 0, last - first + 1));
    const socket = this.socket!;
    for (let n = first; n <= last; ) {
      // A send dgram still holds queued owns its bytes: write the next ones elsewhere.
      if (!this.packet || this.packet.length < group * size || socket.getSendQueueCount() !== 0) this.packet = Buffer.allocUnsafe(group * size);
      const packet = this.packet;
      const end = Math.min(last, n + group - 1);
      let length = 0;
      for (let b = n; b <= end; b++) {
        writeDataHeader(packet, b, length);
        length += 4 + source.block(b).copy(packet, length + 4);
      }
      if (end === n) this.send(packet, length);
      else if (socket.getSendQueueCount() !== 0 || !this.native!.send(packet, length)) {
        // Queued sends first, or segmentation refused (a device without checksum offload, a path
        // MTU below a packet: off for good): one send per packet.
        if (socket.getSendQueueCount() === 0) this.native!.unsegment();
        for (let at = 0; at < length; at += size) this.send(packet.subarray(at), Math.min(size, length - at));
      }
      n = end + 1;
    }
    if (last > this.sentEnd) this.sentEnd = last;
    // A window's reply comes after the client has read the whole window: polling for it would
    // only take CPU time from the client.
    if (this.windowsize === 1) this.server.awaitReply(this);
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
    // Timers run before the loop reads its sockets: after a stall (a busy CPU, a collection) the
    // reply may be waiting unread. Read it first, and resend only if it still has not come.
    setImmediate(this.onDue);
  };

  private readonly onDue = (): void => {
    if (this.state === 'done' || this.timer || this.deadline - performance.now() > 0.5) return;
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

  private confirm(): void {
    if (this.confirmed) return;
    this.confirmed = true;
    this.server.transferConfirmed(this);
  }

  private progress(): void {
    this.confirm();
    this.retriesLeft = this.limits.retries;
    this.interval = this.baseTimeout;
  }

  private onMessage(msg: Buffer, rinfo: Peer): void {
    if (rinfo.port !== this.client.port || rinfo.address !== this.client.address) this.onStranger(rinfo);
    else this.onPacket(msg);
  }

  /**
   * Read what is waiting on the socket with direct calls, without waiting (busy polling, see
   * runner.ts; batch reads, batch.ts): the datagrams dgram would otherwise read after the event
   * loop's next poll, at most LIMIT of them. Whether one was read.
   */
  drain(buf: Buffer, limit = Infinity): boolean {
    const native = this.native;
    if (!native || this.state === 'done') return false;
    let read = 0;
    for (let n = native.receive(buf); n >= 0; n = read < limit ? native.receive(buf) : -1) {
      read++;
      if (native.fromClient) this.onPacket(buf, n);
      else {
        const sender = native.sender;
        if (sender) this.onStranger(sender);
      }
    }
    return read > 0;
  }

  /** RFC 1350: a packet from another TID gets error 5 and the transfer goes on. */
  private onStranger(rinfo: Peer): void {
    this.server.countPacket();
    if (this.state === 'done') return;
    if (this.server.errorAllowed(rinfo)) this.socket!.send(encodeError(ErrorCode.UNKNOWN_TID, 'unknown transfer ID'), rinfo.port, rinfo.address);
  }

  /** The first LENGTH bytes of MSG came from the client. */
  private onPacket(msg: Buffer, length = msg.length): void {
    this.server.countPacket();
    if (this.state === 'done') return;
    if (length < 4) return;
    const op = msg.readUInt16BE(0);
    if (op === Opcode.ACK) this.onAck(msg.readUInt16BE(2));
    else if (op === Opcode.ERROR) {
      let text = '';
      try {
        const p = decodePacket(msg.subarray(0, length));
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
      this.confirm();
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
      if (this.socket) this.send(encodeError(code, message));
    } catch {
      /* socket already gone */
    }
    this.finish(result, false);
  }

  finish(result: string, ok: boolean): void {
    if (this.state === 'done') return;
    this.state = 'done';
    this.native?.close();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const socket = this.socket;
    const source = this.source;
    const record: TftpTransferRecord = {
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
    };
    // The port is free, and the end reported, once the socket is closed. A send the kernel did not
    // take at once (the final error) is still queued: let it leave first.
    const close = (): void => {
      try {
        socket?.close();
      } catch {
        /* already closed */
      }
      void source?.close();
      this.server.transferEnded(this, record);
    };
    if (socket && socket.getSendQueueCount() > 0) setImmediate(close);
    else close();
  }
}
