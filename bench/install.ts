// bench/install: `be install` of a ~200 MB synthetic release served over HTTP on loopback,
// first (download + verify + extract) and cached (verify + extract), next to plain
// `tar -xJf` of the same sets into the same kind of target, measured in the same run.
// Goal: the cached install within 1.2x of plain tar.
// Run as root after `npm run build`, with ZFS available (zfs-fuse on Linux):
//   npx vite-node bench/install.ts        (SIZE_MB=200 by default)
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildMirror, serveDir, type FileSpec } from '../test/helpers/mirror.js';
import { makeTestPool } from '../test/helpers/zfs.js';

const BE = fileURLToPath(new URL('../bin/be', import.meta.url));
const SIZE_MB = Number(process.env.SIZE_MB ?? 200);

/** 1 MiB files, half random (incompressible), half text (compresses well), so xz -1 stays quick. */
function payload(prefix: string, megabytes: number): Record<string, FileSpec> {
  const files: Record<string, FileSpec> = {};
  const text = Buffer.from('FreeBSD synthetic release payload line for the install benchmark\n'.repeat(8192)).subarray(0, 512 * 1024);
  for (let i = 0; i < megabytes; i++) {
    files[`${prefix}/f${String(i).padStart(4, '0')}`] = { content: Buffer.concat([randomBytes(512 * 1024), text]), mode: 0o644 };
  }
  return files;
}

async function seconds(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

async function main(): Promise<void> {
  const pool = await makeTestPool(`${Math.ceil((SIZE_MB * 5) / 1024) + 1}G`);
  const work = await mkdtemp(join(tmpdir(), 'be-bench-install.'));
  const pub = join(work, 'pub');
  try {
    process.stderr.write(`building a ${SIZE_MB} MB release…\n`);
    const kernelMb = Math.max(1, Math.round(SIZE_MB * 0.15));
    const [rel] = await buildMirror(pub, [
      { version: '14.1', arch: 'amd64', place: 'distsite', sets: { base: { files: payload('usr/share/bench', SIZE_MB - kernelMb) }, kernel: { files: payload('boot/kernel', kernelMb) } } },
    ]);
    const sets = ['base.txz', 'kernel.txz'].map((f) => join(rel.dir, f));
    const compressed = (await Promise.all(sets.map((f) => stat(f)))).reduce((a, s) => a + s.size, 0);
    const server = await serveDir(pub);
    const cache = join(work, 'cache');
    const be = (args: string[]) => execa(BE, args);
    let n = 0;
    const fresh = async () => {
      const name = `${pool.pool}/be/b${++n}`;
      await be(['create', '-l', 'flat', name]);
      return name;
    };
    await be(['create', '-l', 'flat', `${pool.pool}/be`]);

    // Plain tar into a mounted BE (same filesystem as be install writes to).
    const plain = async () => {
      const target = await fresh();
      const dir = (await be(['mount', target])).stdout.trim();
      try {
        return await seconds(async () => {
          for (const f of sets) await execa('tar', ['-xJf', f, '-C', dir]);
        });
      } finally {
        await be(['umount', target]);
      }
    };
    const install = async () => {
      const target = await fresh();
      return seconds(() => be(['install', '-q', '-p', server.url, '-a', 'amd64', '-r', '14.1', '--cache', cache, target]));
    };

    const tar1 = await plain();
    const first = await install();
    const requestsAfterFirst = server.requests.length;
    const cached = await install();
    const tar2 = await plain();
    const cachedRequests = server.requests.length - requestsAfterFirst;
    await server.close();

    const tar = Math.min(tar1, tar2);
    const mb = SIZE_MB;
    const row = (label: string, s: number) => `${label.padEnd(36)} ${s.toFixed(2).padStart(7)} s ${(mb / s).toFixed(1).padStart(7)} MB/s`;
    console.log(`release: ${mb} MB in files, ${(compressed / 1048576).toFixed(1)} MB as txz (base + kernel)`);
    console.log(row('tar -xJf (same sets, best of 2)', tar));
    console.log(row('be install, first (fetch+verify+x)', first));
    console.log(row('be install, cached (verify+x)', cached));
    console.log(`cached/tar ratio: ${(cached / tar).toFixed(2)}x (goal <= 1.20x); first/tar: ${(first / tar).toFixed(2)}x; requests on cached run: ${cachedRequests}`);
  } finally {
    await pool.destroy();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
