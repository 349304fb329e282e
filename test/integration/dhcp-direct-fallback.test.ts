/**
 * A reply whose direct sendto fails goes through dgram, whose error handling stands: on a server
 * without a default route a datagram to 255.255.255.255 from a socket bound to 0.0.0.0 fails with
 * ENETUNREACH (no route for it), and the server sends to the subnet broadcast from then on. The
 * same exchange with the direct calls on and off (BE_DHCP_NO_FFI): the client, bound to
 * 0.0.0.0:68 on the other side of a veth pair, gets its OFFER and ACK either way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildHelpers, exchange, startServer, type Helpers } from '../helpers/dhcp.js';
import { decodePacket, encodePacket, messageType, MessageType, Opt, type DhcpPacket } from '../../src/net/dhcp/index.js';
import { libc } from '../../src/net/libc.js';

const tag = randomBytes(3).toString('hex');
const srvNs = `dio-s-${tag}`;
const cliNs = `dio-c-${tag}`;
const p = `10.${randomInt(100, 250)}.${randomInt(1, 250)}`;
let h: Helpers;
let dir: string;

const ip = (...args: string[]) => execa('ip', args);
const ipb = (s: string) => Buffer.from(s.split('.').map(Number));

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dio-fallback-'));
  h = await buildHelpers();
  await ip('netns', 'add', srvNs);
  await ip('netns', 'add', cliNs);
  await ip('-n', srvNs, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', cliNs);
  for (const [ns, a] of [[srvNs, `${p}.2/24`], [cliNs, `${p}.7/24`]]) {
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
    await ip('-n', ns, 'addr', 'add', a, 'dev', 'eth0');
    await ip('-n', ns, 'link', 'set', 'eth0', 'up');
  }
  // the client can broadcast; the server has its subnet's route only
  await ip('-n', cliNs, 'route', 'add', 'default', 'dev', 'eth0');
});

afterAll(async () => {
  for (const ns of [srvNs, cliNs]) await execa('ip', ['netns', 'del', ns], { reject: false });
  await h?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function packet(type: MessageType, opts: Array<[number, Buffer]> = []): Buffer {
  const d: DhcpPacket = {
    op: 1, htype: 1, hlen: 6, hops: 0, xid: randomInt(1, 0xffffffff), secs: 0, flags: 0,
    ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: '0.0.0.0',
    chaddr: Buffer.from('02d10000a001', 'hex'), sname: '', file: '',
    options: new Map<number, Buffer>([[Opt.MESSAGE_TYPE, Buffer.from([type])], ...opts]),
  };
  return encodePacket(d);
}

async function client(m: Buffer) {
  const got = await exchange(h, cliNs, { bind: '0.0.0.0', bindPort: 68, to: '255.255.255.255', toPort: 67, packet: m, waitMs: 3000 });
  return got.map((r) => ({ to: r, packet: decodePacket(Buffer.from(r.hex, 'hex')) }));
}

describe('DHCP replies when the direct send fails', () => {
  for (const direct of [true, false]) {
    it.skipIf(direct && typeof libc() === 'string')(`fall back to dgram, which goes on to the subnet broadcast (direct calls ${direct ? 'on' : 'off'})`, async () => {
      // The server's own address is not on its interface: its socket is 0.0.0.0's alone.
      const { stdout } = await execa('ip', ['-n', srvNs, 'route', 'get', '255.255.255.255'], { reject: false });
      expect(stdout).toBe('');
      if (direct) delete process.env.BE_DHCP_NO_FFI;
      else process.env.BE_DHCP_NO_FFI = '1';
      const srv = await startServer(h, srvNs, {
        serverIp: `${p}.1`, subnet: `${p}.0/24`, range: `${p}.100-${p}.110`, broadcastAddress: '255.255.255.255',
        leaseTime: 600, leaseFile: join(dir, `leases-${direct}`),
      });
      delete process.env.BE_DHCP_NO_FFI;
      try {
        const [offer] = await client(packet(MessageType.DISCOVER));
        expect(offer && messageType(offer.packet)).toBe(MessageType.OFFER);
        const yiaddr = offer.packet.yiaddr;
        expect(yiaddr).toMatch(new RegExp(`^${p.replace(/\./g, '\\.')}\\.1(0\\d|10)$`));
        const [ack] = await client(packet(MessageType.REQUEST, [[Opt.SERVER_ID, ipb(`${p}.1`)], [Opt.REQUESTED_IP, ipb(yiaddr)]]));
        expect(ack && messageType(ack.packet)).toBe(MessageType.ACK);
        expect(ack.packet.yiaddr).toBe(yiaddr);
      } finally {
        const stats = await srv.stop();
        expect(stats).toMatchObject({ offers: 1, acks: 1, sendErrors: 0 });
      }
    });
  }
});
