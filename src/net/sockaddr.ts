/**
 * What the servers' direct system calls (through ../libc.ts) need of a dgram socket: its
 * descriptor, a peer as a struct sockaddr of the platform and back, the platform's MSG_DONTWAIT
 * (the calls never block the event loop), and Linux's UDP segmentation option.
 *
 * Layouts follow the C headers: Linux <netinet/in.h> (sockaddr_in: a 16-bit family in host order,
 * AF_INET 2, then the port and address in network order; sockaddr_in6: AF_INET6 10, port,
 * flowinfo, address at 8, scope id: 28 bytes) and FreeBSD sys/netinet/in.h and
 * sys/netinet6/in6.h (a length byte, sin_len/sin6_len, before an 8-bit family; AF_INET 2 and
 * AF_INET6 28 from sys/sys/socket.h). MSG_DONTWAIT: FreeBSD sys/sys/socket.h 0x80, Linux
 * <bits/socket.h> 0x40.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { Socket } from 'node:dgram';
import { libc, type Libc } from './libc.js';

/**
 * Linux UDP generic segmentation (<linux/udp.h>, udp(7)): the option (setsockopt, or a control
 * message of one send) at level SOL_UDP, and the most datagrams the kernel cuts from one send.
 */
export const SOL_UDP = 17;
export const UDP_SEGMENT = 103;
export const UDP_MAX_SEGMENTS = 64;

/** An address and port, as dgram names a peer. */
export interface Peer {
  address: string;
  port: number;
}

/** A decoded sender, shaped like dgram's RemoteInfo (without the size). */
export interface SockaddrPeer extends Peer {
  family: 'IPv4' | 'IPv6';
}

/** Does this platform put a length byte before an 8-bit family (the BSD layout)? */
export function bsdLayout(platform: NodeJS.Platform = process.platform): boolean {
  return platform !== 'linux';
}

/** The platform's MSG_DONTWAIT. */
export function msgDontwait(platform: NodeJS.Platform = process.platform): number {
  return platform === 'linux' ? 0x40 : 0x80;
}

/** The C library's calls (./libc.ts) with this platform's flags. */
export interface DirectCalls extends Libc {
  dontwait: number;
  bsd: boolean;
}

/** The direct calls, or undefined where koffi cannot be had or the environment sets OFF (a server's switch). */
export function directCalls(off: string): DirectCalls | undefined {
  if (process.env[off]) return undefined;
  const c = libc();
  return typeof c === 'string' ? undefined : { ...c, dontwait: msgDontwait(), bsd: bsdLayout() };
}

/** libuv's handle under a bound dgram socket (Node keeps it in its internal state), or undefined. */
export function udpHandle(socket: Socket): Record<string, unknown> | undefined {
  const sym = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  return sym ? (socket as unknown as Record<symbol, { handle?: Record<string, unknown> }>)[sym]?.handle : undefined;
}

/** The descriptor under a bound dgram socket. */
export function socketFd(socket: Socket): number | undefined {
  const fd = udpHandle(socket)?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** The peer as a struct sockaddr of this platform, or undefined (a scoped IPv6 address, not an address). */
export function sockaddr(peer: Peer, bsd: boolean): Buffer | undefined {
  if (!Number.isInteger(peer.port) || peer.port < 0 || peer.port > 65535) return undefined;
  if (isIPv4(peer.address)) {
    const sa = Buffer.alloc(16);
    if (bsd) sa.writeUInt8(16, 0), sa.writeUInt8(2, 1);
    else sa.writeUInt16LE(2, 0);
    sa.writeUInt16BE(peer.port, 2);
    peer.address.split('.').forEach((b, i) => sa.writeUInt8(Number(b), 4 + i));
    return sa;
  }
  if (!isIPv6(peer.address) || peer.address.includes('%')) return undefined;
  const sa = Buffer.alloc(28);
  if (bsd) sa.writeUInt8(28, 0), sa.writeUInt8(28, 1);
  else sa.writeUInt16LE(10, 0);
  sa.writeUInt16BE(peer.port, 2);
  ipv6Bytes(peer.address).copy(sa, 8);
  return sa;
}

/**
 * The sender in a struct sockaddr the kernel filled in (recvfrom's `from`, `len` bytes of it), or
 * undefined for another family or a short one.
 */
export function peerOf(sa: Buffer, len: number, bsd: boolean): SockaddrPeer | undefined {
  if (len < 2 || len > sa.length) return undefined;
  const family = bsd ? sa[1] : sa.readUInt16LE(0);
  const port = len >= 4 ? sa.readUInt16BE(2) : 0;
  if (family === 2 && len >= 8) return { address: `${sa[4]}.${sa[5]}.${sa[6]}.${sa[7]}`, port, family: 'IPv4' };
  if (family === (bsd ? 28 : 10) && len >= 24) return { address: ipv6Text(sa.subarray(8, 24)), port, family: 'IPv6' };
  return undefined;
}

function ipv6Bytes(address: string): Buffer {
  const out = Buffer.alloc(16);
  let text = address;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1].split('.').map(Number);
    text = `${text.slice(0, -v4[1].length)}${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail === undefined ? [] : tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), 2 * i));
  return out;
}

/** An IPv6 address as Node writes it (RFC 5952: the longest run of zero groups as "::"). */
export function ipv6Text(b: Buffer): string {
  if (b.readUInt32BE(0) === 0 && b.readUInt32BE(4) === 0 && b.readUInt32BE(8) === 0xffff) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const g = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(2 * i));
  let at = -1;
  let len = 0;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > len && j - i > 1) [at, len] = [i, j - i];
    i = j;
  }
  const hex = (xs: number[]): string => xs.map((x) => x.toString(16)).join(':');
  return at < 0 ? hex(g) : `${hex(g.slice(0, at))}::${hex(g.slice(at + len))}`;
}
