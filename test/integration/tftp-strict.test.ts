// RFC 1123 §4.2.3.1 (the Sorcerer's Apprentice) and RFC 1350's ERROR 4, with crafted packets from
// a plain UDP socket: what a client on the wire receives, beside tftpd-hpa when it is installed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { accessSync, constants } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';
import { ack, errorCodeOf, opcodeOf, RawPeer, rawRequest, startTftp, type RunningTftp } from '../helpers/tftp.js';
import { BE_BIN } from '../helpers/cli.js';

const BLOCKS = 20;
const file = randomBytes(512 * (BLOCKS - 1) + 100);
let srv: RunningTftp;

beforeAll(async () => {
  // A long timer, so that every DATA packet seen within the test is the server's answer to an ACK.
  srv = await startTftp({ timeoutMs: 5000 });
  await writeFile(join(srv.root, 'f20'), file);
});

afterAll(async () => {
  await srv?.stop();
});

interface Tally {
  data: Buffer;
  /** DATA packets received, in total and per block. */
  packets: number;
  perBlock: Map<number, number>;
}

/**
 * Fetch `name`, acknowledging block `dupAt` twice, and then every copy of every DATA packet (or,
 * windowed, every copy of each window's last block), until the server has been quiet for `quietMs`.
 */
async function fetchAckingCopies(port: number, name: string, opts: { windowsize?: number; dupAt: number; quietMs?: number }): Promise<Tally> {
  const peer = await RawPeer.open();
  const ws = opts.windowsize ?? 1;
  const perBlock = new Map<number, number>();
  const chunks = new Map<number, Buffer>();
  let packets = 0;
  let duplicated = false;
  try {
    peer.send(rawRequest(1, name, 'octet', ws > 1 ? [['windowsize', String(ws)]] : []), port);
    for (;;) {
      const r = await peer.next(opts.quietMs ?? 400);
      if (!r) break;
      const op = opcodeOf(r.msg);
      if (op === 6) {
        peer.send(ack(0), r.rinfo.port);
        continue;
      }
      expect(op).toBe(3);
      const block = r.msg.readUInt16BE(2);
      packets++;
      perBlock.set(block, (perBlock.get(block) ?? 0) + 1);
      chunks.set(block, r.msg.subarray(4));
      const last = r.msg.length - 4 < 512;
      if (block % ws !== 0 && !last) continue;
      peer.send(ack(block), r.rinfo.port);
      if (block === opts.dupAt && !duplicated) {
        duplicated = true;
        peer.send(ack(block), r.rinfo.port);
      }
    }
  } finally {
    peer.close();
  }
  const data = Buffer.concat([...chunks.keys()].sort((a, b) => a - b).map((b) => chunks.get(b)!));
  return { data, packets, perBlock };
}

/** tftpd-hpa's daemon, when installed (the bench installs it; the test does not need it). */
function findHpa(): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin']) {
    try {
      accessSync(join(dir, 'in.tftpd'), constants.X_OK);
      return join(dir, 'in.tftpd');
    } catch {
      /* next */
    }
  }
  return undefined;
}

async function freePort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('tftp duplicate ACKs (RFC 1123 §4.2.3.1)', () => {
  it('sends each block once in lock-step when the client acknowledges block 1 twice and every copy after', async () => {
    const t = await fetchAckingCopies(srv.port, 'f20', { dupAt: 1 });
    expect(t.data.equals(file)).toBe(true);
    expect(t.packets).toBe(BLOCKS);
    expect([...t.perBlock.values()].every((n) => n === 1)).toBe(true);
  });

  it('resends a window at most once for a duplicate ACK in windowed mode, never every window', async () => {
    const t = await fetchAckingCopies(srv.port, 'f20', { windowsize: 4, dupAt: 4 });
    expect(t.data.equals(file)).toBe(true);
    // RFC 7440: the duplicate ACK 4 may bring blocks 5-8 once more; the copies' ACKs bring nothing.
    expect(t.packets).toBeLessThanOrEqual(BLOCKS + 4);
    const twice = [...t.perBlock].filter(([, n]) => n > 1).map(([b]) => b);
    expect(twice.every((b) => b >= 5 && b <= 8)).toBe(true);
  });

  const hpa = findHpa();
  it.skipIf(!hpa || process.getuid?.() !== 0)('tftpd-hpa sends the same number of DATA packets in the same exchange', async () => {
    const root = await mkdtemp(join(tmpdir(), 'btf-hpa-'));
    let child: ChildProcess | undefined;
    try {
      await chmod(root, 0o755);
      await writeFile(join(root, 'f20'), file, { mode: 0o644 });
      const port = await freePort();
      child = spawn(hpa!, ['-L', '-a', `127.0.0.1:${port}`, '-u', 'nobody', '-s', root], { stdio: 'ignore' });
      await new Promise((r) => setTimeout(r, 300));
      const theirs = await fetchAckingCopies(port, 'f20', { dupAt: 1 });
      const ours = await fetchAckingCopies(srv.port, 'f20', { dupAt: 1 });
      expect(theirs.data.equals(file)).toBe(true);
      expect(ours.packets).toBe(theirs.packets);
    } finally {
      child?.kill();
      await rm(root, { recursive: true, force: true });
    }
  });
});

