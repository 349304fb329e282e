/**
 * Runs transfers on the thread it lives on: the server's own thread when it has no workers, or
 * one worker thread each (worker.ts). The server has already checked the request, confined its
 * path and opened the file; a runner gets the open descriptor (or the content), binds the
 * transfer's port, runs the transfer and reports when the client first answers and when it ends.
 * It opens no file and never sees the request port. Its transfer sockets are read together where
 * the direct calls can be made (batch.ts `batchReads`: on worker threads unless BE_TFTP_BATCH=0),
 * and one lock-step transfer alone is busy polled.
 */
import type { SocketType } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import type { TftpOption } from './packet.js';
import type { Limits, TftpTransferRecord } from './config.js';
import { BufferPool, FileSource, MemorySource, type BlockSource } from './source.js';
import { ErrorRateLimit } from './ratelimit.js';
import { BatchReader } from './batch.js';
import { bindUdp } from './sockets.js';
import { Transfer, type Peer, type TransferHost } from './transfer.js';

/** One transfer as the server hands it over (plain data: it crosses threads). */
export interface TransferSpec {
  id: number;
  client: Peer;
  file: string;
  /** An open regular file, owned by the runner once `start` resolved (it closes it). */
  fd?: number;
  /** Or the content itself (memory files, netascii conversions). */
  content?: Uint8Array;
  size: number;
  blksize: number;
  windowsize: number;
  oack: TftpOption[];
  timeoutSeconds?: number;
  /** Port to bind for the transfer (0: any free one). */
  port: number;
}

/** What every runner of one server shares (plain data and shared memory: it crosses threads). */
export interface RunnerConfig {
  socketType: SocketType;
  bindAddress: string;
  limits: Limits;
  busyPollMs: number;
  /** Read the transfer sockets in batches (batch.ts `batchReads`). */
  batchReads: boolean;
  maxErrorsPerSecond: number;
  /** The error rate limit's table (ratelimit.ts), shared by all runners. */
  rateTable: SharedArrayBuffer;
  /** Two Float64 per runner: datagrams received on its transfer ports, error replies not sent (rate limit). */
  counters: SharedArrayBuffer;
  /** This runner's slot in `counters`. */
  index: number;
}

export interface RunnerEvents {
  confirmed(id: number): void;
  ended(id: number, record: TftpTransferRecord): void;
}

/**
 * Busy polling pays while most polls catch the reply. Every POLL_SAMPLE polls the share that did
 * is checked; below POLL_MIN_HITS (a loaded machine, a slow client) polling pauses for
 * POLL_PAUSE_SENDS sends.
 */
const POLL_SAMPLE = 64;
const POLL_MIN_HITS = 0.75;
const POLL_PAUSE_SENDS = 4096;
/**
 * Where the socket can be read with direct calls (native.ts), polling spins on it for at most this
 * long before letting the event loop turn (its timers, the server's messages).
 */
const SPIN_SLICE_MS = 1;
/**
 * Batch reads (batch.ts): each waits (epoll or poll) for at most BATCH_WAIT_MS before the event loop
 * turns; after BATCH_IDLE_READS empty ones in a row the sockets go back to libuv, which sleeps.
 */
const BATCH_WAIT_MS = 1;
const BATCH_IDLE_READS = 3;

export class LocalRunner implements TransferHost {
  private readonly transfers = new Map<number, Transfer>();
  private readonly pool = new BufferPool();
  /** Where direct reads land (ACKs and errors are small; a longer datagram is cut, which is harmless). */
  private readonly receiveBuffer = Buffer.allocUnsafe(2048);
  /** The transfer sockets read together, where the direct calls can be made. */
  private readonly batch: BatchReader | undefined;
  private idleReads = 0;
  /** A turn (`turn`) is queued with setImmediate. */
  private queued = false;
  private readonly errorLimit: ErrorRateLimit;
  private readonly counters: Float64Array;
  private packets = 0;
  private limited = 0;
  private stopping = false;
  private idle?: () => void;

  constructor(
    private readonly config: RunnerConfig,
    private readonly events: RunnerEvents,
  ) {
    this.batch = config.batchReads ? BatchReader.create(this.receiveBuffer) : undefined;
    this.errorLimit = new ErrorRateLimit(config.maxErrorsPerSecond, undefined, config.rateTable);
    this.counters = new Float64Array(config.counters);
  }

  /** Transfers running here. */
  get load(): number {
    return this.transfers.size;
  }

