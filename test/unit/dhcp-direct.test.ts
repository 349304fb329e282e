/**
 * The server's direct socket calls (src/net/dhcp/direct.ts): a burst of requests queued in the
 * kernel is answered the same, reply for reply and lease for lease, with the direct sendto and
 * recvfrom on and with them off (BE_DHCP_NO_FFI); with them on the replies do not go through
 * dgram's send and the burst is not delivered one Node callback per datagram. In-process on
 * loopback; every request is relayed (giaddr 127.0.0.1), so every reply comes back to the test.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodePacket, encodePacket, messageType, MessageType, Opt, type DhcpPacket } from '../../src/net/dhcp/codec.js';
import { libc } from '../../src/net/libc.js';
import { socketFd } from '../../src/net/sockaddr.js';

const N = 200;
const dirs: string[] = [];

afterEach(() => {
  delete process.env.BE_DHCP_NO_FFI;
  delete process.env.BE_DHCP_NO_GSO;
  vi.restoreAllMocks();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const mac = (n: number) => Buffer.from([2, 0, 0, 0, (n >> 8) & 255, n & 255]);
const ipb = (s: string) => Buffer.from(s.split('.').map(Number));

function packet(type: MessageType, n: number, opts: Array<[number, Buffer]> = []): Buffer {
  const p: DhcpPacket = {
    op: 1, htype: 1, hlen: 6, hops: 1, xid: 0x1000 + n, secs: 0, flags: 0,
    ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: '127.0.0.1',
    chaddr: mac(n), sname: '', file: '',
    options: new Map<number, Buffer>([[Opt.MESSAGE_TYPE, Buffer.from([type])], [Opt.PARAM_REQUEST, Buffer.from([1, 3, 6, 51])], ...opts]),
  };
  return encodePacket(p);
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 10000 && !cond(); i++) await new Promise((r) => setTimeout(r, 1));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

/**
 * N clients' DISCOVERs one by one, then their N REQUESTs in one burst, against a fresh server
 * (loaded anew, so BE_DHCP_NO_FFI is read again): the replies as hex by xid, the lease file, and
 * how many datagrams went through dgram's send and how many Node delivered to the server.
 */
async function run(direct: boolean, how: { gso?: boolean; refuseSegments?: boolean } = {}) {
  if (!direct) process.env.BE_DHCP_NO_FFI = '1';
  if (how.gso === false) process.env.BE_DHCP_NO_GSO = '1';
  vi.resetModules();
  const { DhcpServer } = await import('../../src/net/dhcp/index.js');
  const dir = mkdtempSync(join(tmpdir(), 'dio-direct-'));
  dirs.push(dir);
  const relay = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20 });
  const replies = new Map<number, Buffer>();
  relay.on('message', (m) => replies.set(m.readUInt32BE(4), m));
  await new Promise<void>((r) => relay.bind(0, '127.0.0.1', () => r()));
  const send = vi.spyOn(dgram.Socket.prototype, 'send');
  const emit = vi.spyOn(dgram.Socket.prototype, 'emit');
  const server = new DhcpServer({
    serverIp: '127.0.0.1', address: '127.0.0.1', port: 0, relayPort: relay.address().port,
    subnet: '127.0.0.0/8', range: '127.0.9.10-127.0.11.250', leaseTime: 600, leaseFile: join(dir, 'leases'),
    clock: () => 1_700_000_000_000,
  });
  await server.start();
  if (how.refuseSegments) {
    // SO_NO_CHECK (<asm-generic/socket.h>: 11): udp_send_skb refuses a segmented send on such a
    // socket (EINVAL), as it does where the route has no checksum offload or a smaller MTU
    const c = libc();
    if (typeof c === 'string') throw new Error(c);
    const sockets = (server as unknown as { sockets: Record<string, dgram.Socket | undefined> }).sockets;
    for (const s of [sockets.main, sockets.own]) if (s) expect(c.setsockopt(socketFd(s)!, 1, 11, Buffer.from([1, 0, 0, 0]), 4)).toBe(0);
  }
  try {
    // one at a time, so both runs hand out the same addresses
    for (let n = 0; n < N; n++) {
      relay.send(packet(MessageType.DISCOVER, n), server.port, '127.0.0.1');
      await until(() => replies.size === n + 1, `OFFER ${n}`);
    }
    const burst: Buffer[] = [];
    const offers = [...replies.values()].map((m) => decodePacket(m));
    expect(send.mock.contexts.filter((s) => s !== relay)).toHaveLength(direct ? 0 : N);
    send.mockClear();
    emit.mockClear();
    for (let n = 0; n < N; n++) {
      const yiaddr = offers.find((o) => o.xid === 0x1000 + n)!.yiaddr;
      burst.push(packet(MessageType.REQUEST, n, [[Opt.SERVER_ID, ipb('127.0.0.1')], [Opt.REQUESTED_IP, ipb(yiaddr)]]));
    }
    // one longer than a DHCP message may be (8192 bytes): dropped as malformed either way
    const long = Buffer.alloc(9000);
    packet(MessageType.REQUEST, N).copy(long);
    burst.splice(N / 2, 0, long);
    // all queued in the kernel before the server reads any (it shares this event loop)
    for (const m of burst) relay.send(m, server.port, '127.0.0.1');
    await until(() => [...replies.values()].filter((m) => messageType(decodePacket(m)) === MessageType.ACK).length === N, 'every ACK');
    const ours = (s: unknown) => s !== relay;
    return {
      offers: Object.fromEntries(offers.map((o) => [o.xid, o.yiaddr])),
      replies: Object.fromEntries([...replies].map(([xid, m]) => [xid, m.toString('hex')])),
      leases: readFileSync(join(dir, 'leases'), 'utf8').split('\n').filter((l) => l.includes('"bind"')).sort(),
      dgramSends: send.mock.contexts.filter(ours).length,
      delivered: emit.mock.calls.filter((c, i) => c[0] === 'message' && ours(emit.mock.contexts[i])).length,
      stats: { ...server.stats },
    };
  } finally {
    send.mockRestore();
    emit.mockRestore();
    await server.stop();
    relay.close();
  }
}

