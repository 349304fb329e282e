// Real TFTP clients (tftp-hpa, atftp, curl, the npm tftp client) fetch files from the server
// on loopback; every file must arrive byte-identical.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTftp, type RunningTftp } from '../helpers/tftp.js';

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const npmTftp = require('tftp') as {
  createClient(o: { host: string; port: number; blockSize?: number; windowSize?: number; retries?: number; timeout?: number }): {
    get(remote: string, local: string, cb: (err?: Error) => void): void;
  };
};

const ROLLOVER_BLOCKS = 65540; // past 65535: block numbers wrap
const files: Record<string, Buffer> = {
  'empty.bin': Buffer.alloc(0),
  'f511.bin': randomBytes(511),
  'f512.bin': randomBytes(512),
  'boot/f1468.bin': randomBytes(1468), // exactly one block at blksize 1468
  'f3000.bin': randomBytes(3000),
};
const small = Object.keys(files);

let srv: RunningTftp;
let out: string;
let bigSha: string;
const BIG = 'big-rollover.bin';
const BIG_SIZE = ROLLOVER_BLOCKS * 512 - 100;

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  srv = await startTftp({
    files: new Map([['pxelinux.cfg/default', 'DEFAULT linux\nLABEL linux\n  KERNEL vmlinuz\n']]),
  });
  out = await mkdtemp(join(tmpdir(), 'betftp-out-'));
  await mkdir(join(srv.root, 'boot'));
  for (const [name, data] of Object.entries(files)) await writeFile(join(srv.root, name), data);
  const big = randomBytes(BIG_SIZE);
  bigSha = sha(big);
  await writeFile(join(srv.root, BIG), big);
});

afterAll(async () => {
  await srv?.stop();
  if (out) await rm(out, { recursive: true, force: true });
});

let n = 0;
const local = (): string => join(out, `got-${n++}`);

async function hpaGet(remote: string, mode: 'binary' | 'netascii' = 'binary'): Promise<Buffer> {
  const dest = local();
  const r = await execa('tftp', ['127.0.0.1', String(srv.port), '-m', mode, '-c', 'get', remote, dest], { reject: false });
  // tftp-hpa exits 0 even on errors; it reports them on its output.
  expect(`${r.stdout}${r.stderr}`).not.toMatch(/Error|Transfer timed out/i);
  return readFile(dest);
}

async function atftpGet(remote: string, options: string[]): Promise<Buffer> {
  const dest = local();
  const args = ['-g', '-r', remote, '-l', dest];
  for (const o of options) args.push('--option', o);
  await execa('atftp', [...args, '127.0.0.1', String(srv.port)]);
  return readFile(dest);
}

async function curlGet(remote: string, extra: string[] = []): Promise<Buffer> {
  const dest = local();
  await execa('curl', ['-sS', '--fail', '-o', dest, ...extra, `tftp://127.0.0.1:${srv.port}/${remote}`]);
  return readFile(dest);
}

async function npmGet(remote: string, blockSize?: number, windowSize?: number): Promise<Buffer> {
  const dest = local();
  const client = npmTftp.createClient({ host: '127.0.0.1', port: srv.port, blockSize, windowSize, retries: 5, timeout: 1000 });
  await new Promise<void>((resolve, reject) => client.get(remote, dest, (err) => (err ? reject(err) : resolve())));
  return readFile(dest);
}

describe('tftp server with real clients', () => {
  it('tftp-hpa fetches 0, 511, 512 and one-block files byte-identical', async () => {
    for (const name of small) expect((await hpaGet(name)).equals(files[name]), name).toBe(true);
  });

  it('atftp fetches every file under each option combination', async () => {
    const combos = [
      [],
      ['blksize 1468'],
      ['tsize 0'],
      ['timeout 2'],
      ['windowsize 16'],
      ['blksize 1468', 'windowsize 16'],
      ['tsize 0', 'blksize 1024', 'timeout 3', 'windowsize 4'],
      ['blksize 8', 'windowsize 3'],
      ['blksize 65464', 'windowsize 64', 'tsize 0'],
    ];
    for (const combo of combos) {
      for (const name of small) expect((await atftpGet(name, combo)).equals(files[name]), `${name} ${combo.join(',')}`).toBe(true);
    }
  });

  it('curl fetches every file with and without options', async () => {
    for (const extra of [[], ['--tftp-blksize', '1468'], ['--tftp-no-options']]) {
      for (const name of small) {
        // curl 7.88 fails on a 0-byte file whenever it negotiates tsize (same against tftpd-hpa:
        // "getpeername() failed"), so the empty file goes without options.
        if (name === 'empty.bin' && extra[0] !== '--tftp-no-options') continue;
        expect((await curlGet(name, extra)).equals(files[name]), `${name} ${extra.join(' ')}`).toBe(true);
      }
    }
  });

  it('the npm tftp client fetches every file in windowed and lock-step mode', async () => {
    for (const [bs, ws] of [
      [undefined, undefined],
      [512, 1],
      [1468, 16],
    ]) {
      for (const name of small) expect((await npmGet(name, bs, ws)).equals(files[name]), `${name} ${bs}/${ws}`).toBe(true);
    }
  });

  it('serves netascii to tftp-hpa, which converts it back to the original text', async () => {
    const text = 'line one\nline two\r\nbare\rcarriage\n';
    await writeFile(join(srv.root, 'text.cfg'), text);
    expect((await hpaGet('text.cfg', 'netascii')).toString()).toBe(text);
  });

  it('serves generated files from memory by their cleaned name', async () => {
    expect((await hpaGet('/pxelinux.cfg/default')).toString()).toBe('DEFAULT linux\nLABEL linux\n  KERNEL vmlinuz\n');
    expect((await curlGet('pxelinux.cfg/default')).toString()).toMatch(/^DEFAULT linux/);
  });

  it('names are relative to the root: a leading slash is stripped', async () => {
    expect((await atftpGet('/boot/f1468.bin', ['blksize 1468'])).equals(files['boot/f1468.bin'])).toBe(true);
  });

  it('logs one line per transfer with client, file, bytes and result', async () => {
    const before = srv.records.length;
    await curlGet('f3000.bin');
    const rec = srv.records.slice(before).find((r) => r.file === 'f3000.bin');
    expect(rec).toMatchObject({ file: 'f3000.bin', bytes: 3000, size: 3000, result: 'ok', ok: true });
    expect(rec!.client).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it(`rolls block numbers over past 65535 blocks (${ROLLOVER_BLOCKS} blocks of 512) for every client`, async () => {
    const results = await Promise.all([
      hpaGet(BIG),
      atftpGet(BIG, ['windowsize 16']),
      curlGet(BIG),
      npmGet(BIG, 512, 8),
    ]);
    expect(results.map((b) => b.length)).toEqual([BIG_SIZE, BIG_SIZE, BIG_SIZE, BIG_SIZE]);
    expect(results.map(sha)).toEqual([bigSha, bigSha, bigSha, bigSha]);
  });
});
