/**
 * A DHCP client that speaks through a relay address (giaddr), so many clients with made-up MACs
 * can run from one socket on port 67 and every reply comes back by unicast.
 */
import dgram from 'node:dgram';
import { decodePacket, encodePacket, messageType, MessageType, Opt, type DhcpPacket } from '../../../src/net/dhcp/index.js';

export class RelayClient {
  private readonly socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  private readonly waiting = new Map<number, (p: DhcpPacket) => void>();
  private nextXid = (Math.random() * 0x7fffffff) >>> 0;

  constructor(private readonly relayIp: string, private readonly serverIp: string, private readonly serverPort = 67) {
    this.socket.on('message', (m) => {
      try {
        const p = decodePacket(m);
        const w = this.waiting.get(p.xid);
        if (w) {
          this.waiting.delete(p.xid);
          w(p);
        }
      } catch {
        // not ours
      }
    });
  }

  bind(port = 67): Promise<void> {
    return new Promise((r) => this.socket.bind(port, this.relayIp, () => r()));
  }

  close(): void {
    this.socket.close();
  }

  /** Send raw bytes to the server (for fuzzing). */
  sendRaw(buf: Buffer): Promise<void> {
    return new Promise((r) => this.socket.send(buf, this.serverPort, this.serverIp, () => r()));
  }

  packet(type: MessageType, mac: Buffer, xid: number, opts: Array<[number, Buffer]>): DhcpPacket {
    return {
      op: 1, htype: 1, hlen: 6, hops: 1, xid, secs: 0, flags: 0, ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0',
      giaddr: this.relayIp, chaddr: mac, sname: '', file: '', options: new Map([[Opt.MESSAGE_TYPE, Buffer.from([type])], ...opts]),
    };
  }

  /** Send and wait for the reply with the same xid; undefined after `timeoutMs`. */
  ask(p: DhcpPacket, timeoutMs: number): Promise<DhcpPacket | undefined> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiting.delete(p.xid);
        resolve(undefined);
      }, timeoutMs);
      this.waiting.set(p.xid, (r) => {
        clearTimeout(t);
        resolve(r);
      });
      this.socket.send(encodePacket(p), this.serverPort, this.serverIp);
    });
  }

  /** DISCOVER/OFFER/REQUEST/ACK with retries; resolves with the leased address or undefined. */
  async lease(mac: Buffer, tries = 4, timeoutMs = 1000): Promise<string | undefined> {
    for (let i = 0; i < tries; i++) {
      const xid = (this.nextXid = (this.nextXid + 1) >>> 0);
      const offer = await this.ask(this.packet(MessageType.DISCOVER, mac, xid, []), timeoutMs);
      if (!offer || messageType(offer) !== MessageType.OFFER) continue;
      const sid = offer.options.get(Opt.SERVER_ID)!;
      const ack = await this.ask(this.packet(MessageType.REQUEST, mac, xid, [[Opt.SERVER_ID, sid], [Opt.REQUESTED_IP, Buffer.from(offer.yiaddr.split('.').map(Number))]]), timeoutMs);
      if (ack && messageType(ack) === MessageType.ACK) return ack.yiaddr;
    }
    return undefined;
  }
}
