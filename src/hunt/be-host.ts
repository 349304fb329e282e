import { mkdir } from 'node:fs/promises';
import { shQuote } from '../sys/shell.js';
import { shVerdict } from './verdict.js';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { BeContext } from '../be/context.js';
import { resolveBeRoot } from '../be/context.js';
import { cloneBe, createFromLayout, destroyBe } from '../be/be.js';
import { mountedDatasets } from '../be/access.js';
import { loadLayout } from '../be/layouts.js';
import { installRelease } from '../install/index.js';
import { lineProgress } from '../install/progress.js';
import { clearChroot } from '../boot/index.js';
import { huntMethod } from './methods.js';
import { DEFAULT_VM, type VmSettings } from '../boot/index.js';
import { BeError } from '../sys/errors.js';
import { processAlive, withFileLock } from '../sys/lock.js';
import type { InstallFlags, PreparedRecord } from './state.js';
import type { ReleaseHost, RunRequest, TestEnd } from './exec.js';
import { TEST_DIR } from './exec.js';

export const INSTALLED_SNAPSHOT = 'installed';
const OWNER_PROP = 'be:hunt-owner';

function runKey(req: RunRequest): string {
  return `${req.hunt} ${req.release} ${req.run}`;
}

/** The release BE's name under the BE root: hunt-<release>[-<arch>]. */
export function releaseBeName(root: string, release: string, arch?: string): string {
  return `${root}/hunt-${release}${arch ? `-${arch}` : ''}`;
}

/** A lock between processes on this host (two workers preparing the same release); a dead holder's lock is broken. */
async function withLock<T>(name: string, body: () => Promise<T>): Promise<T> {
  const dir = join(tmpdir(), 'be-hunt-locks');
  await mkdir(dir, { recursive: true });
  return withFileLock(join(dir, name.replace(/[^A-Za-z0-9_.-]/g, '_')), body, Infinity);
}

/**
 * Releases as boot environments on this host: each release installed once into
 * <root>/hunt-<release> and snapshotted @installed; each run a clone of that snapshot with the
 * test copied in, run by the method, destroyed afterwards.
 */
export class BeHost implements ReleaseHost {
  private readonly me = `${hostname()}:${process.pid}`;
  private rootReady?: Promise<string>;
  /** @installed snapshots under the BE root, listed once: a ready release then costs no zfs call. */
  private installed?: Promise<Set<string>>;
  /** Clones made ahead for runs to come (run key → clone name), while the current test runs. */
  private readonly ahead = new Map<string, Promise<string | undefined>>();
  /** Destroys of finished runs' clones, off the runs' path; settle() waits for them. */
  private readonly destroying = new Set<Promise<void>>();
  private readonly destroyErrors: string[] = [];

  constructor(
    /** A fresh context per operation: parallel runs must not share one undo stack. */
    private readonly newContext: () => BeContext,
    /** The guest of the methods that boot a VM (bhyve, qemu). */
    private readonly vm: VmSettings = DEFAULT_VM,
  ) {}

  async prepare(release: string, install: InstallFlags, log: (text: string) => void): Promise<PreparedRecord> {
    const ctx = this.newContext();
    const root = await this.ensureRoot(ctx);
    const be = releaseBeName(root, release, install.arch);
    const t0 = performance.now();
    const snap = `${be}@${INSTALLED_SNAPSHOT}`;
    if ((await this.installedSnapshots(ctx, root)).has(snap)) {
      log(`${new Date().toISOString()} ${be}: ready (${snap})\n`);
      return { be, prepareMs: Math.round(performance.now() - t0), installed: false };
    }
    return withLock(be, async () => {
      if (await ctx.zfs.exists(be)) {
        if ((await ctx.zfs.list(be, 'snapshot', 1)).includes(snap)) {
          log(`${new Date().toISOString()} ${be}: ready (${snap})\n`);
          return { be, prepareMs: Math.round(performance.now() - t0), installed: false };
        }
        // A BE without @installed is what an interrupted install left: start it again.
        log(`${new Date().toISOString()} ${be}: no @${INSTALLED_SNAPSHOT}, left by an interrupted install; destroying it\n`);
        await destroyBe(ctx, be, { force: true });
      }
      log(`${new Date().toISOString()} ${be}: installing ${release}\n`);
      await createFromLayout(ctx, be, loadLayout('flat'));
      try {
        await installRelease(ctx, be, {
          release,
          source: install.source,
          arch: install.arch,
          sets: install.sets,
          cache: install.cache,
          offline: install.offline,
          progress: lineProgress((line) => log(`${line}\n`)),
        });
        await ctx.zfs.snapshot(snap, { recursive: true });
        (await this.installedSnapshots(ctx, root)).add(snap);
      } catch (error) {
        log(`be: ${(error as Error).message}\n`);
        await destroyBe(ctx, be, { force: true }).catch(() => {});
        throw error;
      }
      log(`${new Date().toISOString()} ${be}: installed and snapshotted ${snap}\n`);
      return { be, prepareMs: Math.round(performance.now() - t0), installed: true };
    });
  }

