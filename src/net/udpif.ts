/**
 * UDP sockets held to one network interface: what Node's dgram cannot ask of the kernel, done with
 * koffi (a prebuilt FFI published for Linux and FreeBSD on x64 and arm64, so installing `be` needs
 * no compiler), which is loaded only when a server binds an interface.
 *
 * Linux: SO_BINDTODEVICE (socket(7)), set before bind(2). The socket then receives only what
 * arrived on that device, broadcasts included (net/ipv4/udp.c: udp_sk_bound_dev_eq in the lookup
 * of unicast sockets, __udp_is_mcast_sock for broadcasts), and sends by it. Two sockets on one
 * address and port but different devices do not conflict (udp_lib_lport_inuse), so a server bound
 * to one interface can run beside another bound to another. The socket is made here (socket,
 * setsockopt, bind) and handed to dgram, which wraps a bound UDP descriptor (`bind({ fd })`, Node's
 * lib/dgram.js: the handle is opened on it and the socket is listening at once).
 *
 * FreeBSD has no SO_BINDTODEVICE: see arrival.ts for how a server learns there on which
 * interface a broadcast arrived.
 */
import dgram from 'node:dgram';
import { getSystemErrorName } from 'node:util';
import { libc, type Libc } from './libc.js';

export type { Libc };


// <sys/socket.h>, <netinet/in.h> (Linux)
const AF_INET = 2;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_BROADCAST = 6;
const SO_BINDTODEVICE = 25;

/** The C library through koffi (libc.ts), or why it cannot be had. */
export async function loadLibc(): Promise<Libc | string> {
  return libc();
}

/**
 * How a server keeps to one interface here: its sockets bound to it (`device`, Linux), or told on
 * which interface each broadcast arrived (`arrival`, FreeBSD: see arrival.ts); otherwise why not.
 */
export async function interfaceHold(platform: NodeJS.Platform = process.platform): Promise<'device' | 'arrival' | { why: string }> {
  if (platform !== 'linux' && platform !== 'freebsd') return { why: `${platform} has neither SO_BINDTODEVICE nor IP_RECVIF` };
  const c = await loadLibc();
  if (typeof c === 'string') return { why: c };
  return platform === 'linux' ? 'device' : 'arrival';
}

export function sysError(c: Libc, syscall: string, what: string): NodeJS.ErrnoException {
  const errno = c.errno();
  let code: string;
  try {
    code = getSystemErrorName(-errno);
  } catch {
    code = `errno ${errno}`;
  }
  return Object.assign(new Error(`${syscall} ${code} ${what}`), { errno: -errno, code, syscall });
}

function sockaddrIn(address: string, port: number): Buffer {
  const sa = Buffer.alloc(16);
  sa.writeUInt16LE(AF_INET, 0); // sa_family_t, host order (x64, arm64)
  sa.writeUInt16BE(port, 2);
  Buffer.from(address.split('.').map(Number)).copy(sa, 4);
  return sa;
}

export interface DeviceSocketOptions {
  device: string;
  address: string;
  port: number;
  reuseAddr: boolean;
  recvBufferSize?: number;
  sendBufferSize?: number;
}

/**
 * A dgram socket bound to `address:port` on `device` only, broadcasts allowed (Linux). Rejects
 * with the failing call's error (`bind EADDRINUSE 0.0.0.0:67`, `setsockopt ENODEV lab0`).
 */
export async function bindToDevice(o: DeviceSocketOptions): Promise<dgram.Socket> {
  const c = await loadLibc();
  if (typeof c === 'string') throw new Error(c);
  const fd = c.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw sysError(c, 'socket', 'AF_INET');
  try {
    const one = Buffer.alloc(4);
    one.writeInt32LE(1);
    if (o.reuseAddr && c.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, one, 4) < 0) throw sysError(c, 'setsockopt', 'SO_REUSEADDR');
    if (c.setsockopt(fd, SOL_SOCKET, SO_BROADCAST, one, 4) < 0) throw sysError(c, 'setsockopt', 'SO_BROADCAST');
    const name = Buffer.from(`${o.device}\0`);
    if (c.setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name, name.length) < 0) throw sysError(c, 'setsockopt', o.device);
    if (c.bind(fd, sockaddrIn(o.address, o.port), 16) < 0) throw sysError(c, 'bind', `${o.address}:${o.port}`);
  } catch (e) {
    c.close(fd);
    throw e;
  }
  const s = dgram.createSocket({
    type: 'udp4',
    ...(o.recvBufferSize ? { recvBufferSize: o.recvBufferSize } : {}),
    ...(o.sendBufferSize ? { sendBufferSize: o.sendBufferSize } : {}),
  });
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => {
      s.close();
      reject(e);
    };
    s.once('error', onError);
    try {
      s.bind({ fd }, () => {
        s.off('error', onError);
        resolve(s);
      });
    } catch (e) {
      c.close(fd); // dgram refused the descriptor before taking it
      reject(e);
    }
  });
}
