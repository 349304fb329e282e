/**
 * The server's protocol behaviour, in-process on loopback. Every request is relayed (giaddr
 * 127.0.0.1), so every reply goes back to the test's socket on 127.0.0.1 — never a broadcast.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DhcpServer, decodePacket, encodePacket, messageType, MessageType, Opt, optIp, optString, optU32,
  FLAG_BROADCAST, warmUpExchanges, WARM_EXCHANGES, type DhcpPacket, type DhcpServerOptions,
} from '../../src/net/dhcp/index.js';

let now = 1_700_000_000_000;
let relay: dgram.Socket;
let inbox: DhcpPacket[];
let waiting: ((p: DhcpPacket) => void) | null;
let servers: DhcpServer[];
let dir: string;
let xid = 1;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'be-dhcp-lo-'));
  servers = [];
  inbox = [];
  waiting = null;
  relay = dgram.createSocket('udp4');
  relay.on('message', (m) => {
    const p = decodePacket(m);
    if (waiting) {
      const w = waiting;
      waiting = null;
      w(p);
    } else inbox.push(p);
  });
  await new Promise<void>((r) => relay.bind(0, '127.0.0.1', () => r()));
});

afterEach(async () => {
  for (const s of servers) await s.stop();
  relay.close();
  rmSync(dir, { recursive: true, force: true });
});

async function server(over: Partial<DhcpServerOptions> = {}): Promise<DhcpServer> {
  const s = new DhcpServer({
    serverIp: '127.0.0.1', address: '127.0.0.1', port: 0, proxyPort: 0, relayPort: relay.address().port,
    clientPort: relay.address().port, broadcastAddress: '127.255.255.255',
    subnet: '127.0.0.0/8', range: '127.0.9.10-127.0.9.13', router: '127.0.0.254', dns: ['127.0.0.53'], domain: 'lab',
    leaseTime: 600, clock: () => now, leaseFile: join(dir, 'leases'), ...over,
  });
  await s.start();
  servers.push(s);
  return s;
}

function req(type: MessageType, mac: string, opts: Array<[number, Buffer]> = [], over: Partial<DhcpPacket> = {}): DhcpPacket {
  return {
    op: 1, htype: 1, hlen: 6, hops: 1, xid: xid++, secs: 0, flags: 0,
    ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: '127.0.0.1',
    chaddr: Buffer.from(mac.replace(/:/g, ''), 'hex'), sname: '', file: '',
    options: new Map<number, Buffer>([[Opt.MESSAGE_TYPE, Buffer.from([type])], ...opts]), ...over,
  };
}

const ip = (s: string) => Buffer.from(s.split('.').map(Number));

function send(s: DhcpServer, p: DhcpPacket, port = s.port): void {
  relay.send(encodePacket(p), port, '127.0.0.1');
}

function next(): Promise<DhcpPacket> {
  const p = inbox.shift();
  if (p) return Promise.resolve(p);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no reply from the server')), 5000);
    waiting = (x) => {
      clearTimeout(t);
      resolve(x);
    };
  });
}

async function ask(s: DhcpServer, p: DhcpPacket, port?: number): Promise<DhcpPacket> {
  send(s, p, port);
  const r = await next();
  expect(r.xid).toBe(p.xid);
  return r;
}

/** Sends `p`, then an INFORM probe; the first reply must answer the probe, so `p` got none. */
async function expectSilence(s: DhcpServer, p: DhcpPacket, probe = req(MessageType.INFORM, '02:00:00:00:99:99', [], { ciaddr: '127.0.9.99' })): Promise<void> {
  send(s, p);
  send(s, probe);
  const r = await next();
  expect(r.xid).toBe(probe.xid);
}

async function lease(s: DhcpServer, mac: string, extra: Array<[number, Buffer]> = []): Promise<DhcpPacket> {
  const offer = await ask(s, req(MessageType.DISCOVER, mac, extra));
  expect(messageType(offer)).toBe(MessageType.OFFER);
  const ack = await ask(s, req(MessageType.REQUEST, mac, [[Opt.SERVER_ID, ip('127.0.0.1')], [Opt.REQUESTED_IP, ip(offer.yiaddr)], ...extra]));
  expect(messageType(ack)).toBe(MessageType.ACK);
  return ack;
}

