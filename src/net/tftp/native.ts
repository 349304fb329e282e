/**
 * Direct system calls on a transfer's UDP socket, through koffi (a prebuilt FFI) where it loads on
 * Linux or FreeBSD: sendto(2) and recvfrom(2), always with MSG_DONTWAIT (they never block the
 * event loop), and on Linux UDP generic segmentation offload (setsockopt UDP_SEGMENT), which sends
 * a whole window of DATA packets with one call. Node's dgram send costs about twice a bare sendto
 * (a request object, an address parse and a lookup callback per datagram) and receives through a
 * fresh 64 KiB allocation per datagram.
 *
 * Everything here is an optional fast path: `nativeSocket` returns undefined where koffi or the
 * descriptor is not available, and any call that fails returns false so the caller uses dgram.
 * The socket's descriptor, the struct sockaddr layouts (Linux and FreeBSD), MSG_DONTWAIT and
 * UDP_SEGMENT are ../sockaddr.ts's.
 */
import type { Socket } from 'node:dgram';
import { directCalls, ipv6Text, sockaddr, socketFd, SOL_UDP, UDP_MAX_SEGMENTS, UDP_SEGMENT, type DirectCalls, type Peer } from '../sockaddr.js';

type Calls = Pick<DirectCalls, 'sendto' | 'recvfrom' | 'setsockopt' | 'dontwait' | 'bsd'>;

let calls: Calls | undefined | null = null;

/** The direct calls (BE_TFTP_NO_FFI turns them off); undefined where they cannot be had. */
function load(): Calls | undefined {
  if (calls === null) calls = directCalls('BE_TFTP_NO_FFI');
  return calls;
}

/** The largest UDP payload one segmented send may carry (IPv4: 65535 − 20 − 8). */
const GSO_BYTES = 65507 - 28;

/** One transfer socket's direct calls to its client. Never used after `close`. */
export class NativeSocket {
  private open = true;
  private gsoSize = 0;
  private readonly addrLen: Buffer;
  private readonly from: Buffer;

  constructor(
    private readonly c: Calls,
    private readonly fd: number,
    private readonly peer: Buffer,
  ) {
    this.from = Buffer.alloc(peer.length);
    this.addrLen = Buffer.alloc(4);
  }

  /** Send one datagram to the client now; false when it did not leave (the caller uses dgram). */
  send(buf: Buffer, length: number): boolean {
    if (!this.open) return false;
    return this.c.sendto(this.fd, buf, length, this.c.dontwait, this.peer, this.peer.length) === length;
  }

  /**
   * Ask the kernel to cut each send into datagrams of `size` bytes (Linux UDP GSO). False where it
   * cannot (FreeBSD, an old kernel): send each packet on its own.
   */
  segment(size: number): boolean {
    if (!this.open || this.c.bsd) return false;
    const v = Buffer.alloc(4);
    v.writeInt32LE(size);
    if (this.c.setsockopt(this.fd, SOL_UDP, UDP_SEGMENT, v, 4) !== 0) return false;
    this.gsoSize = size;
    return true;
  }

  /** Segments of the segment size one `send` may carry (0: segmentation is off). */
  get segmentsPerSend(): number {
    return this.gsoSize ? Math.min(UDP_MAX_SEGMENTS, Math.floor(GSO_BYTES / this.gsoSize)) : 0;
  }

  /** Segmentation failed on a send (a device without checksum offload, an MTU below the segment): off for good. */
  unsegment(): void {
    if (!this.gsoSize) return;
    this.gsoSize = 0;
    const v = Buffer.alloc(4);
    if (this.open) this.c.setsockopt(this.fd, SOL_UDP, UDP_SEGMENT, v, 4);
  }

  /**
   * Read one waiting datagram into `buf` without blocking: its length, or -1 when none is waiting
   * (or the call failed). `fromClient` tells whether it came from the client's address and port.
   */
  receive(buf: Buffer): number {
    if (!this.open) return -1;
    this.addrLen.writeUInt32LE(this.from.length);
    const n = this.c.recvfrom(this.fd, buf, buf.length, this.c.dontwait, this.from, this.addrLen);
    return n;
  }

  /** The last datagram `receive` read came from the client. */
  get fromClient(): boolean {
    // Family (and length) bytes, port, address; sin6_flowinfo (bytes 4-7) may differ.
    const p = this.peer;
    const f = this.from;
    if (f.readUInt32LE(0) !== p.readUInt32LE(0)) return false;
    if (p.length === 16) return f.readUInt32LE(4) === p.readUInt32LE(4);
    return f.compare(p, 8, 24, 8, 24) === 0;
  }

  /** The sender of the last datagram `receive` read, for replies through dgram. */
  get sender(): Peer | undefined {
    const f = this.from;
    const port = f.readUInt16BE(2);
    if (this.peer.length === 16) return { address: `${f[4]}.${f[5]}.${f[6]}.${f[7]}`, port };
    return { address: ipv6Text(f.subarray(8, 24)), port };
  }

  /** The socket's descriptor while it is open (batch.ts polls it), else -1. */
  get descriptor(): number {
    return this.open ? this.fd : -1;
  }

  /** Called once, just before the descriptor closes (batch.ts takes it out of its epoll set then, while the number is still this socket's). */
  beforeClose?: () => void;

  /** The descriptor is about to close: no call may reach it (or a descriptor that reuses its number). */
  close(): void {
    if (!this.open) return;
    this.open = false;
    const f = this.beforeClose;
    this.beforeClose = undefined;
    f?.();
  }
}

/** Direct calls for a bound socket and its client, or undefined (no koffi, no descriptor, a scoped address). */
export function nativeSocket(socket: Socket, client: Peer): NativeSocket | undefined {
  const c = load();
  if (!c) return undefined;
  const fd = socketFd(socket);
  const peer = sockaddr(client, c.bsd);
  if (fd === undefined || !peer) return undefined;
  return new NativeSocket(c, fd, peer);
}