  /**
   * Bind the transfer's port and begin. Resolves with the port; rejects with the bind error, and
   * then the descriptor is still the caller's.
   */
  async start(spec: TransferSpec): Promise<number> {
    if (this.stopping) throw new Error('server stopping');
    const socket = await bindUdp(this.config.socketType, this.config.bindAddress, spec.port);
    let source: BlockSource;
    if (spec.fd !== undefined) source = new FileSource(spec.fd, spec.size, spec.blksize, spec.windowsize, this.pool);
    else {
      const c = spec.content ?? new Uint8Array(0);
      source = new MemorySource(Buffer.from(c.buffer, c.byteOffset, c.byteLength), spec.blksize);
    }
    const t = new Transfer(this, spec.id, spec.client, spec.file, this.config.limits);
    this.transfers.set(spec.id, t);
    t.begin(socket, source, spec.blksize, spec.windowsize, spec.oack, spec.timeoutSeconds);
    if (this.batch?.add(t, socket)) {
      // A datagram dgram read: the batch takes the sockets back from libuv.
      socket.on('message', this.wake);
      if (this.batch.owning) this.queue();
    }
    return socket.address().port;
  }

  /** End a transfer with an error to its client (eviction, shutdown). */
  cancel(id: number, code: number, message: string, result: string): void {
    this.transfers.get(id)?.fail(code, message, result);
  }

  /** End every transfer; resolves once all their sockets are closed. */
  stop(code: number, message: string): Promise<void> {
    this.stopping = true;
    for (const t of [...this.transfers.values()]) t.fail(code, message, 'server stopped');
    if (this.transfers.size === 0) return Promise.resolve();
    return new Promise((resolve) => (this.idle = resolve));
  }

  // TransferHost

  countPacket(): void {
    this.counters[2 * this.config.index] = ++this.packets;
    if (this.polling && this.pollWaiting) {
      this.pollWaiting = false;
      this.pollHits++;
    }
  }

  errorAllowed(peer: Peer): boolean {
    if (this.errorLimit.allow(peer.address)) return true;
    this.counters[2 * this.config.index + 1] = ++this.limited;
    return false;
  }

  transferConfirmed(t: Transfer): void {
    this.events.confirmed(t.id);
  }

  transferEnded(t: Transfer, record: TftpTransferRecord): void {
    this.transfers.delete(t.id);
    this.events.ended(t.id, record);
    if (this.transfers.size === 0) this.idle?.();
  }

  /** Busy polling: the loop keeps turning (polling sockets without sleeping) until then. */
  private pollUntil = 0;
  private polling = false;
  /** A poll is waiting for its reply (a hit once a packet comes while polling). */
  private pollWaiting = false;
  private pollHits = 0;
  private pollCount = 0;
  private pollPaused = 0;
  /** The transfer polled for. */
  private polled?: Transfer;
  private queue(): void {
    if (this.queued) return;
    this.queued = true;
    setImmediate(this.turn);
  }

  private readonly wake = (): void => {
    const b = this.batch!;
    if (b.owning || this.stopping || b.size === 0) return;
    b.own();
    this.idleReads = 0;
    this.queue();
  };

  /** One turn of reading: a slice of busy polling for one transfer, or a batch read. */
  private readonly turn = (): void => {
    this.queued = false;
    if (this.polling) {
      const t = this.polled;
      if (t?.native && !t.ended) {
        // Read the socket directly: the reply is handled (and the next block sent) without a turn
        // of the event loop, for up to a slice at a time.
        const sliceEnd = performance.now() + SPIN_SLICE_MS;
        for (let now = 0; !this.stopping && !t.ended && (now = performance.now()) < this.pollUntil && now < sliceEnd; ) t.drain(this.receiveBuffer);
      }
      if (performance.now() < this.pollUntil && !this.stopping) return this.queue();
      this.polling = false;
      this.pollWaiting = false;
      this.polled = undefined;
    }
    const b = this.batch;
    if (!b?.owning || this.stopping) return;
    if (b.read(BATCH_WAIT_MS) > 0) this.idleReads = 0;
    else if (++this.idleReads >= BATCH_IDLE_READS || b.size === 0) {
      // Nothing came for a while: libuv sleeps until the next datagram (see `wake`).
      b.release();
      return;
    }
    this.queue();
  };

  /**
   * Called after a transfer sent: poll for the reply for `busyPollMicros` instead of sleeping. A
   * pending immediate makes the event loop poll with a zero timeout, so an ACK that comes back
   * within that time is read with no wake-up of a sleeping thread, which on a small machine costs
   * more than the whole packet's work. Only while one transfer runs here: with more, the loop has
   * their packets to read anyway, and spinning would only take CPU time from the rest. Paused
   * while too few polls catch their reply (see POLL_MIN_HITS).
   */
  awaitReply(t: Transfer): void {
    if (this.config.busyPollMs <= 0 || this.transfers.size !== 1) return;
    this.polled = t;
    if (this.pollPaused > 0) {
      this.pollPaused--;
      return;
    }
    if (++this.pollCount >= POLL_SAMPLE) {
      if (this.pollHits < POLL_SAMPLE * POLL_MIN_HITS) this.pollPaused = POLL_PAUSE_SENDS;
      this.pollCount = this.pollHits = 0;
    }
    this.pollUntil = performance.now() + this.config.busyPollMs;
    this.pollWaiting = true;
    this.polling = true;
    this.queue();
  }
}
