// Protocol edges and refusals, driven with raw datagrams where real clients would not send
// such packets, and with real clients where they do.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { build } from 'esbuild';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blksizeCapFor, createTftpServer } from '../../src/net/tftp/index.js';
import { ack, errorCodeOf, fetchLockstep, opcodeOf, RawPeer, rawRequest, startTftp, type RunningTftp } from '../helpers/tftp.js';

let base: string;
let srv: RunningTftp;
const data3000 = randomBytes(3000);
const SECRET = 'top secret outside the root\n';

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'betftp-proto-'));
  const root = join(base, 'root');
  await mkdir(root);
  await mkdir(join(base, 'outside'));
  await mkdir(join(base, 'root-evil')); // shares the root's name as a string prefix
  await writeFile(join(base, 'secret.txt'), SECRET);
  await writeFile(join(base, 'outside', 'secret.txt'), SECRET);
  await writeFile(join(base, 'root-evil', 'secret.txt'), SECRET);
  await writeFile(join(root, 'f3000.bin'), data3000);
  await mkdir(join(root, 'sub'));
  await symlink('../secret.txt', join(root, 'escape'));
  await symlink(join(base, 'secret.txt'), join(root, 'escape-abs'));
  await symlink('../outside', join(root, 'outdir'));
  await symlink('../root-evil/secret.txt', join(root, 'prefix-trick'));
  await symlink('f3000.bin', join(root, 'alias'));
  await execa('mkfifo', [join(root, 'fifo')]);
  srv = await startTftp({ root, timeoutMs: 150, maxTimeoutMs: 600, retries: 3 });
});

afterAll(async () => {
  await srv?.stop();
  if (base) await rm(base, { recursive: true, force: true });
});

/** Send one request from a fresh port and return the first reply. */
async function ask(packet: Buffer): Promise<Buffer | undefined> {
  const peer = await RawPeer.open();
  try {
    peer.send(packet, srv.port);
    const r = await peer.next(2000);
    if (r && opcodeOf(r.msg) !== 5) peer.send(Buffer.from([0, 5, 0, 0, 0]), r.rinfo.port); // end any transfer started
    return r?.msg;
  } finally {
    peer.close();
  }
}

/** Fetch a whole file over raw packets; `skip` drops a DATA block once (never ACKs it). */
async function rawFetch(name: string, options: [string, string][] = [], skip?: number): Promise<{ data: Buffer; oack?: Map<string, string> }> {
  const peer = await RawPeer.open();
  try {
    peer.send(rawRequest(1, name, 'octet', options), srv.port);
    const chunks: Buffer[] = [];
    let expected = 1;
    let blksize = 512;
    let windowsize = 1;
    let oack: Map<string, string> | undefined;
    let skipped = false;
    for (;;) {
      const r = await peer.next(3000);
      if (!r) throw new Error(`no packet after block ${expected - 1}`);
      const op = opcodeOf(r.msg);
      if (op === 6) {
        const parts = r.msg.subarray(2).toString('latin1').split('\0');
        oack = new Map();
        for (let i = 0; i + 1 < parts.length; i += 2) oack.set(parts[i], parts[i + 1]);
        blksize = Number(oack.get('blksize') ?? 512);
        windowsize = Number(oack.get('windowsize') ?? 1);
        peer.send(ack(0), r.rinfo.port);
        continue;
      }
      if (op !== 3) throw new Error(`unexpected opcode ${op}: ${r.msg.toString('latin1')}`);
      const block = r.msg.readUInt16BE(2);
      if (block === (expected & 0xffff)) {
        if (block === skip && !skipped) {
          skipped = true;
          continue;
        }
        const payload = r.msg.subarray(4);
        chunks.push(payload);
        const last = payload.length < blksize;
        if (last || expected % windowsize === 0) peer.send(ack(expected), r.rinfo.port);
        expected++;
        if (last) return { data: Buffer.concat(chunks), oack };
      } else if (skipped && block !== ((expected - 1) & 0xffff)) {
        // a gap: acknowledge what we have (RFC 7440 receiver behaviour)
        peer.send(ack(expected - 1), r.rinfo.port);
      }
    }
  } finally {
    peer.close();
  }
}

