/**
 * Direct system calls on the DHCP server's sockets, through koffi where it loads (../libc.ts):
 * replies leave by sendto(2) and a burst of requests is read by recvfrom(2), both with
 * MSG_DONTWAIT, on the descriptor under Node's dgram socket (../sockaddr.ts). Node's dgram sends
 * through a request object, an address parse and a callback per datagram (about twice a bare
 * sendto), and delivers each datagram in a fresh 64 KiB allocation with its own callback; reading
 * the rest of a burst in the same turn also lets its ACKs share one journal sync (leases.ts).
 *
 * On Linux the replies of one callback (a burst's OFFERs, the ACKs of one journal sync) leave
 * together by one sendmmsg(2), at the end of that callback (a microtask), and a burst is read by
 * recvmmsg(2), RECV_BATCH datagrams a call. Their vectors are laid out as
 * <bits/socket.h> and <bits/uio.h> have it on LP64: struct msghdr is msg_name (a pointer, at 0),
 * msg_namelen (socklen_t, 8), msg_iov (16), msg_iovlen (size_t, 24), msg_control (32),
 * msg_controllen (size_t, 40), msg_flags (int, 48), 56 bytes; struct mmsghdr adds msg_len
 * (unsigned int, 56) and is 64 bytes; struct iovec is a pointer and a size_t. Every pointer points
 * into buffers allocated once per socket (their memory never moves), so each call only copies the
 * datagrams and their addresses in.
 *
 * Replies of one size to one destination in such a batch leave as one message the kernel cuts
 * into datagrams (UDP_SEGMENT; see Batch); BE_DHCP_NO_GSO=1 sends one datagram a message.
 *
 * An optional fast path only: `directSocket` returns undefined without koffi, without the
 * descriptor, or with BE_DHCP_NO_FFI set in the environment, and the server runs on dgram alone
 * as before; a direct send that does not leave whole (EAGAIN, ENETUNREACH, a closed socket)
 * returns false and the caller sends through dgram, whose error handling stays the one that counts.
 */
import type { RemoteInfo, Socket } from 'node:dgram';
import { directCalls, peerOf, sockaddr, socketFd, SOL_UDP, UDP_MAX_SEGMENTS, UDP_SEGMENT, type DirectCalls } from '../sockaddr.js';
import { MAX_PACKET } from './codec.js';

type Calls = Pick<DirectCalls, 'sendto' | 'recvfrom' | 'sendmmsg' | 'recvmmsg' | 'address' | 'errno' | 'dontwait' | 'bsd'>;

let calls: Calls | undefined | null = null;

/** The direct calls (BE_DHCP_NO_FFI turns them off); the vectors below are laid out for LP64 (64-bit pointers and size_t) only. */
function load(): Calls | undefined {
  if (calls !== null) return calls;
  const c = directCalls('BE_DHCP_NO_FFI');
  const lp64 = process.arch === 'x64' || process.arch === 'arm64';
  calls = c && !lp64 ? { ...c, sendmmsg: undefined, recvmmsg: undefined } : c;
  return calls;
}

/** Destinations kept encoded: the relays and the broadcast address repeat, renewing clients' addresses may not. */
const DESTINATIONS = 256;
/** Room for any UDP datagram over IPv4 (65535 − 20 − 8). */
const DATAGRAM = 65507;
/** Datagrams one sendmmsg carries at most, and the room for each (a reply is at most 1500 bytes, replies.ts). */
const BATCH = 64;
const SLOT = 1500;
/**
 * Datagrams one recvmmsg reads at most, and the room for each: one byte more than a DHCP message
 * may have (codec.ts, MAX_PACKET), so a longer datagram, cut there (MSG_TRUNC), is still one the
 * decoder rejects for its size, as it would the whole.
 */
const RECV_BATCH = 16;
const RECV_SLOT = MAX_PACKET + 1;
const MMSGHDR = 64;
const IOVEC = 16;
const NAME = 28;
/** CMSG_SPACE and CMSG_LEN of UDP_SEGMENT's u16 on LP64. */
const CONTROL = 24;
const CMSG_LEN = 18;
/**
 * The largest reply cut from a segmented message: 548 bytes plus 28 of headers is the 576 every
 * IPv4 path carries (RFC 791), and udp_send_skb refuses a segment that does not fit the path's MTU.
 */