  async runTest(req: RunRequest, prepared: PreparedRecord, onOutput: (text: string) => void): Promise<TestEnd> {
    const method = huntMethod(req.method);
    if (!method) throw new BeError(`method '${req.method}' cannot run on this host`);
    const ctx = this.newContext();
    const t0 = performance.now();
    const early = this.ahead.get(runKey(req));
    this.ahead.delete(runKey(req));
    const made = early && (await early.catch(() => undefined));
    const clone = made?.startsWith(`${prepared.be}.run`) ? made : await this.cloneFor(ctx, prepared.be, req);
    if (made && made !== clone) this.destroyLater(made);
    const cloneMs = performance.now() - t0;
    let end: TestEnd;
    try {
      const env = { PATH: '/sbin:/bin:/usr/sbin:/usr/bin', HOME: '/root', BE_RELEASE: req.release, BE_RUN: String(req.run), BE_HUNT: req.hunt };
      const place = async (dir: string) => {
        const target = join(dir, TEST_DIR);
        await ctx.runner.act(`mkdir -p ${shQuote(target)}`, () => mkdir(target, { recursive: true, mode: 0o755 }));
        await ctx.runner.writeFile(join(target, req.test.name), req.test.data, { mode: 0o755 });
      };
      const scriptStatus = (variable: string) => shVerdict(variable, `${req.release} run ${req.run}`);
      end = await method.runTest(ctx, clone, [`${TEST_DIR}/${req.test.name}`], { env, timeoutMs: req.timeoutMs, onOutput, place, dir: TEST_DIR, scriptStatus, vm: this.vm });
    } finally {
      this.destroyLater(clone);
    }
    return { ...end, cloneMs };
  }

  private installedSnapshots(ctx: BeContext, root: string): Promise<Set<string>> {
    this.installed ??= ctx.zfs.list(root, 'snapshot', 2).then((l) => new Set(l.filter((n) => n.endsWith(`@${INSTALLED_SNAPSHOT}`))));
    return this.installed;
  }

  private async cloneFor(ctx: BeContext, be: string, req: RunRequest): Promise<string> {
    const clone = `${be}.run${req.run}-${process.pid}-${randomBytes(3).toString('hex')}`;
    await cloneBe(ctx, clone, `${be}@${INSTALLED_SNAPSHOT}`, [`${OWNER_PROP}=${this.me}`]);
    return clone;
  }

  /**
   * Clone the BE of a run to come while the current one runs (a 2-stage pipeline), if its release
   * is installed already: nothing is installed ahead of time, so a running test never shares the
   * host with an install.
   */
  cloneAhead(req: RunRequest): void {
    const key = runKey(req);
    if (this.ahead.has(key) || !huntMethod(req.method)) return;
    const made = (async () => {
      const ctx = this.newContext();
      const root = await this.ensureRoot(ctx);
      const be = releaseBeName(root, req.release, req.install.arch);
      if (!(await this.installedSnapshots(ctx, root)).has(`${be}@${INSTALLED_SNAPSHOT}`)) return undefined;
      return this.cloneFor(ctx, be, req);
    })();
    made.catch(() => {}); // runTest makes its own clone if this one failed
    this.ahead.set(key, made);
  }

  /** A finished run's clone is destroyed off the run's path; settle() waits for it. */
  private destroyLater(clone: string): void {
    const done = (async () => {
      await destroyBe(this.newContext(), clone, { force: true });
    })().catch((error) => void this.destroyErrors.push(`could not destroy ${clone}: ${(error as Error).message.split('\n')[0]}`));
    this.destroying.add(done);
    void done.finally(() => this.destroying.delete(done));
  }

  /** Destroy clones made ahead that no run took, wait for every destroy; returns what failed. */
  async settle(): Promise<string[]> {
    for (const [key, made] of this.ahead) {
      this.ahead.delete(key);
      const clone = await made.catch(() => undefined);
      if (clone) this.destroyLater(clone);
    }
    while (this.destroying.size) await Promise.all([...this.destroying]);
    return this.destroyErrors.splice(0);
  }

  /** The BE root, made once (parallel installs would race to create it). */
  private ensureRoot(ctx: BeContext): Promise<string> {
    this.rootReady ??= withLock('be-root', async () => {
      const root = await resolveBeRoot(ctx);
      if (!(await ctx.zfs.exists(root))) await ctx.zfs.create(root, { mountpoint: 'none', canmount: 'off' });
      return root;
    });
    return this.rootReady;
  }

  /** Destroy run clones whose process on this host is gone (a killed hunt or worker). */
  async cleanup(): Promise<string[]> {
    const ctx = this.newContext();
    const root = await resolveBeRoot(ctx);
    if (!(await ctx.zfs.exists(root))) return [];
    const props = await ctx.zfs.get([root], [OWNER_PROP], { recursive: true, sources: ['local'] });
    const gone: string[] = [];
    for (const [name, p] of props) {
      const owner = p[OWNER_PROP]?.value ?? '';
      const [host, pid] = [owner.slice(0, owner.lastIndexOf(':')), Number(owner.slice(owner.lastIndexOf(':') + 1))];
      if (host !== hostname() || !pid || processAlive(pid)) continue;
      // The dead run's test may still be running in the clone (a chroot outlives a killed be).
      const dir = (await mountedDatasets(ctx, name)).get(name);
      if (dir) await clearChroot(ctx, dir);
      await destroyBe(ctx, name, { force: true }).catch(() => {});
      gone.push(name);
    }
    return gone;
  }
}
