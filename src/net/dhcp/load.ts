/**
 * Overload control: in a busy event-loop turn, new exchanges (DISCOVERs) wait, newest first,
 * while the exchanges already started (REQUESTs for our offers) are answered at once; when the
 * server cannot keep up, the DISCOVERs it cannot serve are shed before they are decoded. In a
 * light turn (at most BUSY_BUDGET datagrams so far, none waiting) every datagram is answered at
 * once, in order.
 *
 * Node's dgram gives no receive-queue depth (no FIONREAD), but libuv reads at most 32 datagrams
 * from a socket per wake-up of the event loop before it polls again (uv__udp_recvmsg in libuv's
 * src/unix/udp.c: `count = 32`): an event-loop turn that brings 32 or more datagrams found the
 * kernel's queue still holding more. After such a turn only a few waiting DISCOVERs are served,
 * so the loop goes back to reading (and answering REQUESTs) soon; after a turn that drained the
 * queue, more are. DISCOVERs that waited longer than `maxWaitMs` (their client has timed out or
 * resent) or that overflow `maxWaiting` are dropped, oldest first, and so are all of them while
 * more than `maxPendingCommits` leases wait for their journal sync: memory stays bounded whatever
 * the number of clients.
 * Where the sockets read a burst directly after Node's datagram (sockets.ts, direct.ts), they
 * know whether they left datagrams in the kernel's queue, and say so (`drained`): that answer
 * stands for the turn in place of the count.
 *
 * The sockets' receive buffers (sockets.ts) are kept small, 512 KiB (Linux doubles it: some 500
 * requests, a room of machines powering on at once), not megabytes: what the kernel queues waits
 * before any of this sees it, and a queue of Q datagrams read at N/s delays every answer by Q/N.
 * With seconds of traffic queued every OFFER comes after its client gave up (perfdhcp waits 1 s,
 * a PXE ROM 4 s before it resends), the work is all wasted, and the throughput collapses; with a
 * short queue the excess is dropped by the kernel instead, before it costs anything.
 */

/** Datagrams per turn at which libuv stops reading a socket and polls again. */
export const FULL_TURN = 32;
/** DISCOVERs served after a turn that left datagrams in the kernel's queue, and after one that did not. */
const BUSY_BUDGET = 8;
const IDLE_BUDGET = 64;

export interface LoadGateOptions {
  /** DISCOVERs kept waiting at most (default 1024). */
  maxWaiting?: number;
  /** How long a DISCOVER may wait, ms (default 1000). */
  maxWaitMs?: number;
  /** Leases waiting for their journal sync beyond which no DISCOVER is served (default 4096). */
  maxPendingCommits?: number;
}

export class LoadGate<T> {
  private turn = 0;
  /** This turn's direct read left datagrams waiting (true), found the queue empty (false), or was not made. */
  private left: boolean | undefined;
  private scheduled = false;
  /** The waiting DISCOVERs: a ring of `maxWaiting` slots, oldest at `head` (drops are O(1)). */
  private readonly items: Array<T | undefined>;
  private readonly since: Float64Array;
  private head = 0;
  private count = 0;
  private readonly maxWaiting: number;
  private readonly maxWaitMs: number;
  private readonly maxPendingCommits: number;

  /**
   * `serve` handles a DISCOVER; `shed` counts those dropped; `pendingCommits` tells how many
   * leases wait for their sync.
   */
  constructor(
    private readonly serve: (item: T) => void,
    private readonly shed: (n: number) => void,
    private readonly pendingCommits: () => number,
    o: LoadGateOptions = {},
  ) {
    this.maxWaiting = Math.max(1, o.maxWaiting ?? 1024);
    this.maxWaitMs = o.maxWaitMs ?? 1000;
    this.maxPendingCommits = o.maxPendingCommits ?? 4096;
    this.items = new Array<T | undefined>(this.maxWaiting);
    this.since = new Float64Array(this.maxWaiting);
  }

  /** Count one datagram of this turn. */
  arrived(): void {
    this.turn++;
    if (!this.scheduled) this.schedule();
  }

  /** A direct read of the socket's queue ended: with datagrams `left` in it, or none. */
  drained(left: boolean): void {
    this.left = left;
  }

  /**
   * Must a DISCOVER arriving now wait? Not while the turn is light and none waits: at low load
   * every datagram is answered at once, in order.
   */
  busy(): boolean {
    return this.turn > BUSY_BUDGET || this.count > 0;
  }

  /** Keep a DISCOVER for the end of this turn. */
  defer(item: T): void {
    if (this.count >= this.maxWaiting) this.drop(1);
    const at = (this.head + this.count) % this.maxWaiting;
    this.items[at] = item;
    this.since[at] = performance.now();
    this.count++;
    if (!this.scheduled) this.schedule();
  }

  /** Forget the waiting DISCOVERs (the server is stopping). */
  clear(): void {
    this.items.fill(undefined);
    this.head = this.count = 0;
  }

  /** DISCOVERs waiting now. */
  get length(): number {
    return this.count;
  }

  private schedule(): void {
    this.scheduled = true;
    setImmediate(this.endTurn);
  }

  /** Drop the `n` oldest. */
  private drop(n: number): void {
    for (let i = 0; i < n; i++) this.items[(this.head + i) % this.maxWaiting] = undefined;
    this.head = (this.head + n) % this.maxWaiting;
    this.count -= n;
    this.shed(n);
  }

  private readonly endTurn = (): void => {
    this.scheduled = false;
    const full = this.left ?? this.turn >= FULL_TURN;
    this.turn = 0;
    this.left = undefined;
    const now = performance.now();
    let stale = 0;
    while (stale < this.count && now - this.since[(this.head + stale) % this.maxWaiting] > this.maxWaitMs) stale++;
    if (stale) this.drop(stale);
    let budget = full ? BUSY_BUDGET : IDLE_BUDGET;
    if (this.pendingCommits() > this.maxPendingCommits) budget = 0;
    for (; budget > 0 && this.count > 0; budget--) {
      // newest first
      const at = (this.head + this.count - 1) % this.maxWaiting;
      const item = this.items[at] as T;
      this.items[at] = undefined;
      this.count--;
      this.serve(item);
    }
    if (this.count > 0 && !this.scheduled) this.schedule();
  };
}

/**
 * The message type (option 53) read straight from a datagram's options field, without decoding
 * the rest; 0 when it is not there (option overload, a malformed packet: those take the full path).
 */
export function peekMessageType(msg: Buffer): number {
  if (msg.length < 241 || msg.readUInt32BE(236) !== 0x63825363) return 0;
  let i = 240;
  while (i < msg.length) {
    const code = msg[i];
    if (code === 0) {
      i++;
      continue;
    }
    if (code === 255 || i + 1 >= msg.length) return 0;
    const len = msg[i + 1];
    if (code === 53) return len === 1 && i + 2 < msg.length ? msg[i + 2] : 0;
    i += 2 + len;
  }
  return 0;
}