const SEGMENT_MAX = 548;
/** errno values after which segmenting stays worth trying (the send queue was full, a signal). */
const EINTR = 4;
const EAGAIN = 11;
const ENOBUFS = 105;

/** An mmsghdr vector of `count` entries, each with one iovec of `slot` bytes and room for an address. */
class Vector {
  readonly vec: Buffer;
  readonly data: Buffer;
  readonly iov: Buffer;
  readonly names: Buffer;

  constructor(count: number, readonly slot: number, address: (b: Buffer) => bigint) {
    this.vec = Buffer.alloc(count * MMSGHDR);
    this.data = Buffer.alloc(count * slot);
    this.iov = Buffer.alloc(count * IOVEC);
    this.names = Buffer.alloc(count * NAME);
    const [iov, data, names] = [this.iov, this.data, this.names].map((b) => address(b));
    for (let i = 0; i < count; i++) {
      const m = i * MMSGHDR;
      this.vec.writeBigUInt64LE(names + BigInt(i * NAME), m); // msg_name
      this.vec.writeUInt32LE(NAME, m + 8); // msg_namelen
      this.vec.writeBigUInt64LE(iov + BigInt(i * IOVEC), m + 16); // msg_iov
      this.vec.writeBigUInt64LE(1n, m + 24); // msg_iovlen
      this.iov.writeBigUInt64LE(data + BigInt(i * slot), i * IOVEC); // iov_base
      this.iov.writeBigUInt64LE(BigInt(slot), i * IOVEC + 8); // iov_len
    }
  }
}

/**
 * The replies queued for one sendmmsg. Consecutive replies of one size to one destination (a
 * burst's OFFERs to its relay or to the broadcast address, the ACKs of one journal sync) leave as
 * one message with a UDP_SEGMENT control message (Linux 4.18, udp(7)): the kernel cuts its
 * payload into datagrams of that size (net/ipv4/udp.c, udp_send_skb; segmentation after the
 * routing and IP work, which are done once), so the wire carries the same datagrams as one send
 * each would. Each reply keeps its slot, its iovec and its address; a message of several replies
 * points at their consecutive iovecs (the kernel joins them before cutting).
 */
class Batch extends Vector {
  /** What to do with each queued datagram that did not leave. */
  readonly fallbacks: Array<() => void> = [];
  /** Each queued reply's length and destination (the cached sockaddr: one object per destination). */
  private readonly lengths = new Uint16Array(BATCH);
  private readonly dests: Array<Buffer | undefined> = new Array(BATCH);
  /** The vector as `add` leaves it (one message per reply), copied from when messages are grouped. */
  private readonly plain: Buffer;
  /** One UDP_SEGMENT control message per slot (struct cmsghdr: cmsg_len size_t, level, type; then the u16 size). */
  private readonly controls: Buffer;
  /** For each message built by `messages`, the first reply it carries (and one past the last, at the end). */
  readonly firsts = new Uint8Array(BATCH + 1);
  /** Messages of several replies (segmented), by their index. */
  readonly segmented = new Uint8Array(BATCH);

  constructor(address: (b: Buffer) => bigint) {
    super(BATCH, SLOT, address);
    this.controls = Buffer.alloc(BATCH * CONTROL);
    const controls = address(this.controls);
    for (let i = 0; i < BATCH; i++) {
      this.controls.writeUInt32LE(CMSG_LEN, i * CONTROL); // cmsg_len (size_t: high half 0)
      this.controls.writeInt32LE(SOL_UDP, i * CONTROL + 8);
      this.controls.writeInt32LE(UDP_SEGMENT, i * CONTROL + 12);
      this.vec.writeBigUInt64LE(controls + BigInt(i * CONTROL), i * MMSGHDR + 32); // msg_control (msg_controllen 0: unused)
    }
    this.plain = Buffer.from(this.vec);
  }

  get length(): number {
    return this.fallbacks.length;
  }

