/**
 * One runner's transfer sockets read together: one wait over their descriptors (epoll(7) on Linux,
 * poll(2) elsewhere), then one direct recvfrom (native.ts) on each socket that has a datagram, each answered at once (the ACK's next
 * DATA leaves by a direct sendto before the next socket is read). Node's dgram reads each datagram
 * through libuv into a fresh 64 KiB allocation and calls into JavaScript once per datagram with a
 * new Buffer and sender object: in a boot storm, where a thread runs dozens of lock-step transfers,
 * that costs about as much as the transfer's own work.
 *
 * While the reader owns the sockets libuv does not read them (its handle's recvStop): the runner
 * (runner.ts) calls `read`, which waits for at most a millisecond, and lets the event
 * loop turn between two reads (timers, the server's messages, file reads). After a few empty reads
 * in a row the sockets go back to libuv, which sleeps until the next datagram; its first one makes
 * the reader take them again.
 *
 * poll(2) costs what it watches: the kernel looks at every descriptor of the table on every call,
 * which in a storm (dozens of transfers a thread, a few with an ACK each time) is more than the
 * datagrams' own work; epoll_wait costs what is ready.
 *
 * Layouts: struct pollfd is { int fd; short events; short revents } on Linux (<bits/poll.h>) and
 * FreeBSD (sys/sys/poll.h), with POLLIN 0x1, POLLERR 0x8, POLLHUP 0x10, POLLNVAL 0x20 on both.
 * struct epoll_event is { uint32_t events; uint64_t data } (<sys/epoll.h>), packed on x86-64 (12
 * bytes, data at 4), aligned on arm64 (16 bytes, data at 8); EPOLLIN, EPOLLERR and EPOLLHUP are
 * poll's bits, EPOLL_CTL_ADD 1, EPOLL_CTL_DEL 2, EPOLL_CLOEXEC O_CLOEXEC (0x80000).
 * When batch reads are used (`batchReads`): on every thread of transfers. Measured with bench/tftp
 * on two machines of 2 CPUs, boot storms of 50 and 100 lock-step clients on two worker threads:
 * batch reads cost the server the same CPU per byte as reads through dgram on one machine and
 * 16-30% less on the other (an SRSO-mitigated Zen 3, where each syscall costs more); the storm's
 * rate, where the clients share those cores, was 10-25% higher through dgram on the first and up
 * to 33% higher with batch reads on the second. A server's own cost per byte is what counts where
 * the clients are other machines. On one thread, batch reads were 15-28% faster on both. Batch
 * reads serve a thread's transfers round robin, one datagram each per wait, so clients finish
 * together; dgram reads let some run ahead and finish early.
 * Set BE_TFTP_BATCH=0 to read through dgram on worker threads (a server on one thread still
 * batches), BE_TFTP_NO_BATCH=1 never to batch (BE_TFTP_NO_FFI=1 turns off all direct calls),
 * BE_TFTP_BATCH_WAIT=poll to wait in poll(2) on Linux too.
 */
import type { Socket } from 'node:dgram';
import { libc, type Libc } from '../libc.js';
import { udpHandle } from '../sockaddr.js';
import type { Transfer } from './transfer.js';

const POLLFD_BYTES = 8;
const POLLIN = 0x1;
const POLL_TROUBLE = 0x8 | 0x10 | 0x20;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CLOEXEC = 0x80000;
/** Events taken from one epoll_wait. */
const EPOLL_BATCH = 64;

/** How a reader waits for its sockets. */
export interface Waiter {
  add(fd: number, id: number): void;
  /** Stop watching FD, while it is still open (its number may be another socket's once it is closed). */
  remove(fd: number, id: number): void;
  /** Wait up to TIMEOUT ms; `ready` for each socket with something to read or an error. */
  wait(timeoutMs: number, ready: (id: number, trouble: boolean) => void): void;
}