describe('DHCP server (loopback, relayed)', () => {
  it('rehearses its packet path at start on a scratch server: no lease, no journal line, no datagram', async () => {
    const lines: string[] = [];
    const s = await server({ warmUp: 3000, logger: (l) => lines.push(l) });
    expect(lines[0]).toMatch(/^rehearsed 3000 exchanges on a scratch server in \d+ ms/);
    await new Promise((r) => setTimeout(r, 100));
    expect(inbox).toEqual([]);
    expect(s.leases()).toEqual([]);
    expect(readFileSync(join(dir, 'leases'), 'utf8')).toBe('');
    expect([s.stats.received, s.stats.offers, s.stats.acks, s.stats.sendErrors]).toEqual([0, 0, 0, 0]);
    // the real server's allocation starts where it would have without the rehearsal
    expect((await lease(s, '02:00:00:00:00:01')).yiaddr).toBe('127.0.9.10');
    expect(lines.filter((l) => l.startsWith('DHCPACK'))).toEqual(['DHCPACK 127.0.9.10 to 02:00:00:00:00:01 for 600s']);
  });

  it('takes the rehearsal size from BE_DHCP_WARM and names a bad one', () => {
    expect(warmUpExchanges({})).toBe(WARM_EXCHANGES);
    expect(warmUpExchanges({ BE_DHCP_WARM: '0' })).toBe(0);
    expect(warmUpExchanges({ BE_DHCP_WARM: '250' })).toBe(250);
    expect(() => warmUpExchanges({ BE_DHCP_WARM: 'lots' })).toThrow(/^BE_DHCP_WARM=lots: not a number of exchanges/);
  });

  it('offers and acknowledges an address from the range with the configured options', async () => {
    const s = await server();
    const ack = await lease(s, '02:00:00:00:00:01', [[Opt.PARAM_REQUEST, Buffer.from([1, 3, 6, 15])]]);
    expect(ack.yiaddr).toBe('127.0.9.10');
    expect(optIp(ack.options, Opt.SERVER_ID)).toBe('127.0.0.1');
    expect(optU32(ack.options, Opt.LEASE_TIME)).toBe(600);
    expect(optIp(ack.options, Opt.SUBNET_MASK)).toBe('255.0.0.0');
    expect(optIp(ack.options, Opt.ROUTER)).toBe('127.0.0.254');
    expect(optIp(ack.options, Opt.DNS)).toBe('127.0.0.53');
    expect(optString(ack.options, Opt.DOMAIN)).toBe('lab');
    expect(ack.giaddr).toBe('127.0.0.1');
    expect(s.leases()).toEqual([{ mac: '02:00:00:00:00:01', ip: '127.0.9.10', expires: now + 600_000 }]);
  });

  it('sends only what option 55 asks for, in that order, after the lease options', async () => {
    const s = await server({ rootPath: '127.0.0.1:/be/root' });
    const offer = await ask(s, req(MessageType.DISCOVER, '02:00:00:00:00:02', [[Opt.PARAM_REQUEST, Buffer.from([17, 1])]]));
    expect([...offer.options.keys()]).toEqual([53, 54, 51, 58, 59, 17, 1]);
    expect(optString(offer.options, Opt.ROOT_PATH)).toBe('127.0.0.1:/be/root');
  });

  it('keeps the same address for a client across DISCOVERs and prefers a requested one', async () => {
    const s = await server();
    const o1 = await ask(s, req(MessageType.DISCOVER, '02:00:00:00:00:03', [[Opt.REQUESTED_IP, ip('127.0.9.12')]]));
    expect(o1.yiaddr).toBe('127.0.9.12');
    const o2 = await ask(s, req(MessageType.DISCOVER, '02:00:00:00:00:03'));
    expect(o2.yiaddr).toBe('127.0.9.12');
  });

  it('ignores a REQUEST naming another server and frees the offer', async () => {
    const s = await server({ range: '127.0.9.10-127.0.9.10' });
    const offer = await ask(s, req(MessageType.DISCOVER, '02:00:00:00:00:04'));
    expect(offer.yiaddr).toBe('127.0.9.10');
    await expectSilence(s, req(MessageType.REQUEST, '02:00:00:00:00:04', [[Opt.SERVER_ID, ip('127.0.0.2')], [Opt.REQUESTED_IP, ip('127.0.9.10')]]));
    // the single address is free again for someone else
    const other = await ask(s, req(MessageType.DISCOVER, '02:00:00:00:00:05'));
    expect(other.yiaddr).toBe('127.0.9.10');
    expect(s.leases()).toEqual([]);
  });

  it('NAKs an INIT-REBOOT request for a wrong address, with the broadcast bit for the relay', async () => {
    const s = await server();
    const nak = await ask(s, req(MessageType.REQUEST, '02:00:00:00:00:06', [[Opt.REQUESTED_IP, ip('127.0.50.1')]]));
    expect(messageType(nak)).toBe(MessageType.NAK);
    expect(nak.yiaddr).toBe('0.0.0.0');
    expect(nak.flags & FLAG_BROADCAST).toBe(FLAG_BROADCAST);
    // an address leased to someone else is refused as well
    const other = await lease(s, '02:00:00:00:00:07');
    const nak2 = await ask(s, req(MessageType.REQUEST, '02:00:00:00:00:06', [[Opt.REQUESTED_IP, ip(other.yiaddr)]]));
    expect(messageType(nak2)).toBe(MessageType.NAK);
    // INIT-REBOOT for its own free address is acknowledged
    const ok = await ask(s, req(MessageType.REQUEST, '02:00:00:00:00:06', [[Opt.REQUESTED_IP, ip('127.0.9.13')]]));
    expect(messageType(ok)).toBe(MessageType.ACK);
  });

  it('echoes the relay agent information (option 82) whole and last in offers, ACKs and NAKs', async () => {
    const s = await server();
    // circuit id "ge0/1", remote id 02:be:00:00:82:82 (RFC 3046 sub-options 1 and 2)
    const info = Buffer.concat([Buffer.from([1, 5]), Buffer.from('ge0/1'), Buffer.from([2, 6, 0x02, 0xbe, 0, 0, 0x82, 0x82])]);
    const mac = '02:00:00:00:00:82';
    const offer = await ask(s, req(MessageType.DISCOVER, mac, [[Opt.RELAY_AGENT_INFO, info]]));
    expect(messageType(offer)).toBe(MessageType.OFFER);
    expect([...offer.options.keys()].at(-1)).toBe(Opt.RELAY_AGENT_INFO);
    expect(offer.options.get(Opt.RELAY_AGENT_INFO)).toEqual(info);
    const ack = await ask(s, req(MessageType.REQUEST, mac, [[Opt.RELAY_AGENT_INFO, info], [Opt.SERVER_ID, ip('127.0.0.1')], [Opt.REQUESTED_IP, ip(offer.yiaddr)]]));
    expect(messageType(ack)).toBe(MessageType.ACK);
    expect([...ack.options.keys()].at(-1)).toBe(Opt.RELAY_AGENT_INFO);
    expect(ack.options.get(Opt.RELAY_AGENT_INFO)).toEqual(info);
    const nak = await ask(s, req(MessageType.REQUEST, '02:00:00:00:00:83', [[Opt.RELAY_AGENT_INFO, info], [Opt.REQUESTED_IP, ip('127.0.50.1')]]));
    expect(messageType(nak)).toBe(MessageType.NAK);
    expect(nak.options.get(Opt.RELAY_AGENT_INFO)).toEqual(info);
    // a request without the option gets none
    const plain = await ask(s, req(MessageType.DISCOVER, '02:00:00:00:00:84'));
    expect(plain.options.has(Opt.RELAY_AGENT_INFO)).toBe(false);
  });

  it('serving a subnet that does not hold it (relays only), ignores broadcasts from its own link', async () => {
    const direct = (mac: string) => req(MessageType.DISCOVER, mac, [], { giaddr: '0.0.0.0', hops: 0 });
    const local = await server();
    send(local, direct('02:00:00:00:00:85'));
    const relayedOnly = await server({ subnet: '127.0.9.0/24', router: '127.0.9.1', leaseFile: join(dir, 'leases2') });
    send(relayedOnly, direct('02:00:00:00:00:86'));
    // the server on its own subnet offers (to a broadcast this test does not hear)
    await expect.poll(() => local.stats.offers, { timeout: 5000 }).toBe(1);
    // the other one counts the request as ignored, offers nothing and holds no address for it
    await expect.poll(() => relayedOnly.stats.ignored, { timeout: 5000 }).toBe(1);
    expect(relayedOnly.stats.offers).toBe(0);
  });

  it('renews a lease (RENEWING: ciaddr set) and extends it', async () => {
    const s = await server();
    const ack = await lease(s, '02:00:00:00:00:08');
    now += 300_000;
    const renew = await ask(s, req(MessageType.REQUEST, '02:00:00:00:00:08', [], { ciaddr: ack.yiaddr }));
    expect(messageType(renew)).toBe(MessageType.ACK);
    expect(renew.ciaddr).toBe(ack.yiaddr);
    expect(s.leases()[0].expires).toBe(now + 600_000);
  });

  it('RELEASE ends the lease; DECLINE quarantines the address until declineTime passes', async () => {
    const s = await server({ range: '127.0.9.10-127.0.9.11', declineTime: 100 });
    const a = await lease(s, '02:00:00:00:00:09');
    await expectSilence(s, req(MessageType.RELEASE, '02:00:00:00:00:09', [[Opt.SERVER_ID, ip('127.0.0.1')]], { ciaddr: a.yiaddr }));
    expect(s.leases()[0].expires).toBe(now);
    const b = await lease(s, '02:00:00:00:00:0a');
    expect(b.yiaddr).toBe('127.0.9.11');
    await expectSilence(s, req(MessageType.DECLINE, '02:00:00:00:00:0a', [[Opt.SERVER_ID, ip('127.0.0.1')], [Opt.REQUESTED_IP, ip(b.yiaddr)]]));
    // .10 belongs (expired) to :09, .11 is quarantined: a newcomer gets .10, and with the range
    // full the next newcomer takes over that outstanding offer rather than .11
    const c = await ask(s, req(MessageType.DISCOVER, '02:00:00:00:00:0b'));
    expect(c.yiaddr).toBe('127.0.9.10');
    const d = await ask(s, req(MessageType.DISCOVER, '02:00:00:00:00:0c'));
    expect(d.yiaddr).toBe('127.0.9.10');
    now += 101_000;
    const e = await ask(s, req(MessageType.DISCOVER, '02:00:00:00:00:0d'));
    expect(e.yiaddr).toBe('127.0.9.11');
  });

  it('answers INFORM with options and no address or lease time', async () => {
    const s = await server();
    const r = await ask(s, req(MessageType.INFORM, '02:00:00:00:00:0d', [], { ciaddr: '127.0.0.77' }));
    expect(messageType(r)).toBe(MessageType.ACK);
    expect(r.yiaddr).toBe('0.0.0.0');
    expect(r.ciaddr).toBe('127.0.0.77');
    expect(r.options.has(Opt.LEASE_TIME)).toBe(false);
    expect(optIp(r.options, Opt.ROUTER)).toBe('127.0.0.254');
  });

  it('gives a reserved client its address and hostname, and nobody else that address', async () => {
    const s = await server({ reservations: [{ mac: '02:00:00:00:00:0e', ip: '127.0.9.200', hostname: 'builder' }] });
    const ack = await lease(s, '02:00:00:00:00:0e', [[Opt.PARAM_REQUEST, Buffer.from([1, 12])]]);
    expect(ack.yiaddr).toBe('127.0.9.200');
    expect(optString(ack.options, Opt.HOSTNAME)).toBe('builder');
    const nak = await ask(s, req(MessageType.REQUEST, '02:00:00:00:00:0f', [[Opt.REQUESTED_IP, ip('127.0.9.200')]]));
    expect(messageType(nak)).toBe(MessageType.NAK);
  });

  it('chooses the boot file by architecture and user class, with siaddr/file and PXE options', async () => {
    const s = await server({
      bootFiles: { 0: 'pxelinux.0', 7: 'loader.efi', 9: 'loader.efi' },
      userClassBootFiles: { iPXE: 'http://127.0.0.1/boot.ipxe' }, nextServer: '127.0.0.9',
    });
    const uuid = Buffer.from('00' + '11'.repeat(16), 'hex');
    const pxe = (arch: number, more: Array<[number, Buffer]> = []) => req(MessageType.DISCOVER, '02:00:00:00:00:10', [
      [Opt.VENDOR_CLASS, Buffer.from(`PXEClient:Arch:0000${arch}:UNDI:003016`)], [Opt.CLIENT_ARCH, Buffer.from([0, arch])],
      [Opt.CLIENT_UUID, uuid], [Opt.PARAM_REQUEST, Buffer.from([1, 3, 43, 60, 66, 67, 97])], ...more,
    ]);
    const efi = await ask(s, pxe(7));
    expect(efi.file).toBe('loader.efi');
    expect(efi.siaddr).toBe('127.0.0.9');
    expect(optString(efi.options, Opt.BOOTFILE)).toBe('loader.efi');
    expect(optString(efi.options, Opt.TFTP_SERVER)).toBe('127.0.0.9');
    expect(optString(efi.options, Opt.VENDOR_CLASS)).toBe('PXEClient');
    expect(efi.options.get(Opt.CLIENT_UUID)).toEqual(uuid);
    expect(efi.options.get(Opt.VENDOR)).toEqual(Buffer.from([6, 1, 8, 255]));
    expect((await ask(s, pxe(0))).file).toBe('pxelinux.0');
    expect((await ask(s, pxe(0, [[Opt.USER_CLASS, Buffer.from('iPXE')]]))).file).toBe('http://127.0.0.1/boot.ipxe');
    // a client that is not PXE gets no boot file
    const plain = await ask(s, req(MessageType.DISCOVER, '02:00:00:00:00:11'));
    expect(plain.file).toBe('');
    expect(plain.options.has(Opt.VENDOR_CLASS)).toBe(false);
  });

  it('respects the client maximum message size (option 57)', async () => {
    const s = await server({ rootPath: `127.0.0.1:/${'x'.repeat(250)}`, domain: 'd'.repeat(250) });
    const small = await ask(s, req(MessageType.DISCOVER, '02:00:00:00:00:12', [[Opt.MAX_SIZE, Buffer.from([2, 64])], [Opt.PARAM_REQUEST, Buffer.from([1, 15, 17])]]));
    const raw = encodePacket(small);
    expect(raw.length).toBeLessThanOrEqual(576 - 28);
    expect(small.options.has(Opt.DOMAIN)).toBe(true);
    expect(small.options.has(Opt.ROOT_PATH)).toBe(false);
  });

  it('in proxy mode answers only PXE clients, without an address, on 67 and 4011', async () => {
    const s = await server({ proxy: true, range: undefined, bootFiles: { 0: 'pxeboot', 7: 'loader.efi' } });
    const pxe: Array<[number, Buffer]> = [[Opt.VENDOR_CLASS, Buffer.from('PXEClient:Arch:00007:UNDI:003016')], [Opt.CLIENT_ARCH, Buffer.from([0, 7])]];
    await expectSilence(s, req(MessageType.DISCOVER, '02:00:00:00:00:13'), req(MessageType.DISCOVER, '02:00:00:00:00:99', pxe));
    const offer = await ask(s, req(MessageType.DISCOVER, '02:00:00:00:00:13', pxe));
    expect(messageType(offer)).toBe(MessageType.OFFER);
    expect(offer.yiaddr).toBe('0.0.0.0');
    expect(offer.file).toBe('loader.efi');
    expect(offer.options.has(Opt.LEASE_TIME)).toBe(false);
    expect(offer.options.get(Opt.VENDOR)).toEqual(Buffer.from([6, 1, 8, 255]));
    const ack = await ask(s, req(MessageType.REQUEST, '02:00:00:00:00:13', pxe, { ciaddr: '127.0.0.1', giaddr: '0.0.0.0' }), s.proxyPort);
    expect(messageType(ack)).toBe(MessageType.ACK);
    expect(ack.file).toBe('loader.efi');
    expect(s.leases()).toEqual([]);
  });

  it('keeps leases across a restart', async () => {
    const s = await server();
    const a = await lease(s, '02:00:00:00:00:14');
    await s.stop();
    servers = [];
    const s2 = await server();
    expect(s2.leases()).toEqual([{ mac: '02:00:00:00:00:14', ip: a.yiaddr, expires: now + 600_000 }]);
    const again = await ask(s2, req(MessageType.DISCOVER, '02:00:00:00:00:14'));
    expect(again.yiaddr).toBe(a.yiaddr);
  });

  it('refuses bad configuration with a one-line message', () => {
    expect(() => new DhcpServer({ serverIp: '10.0.0.300' })).toThrow(/serverIp: bad IPv4 address/);
    expect(() => new DhcpServer({ serverIp: '10.0.0.1', subnet: '10.0.0.0/24', range: '10.0.1.1-10.0.1.9' })).toThrow(/outside subnet/);
    expect(() => new DhcpServer({ serverIp: '10.0.0.1', subnet: '10.0.0.0/24', range: '10.0.0.9-10.0.0.1' })).toThrow(/comes after/);
    expect(() => new DhcpServer({ serverIp: '10.0.0.1', subnet: '10.0.0.0/24', reservations: [{ mac: 'nope', ip: '10.0.0.5' }] })).toThrow(/bad MAC/);
    expect(() => new DhcpServer({ serverIp: '10.0.0.1', subnet: '10.0.0.0/24', interface: 'nosuchif0' })).toThrow(/interface: no such interface nosuchif0/);
    expect(() => new DhcpServer({ serverIp: '10.0.0.1', subnet: '10.0.0.0/24', bootFiles: { efi: 'loader.efi' } })).toThrow(/bootFiles: bad architecture "efi"/);
  });
});

