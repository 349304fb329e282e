// The control data FreeBSD's recvmsg returns with IP_RECVIF, laid out as its headers say
// (sys/sys/socket.h: struct cmsghdr, CMSG_DATA, CMSG_NXTHDR on LP64; sys/net/if_dl.h: struct
// sockaddr_dl; sys/netinet/ip_input.c, ip_savecontrol, writes one per datagram, after
// IP_RECVDSTADDR when that is asked for too): arrivalIndex must find the interface index in it.
import { describe, expect, it } from 'vitest';
import { arrivalIndex } from '../../src/net/arrival.js';

/** One FreeBSD control message: socklen_t cmsg_len, int level, int type, data at 16, padded to 8. */
function bsdCmsg(level: number, type: number, data: Buffer): Buffer {
  const len = 16 + data.length;
  const b = Buffer.alloc((len + 7) & ~7);
  b.writeUInt32LE(len, 0);
  b.writeInt32LE(level, 4);
  b.writeInt32LE(type, 8);
  data.copy(b, 16);
  return b;
}

/** struct sockaddr_dl of an Ethernet interface: len, AF_LINK, index, type, nlen, alen, slen, name + MAC. */
function sockaddrDl(index: number, name: string): Buffer {
  const b = Buffer.alloc(8 + name.length + 6);
  b[0] = b.length;
  b[1] = 18;
  b.writeUInt16LE(index, 2);
  b[4] = 6; // IFT_ETHER
  b[5] = name.length;
  b[6] = 6;
  Buffer.from(name).copy(b, 8);
  return b;
}

describe('arrivalIndex (FreeBSD IP_RECVIF)', () => {
  it('reads sdl_index of the IP_RECVIF message, alone or after IP_RECVDSTADDR', () => {
    const recvif = bsdCmsg(0, 20, sockaddrDl(3, 'em1'));
    expect(arrivalIndex(recvif, recvif.length, 'freebsd')).toBe(3);
    const both = Buffer.concat([bsdCmsg(0, 7, Buffer.from([255, 255, 255, 255])), bsdCmsg(0, 20, sockaddrDl(0x0102, 'vtnet0'))]);
    expect(arrivalIndex(both, both.length, 'freebsd')).toBe(0x0102);
  });

  it('reads index 0 when the kernel knew no interface (the dummy sockaddr_dl)', () => {
    const dummy = bsdCmsg(0, 20, Buffer.from([8, 18, 0, 0, 0, 0, 0, 0]));
    expect(arrivalIndex(dummy, dummy.length, 'freebsd')).toBe(0);
  });

  it('knows nothing from a missing, cut or foreign message', () => {
    const recvif = bsdCmsg(0, 20, sockaddrDl(3, 'em1'));
    expect(arrivalIndex(recvif, 0, 'freebsd')).toBeUndefined();
    expect(arrivalIndex(recvif, 20, 'freebsd')).toBeUndefined();
    const notLink = bsdCmsg(0, 20, Buffer.from([8, 2, 3, 0, 0, 0, 0, 0]));
    expect(arrivalIndex(notLink, notLink.length, 'freebsd')).toBeUndefined();
    const socketLevel = bsdCmsg(0xffff, 20, sockaddrDl(3, 'em1'));
    expect(arrivalIndex(socketLevel, socketLevel.length, 'freebsd')).toBeUndefined();
    expect(arrivalIndex(recvif, recvif.length, 'darwin')).toBeUndefined();
  });
});
