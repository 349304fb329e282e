import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execa } from 'execa';
import { mkdtemp, writeFile, mkdir, copyFile, symlink, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestPool, type TestPool } from '../helpers/zfs.js';
import { be, beOk, BE_BIN } from '../helpers/cli.js';
import { makeContext } from '../../src/be/context.js';
import { runInChroot } from '../../src/boot/chroot.js';

const APPLETS = ['sh', 'cat', 'ls', 'echo', 'sleep', 'mount', 'grep'];

/** Mounts of the test pool and anything below its altroot (proc, dev): must be none afterwards. */
async function leftovers(pool: TestPool): Promise<string[]> {
  const text = await readFile('/proc/self/mounts', 'utf8');
  return text.split('\n').filter((l) => l.startsWith(`${pool.pool}/`) || l.split(' ')[1]?.startsWith(pool.altroot));
}

describe('be chroot on a zfs-fuse BE with a busybox userland', () => {
  let pool: TestPool;
  let dataset: string;
  let work: string;

  beforeAll(async () => {
    pool = await makeTestPool('256M');
    work = await mkdtemp(join(tmpdir(), 'be-chroot-'));
    const layout = join(work, 'layout.json');
    await writeFile(layout, JSON.stringify({
      datasets: [
        { path: '', properties: { mountpoint: '/', canmount: 'noauto' } },
        { path: 'var', properties: { canmount: 'off' } },
        { path: 'var/log', properties: { canmount: 'noauto' } },
      ],
    }));
    dataset = `${pool.root}/bb`;
    await beOk(['create', '--layout-file', layout, dataset]);
    const mnt = join(pool.altroot, 'fill');
    await beOk(['mount', dataset, mnt]);
    try {
      await mkdir(join(mnt, 'bin'), { recursive: true });
      await copyFile('/bin/busybox', join(mnt, 'bin', 'busybox'));
      await execa('chmod', ['755', join(mnt, 'bin', 'busybox')]);
      for (const a of APPLETS) await symlink('busybox', join(mnt, 'bin', a));
      await mkdir(join(mnt, 'proc'));
      await mkdir(join(mnt, 'dev'));
      await writeFile(join(mnt, 'var', 'log', 'marker'), 'child dataset is mounted\n');
    } finally {
      await beOk(['umount', dataset]);
    }
  }, 120_000);

  afterAll(async () => {
    await pool?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  }, 60_000);

  it('runs a command inside that sees the child dataset, /proc and /dev, then unmounts everything', async () => {
    const r = await be(['chroot', dataset, '--', '/bin/sh', '-c', 'cat /var/log/marker; ls /proc/self/status; ls /dev/null; echo done']);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('child dataset is mounted\n/proc/self/status\n/dev/null\ndone\n');
    expect(await leftovers(pool)).toEqual([]);
  }, 60_000);

  it("exits with the command's status and still unmounts when it fails", async () => {
    const r = await be(['chroot', dataset, '--', '/bin/sh', '-c', 'echo failing >&2; exit 7']);
    expect(r.exitCode).toBe(7);
    expect(r.stderr).toBe('failing\n');
    expect(await leftovers(pool)).toEqual([]);
  }, 60_000);

  it('cleans up when be is terminated while the command runs', async () => {
    const child = execa(BE_BIN, ['chroot', dataset, '--', '/bin/sh', '-c', 'echo ready; sleep 60'], { reject: false });
    await new Promise<void>((resolve) => child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve()));
    child.kill('SIGTERM');
    const r = await child;
    expect(r.exitCode).toBe(143);
    expect(await leftovers(pool)).toEqual([]);
  }, 60_000);

  it('passes a SIGINT sent to be alone on to the command when there is no terminal, and cleans up', async () => {
    // detached: a session of its own, so no controlling terminal even when the tests run on one
    const child = execa(BE_BIN, ['chroot', dataset, '--', '/bin/sh', '-c', "trap 'echo interrupted; exit 3' INT; echo ready; while :; do sleep 1; done"], { reject: false, detached: true });
    await new Promise<void>((resolve) => child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve()));
    process.kill(child.pid!, 'SIGINT');
    const r = await child;
    expect(r.stdout).toBe('ready\ninterrupted');
    expect(r.exitCode).toBe(3);
    expect(await leftovers(pool)).toEqual([]);
  }, 60_000);

  it('runInChroot (the library call) collects output and stops a command at its timeout', async () => {
    const ctx = makeContext({});
    const chunks: string[] = [];
    const ok = await runInChroot(ctx, dataset, ['/bin/sh', '-c', 'echo $GREETING; cat /var/log/marker'], { env: { GREETING: 'hi' }, onOutput: (c) => chunks.push(c) });
    expect(ok).toEqual({ status: 0, signal: undefined, timedOut: false, output: 'hi\nchild dataset is mounted\n' });
    expect(chunks.join('')).toBe(ok.output);
    const slow = await runInChroot(ctx, dataset, ['/bin/sleep', '60'], { timeoutMs: 300 });
    expect(slow.timedOut).toBe(true);
    expect(slow.signal).toBe('SIGTERM');
    expect(await leftovers(pool)).toEqual([]);
  }, 60_000);

  it('refuses a missing BE without mounting anything', async () => {
    const r = await be(['chroot', `${pool.root}/nope`, '--', '/bin/true']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^be: boot environment '.*\/nope' does not exist\n$/);
  });
});
