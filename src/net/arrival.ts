/**
 * On which interface did a broadcast arrive? FreeBSD has no SO_BINDTODEVICE; a UDP socket bound to
 * 0.0.0.0 there receives broadcasts from every interface, and Node's dgram reads them without the
 * control data that would say where they came in. dnsmasq (src/dhcp.c, dhcp_packet) asks the
 * kernel with IP_RECVIF on its recvmsg and drops what did not arrive on an interface it serves.
 *
 * A tap does the same beside Node's socket: a second socket on the same address and port, made
 * non-blocking through koffi, with IP_RECVIF on (sys/netinet/in.h: 20). The kernel hands every
 * broadcast to each socket bound to its port that allows reuse (sys/netinet/udp_usrreq.c,
 * udp_input: the loop over the port's sockets stops only at one without SO_REUSEADDR or
 * SO_REUSEPORT), and with IP_RECVIF attaches a struct sockaddr_dl naming the receiving interface
 * by index (sys/netinet/ip_input.c, ip_savecontrol; sys/net/if_dl.h). So when Node's socket
 * delivers a datagram, the tap's queue holds its copy: `where` drains the tap (recvmsg with
 * MSG_DONTWAIT, never blocking the event loop; Node's readiness on its own socket is what drives
 * it), finds the copy by source and bytes, and reads its interface. A datagram with no copy (a
 * unicast, which the kernel gives one socket only, or a copy lost to a full queue) is `unknown`,
 * and the server lets it through as it would without the tap (so a flood the tap cannot keep up
 * with costs no lab client its answer). A copy whose interface is not the tap's, index 0 included
 * (the kernel knew none), is `elsewhere`: dnsmasq drops those too.
 * Node's socket must allow the tap beside it: libuv sets SO_REUSEPORT for dgram's reuseAddr on
 * the BSDs (src/unix/udp.c, uv__set_reuse), and the tap sets SO_REUSEADDR and SO_REUSEPORT
 * (sys/netinet/in_pcb.c, in_pcbbind_setup: the same address and port need SO_REUSEPORT on both);
 * if its bind fails the server runs without it and says so in one line.
 * Layouts (sys/sys/socket.h): struct msghdr on LP64 puts msg_iovlen and msg_controllen, an int
 * and a socklen_t, in 8-byte slots; struct cmsghdr is 12 bytes and CMSG_DATA aligns to 16.
 *
 * Linux has the same with IP_PKTINFO (ip(7), struct in_pktinfo), which the tests use to run this
 * code; the server binds the device there instead (udpif.ts).
 */
import { interfaceHold, loadLibc, sysError, type Libc } from './udpif.js';

interface Abi {
  solSocket: number;
  reuse: number[];
  sockFlags: number;
  dontWait: number;
  /** The IPPROTO_IP option that asks for the arrival interface, and its control message type. */
  recvOpt: number;
  /** The interface index in that control message's data, if well formed. */
  ifindex(data: Buffer): number | undefined;
  sockaddrIn(address: string, port: number): Buffer;
  /** sizeof cmsg_len: cmsg_level and cmsg_type follow it. */
  cmsgLenSize: 4 | 8;
}

function sockaddr(address: string, port: number, head: (b: Buffer) => void): Buffer {
  const sa = Buffer.alloc(16);
  head(sa);
  sa.writeUInt16BE(port, 2);
  Buffer.from(address.split('.').map(Number)).copy(sa, 4);
  return sa;
}

const ABIS: Partial<Record<NodeJS.Platform, Abi>> = {
  freebsd: {
    solSocket: 0xffff,
    reuse: [0x0004, 0x0200], // SO_REUSEADDR, SO_REUSEPORT (libuv sets the latter on Node's socket)
    sockFlags: 0x20000000 | 0x10000000, // SOCK_NONBLOCK | SOCK_CLOEXEC
    dontWait: 0x80,
    recvOpt: 20, // IP_RECVIF
    // struct sockaddr_dl: sdl_len, sdl_family (AF_LINK 18), sdl_index (u_short, host order)
    ifindex: (d) => (d.length >= 4 && d[0] >= 4 && d[1] === 18 ? d.readUInt16LE(2) : undefined),
    sockaddrIn: (a, p) => sockaddr(a, p, (b) => { b[0] = 16; b[1] = 2; }), // sin_len, AF_INET
    cmsgLenSize: 4, // socklen_t cmsg_len
  },
  linux: {
    solSocket: 1,
    reuse: [2], // SO_REUSEADDR
    sockFlags: 0o4000 | 0o2000000, // SOCK_NONBLOCK | SOCK_CLOEXEC
    dontWait: 0x40,
    recvOpt: 8, // IP_PKTINFO
    ifindex: (d) => (d.length >= 12 ? d.readInt32LE(0) : undefined), // struct in_pktinfo: ipi_ifindex
    sockaddrIn: (a, p) => sockaddr(a, p, (b) => b.writeUInt16LE(2, 0)),
    cmsgLenSize: 8, // size_t cmsg_len
  },
};

const IPPROTO_IP = 0;
const CMSG_DATA = 16;
const QUEUE = 512;
const DATA = 65536; // the largest UDP payload: a truncated copy would never match