  add(msg: Buffer, sa: Buffer, fallback: () => void): void {
    const i = this.fallbacks.length;
    this.data.set(msg, i * SLOT);
    this.names.set(sa, i * NAME);
    this.plain.writeUInt32LE(sa.length, i * MMSGHDR + 8); // msg_namelen
    this.iov.writeUInt32LE(msg.length, i * IOVEC + 8); // iov_len (a size_t: its high half stays 0)
    this.lengths[i] = msg.length;
    this.dests[i] = sa;
    this.fallbacks.push(fallback);
  }

  /**
   * Lay the queued replies out in `vec` as messages, grouping runs of one size and destination
   * when `segment` (at most UDP_MAX_SEGMENTS a message, each at most SEGMENT_MAX bytes); the number of
   * messages. `firsts` and `segmented` tell which replies each carries.
   */
  messages(segment: boolean): number {
    const n = this.fallbacks.length;
    let k = 0;
    for (let i = 0; i < n; k++) {
      let j = i + 1;
      if (segment && this.lengths[i] <= SEGMENT_MAX) {
        while (j < n && j - i < UDP_MAX_SEGMENTS && this.dests[j] === this.dests[i] && this.lengths[j] === this.lengths[i]) j++;
      }
      const m = k * MMSGHDR;
      this.plain.copy(this.vec, m, i * MMSGHDR, (i + 1) * MMSGHDR);
      this.firsts[k] = i;
      this.segmented[k] = j - i > 1 ? 1 : 0;
      if (j - i > 1) {
        this.vec.writeUInt32LE(j - i, m + 24); // msg_iovlen: the replies' iovecs, one after another
        this.vec.writeUInt32LE(CONTROL, m + 40); // msg_controllen: the slot's UDP_SEGMENT
        this.controls.writeUInt16LE(this.lengths[i], i * CONTROL + 16);
      }
      i = j;
    }
    this.firsts[k] = n;
    for (let i = 0; i < n; i++) this.dests[i] = undefined;
    return k;
  }
}

/** One bound socket's direct calls. Never used after `close`. */
export class DirectSocket {
  private open = true;
  private readonly to = new Map<string, Buffer>();
  /** Replies of one size to one destination leave as one segmented message (Batch); BE_DHCP_NO_GSO=1 turns it off. */
  private segment = !process.env.BE_DHCP_NO_GSO;
  private lastAddress = '';
  private lastPort = -1;
  private lastTo?: Buffer;
  private readonly buf = Buffer.allocUnsafe(DATAGRAM);
  private readonly from = Buffer.alloc(28);
  private readonly fromLen = Buffer.alloc(4);
  private batch?: Batch;
  private received?: Vector;

  constructor(
    private readonly c: Calls,
    private readonly fd: number,
    private readonly socket: Socket,
  ) {}

  /**
   * Send one datagram (on Linux: at the end of this callback, with the others sent in it); false
   * when it is not taken, and the caller sends it through dgram. One taken that then does not leave
   * is handed to `fallback`, in order. A datagram dgram still queues goes first, so none overtakes
   * another.
   */
  send(msg: Buffer, address: string, port: number, fallback: () => void): boolean {
    if (!this.open || this.socket.getSendQueueCount() > 0) return false;
    const sa = this.destination(address, port);
    if (sa === undefined) return false;
    if (!this.c.sendmmsg || msg.length > SLOT) {
      this.flush(); // none overtakes one queued
      return this.c.sendto(this.fd, msg, msg.length, this.c.dontwait, sa, sa.length) === msg.length;
    }
    const b = (this.batch ??= new Batch(this.c.address));
    if (b.length === BATCH) this.flush();
    b.add(msg, sa, fallback);
    if (b.length === 1) queueMicrotask(this.flush);
    return true;
  }

  /** ADDRESS:PORT as a sockaddr, kept: the same relay, or the broadcast, comes reply after reply. */
  private destination(address: string, port: number): Buffer | undefined {
    if (this.lastTo !== undefined && address === this.lastAddress && port === this.lastPort) return this.lastTo;
    const key = `${address}:${port}`;
    let sa = this.to.get(key);
    if (sa === undefined) {
      sa = sockaddr({ address, port }, this.c.bsd);
      if (sa === undefined) return undefined;
      if (this.to.size >= DESTINATIONS) this.to.delete(this.to.keys().next().value!);
      this.to.set(key, sa);
    }
    this.lastAddress = address;
    this.lastPort = port;
    this.lastTo = sa;
    return sa;
  }

