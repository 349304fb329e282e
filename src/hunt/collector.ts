import { writeFile } from 'node:fs/promises';
import { BeError } from '../sys/errors.js';
import { formatDuration } from './verdict.js';
import { HuntStore, runLogName, type RunRecord } from './state.js';
import { pendingRuns, runLine, session, type TestScript, type RunRequest } from './exec.js';
import { checkTube, close, connect, jobKey, jobState, makeJob, readyReplies, replyTube, tubeCounts, type BrokerAddress, type ReplyMessage } from './protocol.js';
import type { JackdClient } from 'jackd';

/**
 * The hunt's side of the broker: every run the hunt owes becomes a job on the tube (protocol.ts),
 * and each reply becomes a run in the hunt's state.
 */
export interface CollectOptions {
  broker: BrokerAddress;
  tube: string;
  ttr: number;
  test: TestScript;
  progress: (line: string) => void;
  /** Give up after this long without progress (no reply, no job reserved by a worker); default: wait. */
  waitMs?: number;
  /** How often to say that nothing came back (default 30 s, sooner with a short waitMs). */
  noticeMs?: number;
}

/** Put every run the hunt still owes on the tube, then record replies as they come. */
export async function runBrokered(store: HuntStore, opts: CollectOptions): Promise<void> {
  const collector = await Collector.open(store, opts);
  try {
    await session(store, undefined, () => collector.collect(pendingRuns(store)));
  } finally {
    await collector.close();
  }
}

/**
 * The hunt's side of the broker: queues runs as jobs (once: a job an earlier collector queued and
 * that is still there is not queued again) and records their replies into the state.
 */
export class Collector {
  private constructor(
    private readonly store: HuntStore,
    private readonly opts: CollectOptions,
    private readonly producer: JackdClient,
    private readonly consumer: JackdClient,
  ) {}

  static async open(store: HuntStore, opts: CollectOptions): Promise<Collector> {
    const producer = await connect(opts.broker);
    const consumer = await connect(opts.broker).catch(async (error) => {
      await close(producer);
      throw error;
    });
    await producer.use(checkTube(opts.tube));
    return new Collector(store, opts, producer, consumer);
  }

  async close(): Promise<void> {
    await close(this.producer);
    await close(this.consumer);
  }

  /** Queue RUNS and wait for a reply to each; returns their records in the order they came. */
  async collect(runs: Array<{ release: string; run: number }>): Promise<RunRecord[]> {
    const { store, opts, producer, consumer } = this;
    const spec = store.state.spec;
    const pending = new Map<string, { release: string; run: number }>();
    for (const p of runs) pending.set(jobKey(store.state.id, p.release, p.run), p);
    const records: RunRecord[] = [];
    if (pending.size === 0) return records;
    const watched: string[] = [];
    for (const { release, run } of pending.values()) {
      watched.push(replyTube(store.state.id, release, run));
      await consumer.watch(watched[watched.length - 1]);
    }
    await consumer.ignore('default').catch(() => {});
    const jobs = (store.state.broker ??= { jobs: {} }).jobs;
    let queued = 0;
    for (const [key, { release, run }] of pending) {
      // A job an earlier collector queued is still waiting or running: do not queue it twice.
      const earlier = jobs[key];
      if (earlier && (await jobState(producer, earlier))) continue;
      if (await readyReplies(producer, replyTube(store.state.id, release, run))) continue;
      const req: RunRequest = { hunt: store.state.id, release, run, method: spec.method, test: opts.test, timeoutMs: spec.timeoutMs, install: spec.install };
      jobs[key] = await producer.put(JSON.stringify(makeJob(req, opts.ttr)), { ttr: opts.ttr, priority: 1000 + queued });
      queued++;
    }
    await store.save();
    const where = `tube ${opts.tube} at ${opts.broker.host}:${opts.broker.port}`;
    opts.progress(`queued ${queued} run${queued === 1 ? '' : 's'} on ${where}; waiting for ${pending.size} repl${pending.size === 1 ? 'y' : 'ies'}`);
    const noticeMs = opts.noticeMs ?? Math.min(30_000, opts.waitMs ? Math.max(1000, opts.waitMs / 2) : 30_000);
    let lastProgress = Date.now();
    let lastNotice = Date.now();
    while (pending.size > 0) {
      let reply: { id: string; payload: Buffer | string } | undefined;
      try {
        reply = await consumer.reserveWithTimeout(1);
      } catch (error) {
        if (!/TIMED_OUT|DEADLINE_SOON/.test((error as Error).message)) throw new BeError(`beanstalkd: ${(error as Error).message.trim()}`);
      }
      if (!reply) {
        const now = Date.now();
        const t = await tubeCounts(producer, opts.tube);
        // A job a worker holds is progress too: long tests send no reply for a while.
        if (t.reserved > 0) lastProgress = now;
        if (opts.waitMs !== undefined && now - lastProgress >= opts.waitMs) {
          throw new BeError(`no worker answered on ${where} for ${formatDuration(opts.waitMs)} (${t.ready} jobs queued, ${t.reserved} reserved); start a be worker and run the same command again to resume (state in ${store.dir})`);
        }
        if (now - lastNotice >= noticeMs && now - lastProgress >= noticeMs) {
          lastNotice = now;
          opts.progress(`waiting for workers on tube ${opts.tube}: ${t.ready} job${t.ready === 1 ? '' : 's'} queued, ${t.reserved} reserved`);
        }
        continue;
      }
      let msg: ReplyMessage | undefined;
      try {
        msg = JSON.parse(reply.payload.toString()) as ReplyMessage;
      } catch {
        msg = undefined;
      }
      if (msg && msg.v === 1 && pending.has(msg.key)) {
        const rec = await recordReply(store, msg);
        pending.delete(msg.key);
        records.push(rec);
        lastProgress = Date.now();
        opts.progress(`${runLine(rec, spec.runs)} (${msg.worker})`);
      }
      // Duplicates and strays are dropped; the answered job is gone once its worker deletes it,
      // and if that worker died in between, its job is deleted here so it never runs again.
      await consumer.delete(reply.id).catch(() => {});
      if (msg?.job) await producer.delete(msg.job).catch(() => {});
    }
    for (const t of watched) await consumer.ignore(t).catch(() => {});
    return records;
  }
}

async function recordReply(store: HuntStore, msg: ReplyMessage): Promise<RunRecord> {
  await store.logDir(msg.release);
  const log = runLogName(msg.release, msg.run);
  await writeFile(store.path(log), msg.logTail);
  if (msg.prepared && !store.state.prepared[msg.release]) await store.recordPrepared(msg.release, msg.prepared);
  const rec: RunRecord = {
    release: msg.release,
    run: msg.run,
    verdict: msg.verdict,
    status: msg.status,
    signal: msg.signal,
    reason: msg.reason,
    metrics: msg.metrics,
    startedAt: msg.startedAt,
    durationMs: msg.durationMs,
    log,
    worker: msg.worker,
    workerLog: `${msg.log.host}:${msg.log.path}`,
  };
  await store.recordRun(rec);
  return rec;
}

