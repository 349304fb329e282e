import { describe, expect, it } from 'vitest';
import { decodePacket, encodeOptions, encodePacket, encodeWithOptions, MessageType, Opt, type DhcpPacket } from '../../src/net/dhcp/codec.js';
import { checkConfig } from '../../src/net/dhcp/config.js';
import { ReplyBuilder, type Reply } from '../../src/net/dhcp/replies.js';

const opts = { serverIp: '10.9.0.1', subnet: '10.9.0.0/16', range: '10.9.1.0-10.9.1.200', router: '10.9.0.1', dns: ['10.9.0.2'], domain: 'lab.example' };

function request(mac: number, extra: Array<[number, Buffer]>, giaddr = '0.0.0.0'): DhcpPacket {
  return {
    op: 1, htype: 1, hlen: 6, hops: 0, xid: 0x1000 + mac, secs: 0, flags: 0, ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr,
    chaddr: Buffer.from([2, 0, 0, 0, 0, mac]), sname: '', file: '', options: new Map([[Opt.MESSAGE_TYPE, Buffer.from([MessageType.DISCOVER])], ...extra]),
  };
}

/** What the server sends for R (server.ts, send). */
function wire(r: Reply): Buffer {
  return r.optionBytes ? encodeWithOptions(r.packet, r.optionBytes) : encodePacket(r.packet, r.maxSize);
}

const prl = (...codes: number[]): [number, Buffer] => [Opt.PARAM_REQUEST, Buffer.from(codes)];

