import { expect } from 'vitest';
import { build } from 'esbuild';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTftpServer, type TftpServer, type TftpServerOptions, type TftpTransferRecord } from '../../src/net/tftp/index.js';

export interface RunningTftp {
  server: TftpServer;
  port: number;
  root: string;
  /** Log records of finished transfers, in order. */
  records: TftpTransferRecord[];
  stop(): Promise<void>;
}

/** A server on a free loopback port with a fresh temp root (removed by stop). */
export async function startTftp(opts: Partial<TftpServerOptions> = {}): Promise<RunningTftp> {
  const root = opts.root ?? (await mkdtemp(join(tmpdir(), 'betftp-')));
  const records: TftpTransferRecord[] = [];
  const server = createTftpServer({
    address: '127.0.0.1',
    port: 0,
    ...opts,
    root,
    log: (line, record) => {
      records.push(record);
      opts.log?.(line, record);
    },
  });
  const { port } = await server.start();
  return {
    server,
    port,
    root,
    records,
    async stop() {
      await server.stop();
      if (!opts.root) await rm(root, { recursive: true, force: true });
    },
  };
}

export interface Reply {
  msg: Buffer;
  rinfo: RemoteInfo;
}

/** A raw UDP endpoint on loopback that records what it receives. */
export class RawPeer {
  readonly socket: Socket;
  readonly inbox: Reply[] = [];
  private waiters: (() => void)[] = [];
  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('message', (msg, rinfo) => {
      this.inbox.push({ msg, rinfo });
      for (const w of this.waiters.splice(0)) w();
    });
  }
  static async open(address = '127.0.0.1'): Promise<RawPeer> {
    const socket = createSocket('udp4');
    await new Promise<void>((r) => socket.bind(0, address, () => r()));
    return new RawPeer(socket);
  }
  get port(): number {
    return this.socket.address().port;
  }
  send(packet: Buffer, port: number, address = '127.0.0.1'): void {
    this.socket.send(packet, port, address);
  }
  /** The next packet matching `pred` (consumed), or undefined after `ms`. */
  async next(ms = 3000, pred: (r: Reply) => boolean = () => true): Promise<Reply | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.inbox.findIndex(pred);
      if (i >= 0) return this.inbox.splice(i, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
  close(): void {
    try {
      this.socket.close();
    } catch {
      /* closed */
    }
  }
}

/** Build a request packet byte by byte (for names and options real clients refuse to send). */
export function rawRequest(op: 1 | 2, name: Buffer | string, mode = 'octet', options: [string, string][] = []): Buffer {
  const parts: Buffer[] = [Buffer.from([0, op]), Buffer.isBuffer(name) ? name : Buffer.from(name, 'utf8'), Buffer.from([0]), Buffer.from(`${mode}\0`)];
  for (const [k, v] of options) parts.push(Buffer.from(`${k}\0${v}\0`));
  return Buffer.concat(parts);
}

export function ack(block: number): Buffer {
  return Buffer.from([0, 4, (block >> 8) & 0xff, block & 0xff]);
}

export function opcodeOf(msg: Buffer): number {
  return msg.length >= 2 ? msg.readUInt16BE(0) : -1;
}

export function errorCodeOf(msg: Buffer): number {
  return opcodeOf(msg) === 5 && msg.length >= 4 ? msg.readUInt16BE(2) : -1;
}

/**
 * The worker threads' entry built into DIR as build.mjs ships it (tftp-worker.mjs), with the
 * packages beside it (koffi, for the direct socket calls) as the built one finds them.
 */
export async function buildWorkerScript(dir: string): Promise<string> {
  const workerScript = join(dir, 'tftp-worker.mjs');
  await build({ entryPoints: [join(import.meta.dirname, '../../src/net/tftp/worker.ts')], bundle: true, platform: 'node', format: 'esm', outfile: workerScript, logLevel: 'warning' });
  await symlink(join(import.meta.dirname, '../../node_modules'), join(dir, 'node_modules'));
  return workerScript;
}

/**
 * Fetch the rest of a 512-byte lock-step transfer whose first DATA came from port TID: ACK each
 * block, expect the next in order, ACK the short last one. The whole file.
 */
export async function fetchLockstep(peer: RawPeer, tid: number, first: Reply): Promise<Buffer> {
  const chunks = [first.msg.subarray(4)];
  for (let b = 1; ; b++) {
    peer.send(ack(b), tid);
    const d = await peer.next();
    expect(opcodeOf(d!.msg)).toBe(3);
    expect(d!.msg.readUInt16BE(2)).toBe(b + 1);
    chunks.push(d!.msg.subarray(4));
    if (d!.msg.length - 4 < 512) {
      peer.send(ack(b + 1), tid);
      return Buffer.concat(chunks);
    }
  }
}
