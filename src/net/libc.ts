/**
 * The C library's socket calls that Node's dgram does not offer, through koffi: a prebuilt FFI
 * published for Linux and FreeBSD on x64 and arm64, so installing `be` needs no compiler. It is an
 * optional native module, loaded on first use with require (not at start-up: `be --version` never
 * loads it) by the servers that need it (udpif.ts, arrival.ts, tftp/native.ts, tftp/batch.ts,
 * dhcp/direct.ts); where its platform package is missing `libc()` says why, and each caller falls
 * back to plain dgram.
 */
import { createRequire } from 'node:module';

export interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  setsockopt(fd: number, level: number, name: number, value: Buffer, len: number): number;
  bind(fd: number, addr: Buffer, len: number): number;
  sendto(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrlen: number): number;
  recvfrom(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrlen: Buffer): number;
  recvmsg(fd: number, msg: Buffer, flags: number): number | bigint;
  /** Linux only (glibc's prototype): several datagrams in one call. */
  sendmmsg?(fd: number, vec: Buffer, vlen: number, flags: number): number;
  recvmmsg?(fd: number, vec: Buffer, vlen: number, flags: number, timeout: null): number;
  close(fd: number): number;
  /** poll(2) on an array of struct pollfd (8 bytes each: int fd, short events, short revents). */
  poll(fds: Buffer, nfds: number, timeoutMs: number): number;
  /** Linux only: epoll(7), whose wait costs what is ready, not what is watched. */
  epoll_create1?(flags: number): number;
  epoll_ctl?(epfd: number, op: number, fd: number, event: Buffer | null): number;
  epoll_wait?(epfd: number, events: Buffer, maxEvents: number, timeoutMs: number): number;
  if_nametoindex(name: string): number;
  errno(): number;
  /** The address of a Buffer's memory, for the pointers inside a struct msghdr. */
  address(b: Buffer): bigint;
}

let loaded: Libc | string | undefined;

/** The calls, or why they cannot be had (not Linux or FreeBSD, or koffi's platform package missing). */
export function libc(platform: NodeJS.Platform = process.platform): Libc | string {
  if (platform !== 'linux' && platform !== 'freebsd') return `${platform}: no FFI calls are made here`;
  if (loaded !== undefined) return loaded;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as {
      load(path: string | null): { func(signature: string): unknown };
      errno(): number;
      address(b: Buffer): bigint;
    };
    const lib = koffi.load(null);
    loaded = {
      socket: lib.func('int socket(int, int, int)'),
      setsockopt: lib.func('int setsockopt(int, int, int, const void *, uint32_t)'),
      bind: lib.func('int bind(int, const void *, uint32_t)'),
      sendto: lib.func('long sendto(int, const void *, size_t, int, const void *, uint32_t)'),
      recvfrom: lib.func('long recvfrom(int, void *, size_t, int, void *, void *)'),
      recvmsg: lib.func('intptr_t recvmsg(int, void *, int)'),
      close: lib.func('int close(int)'),
      // nfds_t: unsigned long in glibc's <sys/poll.h>, unsigned int in FreeBSD's sys/sys/poll.h.
      poll: lib.func(platform === 'linux' ? 'int poll(void *, unsigned long, int)' : 'int poll(void *, unsigned int, int)'),
      ...(platform === 'linux' ? {
        sendmmsg: lib.func('int sendmmsg(int, void *, unsigned int, int)'),
        recvmmsg: lib.func('int recvmmsg(int, void *, unsigned int, int, void *)'),
        epoll_create1: lib.func('int epoll_create1(int)'),
        epoll_ctl: lib.func('int epoll_ctl(int, int, int, void *)'),
        epoll_wait: lib.func('int epoll_wait(int, void *, int, int)'),
      } : {}),
      if_nametoindex: lib.func('unsigned int if_nametoindex(const char *)'),
      errno: () => koffi.errno(),
      address: (b: Buffer) => koffi.address(b),
    } as Libc;
  } catch (e) {
    loaded = `koffi cannot be loaded (${(e as Error).message.split('\n')[0]})`;
  }
  return loaded;
}
