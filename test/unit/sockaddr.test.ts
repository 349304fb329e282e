/**
 * struct sockaddr as the C headers lay it out: Linux <netinet/in.h> (a 16-bit family in host
 * order: AF_INET 2, AF_INET6 10) and FreeBSD sys/netinet/in.h, sys/netinet6/in6.h (a length byte,
 * then an 8-bit family: AF_INET 2, AF_INET6 28), port and address in network order.
 */
import { describe, expect, it } from 'vitest';
import { bsdLayout, msgDontwait, peerOf, sockaddr } from '../../src/net/sockaddr.js';

const hex = (s: string) => Buffer.from(s.replace(/\s/g, ''), 'hex');

// 192.0.2.7 port 68; 2001:db8::1:2 port 67 (flowinfo 0, scope 0)
const linux4 = hex('0200 0044 c0000207 0000000000000000');
const bsd4 = hex('10 02 0044 c0000207 0000000000000000');
const linux6 = hex('0a00 0043 00000000 20010db8000000000000000000010002 00000000');
const bsd6 = hex('1c 1c 0043 00000000 20010db8000000000000000000010002 00000000');

describe('struct sockaddr', () => {
  it('encodes IPv4 and IPv6 peers in the Linux and the FreeBSD layout', () => {
    expect(sockaddr({ address: '192.0.2.7', port: 68 }, false)).toEqual(linux4);
    expect(sockaddr({ address: '192.0.2.7', port: 68 }, true)).toEqual(bsd4);
    expect(sockaddr({ address: '2001:db8::1:2', port: 67 }, false)).toEqual(linux6);
    expect(sockaddr({ address: '2001:db8::1:2', port: 67 }, true)).toEqual(bsd6);
    expect(sockaddr({ address: '::ffff:192.0.2.7', port: 1 }, false)!.subarray(8, 24)).toEqual(hex('00000000000000000000ffffc0000207'));
  });

  it('encodes nothing for a scoped IPv6 address, a name or a bad port', () => {
    expect(sockaddr({ address: 'fe80::1%eth0', port: 67 }, false)).toBeUndefined();
    expect(sockaddr({ address: 'host.example', port: 67 }, false)).toBeUndefined();
    expect(sockaddr({ address: '192.0.2.7', port: 65536 }, false)).toBeUndefined();
  });

  it('decodes the sender the kernel wrote, as dgram names it', () => {
    expect(peerOf(linux4, 16, false)).toEqual({ address: '192.0.2.7', port: 68, family: 'IPv4' });
    expect(peerOf(bsd4, 16, true)).toEqual({ address: '192.0.2.7', port: 68, family: 'IPv4' });
    expect(peerOf(linux6, 28, false)).toEqual({ address: '2001:db8::1:2', port: 67, family: 'IPv6' });
    expect(peerOf(bsd6, 28, true)).toEqual({ address: '2001:db8::1:2', port: 67, family: 'IPv6' });
    const mapped = Buffer.from(linux6);
    hex('00000000000000000000ffffc0000207').copy(mapped, 8);
    expect(peerOf(mapped, 28, false)).toEqual({ address: '::ffff:192.0.2.7', port: 67, family: 'IPv6' });
  });

  it('decodes nothing from the other layout, another family or a short length', () => {
    // a FreeBSD sockaddr_in read as Linux's: family 0x0210
    expect(peerOf(bsd4, 16, false)).toBeUndefined();
    // a Linux one read as FreeBSD's: family byte 0
    expect(peerOf(linux4, 16, true)).toBeUndefined();
    expect(peerOf(hex('0100 0000 00000000'), 8, false)).toBeUndefined(); // AF_UNIX
    expect(peerOf(linux4, 4, false)).toBeUndefined();
    expect(peerOf(linux6, 16, false)).toBeUndefined();
    expect(peerOf(linux4, 40, false)).toBeUndefined();
  });

  it('uses each platform\'s MSG_DONTWAIT and layout', () => {
    expect(msgDontwait('linux')).toBe(0x40);
    expect(msgDontwait('freebsd')).toBe(0x80);
    expect(bsdLayout('linux')).toBe(false);
    expect(bsdLayout('freebsd')).toBe(true);
  });
});
