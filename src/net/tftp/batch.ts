/**
 * One runner's transfer sockets read together: poll(2) over their descriptors, then one direct
 * recvfrom (native.ts) on each socket that has a datagram, each answered at once (the ACK's next
 * DATA leaves by a direct sendto before the next socket is read). Node's dgram reads each datagram
 * through libuv into a fresh 64 KiB allocation and calls into JavaScript once per datagram with a
 * new Buffer and sender object: in a boot storm, where a thread runs dozens of lock-step transfers,
 * that costs about as much as the transfer's own work.
 *
 * While the reader owns the sockets libuv does not read them (its handle's recvStop): the runner
 * (runner.ts) calls `read`, which blocks in poll(2) for at most a millisecond, and lets the event
 * loop turn between two reads (timers, the server's messages, file reads). After a few empty reads
 * in a row the sockets go back to libuv, which sleeps until the next datagram; its first one makes
 * the reader take them again.
 *
 * Layouts: struct pollfd is { int fd; short events; short revents } on Linux (<bits/poll.h>) and
 * FreeBSD (sys/sys/poll.h), with POLLIN 0x1, POLLERR 0x8, POLLHUP 0x10, POLLNVAL 0x20 on both.
 * Set BE_TFTP_NO_BATCH=1 to leave every read to dgram (BE_TFTP_NO_FFI=1 turns off all direct calls).
 */
import type { Socket } from 'node:dgram';
import { libc } from '../libc.js';
import { udpHandle } from '../sockaddr.js';
import type { Transfer } from './transfer.js';

const POLLFD_BYTES = 8;
const POLLIN = 0x1;
const POLL_TROUBLE = 0x8 | 0x10 | 0x20;

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

export class BatchReader {
  private members: Member[] = [];
  private fds = Buffer.alloc(POLLFD_BYTES * 16);
  /** The descriptor table must be written again (a member came or went). */
  private stale = true;
  private owned = false;

  private constructor(
    private readonly poll: (fds: Buffer, nfds: number, timeoutMs: number) => number,
    private readonly buf: Buffer,
  ) {}

  /** A reader whose datagrams land in BUF, or undefined where poll(2) cannot be called (or it is turned off). */
  static create(buf: Buffer): BatchReader | undefined {
    if (process.env.BE_TFTP_NO_BATCH || process.env.BE_TFTP_NO_FFI) return undefined;
    const c = libc();
    return typeof c === 'string' ? undefined : new BatchReader(c.poll, buf);
  }

  /** Transfers read here. */
  get size(): number {
    return this.members.length;
  }

  /** Whether the reader holds the sockets (libuv does not read them). */
  get owning(): boolean {
    return this.owned;
  }

  /** Read T's socket here from now on; false when it cannot be (no direct calls, no handle). */
  add(t: Transfer, socket: Socket): boolean {
    const handle = handleOf(socket);
    if (!t.native || t.ended || !handle) return false;
    this.members.push({ transfer: t, handle });
    this.stale = true;
    if (this.owned) handle.recvStop();
    return true;
  }

  /** Take every socket from libuv. */
  own(): void {
    if (this.owned) return;
    this.owned = true;
    for (const m of this.members) if (!m.transfer.ended) m.handle.recvStop();
  }

  /** Give every socket back to libuv, which reads them through dgram again. */
  release(): void {
    if (!this.owned) return;
    this.owned = false;
    for (const m of this.members) if (!m.transfer.ended) m.handle.recvStart();
  }

  /**
   * Wait up to TIMEOUT ms for datagrams, then read one from each socket that has one (poll(2) is
   * level-triggered: a second one is read next time). The number of sockets a datagram came from.
   */
  read(timeoutMs: number): number {
    this.prune();
    const count = this.members.length;
    if (count === 0) return 0;
    if (this.stale) this.table();
    const fds = this.fds;
    if (this.poll(fds, count, timeoutMs) <= 0) return 0;
    const members = this.members;
    let got = 0;
    let troubled: Member[] | undefined;
    for (let i = 0; i < count; i++) {
      const revents = fds.readInt16LE(POLLFD_BYTES * i + 6);
      if (revents === 0) continue;
      const m = members[i];
      if (m.transfer.drain(this.buf, 1)) got++;
      // An error or a closed descriptor that reads nothing would wake every poll: libuv takes it.
      else if (revents & POLL_TROUBLE) (troubled ??= []).push(m);
    }
    if (troubled) for (const m of troubled) this.drop(m);
    return got;
  }

  /** Forget ended transfers (their sockets are closing). */
  private prune(): void {
    const members = this.members;
    let kept = 0;
    for (const m of members) if (!m.transfer.ended) members[kept++] = m;
    if (kept === members.length) return;
    members.length = kept;
    this.stale = true;
  }

  private drop(m: Member): void {
    this.members = this.members.filter((x) => x !== m);
    this.stale = true;
    if (this.owned && !m.transfer.ended) m.handle.recvStart();
  }

  private table(): void {
    const need = this.members.length * POLLFD_BYTES;
    if (this.fds.length < need) this.fds = Buffer.alloc(Math.max(need, 2 * this.fds.length));
    this.members.forEach((m, i) => {
      this.fds.writeInt32LE(m.transfer.native!.descriptor, POLLFD_BYTES * i);
      this.fds.writeInt16LE(POLLIN, POLLFD_BYTES * i + 4);
    });
    this.stale = false;
  }
}
