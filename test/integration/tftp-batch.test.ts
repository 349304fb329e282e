// Batch reads of transfer sockets (src/net/tftp/batch.ts): many transfers on one thread are read
// after one wait (epoll on Linux, poll(2) elsewhere or with BE_TFTP_BATCH_WAIT=poll) and direct
// recvfrom instead of dgram. Real clients fetch concurrently with the batch path on (each wait; the
// default) and off (BE_TFTP_NO_BATCH: every read through dgram, as BE_TFTP_BATCH=0 has it on
// worker threads), on worker threads and on the server's own thread;
// raw peers check what the batch read must keep doing: a stranger's datagram gets error 5 (rate
// limited) and the transfer goes on, a client that vanishes times out without stalling the rest.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ack, buildWorkerScript, errorCodeOf, fetchLockstep, opcodeOf, RawPeer, rawRequest, startTftp, type RunningTftp } from '../helpers/tftp.js';

let base: string;
let workerScript: string;
const small = randomBytes(3000);
const big = randomBytes(2 * 1024 * 1024 + 123);

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'tiotftp-batch-'));
  await chmod(base, 0o755);
  workerScript = await buildWorkerScript(base);
}, 60_000);

afterAll(async () => {
  if (base) await rm(base, { recursive: true, force: true });
});

type Mode = 'epoll' | 'poll' | 'off';

/** A server with batch reads on (waiting in epoll where it can, or in poll) or off (the switches are read when its runners start). */
async function withServer(m: Mode, opts: Parameters<typeof startTftp>[0], body: (s: RunningTftp) => Promise<void>): Promise<void> {
  const names = ['BE_TFTP_BATCH', 'BE_TFTP_NO_BATCH', 'BE_TFTP_BATCH_WAIT'] as const;
  const before = names.map((k) => [k, process.env[k]] as const);
  for (const k of names) delete process.env[k];
  if (m === 'off') process.env.BE_TFTP_NO_BATCH = '1';
  else process.env.BE_TFTP_BATCH = '1';
  if (m === 'poll') process.env.BE_TFTP_BATCH_WAIT = 'poll';
  let s: RunningTftp;
  try {
    s = await startTftp(opts);
  } finally {
    for (const [k, v] of before) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  try {
    await writeFile(join(s.root, 'small.bin'), small);
    await writeFile(join(s.root, 'big.bin'), big);
    await body(s);
  } finally {
    await s.stop();
  }
}

/** COUNT atftp clients fetching big.bin at once; whether each copy is byte-identical. */
function fetchAll(s: RunningTftp, windowsizes: number[], tag: string): Promise<boolean[]> {
  return Promise.all(
    windowsizes.map(async (ws, i) => {
      const dest = join(s.root, `${tag}-${i}`);
      await execa('atftp', ['-g', '-r', 'big.bin', '-l', dest, '--option', 'blksize 1468', '--option', `windowsize ${ws}`, '127.0.0.1', String(s.port)]);
      return (await readFile(dest)).equals(big);
    }),
  );
}

/**
 * COUNT lock-step clients fetching big.bin again and again until `stop`, which resolves with
 * whether every copy was byte-identical (and how many there were).
 */
function keepBusy(s: RunningTftp, count: number, tag: string): { stop(): Promise<{ identical: boolean; copies: number }> } {
  let going = true;
  let copies = 0;
  let identical = true;
  const loops = Array.from({ length: count }, async (_, i) => {
    while (going) {
      const [same] = await fetchAll(s, [1], `${tag}-${i}-${copies}`);
      identical &&= same;
      copies++;
    }
  });
  return {
    async stop() {
      going = false;
      await Promise.all(loops);
      return { identical, copies };
    },
  };
}

const WINDOWS = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 4, 16];

