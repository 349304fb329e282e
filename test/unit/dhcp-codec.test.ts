import { describe, expect, it } from 'vitest';
import {
  decodePacket, encodePacket, messageType, macString, MessageType, Opt, DhcpParseError,
  optString, optU16, requestedParams, clientArchs, userClasses, type DhcpPacket,
} from '../../src/net/dhcp/index.js';
import { udhcpcDiscover, dhclientDiscover } from './dhcp-captures.js';

function packet(over: Partial<DhcpPacket> = {}): DhcpPacket {
  return {
    op: 1, htype: 1, hlen: 6, hops: 0, xid: 0x12345678, secs: 0, flags: 0,
    ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: '0.0.0.0',
    chaddr: Buffer.from('525400123456', 'hex'), sname: '', file: '',
    options: new Map([[Opt.MESSAGE_TYPE, Buffer.from([MessageType.DISCOVER])]]), ...over,
  };
}

describe('DHCP codec on packets captured from real clients', () => {
  it('decodes a busybox udhcpc DISCOVER', () => {
    const p = decodePacket(Buffer.from(udhcpcDiscover, 'hex'));
    expect(p.op).toBe(1);
    expect(messageType(p)).toBe(MessageType.DISCOVER);
    expect(macString(p.chaddr)).toBe('52:54:00:12:34:56');
    expect(p.xid).toBe(0x2d3d4a09);
    expect(optString(p.options, Opt.HOSTNAME)).toBe('pc1');
    expect(optString(p.options, Opt.VENDOR_CLASS)).toBe('udhcp 1.35.0');
    expect(optU16(p.options, Opt.MAX_SIZE)).toBe(576);
    expect(requestedParams(p.options)).toEqual([1, 3, 6, 12, 15, 28, 42]);
    expect(p.options.get(Opt.CLIENT_ID)!.toString('hex')).toBe('01525400123456');
  });

  it('decodes an ISC dhclient DISCOVER', () => {
    const p = decodePacket(Buffer.from(dhclientDiscover, 'hex'));
    expect(messageType(p)).toBe(MessageType.DISCOVER);
    expect(macString(p.chaddr)).toBe('52:54:00:12:34:56');
    expect(requestedParams(p.options)).toContain(Opt.ROUTER);
  });

  it('re-encodes a captured packet to the same bytes', () => {
    const raw = Buffer.from(udhcpcDiscover, 'hex');
    expect(encodePacket(decodePacket(raw)).toString('hex')).toBe(raw.toString('hex'));
  });
});

