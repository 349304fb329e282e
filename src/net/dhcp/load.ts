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
  private scheduled = false;
  private readonly waiting: T[] = [];
  private readonly since: number[] = [];
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
    this.maxWaiting = o.maxWaiting ?? 1024;
    this.maxWaitMs = o.maxWaitMs ?? 1000;
    this.maxPendingCommits = o.maxPendingCommits ?? 4096;
  }

  /** Count one datagram of this turn. */
  arrived(): void {
    this.turn++;
    this.schedule();
  }

  /**
   * Must a DISCOVER arriving now wait? Not while the turn is light and none waits: at low load
   * every datagram is answered at once, in order.
   */
  busy(): boolean {
    return this.turn > BUSY_BUDGET || this.waiting.length > 0;
  }

  /** Keep a DISCOVER for the end of this turn. */
  defer(item: T): void {
    if (this.waiting.length >= this.maxWaiting) this.drop(1);
    this.waiting.push(item);
    this.since.push(performance.now());
    this.schedule();
  }

  /** Forget the waiting DISCOVERs (the server is stopping). */
  clear(): void {
    this.waiting.length = 0;
    this.since.length = 0;
  }

  /** DISCOVERs waiting now. */
  get length(): number {
    return this.waiting.length;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.endTurn);
  }

  private drop(n: number): void {
    this.waiting.splice(0, n);
    this.since.splice(0, n);
    this.shed(n);
  }

  private readonly endTurn = (): void => {
    this.scheduled = false;
    const full = this.turn >= FULL_TURN;
    this.turn = 0;
    const now = performance.now();
    let stale = 0;
    while (stale < this.since.length && now - this.since[stale] > this.maxWaitMs) stale++;
    if (stale) this.drop(stale);
    let budget = full ? BUSY_BUDGET : IDLE_BUDGET;
    if (this.pendingCommits() > this.maxPendingCommits) budget = 0;
    for (; budget > 0 && this.waiting.length; budget--) {
      this.since.pop();
      this.serve(this.waiting.pop()!);
    }
    if (this.waiting.length) this.schedule();
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
