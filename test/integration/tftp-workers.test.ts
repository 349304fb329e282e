// Transfers on worker threads: the server built as it ships (the worker entry bundled by esbuild,
// as build.mjs does), real clients, raw packets where real clients would not send them, and
// `be pxe serve` from dist/ dropping root with its workers running.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ack, buildWorkerScript, errorCodeOf, opcodeOf, RawPeer, rawRequest, startTftp, type RunningTftp } from '../helpers/tftp.js';
import { makeLan, type Lan } from '../helpers/netns.js';
import { startBe, tftpGet } from '../helpers/pxe.js';

let base: string;
let workerScript: string;
const data3000 = randomBytes(3000);
const big = randomBytes(3 * 1024 * 1024 + 77);

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'betftp-workers-'));
  await chmod(base, 0o755);
  workerScript = await buildWorkerScript(base);
}, 60_000);

afterAll(async () => {
  if (base) await rm(base, { recursive: true, force: true });
});

async function withServer(opts: Parameters<typeof startTftp>[0], body: (s: RunningTftp) => Promise<void>): Promise<void> {
  const s = await startTftp({ workers: 2, workerScript, ...opts });
  try {
    await writeFile(join(s.root, 'f3000.bin'), data3000);
    await writeFile(join(s.root, 'big.bin'), big);
    await body(s);
  } finally {
    await s.stop();
  }
}

/** Start a lock-step transfer from PEER and return its transfer port (block 1 received, not acknowledged). */
async function begin(peer: RawPeer, port: number): Promise<number> {
  peer.send(rawRequest(1, 'f3000.bin'), port);
  const first = await peer.next();
  expect(opcodeOf(first!.msg)).toBe(3);
  return first!.rinfo.port;
}

describe('tftp transfers on worker threads', () => {
  it('serves concurrent clients, lock-step and windowed, files and memory files, byte-identical', async () => {
    const text = 'line one\nline two\n';
    await withServer({ files: new Map([['gen/menu.cfg', text]]) }, async (s) => {
      expect(s.server.workerThreads).toBe(2);
      const fetches = [1, 1, 4, 16, 16, 64].map(async (ws, i) => {
        const dest = join(s.root, `out-${i}`);
        await execa('atftp', ['-g', '-r', 'big.bin', '-l', dest, '--option', 'blksize 1468', '--option', `windowsize ${ws}`, '127.0.0.1', String(s.port)]);
        return (await readFile(dest)).equals(big);
      });
      expect(await Promise.all(fetches)).toEqual([true, true, true, true, true, true]);
      const dest = join(s.root, 'menu');
      await execa('atftp', ['-g', '-r', '/gen/menu.cfg', '-l', dest, '127.0.0.1', String(s.port)]);
      expect(await readFile(dest, 'utf8')).toBe(text);
      // every transfer logged once, with what the client acknowledged
      while (s.records.length < 7) await new Promise((r) => setTimeout(r, 10));
      expect(s.records.filter((r) => r.ok && r.bytes === big.length)).toHaveLength(6);
      expect(s.server.stats).toMatchObject({ transfers: 7, completed: 7 });
      expect(s.server.stats.transferPackets).toBeGreaterThan(6 * Math.floor(big.length / 1468 / 64));
    });
  }, 60_000);

  it('keeps path confinement on the server thread and answers a stranger on a transfer port with error 5', async () => {
    await withServer({ timeoutMs: 3000 }, async (s) => {
      await writeFile(join(base, 'secret'), 'outside\n');
      await symlink(join(base, 'secret'), join(s.root, 'escape'));
      const peer = await RawPeer.open();
      const intruder = await RawPeer.open();
      try {
        peer.send(rawRequest(1, 'escape'), s.port);
        expect(errorCodeOf((await peer.next())!.msg)).toBe(2);
        peer.send(rawRequest(1, 'f3000.bin'), s.port);
        const first = (await peer.next())!;
        const tid = first.rinfo.port;
        intruder.send(ack(1), tid);
        expect(errorCodeOf((await intruder.next())!.msg)).toBe(5);
        const chunks = [first.msg.subarray(4)];
        for (let b = 1; ; b++) {
          peer.send(ack(b), tid);
          if (chunks[chunks.length - 1].length < 512) break;
          const d = (await peer.next())!;
          expect(d.msg.readUInt16BE(2)).toBe(b + 1);
          chunks.push(d.msg.subarray(4));
        }
        expect(Buffer.concat(chunks).equals(data3000)).toBe(true);
      } finally {
        peer.close();
        intruder.close();
      }
    });
  });

  it('limits error replies to one source across all workers together', async () => {
    await withServer({ maxErrorsPerSecond: 10, timeoutMs: 5000 }, async (s) => {
      const peers = await Promise.all([1, 2].map(() => RawPeer.open()));
      const intruder = await RawPeer.open();
      try {
        // two transfers: the second goes to the other worker (the least loaded)
        const tids = [await begin(peers[0], s.port), await begin(peers[1], s.port)];
        const start = Date.now();
        for (let round = 0; round < 10; round++) {
          for (let i = 0; i < 20; i++) for (const tid of tids) intruder.send(ack(1), tid);
          await new Promise((r) => setTimeout(r, 20));
        }
        await new Promise((r) => setTimeout(r, 200));
        const elapsed = (Date.now() - start) / 1000;
        const got = intruder.inbox.filter((r) => errorCodeOf(r.msg) === 5);
        // the errors come from the transfers' own ports (which worker's bucket share comes first is a race)
        for (const r of got) expect(tids).toContain(r.rinfo.port);
        // one bucket of 10, refilled at 10 a second: not 10 per worker
        expect(got.length).toBeGreaterThanOrEqual(10);
        expect(got.length).toBeLessThanOrEqual(Math.ceil(10 * (1 + elapsed)));
        expect(s.server.stats.errorsLimited).toBe(400 - got.length);
      } finally {
        for (const p of [...peers, intruder]) p.close();
      }
    });
  });

  it('caps transfers across workers, evicting a client that never answered', async () => {
    await withServer({ maxTransfers: 2, timeoutMs: 3000 }, async (s) => {
      const peers = await Promise.all([1, 2, 3].map(() => RawPeer.open()));
      try {
        const answered = await begin(peers[0], s.port);
        peers[0].send(ack(1), answered);
        expect((await peers[0].next())!.msg.readUInt16BE(2)).toBe(2);
        await begin(peers[1], s.port); // never answers
        // the worker tells the server thread that the first client answered
        await new Promise((r) => setTimeout(r, 100));
        await begin(peers[2], s.port);
        const evicted = await peers[1].next(1000, (r) => opcodeOf(r.msg) === 5);
        expect(evicted!.msg.toString('latin1')).toMatch(/server busy/);
        expect(s.server.activeTransfers).toBe(2);
        expect(await peers[0].next(300)).toBeUndefined(); // the answering client was kept: nothing but its data
      } finally {
        for (const p of peers) p.close();
      }
    });
  });

  it('stop() ends the transfers on every worker and frees every port', async () => {
    const s = await startTftp({ workers: 2, workerScript, timeoutMs: 5000 });
    await writeFile(join(s.root, 'f3000.bin'), data3000);
    const peers = await Promise.all([1, 2].map(() => RawPeer.open()));
    const ports = [s.port, await begin(peers[0], s.port), await begin(peers[1], s.port)];
    await s.server.stop();
    expect(s.server.activeTransfers).toBe(0);
    for (const p of peers) {
      expect(errorCodeOf((await p.next(1000))!.msg)).toBe(0);
      p.close();
    }
    for (const port of ports) {
      const probe = createSocket('udp4');
      await new Promise<void>((resolve, reject) => {
        probe.once('error', reject);
        probe.bind(port, '127.0.0.1', () => resolve());
      });
      probe.close();
    }
    await s.stop();
  });
});