/** The arrival interface in a recvmsg control buffer of `len` bytes laid out for `platform`. */
export function arrivalIndex(control: Buffer, len: number, platform: NodeJS.Platform): number | undefined {
  const abi = ABIS[platform];
  if (!abi) return undefined;
  for (let off = 0; off + CMSG_DATA <= len;) {
    const clen = abi.cmsgLenSize === 4 ? control.readUInt32LE(off) : Number(control.readBigUInt64LE(off));
    if (clen < CMSG_DATA || off + clen > len) return undefined;
    const level = control.readInt32LE(off + abi.cmsgLenSize);
    const type = control.readInt32LE(off + abi.cmsgLenSize + 4);
    if (level === IPPROTO_IP && type === abi.recvOpt) return abi.ifindex(control.subarray(off + CMSG_DATA, off + clen));
    off += (clen + 7) & ~7;
  }
  return undefined;
}

interface Seen {
  address: string;
  port: number;
  data: Buffer;
  ifindex: number | undefined;
}

export type Arrival = 'here' | 'elsewhere' | 'unknown';

export class ArrivalTap {
  private readonly queue: Seen[] = [];
  private readonly name = Buffer.alloc(16);
  private readonly data = Buffer.alloc(DATA);
  private readonly control = Buffer.alloc(256);
  private readonly iov = Buffer.alloc(16);
  private readonly msg = Buffer.alloc(56);
  private fd: number;

  private constructor(private readonly c: Libc, private readonly abi: Abi, private readonly platform: NodeJS.Platform, fd: number, readonly ifindex: number) {
    this.fd = fd;
    this.iov.writeBigUInt64LE(c.address(this.data), 0);
    this.iov.writeBigUInt64LE(BigInt(DATA), 8);
  }

  /**
   * A tap on `address:port` (where Node's socket is bound, with reuse) for interface `device`.
   * Rejects with the failing call's error; resolves to a reason string where there is no tap.
   */
  static async open(o: { device: string; address: string; port: number }, platform: NodeJS.Platform = process.platform): Promise<ArrivalTap | string> {
    const abi = ABIS[platform];
    const hold = await interfaceHold(platform);
    if (!abi || typeof hold === 'object') return typeof hold === 'object' ? hold.why : `no IP_RECVIF on ${platform}`;
    const c = (await loadLibc()) as Libc;
    const ifindex = c.if_nametoindex(o.device);
    if (!ifindex) throw sysError(c, 'if_nametoindex', o.device);
    const fd = c.socket(2, 2 | abi.sockFlags, 0);
    if (fd < 0) throw sysError(c, 'socket', 'AF_INET');
    try {
      const one = Buffer.alloc(4);
      one.writeInt32LE(1);
      for (const opt of abi.reuse) if (c.setsockopt(fd, abi.solSocket, opt, one, 4) < 0) throw sysError(c, 'setsockopt', `reuse ${opt}`);
      if (c.setsockopt(fd, IPPROTO_IP, abi.recvOpt, one, 4) < 0) throw sysError(c, 'setsockopt', platform === 'linux' ? 'IP_PKTINFO' : 'IP_RECVIF');
      const size = Buffer.alloc(4);
      size.writeInt32LE(4 << 20);
      c.setsockopt(fd, abi.solSocket, platform === 'linux' ? 8 : 0x1002, size, 4); // SO_RCVBUF, as Node's socket; best effort
      if (c.bind(fd, abi.sockaddrIn(o.address, o.port), 16) < 0) throw sysError(c, 'bind', `${o.address}:${o.port}`);
    } catch (e) {
      c.close(fd);
      throw e;
    }
    return new ArrivalTap(c, abi, platform, fd, ifindex);
  }

  /** One datagram from the tap, or undefined when none is waiting. */
  private receive(): Seen | undefined {
    const m = this.msg;
    m.fill(0);
    m.writeBigUInt64LE(this.c.address(this.name), 0);
    m.writeUInt32LE(16, 8);
    m.writeBigUInt64LE(this.c.address(this.iov), 16);
    m.writeUInt32LE(1, 24);
    m.writeBigUInt64LE(this.c.address(this.control), 32);
    m.writeUInt32LE(this.control.length, 40);
    const n = Number(this.c.recvmsg(this.fd, m, this.abi.dontWait));
    if (n < 0) return undefined; // EAGAIN: the queue is empty (or the socket is gone)
    const clen = m.readUInt32LE(40);
    return {
      address: [...this.name.subarray(4, 8)].join('.'),
      port: this.name.readUInt16BE(2),
      data: Buffer.from(this.data.subarray(0, Math.min(n, DATA))),
      ifindex: arrivalIndex(this.control, Math.min(clen, this.control.length), this.platform),
    };
  }

  /**
   * Where `msg` from `from` (just delivered by Node's socket) arrived: on the tap's interface, on
   * another, or unknown (the tap holds no copy, or the kernel named no interface).
   */
  where(msg: Buffer, from: { address: string; port: number }): Arrival {
    if (this.fd < 0) return 'unknown';
    for (let i = 0; i < QUEUE; i++) {
      const s = this.receive();
      if (!s) break;
      this.queue.push(s);
    }
    if (this.queue.length > QUEUE) this.queue.splice(0, this.queue.length - QUEUE);
    const i = this.queue.findIndex((s) => s.port === from.port && s.address === from.address && s.data.equals(msg));
    if (i < 0) return 'unknown';
    const seen = this.queue[i];
    this.queue.splice(0, i + 1); // older copies are of datagrams Node's socket did not get
    if (seen.ifindex === undefined) return 'unknown';
    return seen.ifindex === this.ifindex ? 'here' : 'elsewhere';
  }

  close(): void {
    if (this.fd < 0) return;
    this.c.close(this.fd);
    this.fd = -1;
    this.queue.length = 0;
  }
}