/** poll(2): a table of every descriptor, written again when one comes or goes. */
class PollWaiter implements Waiter {
  private readonly ids = new Map<number, number>();
  private order: number[] = [];
  private table = Buffer.alloc(POLLFD_BYTES * 16);
  private stale = true;

  constructor(private readonly poll: (fds: Buffer, nfds: number, timeoutMs: number) => number) {}

  add(fd: number, id: number): void {
    this.ids.set(id, fd);
    this.stale = true;
  }

  remove(_fd: number, id: number): void {
    this.ids.delete(id);
    this.stale = true;
  }

  wait(timeoutMs: number, ready: (id: number, trouble: boolean) => void): void {
    if (this.stale) this.write();
    const count = this.order.length;
    if (count === 0 || this.poll(this.table, count, timeoutMs) <= 0) return;
    for (let i = 0; i < count; i++) {
      const revents = this.table.readInt16LE(POLLFD_BYTES * i + 6);
      if (revents !== 0) ready(this.order[i]!, (revents & POLL_TROUBLE) !== 0);
    }
  }

  private write(): void {
    this.order = [...this.ids.keys()];
    const need = this.order.length * POLLFD_BYTES;
    if (this.table.length < need) this.table = Buffer.alloc(Math.max(need, 2 * this.table.length));
    this.order.forEach((id, i) => {
      this.table.writeInt32LE(this.ids.get(id)!, POLLFD_BYTES * i);
      this.table.writeInt16LE(POLLIN, POLLFD_BYTES * i + 4);
      this.table.writeInt16LE(0, POLLFD_BYTES * i + 6);
    });
    this.stale = false;
  }
}

/** epoll(7): the kernel keeps the set; each socket's `data` is its reader's id for it. */
class EpollWaiter implements Waiter {
  private readonly events: Buffer;
  private readonly one: Buffer;

  constructor(
    private readonly c: Required<Pick<Libc, 'epoll_ctl' | 'epoll_wait'>>,
    private readonly epfd: number,
    private readonly size: number,
    private readonly dataAt: number,
  ) {
    this.events = Buffer.alloc(EPOLL_BATCH * size);
    this.one = Buffer.alloc(size);
  }

  static create(c: Libc): EpollWaiter | undefined {
    const layout = process.arch === 'x64' ? [12, 4] : process.arch === 'arm64' ? [16, 8] : undefined;
    if (!layout || !c.epoll_create1 || !c.epoll_ctl || !c.epoll_wait) return undefined;
    const epfd = c.epoll_create1(EPOLL_CLOEXEC);
    return epfd < 0 ? undefined : new EpollWaiter({ epoll_ctl: c.epoll_ctl, epoll_wait: c.epoll_wait }, epfd, layout[0]!, layout[1]!);
  }

  add(fd: number, id: number): void {
    this.one.fill(0);
    this.one.writeUInt32LE(POLLIN, 0);
    this.one.writeUInt32LE(id, this.dataAt);
    this.c.epoll_ctl(this.epfd, EPOLL_CTL_ADD, fd, this.one);
  }

  remove(fd: number): void {
    this.c.epoll_ctl(this.epfd, EPOLL_CTL_DEL, fd, this.one);
  }

  wait(timeoutMs: number, ready: (id: number, trouble: boolean) => void): void {
    const n = this.c.epoll_wait(this.epfd, this.events, EPOLL_BATCH, timeoutMs);
    for (let i = 0; i < n; i++) {
      const at = i * this.size;
      ready(this.events.readUInt32LE(at + this.dataAt), (this.events.readUInt32LE(at) & POLL_TROUBLE) !== 0);
    }
  }
}

/** A waiter of the given kind, or undefined where it cannot be had (tests use both on Linux). */
export function createWaiter(kind: 'epoll' | 'poll'): Waiter | undefined {
  const c = libc();
  if (typeof c === 'string') return undefined;
  return kind === 'epoll' ? EpollWaiter.create(c) : new PollWaiter(c.poll);
}

/** libuv's UDP handle under a dgram socket (Node keeps it in its internal state). */
interface UdpHandle {
  recvStart(): number;
  recvStop(): number;
}

