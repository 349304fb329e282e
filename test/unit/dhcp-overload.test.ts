/**
 * Under a burst the server finishes the exchanges it started before it starts new ones: REQUESTs
 * for its offers are answered while DISCOVERs wait (newest first), and DISCOVERs beyond what it
 * keeps waiting are shed unread. In-process on loopback; every request is relayed (giaddr
 * 127.0.0.1), so every reply comes back to the test's socket.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import {
  DhcpServer, decodePacket, encodePacket, messageType, MessageType, Opt, type DhcpPacket, type DhcpServerOptions,
} from '../../src/net/dhcp/index.js';
import { peekMessageType } from '../../src/net/dhcp/load.js';

let relay: dgram.Socket;
let replies: DhcpPacket[];
let server: DhcpServer | undefined;
let xid = 1;

beforeEach(async () => {
  replies = [];
  relay = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20 });
  relay.on('message', (m) => replies.push(decodePacket(m)));
  await new Promise<void>((r) => relay.bind(0, '127.0.0.1', () => r()));
});

afterEach(async () => {
  await server?.stop();
  server = undefined;
  relay.close();
});

async function start(over: Partial<DhcpServerOptions> = {}): Promise<DhcpServer> {
  server = new DhcpServer({
    serverIp: '127.0.0.1', address: '127.0.0.1', port: 0, relayPort: relay.address().port, clientPort: relay.address().port,
    subnet: '127.0.0.0/8', range: '127.0.9.10-127.0.11.250', leaseTime: 600, ...over,
  });
  await server.start();
  return server;
}

const mac = (n: number) => `02:00:00:00:${((n >> 8) & 255).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`;

function packet(type: MessageType, n: number, opts: Array<[number, Buffer]> = []): DhcpPacket {
  return {
    op: 1, htype: 1, hlen: 6, hops: 1, xid: xid++, secs: 0, flags: 0,
    ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: '127.0.0.1',
    chaddr: Buffer.from(mac(n).replace(/:/g, ''), 'hex'), sname: '', file: '',
    options: new Map<number, Buffer>([[Opt.MESSAGE_TYPE, Buffer.from([type])], ...opts]),
  };
}

const ipBytes = (s: string) => Buffer.from(s.split('.').map(Number));

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

/** 20 clients hold offers; then 300 new clients' DISCOVERs and those 20 REQUESTs arrive in one burst. */
async function burst(s: DhcpServer): Promise<{ discovers: DhcpPacket[]; requests: DhcpPacket[] }> {
  const offered: string[] = [];
  for (let n = 0; n < 20; n++) {
    relay.send(encodePacket(packet(MessageType.DISCOVER, n)), s.port, '127.0.0.1');
    await until(() => replies.length === n + 1, `offer ${n}`);
    offered.push(replies[n].yiaddr);
  }
  replies = [];
  const discovers = Array.from({ length: 300 }, (_, i) => packet(MessageType.DISCOVER, 1000 + i));
  const requests = offered.map((ip, n) => packet(MessageType.REQUEST, n, [[Opt.SERVER_ID, ipBytes('127.0.0.1')], [Opt.REQUESTED_IP, ipBytes(ip)]]));
  // all queued in the kernel before the server reads any (it shares this event loop)
  for (const p of [...discovers, ...requests]) relay.send(encodePacket(p), s.port, '127.0.0.1');
  return { discovers, requests };
}

describe('DHCP server under a burst', () => {
  it('reads option 53 straight from the datagram', () => {
    const d = encodePacket(packet(MessageType.DISCOVER, 1, [[Opt.HOSTNAME, Buffer.from('pc')]]));
    expect(peekMessageType(d)).toBe(MessageType.DISCOVER);
    expect(peekMessageType(encodePacket(packet(MessageType.REQUEST, 1)))).toBe(MessageType.REQUEST);
    expect(peekMessageType(d.subarray(0, 240))).toBe(0);
    const noCookie = Buffer.from(d);
    noCookie[236] = 0;
    expect(peekMessageType(noCookie)).toBe(0);
  });

  it('answers the REQUESTs for its offers before the new DISCOVERs queued ahead of them, then serves those newest first', async () => {
    const s = await start();
    const { discovers, requests } = await burst(s);
    await until(() => replies.length === discovers.length + requests.length, 'every reply');
    const acks = replies.filter((r) => messageType(r) === MessageType.ACK);
    expect(acks.map((r) => r.xid).sort((a, b) => a - b)).toEqual(requests.map((r) => r.xid));
    const lastAck = replies.map((r) => messageType(r)).lastIndexOf(MessageType.ACK);
    const after = replies.slice(lastAck + 1);
    // FIFO would have answered all 300 DISCOVERs first: here many still waited when the ACKs left
    expect(after.length).toBeGreaterThan(50);
    expect(after.every((r) => messageType(r) === MessageType.OFFER)).toBe(true);
    // the waiting ones went newest first
    const xids = after.map((r) => r.xid);
    expect(xids).toEqual([...xids].sort((a, b) => b - a));
    expect(s.stats.shed).toBe(0);
  });

  it('sheds the DISCOVERs it cannot keep waiting, unread, and still finishes every started exchange', async () => {
    const s = await start({ maxWaitingDiscovers: 16 });
    const { discovers, requests } = await burst(s);
    await until(() => replies.filter((r) => messageType(r) === MessageType.ACK).length === requests.length, 'every ACK');
    await until(() => s.stats.offers - 20 + s.stats.shed === discovers.length, 'every DISCOVER answered or shed');
    expect(s.stats.shed).toBeGreaterThan(100);
    expect(s.stats.malformed).toBe(0);
    // every DISCOVER not shed got its OFFER
    await until(() => replies.filter((r) => messageType(r) === MessageType.OFFER).length === s.stats.offers - 20, 'the OFFERs');
  });
});