describe('tftp batch reads', () => {
  for (const mode of ['epoll', 'poll', 'off'] as const) {
    const how = mode === 'off' ? 'batch reads off' : `batch reads waiting in ${mode === 'epoll' && process.platform === 'linux' ? 'epoll' : 'poll'}`;
    it(`serves ${WINDOWS.length} concurrent clients on two worker threads byte-identical, ${how}`, async () => {
      await withServer(mode, { workers: 2, workerScript }, async (s) => {
        expect(s.server.workerThreads).toBe(2);
        expect(await fetchAll(s, WINDOWS, 'w')).toEqual(WINDOWS.map(() => true));
        while (s.records.length < WINDOWS.length) await new Promise((r) => setTimeout(r, 10));
        expect(s.records.filter((r) => r.ok && r.bytes === big.length)).toHaveLength(WINDOWS.length);
      });
    }, 90_000);

    it(`serves concurrent clients on the server's own thread byte-identical, ${how}`, async () => {
      await withServer(mode, { workers: 0 }, async (s) => {
        expect(await fetchAll(s, [1, 1, 1, 1, 8], 't')).toEqual([true, true, true, true, true]);
      });
    }, 90_000);
  }

  it('answers strangers on a transfer port with error 5, at most maxErrorsPerSecond, while busy transfers are read in batches, and the transfer goes on', async () => {
    await withServer('epoll', { workers: 0, maxErrorsPerSecond: 10, timeoutMs: 3000 }, async (s) => {
      // Lock-step clients keep the thread's batch reader busy (it owns the sockets) meanwhile.
      const busy = keepBusy(s, 3, 'b');
      await new Promise((r) => setTimeout(r, 300));
      const peer = await RawPeer.open();
      const intruder = await RawPeer.open();
      try {
        peer.send(rawRequest(1, 'small.bin'), s.port);
        const first = await peer.next();
        expect(opcodeOf(first!.msg)).toBe(3);
        const tid = first!.rinfo.port;
        for (let i = 0; i < 40; i++) intruder.send(ack(1), tid);
        await new Promise((r) => setTimeout(r, 500));
        const errors = intruder.inbox.splice(0).filter((r) => r.rinfo.port === tid);
        expect(errors.length).toBeGreaterThan(0);
        expect(errors.length).toBeLessThanOrEqual(10);
        for (const e of errors) expect(errorCodeOf(e.msg)).toBe(5);
        expect((await fetchLockstep(peer, tid, first!)).equals(small)).toBe(true);
        expect(await busy.stop()).toMatchObject({ identical: true });
      } finally {
        peer.close();
        intruder.close();
      }
    });
  }, 90_000);

  it('times out a client that vanished mid-transfer while the others finish', async () => {
    await withServer('epoll', { workers: 0, timeoutMs: 100, maxTimeoutMs: 200, retries: 2 }, async (s) => {
      const busy = keepBusy(s, 3, 'v');
      await new Promise((r) => setTimeout(r, 200));
      const peer = await RawPeer.open();
      try {
        peer.send(rawRequest(1, 'small.bin'), s.port);
        const first = await peer.next();
        expect(opcodeOf(first!.msg)).toBe(3);
        peer.send(ack(1), first!.rinfo.port);
        expect(opcodeOf((await peer.next())!.msg)).toBe(3);
        // ... and the client is gone: block 2 is resent twice, then the transfer ends.
        const started = Date.now();
        while (!s.records.some((r) => r.file === 'small.bin') && Date.now() - started < 5000) await new Promise((r) => setTimeout(r, 20));
        const record = s.records.find((r) => r.file === 'small.bin');
        expect(record).toMatchObject({ ok: false, result: 'timed out', retransmits: 2, bytes: 512 });
        expect(peer.inbox.filter((r) => opcodeOf(r.msg) === 3 && r.msg.readUInt16BE(2) === 2)).toHaveLength(2);
        expect(await busy.stop()).toMatchObject({ identical: true });
      } finally {
        peer.close();
      }
    });
  }, 90_000);
});
