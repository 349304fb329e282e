// The waits of the TFTP batch reader (src/net/tftp/batch.ts) on real UDP sockets: epoll(7) (Linux)
// and poll(2) tell which sockets hold a datagram, by the id each was added with; a socket taken out
// before it closes is not reported again, and a new socket that gets its descriptor number is
// reported under its own id. Which servers read in batches at all (`batchReads`).
import { afterEach, describe, expect, it } from 'vitest';
import { createSocket, type Socket } from 'node:dgram';
import { batchReads, createWaiter, type Waiter } from '../../src/net/tftp/batch.js';
import { socketFd, udpHandle } from '../../src/net/sockaddr.js';

const open: Socket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

async function bound(): Promise<Socket> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  // libuv must not read it (the batch reader stops its reads the same way)
  (udpHandle(s) as unknown as { recvStop(): number }).recvStop();
  open.push(s);
  return s;
}

function sendTo(s: Socket): Promise<void> {
  const out = createSocket('udp4');
  return new Promise((resolve) => out.send(Buffer.from('x'), s.address().port, '127.0.0.1', () => { out.close(); resolve(); }));
}

function ready(w: Waiter, timeoutMs = 200): Array<[number, boolean]> {
  const got: Array<[number, boolean]> = [];
  w.wait(timeoutMs, (id, trouble) => got.push([id, trouble]));
  return got;
}

const kinds = process.platform === 'linux' ? (['epoll', 'poll'] as const) : (['poll'] as const);

describe.each(kinds)('batch reader wait (%s)', (kind) => {
  it.skipIf(createWaiter(kind) === undefined)('reports the sockets holding a datagram by id, and a reused descriptor under its new id', async () => {
    const w = createWaiter(kind)!;
    const a = await bound();
    const b = await bound();
    const fa = socketFd(a)!;
    w.add(fa, 1);
    w.add(socketFd(b)!, 2);
    expect(ready(w, 0)).toEqual([]);
    await sendTo(b);
    await new Promise((r) => setTimeout(r, 20));
    expect(ready(w)).toEqual([[2, false]]);
    // level-triggered: still there until read
    expect(ready(w)).toEqual([[2, false]]);
    // a taken out, then closed; the next socket most likely gets its number
    w.remove(fa, 1);
    open.splice(open.indexOf(a), 1);
    await new Promise<void>((r) => a.close(() => r()));
    const c = await bound();
    const fc = socketFd(c)!;
    w.add(fc, 3);
    await sendTo(c);
    await new Promise((r) => setTimeout(r, 20));
    const ids = ready(w).map(([id]) => id).sort();
    expect(ids).toEqual([2, 3]);
    w.remove(fc, 3);
    expect(ready(w).map(([id]) => id)).toEqual([2]);
  });
});

describe('batch reads', () => {
  it('are used on every thread of transfers unless turned off (on worker threads, or everywhere)', () => {
    expect(batchReads(1, {})).toBe(true);
    expect(batchReads(2, {})).toBe(true);
    expect(batchReads(2, { BE_TFTP_BATCH: '0' })).toBe(false);
    expect(batchReads(1, { BE_TFTP_BATCH: '0' })).toBe(true);
    expect(batchReads(8, { BE_TFTP_BATCH: '1' })).toBe(true);
    expect(batchReads(1, { BE_TFTP_NO_BATCH: '1' })).toBe(false);
    expect(batchReads(1, { BE_TFTP_NO_FFI: '1' })).toBe(false);
    expect(batchReads(2, { BE_TFTP_BATCH: '1', BE_TFTP_NO_BATCH: '1' })).toBe(false);
  });
});
