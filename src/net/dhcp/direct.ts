/**
 * Direct system calls on the DHCP server's sockets, through koffi where it loads (../libc.ts):
 * replies leave by sendto(2) and a burst of requests is read by recvfrom(2), both with
 * MSG_DONTWAIT, on the descriptor under Node's dgram socket (../sockaddr.ts). Node's dgram sends
 * through a request object, an address parse and a callback per datagram (about twice a bare
 * sendto), and delivers each datagram in a fresh 64 KiB allocation with its own callback; reading
 * the rest of a burst in the same turn also lets its ACKs share one journal sync (leases.ts).
 *
 * An optional fast path only: `directSocket` returns undefined without koffi, without the
 * descriptor, or with BE_DHCP_NO_FFI set in the environment, and the server runs on dgram alone
 * as before; a direct send that does not leave whole (EAGAIN, ENETUNREACH, a closed socket)
 * returns false and the caller sends through dgram, whose error handling stays the one that counts.
 */
import type { RemoteInfo, Socket } from 'node:dgram';
import { libc, type Libc } from '../libc.js';
import { bsdLayout, msgDontwait, peerOf, sockaddr, socketFd } from '../sockaddr.js';

interface Calls extends Pick<Libc, 'sendto' | 'recvfrom'> {
  dontwait: number;
  bsd: boolean;
}

let calls: Calls | undefined | null = null;

function load(): Calls | undefined {
  if (calls !== null) return calls;
  const c = process.env.BE_DHCP_NO_FFI ? 'turned off' : libc();
  calls = typeof c === 'string' ? undefined : { sendto: c.sendto, recvfrom: c.recvfrom, dontwait: msgDontwait(), bsd: bsdLayout() };
  return calls;
}

/** Destinations kept encoded: the relays and the broadcast address repeat, renewing clients' addresses may not. */
const DESTINATIONS = 256;
/** Room for any UDP datagram over IPv4 (65535 − 20 − 8). */
const DATAGRAM = 65507;

/** One bound socket's direct calls. Never used after `close`. */
export class DirectSocket {
  private open = true;
  private readonly to = new Map<string, Buffer>();
  private readonly buf = Buffer.allocUnsafe(DATAGRAM);
  private readonly from = Buffer.alloc(28);
  private readonly fromLen = Buffer.alloc(4);

  constructor(
    private readonly c: Calls,
    private readonly fd: number,
    private readonly socket: Socket,
  ) {}

  /**
   * Send one datagram now; false when it did not leave (the caller sends it through dgram): a
   * datagram dgram still queues goes first, so none overtakes another.
   */
  send(msg: Buffer, address: string, port: number): boolean {
    if (!this.open || this.socket.getSendQueueCount() > 0) return false;
    const key = `${address}:${port}`;
    let sa = this.to.get(key);
    if (sa === undefined) {
      sa = sockaddr({ address, port }, this.c.bsd);
      if (sa === undefined) return false;
      if (this.to.size >= DESTINATIONS) this.to.delete(this.to.keys().next().value!);
      this.to.set(key, sa);
    }
    return this.c.sendto(this.fd, msg, msg.length, this.c.dontwait, sa, sa.length) === msg.length;
  }

  /**
   * Read up to `max` datagrams already waiting, without blocking, each handed to `each` in its own
   * buffer with its sender; the number read, and whether the queue was found empty.
   */
  drain(max: number, each: (msg: Buffer, rinfo: RemoteInfo) => void): { read: number; empty: boolean } {
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

  /** The descriptor is about to close: no call may reach it (or a descriptor that reuses its number). */
  close(): void {
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
