/**
 * In-process DHCP servers on loopback, spoken to as a relay agent (giaddr 127.0.0.1), so every
 * reply comes back to the test's socket on 127.0.0.1 and never is a broadcast.
 */
import dgram from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DhcpServer, decodePacket, encodePacket, messageType, MessageType, Opt, type DhcpPacket, type DhcpServerOptions,
} from '../../src/net/dhcp/index.js';

export const ipBytes = (s: string) => Buffer.from(s.split('.').map(Number));

export class LoopbackRelay {
  /** The servers' clock, milliseconds. */
  now = 1_700_000_000_000;
  readonly dir = mkdtempSync(join(tmpdir(), 'be-dhcp-lo-'));
  private readonly socket = dgram.createSocket('udp4');
  private readonly inbox: DhcpPacket[] = [];
  private waiting: ((p: DhcpPacket) => void) | null = null;
  private readonly servers: DhcpServer[] = [];
  private xid = 1;

  static async open(): Promise<LoopbackRelay> {
    const r = new LoopbackRelay();
    r.socket.on('message', (m) => {
      const p = decodePacket(m);
      const w = r.waiting;
      r.waiting = null;
      if (w) w(p);
      else r.inbox.push(p);
    });
    await new Promise<void>((ok) => r.socket.bind(0, '127.0.0.1', () => ok()));
    return r;
  }

  async server(over: Partial<DhcpServerOptions> = {}): Promise<DhcpServer> {
    const port = this.socket.address().port;
    const s = new DhcpServer({
      serverIp: '127.0.0.1', address: '127.0.0.1', port: 0, relayPort: port, clientPort: port,
      subnet: '127.0.0.0/8', range: '127.0.9.10-127.0.9.13', leaseTime: 600, clock: () => this.now,
      leaseFile: join(this.dir, 'leases'), ...over,
    });
    await s.start();
    this.servers.push(s);
    return s;
  }

  /** Stop one server (its journal flushed), e.g. before starting another on the same lease file. */
  async stopServer(s: DhcpServer): Promise<void> {
    await s.stop();
    this.servers.splice(this.servers.indexOf(s), 1);
  }

  async close(): Promise<void> {
    for (const s of this.servers) await s.stop();
    this.socket.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  req(type: MessageType, mac: string, opts: Array<[number, Buffer]> = [], over: Partial<DhcpPacket> = {}): DhcpPacket {
    return {
      op: 1, htype: 1, hlen: 6, hops: 1, xid: this.xid++, secs: 0, flags: 0,
      ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: '127.0.0.1',
      chaddr: Buffer.from(mac.replace(/:/g, ''), 'hex'), sname: '', file: '',
      options: new Map<number, Buffer>([[Opt.MESSAGE_TYPE, Buffer.from([type])], ...opts]), ...over,
    };
  }

  /** Send `p` to `s` and wait for the reply with its xid. */
  async ask(s: DhcpServer, p: DhcpPacket): Promise<DhcpPacket> {
    this.socket.send(encodePacket(p), s.port, '127.0.0.1');
    for (;;) {
      const r = this.inbox.shift() ?? await new Promise<DhcpPacket>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no reply from the server')), 5000);
        this.waiting = (x) => {
          clearTimeout(t);
          resolve(x);
        };
      });
      if (r.xid === p.xid) return r;
    }
  }

  /** DISCOVER, then REQUEST what was offered; returns the ACK (throws on anything else). */
  async lease(s: DhcpServer, mac: string, extra: Array<[number, Buffer]> = []): Promise<DhcpPacket> {
    const offer = await this.ask(s, this.req(MessageType.DISCOVER, mac, extra));
    if (messageType(offer) !== MessageType.OFFER) throw new Error(`DISCOVER from ${mac}: answer ${messageType(offer)}, not OFFER`);
    const ack = await this.ask(s, this.req(MessageType.REQUEST, mac, [[Opt.SERVER_ID, ipBytes('127.0.0.1')], [Opt.REQUESTED_IP, ipBytes(offer.yiaddr)], ...extra]));
    if (messageType(ack) !== MessageType.ACK) throw new Error(`REQUEST from ${mac}: answer ${messageType(ack)}, not ACK`);
    return ack;
  }
}