/** Option 61: type 1 (Ethernet) and a MAC, as PXE ROMs and most clients send it. */
const cid = (mac: string): [number, Buffer] => [Opt.CLIENT_ID, Buffer.from(`01${mac.replace(/:/g, '')}`, 'hex')];

// RFC 2131 §4.2: "the server MUST use [the client identifier], when present, to identify the client".
describe('DHCP client identifier (option 61)', () => {
  it('two NICs sending the same client identifier are one client: the same address, one lease', async () => {
    const s = await server();
    const first = await lease(s, '02:00:00:00:61:01', [cid('02:00:00:00:61:ff')]);
    const second = await lease(s, '02:00:00:00:61:02', [cid('02:00:00:00:61:ff')]);
    expect(second.yiaddr).toBe(first.yiaddr);
    expect(s.leases()).toEqual([{ mac: '02:00:00:00:61:02', clientId: '010200000061ff', ip: first.yiaddr, expires: now + 600_000 }]);
    // a third NIC without an identifier is another client
    const third = await lease(s, '02:00:00:00:61:03');
    expect(third.yiaddr).not.toBe(first.yiaddr);
  });

  it('one NIC sending two client identifiers is two clients with two live leases', async () => {
    const s = await server();
    const mac = '02:00:00:00:62:01';
    const a = await lease(s, mac, [cid('02:00:00:00:62:aa')]);
    const b = await lease(s, mac, [cid('02:00:00:00:62:bb')]);
    expect(b.yiaddr).not.toBe(a.yiaddr);
    expect(s.leases().map((l) => [l.clientId, l.ip]).sort()).toEqual([['010200000062aa', a.yiaddr], ['010200000062bb', b.yiaddr]].sort());
    // each identifier renews its own address (RENEWING: ciaddr, no option 54)
    const renew = await ask(s, req(MessageType.REQUEST, mac, [cid('02:00:00:00:62:aa')], { ciaddr: a.yiaddr }));
    expect(messageType(renew)).toBe(MessageType.ACK);
    expect(renew.yiaddr).toBe(a.yiaddr);
    // and asking for the other identifier's address is refused
    const steal = await ask(s, req(MessageType.REQUEST, mac, [cid('02:00:00:00:62:aa'), [Opt.REQUESTED_IP, ip(b.yiaddr)]]));
    expect(messageType(steal)).toBe(MessageType.NAK);
  });

  it('the journal keeps the identifier: after a restart the client gets its address back from any NIC', async () => {
    const s = await server();
    const ack = await lease(s, '02:00:00:00:63:01', [cid('02:00:00:00:63:ff')]);
    await s.stop();
    servers.splice(servers.indexOf(s), 1);
    expect(readFileSync(join(dir, 'leases'), 'utf8')).toContain('"cid":"010200000063ff"');
    const again = await server();
    const offer = await ask(again, req(MessageType.DISCOVER, '02:00:00:00:63:02', [cid('02:00:00:00:63:ff')]));
    expect(offer.yiaddr).toBe(ack.yiaddr);
    // the MAC that bound it, without the identifier, is another client
    const other = await ask(again, req(MessageType.DISCOVER, '02:00:00:00:63:01'));
    expect(other.yiaddr).not.toBe(ack.yiaddr);
  });

  it('loads a journal written before identifiers were kept: its leases stay with their MACs', async () => {
    const exp = now + 300_000;
    writeFileSync(join(dir, 'leases'), [
      `{"op":"bind","mac":"02:00:00:00:64:01","ip":"127.0.9.12","exp":${exp},"host":"pc1"}`,
      `{"op":"decline","ip":"127.0.9.13","until":${exp}}`,
      '',
    ].join('\n'));
    const s = await server();
    expect(s.leases()).toEqual([{ mac: '02:00:00:00:64:01', ip: '127.0.9.12', expires: exp, hostname: 'pc1' }]);
    const offer = await ask(s, req(MessageType.DISCOVER, '02:00:00:00:64:01'));
    expect(offer.yiaddr).toBe('127.0.9.12');
    const stranger = await ask(s, req(MessageType.DISCOVER, '02:00:00:00:64:02'));
    expect(['127.0.9.10', '127.0.9.11']).toContain(stranger.yiaddr);
  });
});