describe('DHCP replies built again for clients of one kind', () => {
  it('sends the second client of a kind what a fresh builder would, with its own header', () => {
    const b = new ReplyBuilder(opts, checkConfig(opts));
    const first = wire(b.reply(decodePacket(encodePacket(request(1, [prl(1, 3, 6, 15)]))), MessageType.OFFER, '10.9.1.1', '02:00:00:00:00:01', { lease: true }));
    const second = b.reply(decodePacket(encodePacket(request(2, [prl(1, 3, 6, 15)]))), MessageType.OFFER, '10.9.1.2', '02:00:00:00:00:02', { lease: true });
    expect(second.optionBytes).toBeDefined();
    const fresh = new ReplyBuilder(opts, checkConfig(opts)).reply(decodePacket(encodePacket(request(2, [prl(1, 3, 6, 15)]))), MessageType.OFFER, '10.9.1.2', '02:00:00:00:00:02', { lease: true });
    expect(wire(second).toString('hex')).toBe(encodePacket(fresh.packet, fresh.maxSize).toString('hex'));
    const d = decodePacket(wire(second));
    expect(d.yiaddr).toBe('10.9.1.2');
    expect(d.xid).toBe(0x1002);
    expect([...d.options.keys()]).toEqual([Opt.MESSAGE_TYPE, Opt.SERVER_ID, Opt.LEASE_TIME, Opt.RENEWAL_TIME, Opt.REBINDING_TIME, Opt.SUBNET_MASK, Opt.ROUTER, Opt.DNS, Opt.DOMAIN]);
    expect(decodePacket(first).yiaddr).toBe('10.9.1.1');
  });

  it('answers another option 55, another message type and a smaller size limit with their own options', () => {
    const b = new ReplyBuilder(opts, checkConfig(opts));
    b.reply(decodePacket(encodePacket(request(1, [prl(1, 3, 6, 15)]))), MessageType.OFFER, '10.9.1.1', '02:00:00:00:00:01', { lease: true });
    const fewer = decodePacket(wire(b.reply(decodePacket(encodePacket(request(2, [prl(1)]))), MessageType.OFFER, '10.9.1.2', '02:00:00:00:00:02', { lease: true })));
    expect([...fewer.options.keys()]).toEqual([Opt.MESSAGE_TYPE, Opt.SERVER_ID, Opt.LEASE_TIME, Opt.RENEWAL_TIME, Opt.REBINDING_TIME, Opt.SUBNET_MASK]);
    const ack = decodePacket(wire(b.reply(decodePacket(encodePacket(request(3, [prl(1, 3, 6, 15)]))), MessageType.ACK, '10.9.1.3', '02:00:00:00:00:03', { lease: true })));
    expect(ack.options.get(Opt.MESSAGE_TYPE)).toEqual(Buffer.from([MessageType.ACK]));
    // a 400-byte domain name fits in a client's 1500-byte limit, not in the 548 bytes of a small one
    const long = { ...opts, domain: 'd'.repeat(400) };
    const lb = new ReplyBuilder(long, checkConfig(long));
    const big = decodePacket(wire(lb.reply(decodePacket(encodePacket(request(4, [prl(1, 15), [Opt.MAX_SIZE, Buffer.from([0x05, 0xdc])]]))), MessageType.OFFER, '10.9.1.4', '02:00:00:00:00:04', { lease: true })));
    expect(big.options.get(Opt.DOMAIN)?.length).toBe(400);
    const small = wire(lb.reply(decodePacket(encodePacket(request(5, [prl(1, 15), [Opt.MAX_SIZE, Buffer.from([0x01, 0x40])]]))), MessageType.OFFER, '10.9.1.5', '02:00:00:00:00:05', { lease: true }));
    expect(small.length).toBeLessThanOrEqual(548);
    expect(decodePacket(small).options.has(Opt.DOMAIN)).toBe(false);
    expect(decodePacket(small).options.has(Opt.SUBNET_MASK)).toBe(true);
  });

  it("echoes a relay agent's option 82 to that request only (RFC 3046 §2.2)", () => {
    const b = new ReplyBuilder(opts, checkConfig(opts));
    const info: [number, Buffer] = [Opt.RELAY_AGENT_INFO, Buffer.from([1, 3, 0x61, 0x62, 0x63])];
    b.reply(decodePacket(encodePacket(request(1, [prl(1, 3)], '10.9.0.254'))), MessageType.OFFER, '10.9.1.1', '02:00:00:00:00:01', { lease: true });
    const relayed = decodePacket(wire(b.reply(decodePacket(encodePacket(request(2, [prl(1, 3), info], '10.9.0.254'))), MessageType.OFFER, '10.9.1.2', '02:00:00:00:00:02', { lease: true })));
    expect([...relayed.options.keys()].at(-1)).toBe(Opt.RELAY_AGENT_INFO);
    expect(relayed.options.get(Opt.RELAY_AGENT_INFO)).toEqual(info[1]);
    const next = decodePacket(wire(b.reply(decodePacket(encodePacket(request(3, [prl(1, 3)], '10.9.0.254'))), MessageType.OFFER, '10.9.1.3', '02:00:00:00:00:03', { lease: true })));
    expect(next.options.has(Opt.RELAY_AGENT_INFO)).toBe(false);
  });

  it('gives each PXE client its own UUID (option 97)', () => {
    const pxe = { ...opts, bootFiles: { default: 'pxeboot' } };
    const b = new ReplyBuilder(pxe, checkConfig(pxe));
    const client = (n: number) => request(n, [prl(1, 3, 60, 66, 67, 97), [Opt.VENDOR_CLASS, Buffer.from('PXEClient:Arch:00000:UNDI:002001')], [Opt.CLIENT_UUID, Buffer.from([0, ...Array(16).fill(n)])]]);
    const one = decodePacket(wire(b.reply(decodePacket(encodePacket(client(1))), MessageType.OFFER, '10.9.1.1', '02:00:00:00:00:01', { lease: true })));
    const two = decodePacket(wire(b.reply(decodePacket(encodePacket(client(2))), MessageType.OFFER, '10.9.1.2', '02:00:00:00:00:02', { lease: true })));
    expect(one.options.get(Opt.CLIENT_UUID)?.[1]).toBe(1);
    expect(two.options.get(Opt.CLIENT_UUID)?.[1]).toBe(2);
    expect(two.file).toBe('pxeboot');
  });
});

describe('DHCP option areas encoded once', () => {
  it('make the same packet as encoding the whole of it', () => {
    const p = request(9, [prl(1, 3), [Opt.ROOT_PATH, Buffer.alloc(600, 0x41)], [Opt.HOSTNAME, Buffer.from('h')]]);
    for (const max of [300, 576, 1500]) {
      expect(encodeWithOptions(p, encodeOptions(p.options, max)).toString('hex')).toBe(encodePacket(p, max).toString('hex'));
    }
  });
});