describe('DHCP encoder', () => {
  it('leaves nothing of one packet in the next (the encoder reuses its buffer)', () => {
    const long: DhcpPacket = {
      op: 2, htype: 1, hlen: 16, hops: 0, xid: 7, secs: 0, flags: 0, ciaddr: '0.0.0.0', yiaddr: '10.0.0.9', siaddr: '10.0.0.1', giaddr: '0.0.0.0',
      chaddr: Buffer.alloc(16, 0xee), sname: 's'.repeat(63), file: 'f'.repeat(127),
      options: new Map([[Opt.MESSAGE_TYPE, Buffer.from([2])], [Opt.ROOT_PATH, Buffer.alloc(600, 0x41)]]),
    };
    const first = encodePacket(long);
    expect(first.length).toBe(240 + 3 + 3 * 2 + 600 + 1);
    const short: DhcpPacket = { ...long, hlen: 6, chaddr: Buffer.from([1, 2, 3, 4, 5, 6]), sname: '', file: 'pxeboot', options: new Map([[Opt.MESSAGE_TYPE, Buffer.from([5])]]) };
    const second = encodePacket(short);
    expect(second.length).toBe(300);
    expect(second.subarray(28, 44)).toEqual(Buffer.from([1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    expect(second.subarray(44, 108).every((b) => b === 0)).toBe(true);
    expect(second.subarray(108, 236).toString('latin1').replace(/\0+$/, '')).toBe('pxeboot');
    expect(second.subarray(244).every((b) => b === 0)).toBe(true);
    expect(decodePacket(second)).toMatchObject({ file: 'pxeboot', sname: '', options: new Map([[Opt.MESSAGE_TYPE, Buffer.from([5])]]) });
    // the first packet handed out is not changed by the second encoding
    expect(decodePacket(first).options.get(Opt.ROOT_PATH)).toEqual(Buffer.alloc(600, 0x41));
  });
});

describe('DHCP codec on hostile input', () => {
  const good = encodePacket(packet());
  it('refuses a truncated header', () => {
    expect(() => decodePacket(good.subarray(0, 200))).toThrow(DhcpParseError);
  });
  it('refuses a bad magic cookie', () => {
    const b = Buffer.from(good);
    b[236] = 0;
    expect(() => decodePacket(b)).toThrow(/magic cookie/);
  });
  it('refuses an option running past the end', () => {
    const b = Buffer.concat([good.subarray(0, 240), Buffer.from([53, 1, 1, 12, 50, 65, 65])]);
    expect(() => decodePacket(b)).toThrow(/past the end/);
  });
  it('refuses an option without a length byte', () => {
    const b = Buffer.concat([good.subarray(0, 240), Buffer.from([53, 1, 1, 12])]);
    expect(() => decodePacket(b)).toThrow(/no length/);
  });
  it('refuses a huge packet', () => {
    expect(() => decodePacket(Buffer.alloc(65000))).toThrow(/too large/);
  });
  it('reads options from overloaded file and sname fields once, even when they overload again', () => {
    const b = Buffer.from(encodePacket(packet({ options: new Map([[Opt.MESSAGE_TYPE, Buffer.from([1])], [Opt.OVERLOAD, Buffer.from([3])]]) })));
    Buffer.from([Opt.HOSTNAME, 3, 0x61, 0x62, 0x63, Opt.OVERLOAD, 1, 3, 255]).copy(b, 108);
    Buffer.from([Opt.DOMAIN, 3, 0x6c, 0x61, 0x62, 255]).copy(b, 44);
    const p = decodePacket(b);
    expect(optString(p.options, Opt.HOSTNAME)).toBe('abc');
    expect(optString(p.options, Opt.DOMAIN)).toBe('lab');
    expect(p.file).toBe('');
  });
  it('skips pads and concatenates a split option (RFC 3396)', () => {
    const b = Buffer.concat([good.subarray(0, 240), Buffer.from([0, 0, 53, 1, 1, 12, 2, 0x61, 0x62, 0, 12, 1, 0x63, 255])]);
    expect(optString(decodePacket(b).options, Opt.HOSTNAME)).toBe('abc');
  });
});

describe('DHCP encoding', () => {
  it('pads to 300 bytes and splits options longer than 255 bytes', () => {
    const long = Buffer.alloc(300, 0x41);
    const b = encodePacket(packet({ options: new Map([[Opt.MESSAGE_TYPE, Buffer.from([2])], [Opt.ROOT_PATH, long]]) }));
    expect(b.length).toBeGreaterThanOrEqual(300);
    expect(decodePacket(b).options.get(Opt.ROOT_PATH)).toEqual(long);
  });
  it('leaves out options that do not fit the size limit, keeping earlier ones', () => {
    const opts = new Map<number, Buffer>([[Opt.MESSAGE_TYPE, Buffer.from([2])], [Opt.HOSTNAME, Buffer.alloc(200, 0x61)], [Opt.ROOT_PATH, Buffer.alloc(200, 0x62)]]);
    const b = encodePacket(packet({ options: opts }), 548);
    expect(b.length).toBeLessThanOrEqual(548);
    const p = decodePacket(b);
    expect(p.options.has(Opt.HOSTNAME)).toBe(true);
    expect(p.options.has(Opt.ROOT_PATH)).toBe(false);
  });
  it('reads architectures and user classes in both encodings', () => {
    const p = packet({ options: new Map([[Opt.CLIENT_ARCH, Buffer.from([0, 7, 0, 0])], [Opt.USER_CLASS, Buffer.from('iPXE')]]) });
    expect(clientArchs(p.options)).toEqual([7, 0]);
    expect(userClasses(p.options)).toContain('iPXE');
    const rfc = packet({ options: new Map([[Opt.USER_CLASS, Buffer.from([4, 0x69, 0x50, 0x58, 0x45])]]) });
    expect(userClasses(rfc.options)).toContain('iPXE');
  });
});