describe('tftp path confinement', () => {
  it('refuses traversal, absolute, backslash and NUL names with an error, never data', async () => {
    const attempts: (string | Buffer)[] = [
      '../secret.txt',
      'sub/../../secret.txt',
      '/../secret.txt',
      '..\\secret.txt',
      'sub\\..\\..\\secret.txt',
      Buffer.from('f3000.bin\0../secret.txt', 'latin1'), // NUL splits the name: the rest is no mode
      Buffer.from([0x2e, 0x2e, 0x2f, 0xc0, 0xaf]), // overlong UTF-8 '/' after '..'
      `${base}/secret.txt`, // absolute: taken relative to the root, so not found
    ];
    for (const a of attempts) {
      const reply = await ask(rawRequest(1, a));
      expect(reply, String(a)).toBeDefined();
      expect(opcodeOf(reply!), String(a)).toBe(5);
      expect([1, 2, 4], String(a)).toContain(errorCodeOf(reply!));
    }
  });

  it('refuses symlinks that resolve outside the root, even to a sibling sharing its name as prefix', async () => {
    for (const name of ['escape', 'escape-abs', 'outdir/secret.txt', 'prefix-trick']) {
      const reply = await ask(rawRequest(1, name));
      expect(errorCodeOf(reply!), name).toBe(2);
    }
  });

  it('follows symlinks that stay inside the root', async () => {
    expect((await rawFetch('alias')).data.equals(data3000)).toBe(true);
  });

  it('refuses directories and FIFOs without hanging', async () => {
    expect(errorCodeOf((await ask(rawRequest(1, 'sub')))!)).toBe(2);
    expect(errorCodeOf((await ask(rawRequest(1, 'fifo')))!)).toBe(2);
    expect((await rawFetch('f3000.bin')).data.equals(data3000)).toBe(true);
  });

  it('tftp-hpa asking for ../secret.txt gets an error and no file', async () => {
    const dest = join(base, 'hpa-out');
    const r = await execa('tftp', ['127.0.0.1', String(srv.port), '-m', 'binary', '-c', 'get', '../secret.txt', dest], { reject: false });
    expect(`${r.stdout}${r.stderr}`).toMatch(/Error code 2/);
    const got = await readFile(dest).catch(() => Buffer.alloc(0));
    expect(got.toString()).not.toContain('secret');
  });
});

describe('tftp requests and options', () => {
  it('refuses bad server options with one line naming the value', () => {
    const root = base;
    expect(() => createTftpServer({ root, address: 'localhost' })).toThrow('tftp: bind address is not an IP address: localhost');
    expect(() => createTftpServer({ root, busyPollMicros: -1 })).toThrow('tftp: busyPollMicros must be a number >= 0: -1');
    expect(() => createTftpServer({ root, portRange: [3000, 2000] })).toThrow('tftp: port range must be LOW:HIGH within 1-65535: 3000:2000');
    expect(() => createTftpServer({ root, maxBlksize: 7 })).toThrow('tftp: maxBlksize must be a number >= 8: 7');
  });

  it('refuses write requests with error 2 and writes nothing', async () => {
    const reply = await ask(rawRequest(2, 'new.bin'));
    expect(errorCodeOf(reply!)).toBe(2);
    const src = join(base, 'upload.txt');
    await writeFile(src, 'upload');
    const r = await execa('tftp', ['127.0.0.1', String(srv.port), '-m', 'binary', '-c', 'put', src, 'upload.txt'], { reject: false });
    expect(`${r.stdout}${r.stderr}`).toMatch(/Error code 2/);
    await expect(stat(join(srv.root, 'upload.txt'))).rejects.toThrow();
  });

  it('answers an unknown mode and a request without mode with error 4', async () => {
    expect(errorCodeOf((await ask(rawRequest(1, 'f3000.bin', 'mail')))!)).toBe(4);
    expect(errorCodeOf((await ask(rawRequest(1, 'f3000.bin', 'binary')))!)).toBe(4);
    expect(errorCodeOf((await ask(Buffer.from('\0\x01f3000.bin\0oct', 'latin1')))!)).toBe(4);
  });

  it('answers a missing file with error 1', async () => {
    expect(errorCodeOf((await ask(rawRequest(1, 'nothere')))!)).toBe(1);
  });

  it('acknowledges options within limits and answers tsize with the size', async () => {
    const r = await rawFetch('f3000.bin', [
      ['tsize', '0'],
      ['blksize', '1000'],
      ['windowsize', '2'],
      ['timeout', '2'],
      ['rollover', '0'],
    ]);
    expect(r.data.equals(data3000)).toBe(true);
    expect([...r.oack!]).toEqual([
      ['tsize', '3000'],
      ['blksize', '1000'],
      ['windowsize', '2'],
      ['timeout', '2'],
    ]);
  });

  it('lowers absurd option values and ignores invalid ones', async () => {
    const r = await rawFetch('f3000.bin', [
      ['blksize', '99999999999'],
      ['windowsize', '65535'],
      ['timeout', '255'],
      ['tsize', 'lots'],
    ]);
    expect(r.data.equals(data3000)).toBe(true);
    expect(Number(r.oack!.get('blksize'))).toBeLessThanOrEqual(65464);
    expect(Number(r.oack!.get('windowsize'))).toBeLessThanOrEqual(64);
    expect(r.oack!.has('timeout')).toBe(false);
    expect(r.oack!.has('tsize')).toBe(false);
    const none = await rawFetch('f3000.bin', [
      ['blksize', '0'],
      ['windowsize', '0'],
      ['timeout', '0'],
    ]);
    expect(none.oack).toBeUndefined(); // nothing acceptable: plain RFC 1350 transfer
    expect(none.data.equals(data3000)).toBe(true);
  });

  it('caps blksize at the bound interface MTU minus headers', async () => {
    expect(blksizeCapFor('0.0.0.0')).toBe(1468);
    expect(blksizeCapFor('192.0.2.1', 1500)).toBe(1468);
    expect(blksizeCapFor('192.0.2.1', 9000)).toBe(8968);
    expect(blksizeCapFor('127.0.0.1')).toBe(Math.min(65464, Number((await readFile('/sys/class/net/lo/mtu', 'utf8')).trim()) - 32));
    const capped = await startTftp({ maxBlksize: 1024 });
    try {
      await writeFile(join(capped.root, 'f'), data3000);
      const peer = await RawPeer.open();
      peer.send(rawRequest(1, 'f', 'octet', [['blksize', '1468']]), capped.port);
      const r = await peer.next();
      peer.close();
      expect(r!.msg.subarray(2).toString('latin1')).toBe('blksize\x001024\0');
    } finally {
      await capped.stop();
    }
  });
});

