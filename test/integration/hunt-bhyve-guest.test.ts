import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestPool, type TestPool } from '../helpers/zfs.js';
import { beOk } from '../helpers/cli.js';
import { makeContext } from '../../src/be/context.js';
import { mountBe, umountBe } from '../../src/be/access.js';
import { runInChroot } from '../../src/boot/chroot.js';
import { installGuestRunner, readGuestResult } from '../../src/boot/guest.js';
import { TEST_DIR } from '../../src/hunt/exec.js';
import { classify, parseMetrics } from '../../src/hunt/verdict.js';

/**
 * The guest side of `be hunt run --method bhyve`, for real: the rendered /etc/rc.local runs in a
 * busybox BE through runInChroot (as FreeBSD's rc runs it at the end of boot), with poweroff
 * replaced through BE_HUNT_POWEROFF by a stub that records it was called; the host-side reader
 * then classifies what the guest left in the still-mounted clone.
 */
const APPLETS = ['sh', 'mkdir', 'rm', 'mv', 'sync', 'cat', 'ls', 'wc', 'echo', 'kill', 'sleep'];
const STUB = '/var/tmp/poweroff-stub';
const ENV = { PATH: '/sbin:/bin:/usr/sbin:/usr/bin', HOME: '/root', BE_RELEASE: '13.2', BE_RUN: '1', BE_HUNT: 'run-guest' };

describe('the bhyve guest-side runner (rc.local) in a busybox BE', () => {
  let pool: TestPool;
  let work: string;
  let be: string;
  let root: string;
  const ctx = () => makeContext({});

  beforeAll(async () => {
    pool = await makeTestPool('256M');
    work = await mkdtemp(join(tmpdir(), 'be-hunt-guest-'));
    const layout = join(work, 'layout.json');
    await writeFile(layout, JSON.stringify({ datasets: [{ path: '', properties: { mountpoint: '/', canmount: 'noauto' } }] }));
    be = `${pool.root}/guest`;
    await beOk(['create', '--layout-file', layout, be]);
    root = await mountBe(ctx(), be);
    await mkdir(join(root, 'bin'), { recursive: true });
    await copyFile('/bin/busybox', join(root, 'bin', 'busybox'));
    await chmod(join(root, 'bin', 'busybox'), 0o755);
    for (const a of APPLETS) await symlink('busybox', join(root, 'bin', a));
    for (const d of ['proc', 'dev', 'etc', 'var/tmp/be-hunt', 'usr/share/man/man1']) await mkdir(join(root, d), { recursive: true });
    for (let i = 0; i < 17; i++) await writeFile(join(root, 'usr/share/man/man1', `p${i}.1`), '.Dd\n');
    // The stub poweroff notes the status it saw, so the test knows the status came first.
    await writeFile(join(root, STUB), '#!/bin/sh\necho "poweroff after status $(cat /var/tmp/be-hunt/status 2>/dev/null || echo none)" > /var/tmp/poweroff-called\n');
    await chmod(join(root, STUB), 0o755);
  }, 120_000);

  afterAll(async () => {
    if (root) await umountBe(ctx(), be, true).catch(() => {});
    await pool?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  }, 60_000);

  /** One "boot": the test and the runner put in, rc.local run, then the host's reading of it. */
  async function boot(test: string) {
    await writeFile(join(root, 'var/tmp/be-hunt/t.sh'), test);
    await chmod(join(root, 'var/tmp/be-hunt/t.sh'), 0o755);
    await rm(join(root, 'var/tmp/poweroff-called'), { force: true });
    await installGuestRunner(ctx(), root, TEST_DIR, ['/var/tmp/be-hunt/t.sh'], ENV);
    // rc(8) runs it as `sh /etc/rc.local` with a bare environment: only the stub variable is given.
    const r = await runInChroot(ctx(), be, ['/bin/sh', '/etc/rc.local'], { env: { BE_HUNT_POWEROFF: STUB }, timeoutMs: 60_000 });
    const end = await readGuestResult(root, TEST_DIR);
    const called = existsSync(join(root, 'var/tmp/poweroff-called')) ? (await readFile(join(root, 'var/tmp/poweroff-called'), 'utf8')).trim() : undefined;
    return { console: r.output, end, verdict: classify(end), metrics: parseMetrics(end.output), called };
  }

  it('a good run: the test sees the hunt env, its output and status are kept, then the guest powers off', async () => {
    const g = await boot('#!/bin/sh\necho "BE-METRIC manpages=$(ls /usr/share/man/man1 | wc -l)"\necho "release $BE_RELEASE run $BE_RUN hunt $BE_HUNT home $HOME"\nexit 0\n');
    expect(await readFile(join(root, 'var/tmp/be-hunt/status'), 'utf8')).toBe('0\n');
    expect(await readFile(join(root, 'var/tmp/be-hunt/output'), 'utf8')).toBe('BE-METRIC manpages=17\nrelease 13.2 run 1 hunt run-guest home /root\n');
    expect(existsSync(join(root, 'var/tmp/be-hunt/status.tmp'))).toBe(false);
    expect(g.verdict).toEqual({ verdict: 'good', reason: '' });
    expect(g.metrics).toEqual({ manpages: 17 });
    expect(g.console).toContain('be hunt: 13.2 run 1: exit 0');
    expect(g.called).toBe('poweroff after status 0');
  }, 60_000);

  it('exit 125 is skip, 3 is bad, 200 aborts: classified as chroot runs are', async () => {
    const skip = await boot('#!/bin/sh\necho cannot test here\nexit 125\n');
    expect(skip.verdict).toEqual({ verdict: 'skip', reason: '' });
    expect(skip.end.output).toBe('cannot test here\n');
    const bad = await boot('#!/bin/sh\necho "BE-METRIC manpages=4"\necho broken >&2\nexit 3\n');
    expect(bad.verdict).toEqual({ verdict: 'bad', reason: '' });
    expect(bad.end.status).toBe(3);
    expect(bad.metrics).toEqual({ manpages: 4 });
    expect(bad.end.output).toBe('BE-METRIC manpages=4\nbroken\n');
    expect(bad.called).toBe('poweroff after status 3');
    const crash = await boot('#!/bin/sh\nexit 200\n');
    expect(crash.verdict).toEqual({ verdict: 'error', reason: 'exit status 200 is above 127 (a crash, not a verdict)' });
  }, 60_000);

  it('a guest that dies before writing a status (and a stale status of an earlier boot) is an abort with the reason', async () => {
    await writeFile(join(root, 'var/tmp/be-hunt/status'), '0\n');
    // The test kills the rc.local shell: nothing after it runs, as when the guest panics.
    const g = await boot('#!/bin/sh\necho about to die\nkill -KILL $PPID\nsleep 1\n');
    expect(existsSync(join(root, 'var/tmp/be-hunt/status'))).toBe(false);
    expect(g.called).toBeUndefined();
    expect(g.end.output).toContain('about to die');
    expect(g.verdict).toEqual({ verdict: 'error', reason: 'the guest wrote no /var/tmp/be-hunt/status (it did not boot, or the test did not end)' });
    // A status that is not a number is no verdict either; a timed-out VM is aborted as a chroot run is.
    await writeFile(join(root, 'var/tmp/be-hunt/status'), 'garbage\n');
    expect(classify(await readGuestResult(root, TEST_DIR)).reason).toBe("/var/tmp/be-hunt/status holds 'garbage', not an exit status");
    expect(classify({ ...(await readGuestResult(root, TEST_DIR, true)), timeoutMs: 90_000 })).toEqual({ verdict: 'error', reason: 'timed out after 1m30s' });
  }, 60_000);
});