describe('be pxe serve with worker threads', () => {
  let lan: Lan;
  beforeAll(async () => {
    lan = await makeLan(1);
  }, 60_000);
  afterAll(async () => {
    await lan?.destroy();
  });

  /** utime + stime ticks of each thread of PID. */
  async function threadTicks(pid: number): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    for (const tid of await readdir(`/proc/${pid}/task`)) {
      const f = (await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8')).split(') ')[1].split(' ');
      out.set(Number(tid), Number(f[11]) + Number(f[12]));
    }
    return out;
  }

  it('drops root for every thread, and a worker thread, not the main one, runs the transfer', async () => {
    const dir = join(base, 'pxe');
    const root = join(dir, 'tftp');
    await mkdir(root, { recursive: true });
    const boot = randomBytes(6 * 1024 * 1024);
    await writeFile(join(root, 'boot.bin'), boot);
    await execa('chmod', ['-R', 'a+rX', dir]);
    const nobody = (await execa('id', ['-u', 'nobody'])).stdout.trim();
    const server = startBe(lan.servers[0], ['pxe', 'serve', '--no-dhcp', '--address', lan.serverIps[0], '--tftp-root', root, '--user', 'nobody']);
    try {
      await server.waitFor(/^running as nobody/);
      const pid = await server.pid();
      for (const tid of await readdir(`/proc/${pid}/task`)) {
        const status = await readFile(`/proc/${pid}/task/${tid}/status`, 'utf8');
        const uids = status.split('\n').find((l) => l.startsWith('Uid:'))!.split(/\s+/).slice(1, 5);
        expect(uids, `thread ${tid}`).toEqual([nobody, nobody, nobody, nobody]);
      }
      await execa('ip', ['-n', lan.client, 'addr', 'add', `${lan.prefix}.99/24`, 'dev', 'br0']);
      const before = await threadTicks(pid);
      expect(Buffer.compare(await tftpGet(lan, dir, 'boot.bin'), boot)).toBe(0);
      const after = await threadTicks(pid);
      const spent = [...after].map(([tid, t]) => [tid, t - (before.get(tid) ?? 0)] as const).sort((a, b) => b[1] - a[1]);
      // 12,000 lock-step blocks: the thread that sent them is a worker
      expect(spent[0][0]).not.toBe(pid);
      expect(spent[0][1]).toBeGreaterThan(after.get(pid)! - before.get(pid)!);
      expect(await server.stop()).toBe(0);
    } finally {
      await server.stop().catch(() => {});
    }
  }, 60_000);
});