function handleOf(socket: Socket): UdpHandle | undefined {
  const handle = udpHandle(socket);
  return handle && typeof handle.recvStart === 'function' && typeof handle.recvStop === 'function' ? (handle as unknown as UdpHandle) : undefined;
}

interface Member {
  transfer: Transfer;
  handle: UdpHandle;
}

/** Whether runners read their transfer sockets in batches, for a server with RUNNERS threads of transfers. */
export function batchReads(runners: number, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.BE_TFTP_NO_BATCH || env.BE_TFTP_NO_FFI) return false;
  return env.BE_TFTP_BATCH !== '0' || runners === 1;
}

export class BatchReader {
  private readonly members = new Map<number, Member>();
  private nextId = 1;
  private owned = false;
  private got = 0;
  private troubled?: Array<[number, Member]>;

  private constructor(
    private readonly waiter: Waiter,
    private readonly buf: Buffer,
  ) {}

  /** A reader whose datagrams land in BUF, or undefined where the direct calls cannot be made. */
  static create(buf: Buffer): BatchReader | undefined {
    const waiter = (process.env.BE_TFTP_BATCH_WAIT === 'poll' ? undefined : createWaiter('epoll')) ?? createWaiter('poll');
    return waiter && new BatchReader(waiter, buf);
  }

  /** Transfers read here. */
  get size(): number {
    return this.members.size;
  }

  /** Whether the reader holds the sockets (libuv does not read them). */
  get owning(): boolean {
    return this.owned;
  }

  /** Read T's socket here from now on; false when it cannot be (no direct calls, no handle). */
  add(t: Transfer, socket: Socket): boolean {
    const handle = handleOf(socket);
    const fd = t.native?.descriptor ?? -1;
    if (!t.native || t.ended || !handle || fd < 0) return false;
    const id = this.nextId++;
    this.members.set(id, { transfer: t, handle });
    this.waiter.add(fd, id);
    t.native.beforeClose = () => this.forget(id, fd);
    if (this.owned) handle.recvStop();
    return true;
  }

  /** Take every socket from libuv. */
  own(): void {
    if (this.owned) return;
    this.owned = true;
    for (const m of this.members.values()) if (!m.transfer.ended) m.handle.recvStop();
  }

  /** Give every socket back to libuv, which reads them through dgram again. */
  release(): void {
    if (!this.owned) return;
    this.owned = false;
    for (const m of this.members.values()) if (!m.transfer.ended) m.handle.recvStart();
  }

  /**
   * Wait up to TIMEOUT ms for datagrams, then read one from each socket that has one (both waits
   * are level-triggered: a second one is read next time). The number of sockets a datagram came from.
   */
  read(timeoutMs: number): number {
    if (this.members.size === 0) return 0;
    this.got = 0;
    this.waiter.wait(timeoutMs, this.ready);
    const troubled = this.troubled;
    if (troubled) {
      this.troubled = undefined;
      for (const [id, m] of troubled) this.drop(id, m);
    }
    return this.got;
  }

  private readonly ready = (id: number, trouble: boolean): void => {
    const m = this.members.get(id);
    if (!m) return;
    if (m.transfer.drain(this.buf, 1)) this.got++;
    // An error or a closed descriptor that reads nothing would wake every wait: libuv takes it.
    else if (trouble && !m.transfer.ended) (this.troubled ??= []).push([id, m]);
  };

  /** Stop watching a socket (its descriptor FD still open): when its transfer ends (native.ts `close`), or it is given back to libuv. */
  private forget(id: number, fd: number): void {
    if (this.members.delete(id)) this.waiter.remove(fd, id);
  }

  /** A socket in trouble goes back to libuv. */
  private drop(id: number, m: Member): void {
    const native = m.transfer.native;
    if (native) native.beforeClose = undefined;
    if (native && native.descriptor >= 0) this.forget(id, native.descriptor);
    if (this.owned && !m.transfer.ended) m.handle.recvStart();
  }
}
