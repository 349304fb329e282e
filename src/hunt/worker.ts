import { hostname } from 'node:os';
import { mkdir, writeFile } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import type { JackdClient } from 'jackd';
import { BeError } from '../sys/errors.js';
import { formatDuration } from './verdict.js';
import type { InstallFlags } from './state.js';
import { Preparer, runOnce, type ReleaseHost, type TestScript, type RunRequest } from './exec.js';
import { checkTube, close, connect, lastBytes, LOG_TAIL, parseJob, readyReplies, type BrokerAddress, type JobMessage, type ReplyMessage } from './protocol.js';

/**
 * A worker host's side of the broker: reserve a job (protocol.ts), run it through the same
 * pipeline as a local hunt (exec.ts runOnce), reply on the job's reply tube, then delete the job.
 */
export interface WorkerOptions {
  broker: BrokerAddress;
  tube: string;
  jobs: number;
  /** Where the worker keeps its run logs. */
  logDir: string;
  host: ReleaseHost;
  log: (line: string) => void;
  /** Override the mirror given in jobs (a worker may reach the sets elsewhere). */
  source?: string;
  /** Stop after this many jobs (tests); default: serve forever. */
  maxJobs?: number;
}

/** Serve hunt runs from the tube, N at a time, until killed. */
export async function serveWorker(opts: WorkerOptions): Promise<void> {
  const me = `${hostname()}:${process.pid}`;
  const preparers = new Map<string, Preparer>();
  let served = 0;
  // bhyve runs share the host's one VM setup (tap, guest address): with --jobs > 1 they take turns,
  // while chroot and jail runs go on beside them.
  let vmTurn: Promise<unknown> = Promise.resolve();
  let vmRuns = 0;
  const oneVmAtATime: VmTurns = (key, run) => {
    if (vmRuns++ > 0) opts.log(`job ${key}: waiting for the VM in use`);
    const mine = vmTurn.then(run, run).finally(() => vmRuns--);
    vmTurn = mine.catch(() => undefined);
    return mine;
  };
  const preparerFor = (install: InstallFlags) => {
    const k = JSON.stringify(install);
    let p = preparers.get(k);
    if (!p) {
      p = new Preparer(opts.host, install, async (release) => {
        const dir = join(opts.logDir, release);
        await mkdir(dir, { recursive: true });
        const s = createWriteStream(join(dir, 'prepare.log'), { flags: 'a' });
        return (t: string) => void s.write(t);
      });
      preparers.set(k, p);
    }
    return p;
  };
  const slot = async (n: number) => {
    const conn = await connect(opts.broker);
    await conn.watch(checkTube(opts.tube));
    if (opts.tube !== 'default') await conn.ignore('default');
    opts.log(`worker ${me} slot ${n}: waiting on tube ${opts.tube} at ${opts.broker.host}:${opts.broker.port}`);
    while (opts.maxJobs === undefined || served < opts.maxJobs) {
      let job: { id: string; payload: Buffer | string };
      try {
        job = await conn.reserveWithTimeout(5);
      } catch (error) {
        if (/TIMED_OUT|DEADLINE_SOON/.test((error as Error).message)) continue;
        throw new BeError(`beanstalkd: ${(error as Error).message.trim()}`);
      }
      let msg: JobMessage;
      try {
        msg = parseJob(job.payload);
      } catch (error) {
        opts.log(`job ${job.id}: ${(error as Error).message}; buried`);
        await conn.bury(job.id, 0).catch(() => {});
        continue;
      }
      if (await readyReplies(conn, msg.reply)) {
        // Answered already by a worker that died before deleting the job.
        opts.log(`job ${job.id} ${msg.key}: already answered; deleted`);
        await conn.delete(job.id).catch(() => {});
        continue;
      }
      served++;
      const reply = await serveJob(conn, job.id, msg, me, opts, preparerFor, oneVmAtATime);
      await conn.use(msg.reply);
      await conn.put(JSON.stringify(reply), { ttr: 60 });
      await conn.delete(job.id).catch(() => {});
      opts.log(`job ${job.id} ${msg.key}: done ${reply.verdict}${reply.reason ? ` (${reply.reason})` : ''} in ${formatDuration(reply.durationMs)}`);
      // Clones a dead worker on this host left behind go now rather than at the next start.
      if (opts.host.cleanup) for (const gone of await opts.host.cleanup().catch(() => [])) opts.log(`destroyed ${gone}, left by a worker that died`);
    }
    await close(conn);
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, opts.jobs) }, (_, i) => slot(i + 1)));
  } finally {
    for (const problem of (await opts.host.settle?.()) ?? []) opts.log(`be: ${problem}`);
  }
}

type VmTurns = <T>(key: string, run: () => Promise<T>) => Promise<T>;

async function serveJob(conn: JackdClient, id: string, msg: JobMessage, me: string, opts: WorkerOptions, preparerFor: (i: InstallFlags) => Preparer, vmTurns: VmTurns): Promise<ReplyMessage> {
  opts.log(`job ${id} ${msg.key}: started`);
  // Keep the reservation alive: touch at a third of the TTR (same connection that reserved it).
  const every = Math.max(250, (msg.ttr * 1000) / 3);
  const timer = setInterval(() => void conn.touch(id).catch(() => {}), every);
  const install = opts.source ? { ...msg.install, source: opts.source } : msg.install;
  const logDir = join(opts.logDir, msg.hunt, msg.release);
  const logPath = join(logDir, `run-${msg.run}.log`);
  const test: TestScript = { name: msg.test.name, data: Buffer.from(msg.test.data, 'base64'), sha256: msg.test.sha256 };
  const req: RunRequest = { hunt: msg.hunt, release: msg.release, run: msg.run, method: msg.method, test, timeoutMs: msg.limits.timeoutMs, install };
  let output = '';
  let result: Awaited<ReturnType<typeof runOnce>>;
  try {
    await mkdir(logDir, { recursive: true }).catch(() => {});
    result = await runOnce(opts.host, preparerFor(install), req, (t) => (output += t), {
      exclusive: msg.method === 'bhyve' ? (run) => vmTurns(msg.key, run) : undefined,
    });
  } finally {
    clearInterval(timer);
  }
  await writeFile(logPath, output).catch(() => {});
  return {
    v: 1,
    key: msg.key,
    job: id,
    worker: me,
    ...result.outcome,
    prepared: result.prepared,
    log: { host: hostname(), path: logPath },
    logTail: lastBytes(output, LOG_TAIL),
  };
}