describe('DHCP server with direct socket calls', () => {
  it.skipIf(typeof libc() === 'string')('answers a burst as dgram alone does, reply for reply, without dgram\'s send and in fewer deliveries', async () => {
    const on = await run(true);
    const off = await run(false);
    expect(Object.keys(on.replies)).toHaveLength(N);
    expect(on.offers).toEqual(off.offers);
    expect(on.replies).toEqual(off.replies);
    expect(on.leases).toHaveLength(N);
    expect(on.leases).toEqual(off.leases);
    for (const s of [on.stats, off.stats]) expect(s).toMatchObject({ received: 2 * N + 1, offers: N, acks: N, malformed: 1, sendErrors: 0, shed: 0 });
    // dgram alone: every reply through its send, every datagram its own delivery
    expect(off.dgramSends).toBe(N);
    expect(off.delivered).toBe(N + 1);
    expect(on.dgramSends).toBe(0);
    expect(on.delivered).toBeLessThan(N / 2);
  });

  it.skipIf(process.platform !== 'linux' || typeof libc() === 'string')('sends a burst of equal replies as segments of one message, the same datagrams as one send each', async () => {
    const segmented = await run(true);
    const single = await run(true, { gso: false });
    expect(Object.keys(segmented.replies)).toHaveLength(N);
    expect(segmented.replies).toEqual(single.replies);
    expect(segmented.leases).toEqual(single.leases);
    expect(segmented.dgramSends).toBe(0);
    expect(single.dgramSends).toBe(0);
  });

  it.skipIf(process.platform !== 'linux' || typeof libc() === 'string')('falls back to one datagram a send when the kernel refuses segments, losing no reply', async () => {
    const refused = await run(true, { refuseSegments: true });
    const single = await run(true, { gso: false });
    expect(refused.replies).toEqual(single.replies);
    expect(refused.leases).toEqual(single.leases);
    expect(refused.stats).toMatchObject({ acks: N, offers: N, sendErrors: 0 });
    // the refused message's replies went by dgram, and segmenting stopped there: not every reply
    expect(refused.dgramSends).toBeGreaterThan(0);
    expect(refused.dgramSends).toBeLessThan(N);
  });
});
