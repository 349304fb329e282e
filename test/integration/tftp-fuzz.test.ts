// Fuzzing: well over 100,000 random and mutated TFTP packets at the server (request port and
// live transfer ports) while a real client (atftp) keeps fetching a file; every fetch during
// and after must be byte-identical and the server must never crash or leak transfers.
// Reproduce a run with TFTP_FUZZ_SEED=<seed printed on failure>.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTftpServer, type TftpServer } from '../../src/net/tftp/index.js';
import { buildWorkerScript, RawPeer, rawRequest } from '../helpers/tftp.js';
import { prng } from '../helpers/prng.js';

const PACKETS = 100_000;
const BURST = 100;
const MAX_TRANSFERS = 64;
const seed = Number(process.env.TFTP_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
// Transfer ports come from a range below the kernel's ephemeral ports, so the fuzzer, aiming at
// ports it saw the server use, can never hit the real client's own (ephemeral) port.
const PORT_LOW = 20000 + Math.floor(Math.random() * 5000);
const PORT_RANGE: [number, number] = [PORT_LOW, PORT_LOW + 2 * MAX_TRANSFERS];


let dir: string;
let workerDir: string;
let server: TftpServer;
let port: number;
const content = randomBytes(20_000);

beforeAll(async () => {
  const [ephemeralLow] = (await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')).trim().split(/\s+/).map(Number);
  if (ephemeralLow <= PORT_RANGE[1]) throw new Error(`ephemeral ports start at ${ephemeralLow}, inside the test's transfer range ${PORT_RANGE.join(':')}`);
  dir = await mkdtemp(join(tmpdir(), 'betftp-fuzz-'));
  await writeFile(join(dir, 'a.bin'), content);
  await writeFile(join(dir, 'small'), 'x');
  // Transfers on two worker threads, the worker entry built as build.mjs ships it: the fuzz
  // reaches the server's thread (requests) and the workers (transfer ports) alike.
  workerDir = await mkdtemp(join(tmpdir(), 'betftp-fuzz-worker-'));
  const workerScript = await buildWorkerScript(workerDir);
  server = createTftpServer({ root: dir, address: '127.0.0.1', port: 0, timeoutMs: 100, maxTimeoutMs: 200, retries: 2, maxTimeoutSeconds: 1, maxTransfers: MAX_TRANSFERS, portRange: PORT_RANGE, workers: 2, workerScript });
  ({ port } = await server.start());
  expect(server.workerThreads).toBe(2);
});

afterAll(async () => {
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
  if (workerDir) await rm(workerDir, { recursive: true, force: true });
});

function makeFuzzer(rand: () => number) {
  const int = (n: number): number => Math.floor(rand() * n);
  const pick = <T>(xs: T[]): T => xs[int(xs.length)];
  const numbers = ['0', '1', '7', '8', '512', '1468', '65464', '65465', '65535', '65536', '-1', '99999999999999999999', '1e9', '0x10', ' 4', '', 'NaN'];
  const names = ['a.bin', '/a.bin', 'small', '../a.bin', '..\\a.bin', 'nothere', '.', '/', 'a.bin/', 'a'.repeat(300), '\u00e9\u00e8', 'sub/../a.bin'];
  const optNames = ['blksize', 'BLKSIZE', 'tsize', 'timeout', 'windowsize', 'rollover', 'multicast', 'x'];
  const seedPacket = (): Buffer => {
    switch (int(7)) {
      case 0:
      case 1: {
        const opts: [string, string][] = [];
        const n = rand() < 0.05 ? 200 + int(2000) : int(6);
        for (let i = 0; i < n; i++) opts.push([pick(optNames), pick(numbers)]);
        return rawRequest(rand() < 0.9 ? 1 : 2, pick(names), pick(['octet', 'netascii', 'OCTET', 'mail', 'bin', '']), opts);
      }
      case 2:
        return Buffer.from([0, 4, int(256), int(256)]);
      case 3:
        return Buffer.concat([Buffer.from([0, 3, int(256), int(256)]), randomBytes(int(1500))]);
      case 4:
        return Buffer.concat([Buffer.from([0, 5, 0, int(9)]), Buffer.from('oops\0')]);
      case 5:
        return Buffer.from(`\0\x06blksize\x00${pick(numbers)}\0`, 'latin1');
      default:
        return randomBytes(int(rand() < 0.02 ? 9000 : 64));
    }
  };
  const mutate = (p: Buffer): Buffer => {
    let b = Buffer.from(p);
    const rounds = 1 + int(4);
    for (let r = 0; r < rounds; r++) {
      const at = b.length ? int(b.length) : 0;
      switch (int(7)) {
        case 0:
          if (b.length) b[at] ^= 1 << int(8);
          break;
        case 1:
          b = b.subarray(0, at); // truncate
          break;
        case 2:
          b = Buffer.concat([b.subarray(0, at), Buffer.from([int(256)]), b.subarray(at)]);
          break;
        case 3:
          b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
          break;
        case 4:
          if (b.length) b[at] = 0;
          break;
        case 5:
          b = Buffer.concat([b, b.subarray(0, Math.min(b.length, 512))]);
          break;
        default:
          if (b.length >= 2) b[int(2)] = int(8);
      }
    }
    return b;
  };
  return () => (rand() < 0.15 ? seedPacket() : mutate(seedPacket()));
}

describe('tftp fuzzing', () => {
  it(`survives ${PACKETS} random and mutated packets while a real client keeps fetching (seed ${seed})`, async () => {
    const rand = prng(seed);
    const next = makeFuzzer(rand);
    const peers = await Promise.all([1, 2, 3, 4].map(() => RawPeer.open()));
    const transferPorts: number[] = [];
    let strays = 0;
    for (const p of peers) {
      p.socket.on('message', (msg, rinfo) => {
        const fromTransfer = rinfo.port >= PORT_RANGE[0] && rinfo.port <= PORT_RANGE[1];
        if (fromTransfer && transferPorts.length < 256) transferPorts.push(rinfo.port);
        if (!fromTransfer && rinfo.port !== port) strays++;
        // Sometimes play along so windows, OACKs and retransmissions are exercised too.
        if (msg.length >= 4 && msg[1] === 3 && rand() < 0.5) p.send(Buffer.from([0, 4, msg[2], msg[3]]), rinfo.port);
        if (msg.length >= 2 && msg[1] === 6 && rand() < 0.5) p.send(Buffer.from([0, 4, 0, 0]), rinfo.port);
        p.inbox.length = 0;
      });
    }

    const out = join(dir, 'fetched');
    let fetches = 0;
    const failures: string[] = [];
    let fuzzing = true;
    const client = (async () => {
      while (fuzzing) {
        const r = await execa('atftp', ['-g', '-r', 'a.bin', '-l', out, '--option', 'blksize 1468', '--option', 'windowsize 4', '127.0.0.1', String(port)], { reject: false });
        if (r.exitCode !== 0 || !(await readFile(out)).equals(content)) failures.push(`fetch ${fetches}: ${r.stderr}`);
        fetches++;
      }
    })();

    let maxActive = 0;
    const received = (): number => server.stats.requestPackets + server.stats.transferPackets;
    let sent = 0;
    try {
      // Bursts small enough for the kernel's socket buffer; wait for the server to drain each.
      while (received() < PACKETS && sent < PACKETS * 3) {
        for (let i = 0; i < BURST; i++, sent++) {
          const pkt = next();
          const toTransfer = transferPorts.length > 0 && rand() < 0.2;
          const target = toTransfer ? transferPorts[Math.floor(rand() * transferPorts.length)] : port;
          peers[sent % peers.length].send(pkt, target);
        }
        if (transferPorts.length > 200) transferPorts.splice(0, 100);
        maxActive = Math.max(maxActive, server.activeTransfers);
        for (let spin = 0; spin < 20 && received() < sent - BURST / 10; spin++) await new Promise((r) => setImmediate(r));
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      fuzzing = false;
      await client;
      for (const p of peers) p.close();
    }

    const { requestPackets, transferPackets, transfers } = server.stats;
    console.log(`tftp fuzz seed ${seed}: ${sent} sent, ${requestPackets} request + ${transferPackets} transfer packets reached the server, ${transfers} transfers, ${fetches} client fetches`);
    expect(requestPackets + transferPackets).toBeGreaterThanOrEqual(100_000);
    expect(failures, `seed ${seed}`).toEqual([]);
    expect(fetches).toBeGreaterThan(0);
    expect(strays, 'packets from ports outside the transfer range').toBe(0);
    expect(maxActive).toBeLessThanOrEqual(MAX_TRANSFERS);
    // After the storm: abandoned transfers time out and the server still serves everyone.
    const after = await execa('tftp', ['127.0.0.1', String(port), '-m', 'binary', '-c', 'get', 'a.bin', out], { reject: false });
    expect(`${after.stdout}${after.stderr}`).toBe('');
    expect((await readFile(out)).equals(content)).toBe(true);
    // (a negotiated timeout of 1 s keeps some alive up to 3 s)
    for (let i = 0; i < 250 && server.activeTransfers > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(server.activeTransfers).toBe(0);
  });
});
