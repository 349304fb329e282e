// The direct socket calls of the TFTP transfers (src/net/tftp/native.ts), on real UDP sockets of
// this machine: what they send arrives byte for byte, a segmented send arrives as separate
// datagrams, what they read is told apart by sender, and nothing reaches a closed descriptor.
import { afterEach, describe, expect, it } from 'vitest';
import { createSocket, type RemoteInfo, type Socket, type SocketType } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { nativeSocket } from '../../src/net/tftp/native.js';

const open: Socket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

async function bound(type: SocketType, address: string): Promise<Socket> {
  const s = createSocket(type);
  await new Promise<void>((resolve) => s.bind(0, address, resolve));
  open.push(s);
  return s;
}

function collect(s: Socket, count: number): Promise<Buffer[]> {
  const got: Buffer[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${got.length} of ${count} datagrams arrived`)), 2000);
    s.on('message', (m: Buffer) => {
      got.push(m);
      if (got.length === count) {
        clearTimeout(timer);
        resolve(got);
      }
    });
  });
}

/** Spin on READ (without a turn of the event loop, which would let dgram read the datagram first). */
function spin(read: () => number): number {
  const end = performance.now() + 1000;
  for (let n = read(); performance.now() < end; n = read()) if (n >= 0) return n;
  return -1;
}

const linux = process.platform === 'linux';

for (const [type, address] of [['udp4', '127.0.0.1'], ['udp6', '::1']] as const) {
  describe(`direct socket calls (${type})`, () => {
    it('sends datagrams byte for byte, and a segmented send as one datagram per segment', async () => {
      const server = await bound(type, address);
      const client = await bound(type, address);
      const native = nativeSocket(server, { address, port: client.address().port })!;
      expect(native).toBeDefined();
      const one = randomBytes(700);
      const arrived = collect(client, linux ? 4 : 1);
      expect(native.send(one, 600)).toBe(true);
      if (linux) {
        expect(native.segment(1472)).toBe(true);
        expect(native.segmentsPerSend).toBe(44);
        const window = randomBytes(2 * 1472 + 4);
        expect(native.send(window, window.length)).toBe(true);
        const [first, ...rest] = await arrived;
        expect(first.equals(one.subarray(0, 600))).toBe(true);
        expect(rest.map((d) => d.length)).toEqual([1472, 1472, 4]);
        expect(Buffer.concat(rest).equals(window)).toBe(true);
      } else {
        expect(native.segment(1472)).toBe(false);
        expect((await arrived)[0].equals(one.subarray(0, 600))).toBe(true);
      }
    });

    it('reads datagrams and tells the client from a stranger by address and port', async () => {
      const server = await bound(type, address);
      const client = await bound(type, address);
      const stranger = await bound(type, address);
      const native = nativeSocket(server, { address, port: client.address().port })!;
      const buf = Buffer.alloc(2048);
      expect(native.receive(buf)).toBe(-1); // nothing waiting: no block
      const to = { address, port: server.address().port };
      nativeSocket(client, to)!.send(Buffer.from([0, 4, 0, 1]), 4);
      expect(spin(() => native.receive(buf))).toBe(4);
      expect(native.fromClient).toBe(true);
      expect([...buf.subarray(0, 4)]).toEqual([0, 4, 0, 1]);
      nativeSocket(stranger, to)!.send(Buffer.from([0, 4, 0, 2]), 4);
      expect(spin(() => native.receive(buf))).toBe(4);
      expect(native.fromClient).toBe(false);
      const s = stranger.address() as RemoteInfo;
      expect(native.sender).toEqual({ address, port: s.port }); // as dgram names it
    });

    it('calls nothing once closed', async () => {
      const server = await bound(type, address);
      const client = await bound(type, address);
      const native = nativeSocket(server, { address, port: client.address().port })!;
      native.close();
      expect(native.send(Buffer.alloc(10), 10)).toBe(false);
      expect(native.receive(Buffer.alloc(10))).toBe(-1);
    });
  });
}