  /**
   * Send what is queued, by sendmmsg; what did not leave goes to its fallback. A segmented message
   * the kernel refuses for what it is (EINVAL, EIO: no checksum offload on the way, a smaller MTU)
   * turns segmenting off for this socket; its replies and those after it go by dgram.
   */
  private readonly flush = (): void => {
    const b = this.batch;
    if (!b || b.length === 0) return;
    const count = b.messages(this.segment);
    const fallbacks = b.fallbacks.splice(0);
    let sent = 0;
    while (this.open && sent < count) {
      // sendmmsg stops at the first message that fails and says so only when it is the first one
      const n = this.c.sendmmsg!(this.fd, sent ? b.vec.subarray(sent * MMSGHDR) : b.vec, count - sent, this.c.dontwait);
      if (n > 0) {
        sent += n;
        continue;
      }
      const errno = this.c.errno();
      if (b.segmented[sent] && errno !== EAGAIN && errno !== ENOBUFS && errno !== EINTR) this.segment = false;
      break;
    }
    for (let i = b.firsts[sent]; i < fallbacks.length; i++) fallbacks[i]();
  };

  /**
   * Read up to `max` datagrams already waiting, without blocking, each handed to `each` in its own
   * buffer with its sender; the number read, and whether the queue was found empty.
   */
  drain(max: number, each: (msg: Buffer, rinfo: RemoteInfo) => void): { read: number; empty: boolean } {
    if (this.c.recvmmsg) return this.drainVector(max, each);
    let read = 0;
    while (read < max && this.open) {
      this.fromLen.writeUInt32LE(this.from.length);
      const n = Number(this.c.recvfrom(this.fd, this.buf, this.buf.length, this.c.dontwait, this.from, this.fromLen));
      if (n < 0) return { read, empty: true }; // EAGAIN (nothing waits) or an error dgram will see too
      read++;
      const peer = peerOf(this.from, this.fromLen.readUInt32LE(0), this.c.bsd);
      if (!peer) continue; // not an IPv4/IPv6 sender: nothing a reply could reach
      const msg = Buffer.allocUnsafe(n);
      this.buf.copy(msg, 0, 0, n);
      each(msg, { address: peer.address, family: peer.family, port: peer.port, size: n });
    }
    return { read, empty: false };
  }

  /** `drain` by recvmmsg (Linux), RECV_BATCH datagrams a call. */
  private drainVector(max: number, each: (msg: Buffer, rinfo: RemoteInfo) => void): { read: number; empty: boolean } {
    const v = (this.received ??= new Vector(RECV_BATCH, RECV_SLOT, this.c.address));
    let read = 0;
    while (read < max && this.open) {
      const want = Math.min(RECV_BATCH, max - read);
      for (let i = 0; i < want; i++) v.vec.writeUInt32LE(NAME, i * MMSGHDR + 8); // msg_namelen, rewritten by each call
      const got = this.c.recvmmsg!(this.fd, v.vec, want, this.c.dontwait, null);
      if (got <= 0) return { read, empty: true }; // EAGAIN (nothing waits) or an error dgram will see too
      read += got;
      for (let i = 0; i < got; i++) {
        const m = i * MMSGHDR;
        const n = v.vec.readUInt32LE(m + 56); // msg_len: what was copied, at most the slot
        const peer = peerOf(v.names.subarray(i * NAME, (i + 1) * NAME), v.vec.readUInt32LE(m + 8), false);
        if (!peer) continue;
        const msg = Buffer.allocUnsafe(n);
        v.data.copy(msg, 0, i * RECV_SLOT, i * RECV_SLOT + n);
        each(msg, { address: peer.address, family: peer.family, port: peer.port, size: n });
      }
      if (got < want) return { read, empty: true };
    }
    return { read, empty: false };
  }

  /** The descriptor is about to close: no call may reach it (or a descriptor that reuses its number). */
  close(): void {
    this.flush();
    this.open = false;
  }
}

/** Direct calls for a bound socket, or undefined (no koffi, no descriptor, turned off). */
export function directSocket(socket: Socket): DirectSocket | undefined {
  const c = load();
  if (!c) return undefined;
  const fd = socketFd(socket);
  return fd === undefined ? undefined : new DirectSocket(c, fd, socket);
}