describe('tftp transfers', () => {
  it('answers a packet from a wrong transfer ID with error 5 and carries on', async () => {
    const peer = await RawPeer.open();
    const intruder = await RawPeer.open();
    try {
      peer.send(rawRequest(1, 'f3000.bin'), srv.port);
      const first = await peer.next();
      expect(opcodeOf(first!.msg)).toBe(3);
      const tid = first!.rinfo.port;
      expect(tid).not.toBe(srv.port); // a fresh port per transfer
      intruder.send(ack(1), tid);
      const err = await intruder.next();
      expect(errorCodeOf(err!.msg)).toBe(5);
      expect((await fetchLockstep(peer, tid, first!)).equals(data3000)).toBe(true);
    } finally {
      peer.close();
      intruder.close();
    }
  });

  it('retransmits a DATA block whose ACK was lost, and a window with a lost block', async () => {
    expect((await rawFetch('f3000.bin', [], 3)).data.equals(data3000)).toBe(true);
    expect((await rawFetch('f3000.bin', [['windowsize', '4']], 2)).data.equals(data3000)).toBe(true);
  });

  it('backs off exponentially and gives up on a silent client', async () => {
    const peer = await RawPeer.open();
    try {
      peer.send(rawRequest(1, 'f3000.bin'), srv.port);
      const times: number[] = [];
      for (;;) {
        const r = await peer.next(3000);
        if (!r) break;
        times.push(Date.now());
        if (opcodeOf(r.msg) === 5) break;
        expect(r.msg.readUInt16BE(2)).toBe(1); // always block 1 again
      }
      // first send + 3 retries, then an error packet
      expect(times.length).toBe(5);
      const gaps = times.slice(1, 4).map((t, i) => t - times[i]);
      expect(gaps[2]).toBeGreaterThan(gaps[0]);
      const rec = srv.records.find((x) => x.client === `127.0.0.1:${peer.port}`);
      expect(rec).toMatchObject({ ok: false, result: 'timed out', retransmits: 3 });
    } finally {
      peer.close();
    }
  });

  it('caps concurrent transfers, evicting clients that never answered first', async () => {
    const small = await startTftp({ maxTransfers: 2, timeoutMs: 2000 });
    const peers = await Promise.all([1, 2, 3, 4].map(() => RawPeer.open()));
    try {
      await writeFile(join(small.root, 'f'), data3000);
      const tids: number[] = [];
      // two clients that answer (ACK block 1) hold both slots
      for (const p of peers.slice(0, 2)) {
        p.send(rawRequest(1, 'f'), small.port);
        const d = await p.next();
        tids.push(d!.rinfo.port);
        p.send(ack(1), d!.rinfo.port);
        expect((await p.next())!.msg.readUInt16BE(2)).toBe(2);
      }
      peers[2].send(rawRequest(1, 'f'), small.port);
      const busy = await peers[2].next();
      expect(errorCodeOf(busy!.msg)).toBe(0);
      expect(busy!.msg.toString('latin1')).toMatch(/too many transfers/);
      // the first client quits: its slot is free again
      peers[0].send(Buffer.from([0, 5, 0, 0, 0]), tids[0]);
      while (small.server.activeTransfers > 1) await new Promise((r) => setTimeout(r, 10));
      peers[2].send(rawRequest(1, 'f'), small.port);
      const started = await peers[2].next();
      expect(opcodeOf(started!.msg)).toBe(3);
      // full again; peers[2] never acknowledged, so a newcomer evicts it rather than being refused
      peers[3].send(rawRequest(1, 'f'), small.port);
      expect(opcodeOf((await peers[3].next())!.msg)).toBe(3);
      const evicted = await peers[2].next(1000, (r) => opcodeOf(r.msg) === 5);
      expect(evicted!.msg.toString('latin1')).toMatch(/server busy/);
      expect(small.server.activeTransfers).toBe(2);
    } finally {
      for (const p of peers) p.close();
      await small.stop();
    }
  });

  it('takes transfer ports from --tftp-port-range only, skipping one another program holds, and says so when all are taken', async () => {
    // Three ports from the top of the unprivileged range, far from the kernel's ephemeral ports.
    const low = 20000 + Math.floor(Math.random() * 5000);
    const squatter = createSocket('udp4');
    await new Promise<void>((r) => squatter.bind(low + 1, '127.0.0.1', () => r()));
    const s = await startTftp({ portRange: [low, low + 2], timeoutMs: 3000 });
    const peers = await Promise.all([1, 2, 3].map(() => RawPeer.open()));
    try {
      await writeFile(join(s.root, 'f'), data3000);
      const tids: number[] = [];
      for (const p of peers.slice(0, 2)) {
        p.send(rawRequest(1, 'f'), s.port);
        const d = await p.next();
        expect(opcodeOf(d!.msg)).toBe(3);
        tids.push(d!.rinfo.port);
      }
      expect([...tids].sort()).toEqual([low, low + 2]);
      peers[2].send(rawRequest(1, 'f'), s.port);
      const full = await peers[2].next();
      expect(errorCodeOf(full!.msg)).toBe(0);
      expect(full!.msg.toString('latin1')).toMatch(/no free port/);
      // a finished transfer gives its port back
      peers[0].send(Buffer.from([0, 5, 0, 0, 0]), tids[0]);
      while (s.server.activeTransfers > 1) await new Promise((r) => setTimeout(r, 10));
      peers[2].send(rawRequest(1, 'f'), s.port);
      const again = await peers[2].next();
      expect(opcodeOf(again!.msg)).toBe(3);
      expect(again!.rinfo.port).toBe(tids[0]);
    } finally {
      for (const p of peers) p.close();
      squatter.close();
      await s.stop();
    }
  });

  it('stop() ends transfers and frees every port', async () => {
    const s = await startTftp({ timeoutMs: 5000 });
    await writeFile(join(s.root, 'f'), data3000);
    const peer = await RawPeer.open();
    peer.send(rawRequest(1, 'f'), s.port);
    const d = await peer.next();
    const ports = [s.port, d!.rinfo.port];
    await s.server.stop();
    expect(s.server.activeTransfers).toBe(0);
    expect(errorCodeOf((await peer.next(1000))!.msg)).toBe(0); // told it is shutting down
    peer.close();
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

  it('keeps serving after the process drops root privileges post-bind', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'betftp-priv-'));
    try {
      await chmod(dir, 0o755);
      await writeFile(join(dir, 'f'), data3000, { mode: 0o644 });
      const bundle = join(dir, 'tftp.mjs');
      await build({ entryPoints: [join(import.meta.dirname, '../../src/net/tftp/index.ts')], bundle: true, platform: 'node', format: 'esm', outfile: bundle, logLevel: 'warning' });
      const script = `
        const { createTftpServer } = await import(${JSON.stringify(bundle)});
        const s = createTftpServer({ root: ${JSON.stringify(dir)}, address: '127.0.0.1', port: 0 });
        const { port } = await s.start();
        process.setgid('nogroup'); process.setuid('nobody');
        console.log(port, process.getuid());
        process.stdin.on('data', () => {}); process.stdin.on('end', () => s.stop());
      `;
      const child = execa('node', ['--input-type=module', '-e', script], { stdin: 'pipe', reject: false });
      const [port, uid] = await new Promise<string[]>((resolve) => child.stdout!.once('data', (b: Buffer) => resolve(b.toString().trim().split(' '))));
      try {
        expect(uid).not.toBe('0');
        const dest = join(dir, 'out');
        await execa('atftp', ['-g', '-r', 'f', '-l', dest, '--option', 'windowsize 4', '127.0.0.1', port]);
        expect((await readFile(dest)).equals(data3000)).toBe(true);
      } finally {
        child.stdin!.end();
        await child;
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