/** Every reply to `packet` sent from a fresh port within `ms`. */
async function repliesTo(port: number, packet: Buffer, ms = 300): Promise<Buffer[]> {
  const peer = await RawPeer.open();
  try {
    peer.send(packet, port);
    const out: Buffer[] = [];
    for (let r = await peer.next(ms); r; r = await peer.next(ms)) out.push(r.msg);
    return out;
  } finally {
    peer.close();
  }
}

describe('tftp illegal operations on the request port (RFC 1350)', () => {
  it('answers an unknown opcode and stray DATA, ACK and OACK with error 4, and an ERROR with nothing', async () => {
    const pad = Buffer.alloc(40, 0x41);
    for (const op of [0, 3, 4, 6, 7, 9, 0xffff]) {
      const packet = Buffer.concat([Buffer.from([op >> 8, op & 0xff]), pad]);
      const replies = await repliesTo(srv.port, packet);
      expect(replies.length, `opcode ${op}`).toBe(1);
      expect(errorCodeOf(replies[0]), `opcode ${op}`).toBe(4);
      expect(replies[0].subarray(4).toString('latin1')).toBe('illegal TFTP operation\0');
    }
    expect(await repliesTo(srv.port, Buffer.concat([Buffer.from([0, 5, 0, 4]), pad]))).toEqual([]);
  });

  it('never answers a packet that is no valid request with more bytes than it had', async () => {
    const shapes = [(n: number) => Buffer.concat([Buffer.from([0, 9]), Buffer.alloc(n - 2, 0x41)]), (n: number) => Buffer.concat([Buffer.from([0, 1]), Buffer.alloc(n - 2, 0x61)])];
    for (const shape of shapes) {
      for (let n = 2; n <= 30; n++) {
        const packet = shape(n);
        const replies = await repliesTo(srv.port, packet, 50);
        for (const r of replies) expect(r.length, `${packet.toString('hex')}`).toBeLessThanOrEqual(n);
        // An error needs 5 bytes (opcode, code, the message's NUL): shorter packets get nothing.
        expect(replies.length, `${n} bytes`).toBe(n < 5 ? 0 : 1);
        if (n >= 5) expect([0, 4]).toContain(errorCodeOf(replies[0]));
      }
    }
  });

  it('sends one source at most maxErrorsPerSecond errors a second while another source still gets its answer', async () => {
    const limited = await startTftp({ maxErrorsPerSecond: 50 });
    const flooders = await Promise.all([1, 2, 3, 4].map(() => RawPeer.open()));
    const other = await RawPeer.open('127.0.0.2');
    try {
      const packet = Buffer.concat([Buffer.from([0, 9]), Buffer.alloc(40, 0x41)]);
      const start = Date.now();
      let sent = 0;
      while (Date.now() - start < 1000) {
        for (let i = 0; i < 100; i++) flooders[sent++ % flooders.length].send(packet, limited.port);
        await new Promise((r) => setTimeout(r, 10));
      }
      other.send(packet, limited.port);
      const theirs = await other.next(1000);
      await new Promise((r) => setTimeout(r, 200));
      const elapsed = (Date.now() - start) / 1000;
      const got = flooders.reduce((n, p) => n + p.inbox.length, 0);
      expect(sent).toBeGreaterThan(1000);
      // A full bucket of 50, refilled at 50 a second while the flood lasts.
      expect(got).toBeGreaterThanOrEqual(50);
      expect(got).toBeLessThanOrEqual(Math.ceil(50 * (1 + elapsed)));
      // Every packet the server read was answered or held back (the other source's one was answered).
      const { requestPackets, errorsLimited } = limited.server.stats;
      expect(errorsLimited).toBe(requestPackets - 1 - got);
      expect(errorsLimited).toBeGreaterThan(500);
      expect(errorCodeOf(theirs!.msg)).toBe(4);
    } finally {
      for (const p of [...flooders, other]) p.close();
      await limited.stop();
    }
  });
});

describe('be pxe serve and the TFTP library errors', () => {
  it('reports a taken TFTP port as one be: line naming the address, and exits 1', async () => {
    const ns = `btferr${process.pid}`;
    await execa('ip', ['netns', 'add', ns]);
    const holder = execa('ip', ['netns', 'exec', ns, process.execPath, '-e', "require('node:dgram').createSocket('udp4').bind(69, '127.0.0.1', () => console.log('bound'))"]);
    try {
      await execa('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      await new Promise<void>((resolve) => holder.stdout!.once('data', () => resolve()));
      const root = await mkdtemp(join(tmpdir(), 'btf-root-'));
      try {
        const r = await execa('ip', ['netns', 'exec', ns, BE_BIN, 'pxe', 'serve', '--no-dhcp', '--address', '127.0.0.1', '--tftp-root', root], { reject: false, timeout: 20_000 });
        expect(r.stderr).toBe('be: tftp: cannot bind 127.0.0.1:69: EADDRINUSE');
        expect(r.exitCode).toBe(1);
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    } finally {
      holder.kill();
      await holder.catch(() => undefined);
      await execa('ip', ['netns', 'del', ns], { reject: false });
    }
  }, 30_000);
});
