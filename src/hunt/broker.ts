import { hostname } from 'node:os';
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { JackdClient } from 'jackd';
import { BeError } from '../sys/errors.js';
import { parseMetrics, classify, formatDuration } from './verdict.js';
import type { InstallFlags, Method, PreparedRecord, RunOutcome, RunRecord } from './state.js';
import { HuntStore, runLogName } from './state.js';
import { pendingRuns, runLine, Preparer, type ReleaseHost, type TestScript, type RunRequest, type TestEnd } from './exec.js';

/**
 * Hunt runs over beanstalkd. A job is JSON (release, the test as argv + bytes, method, limits,
 * install flags, the reply tube). A worker reserves it, touches it while it runs, puts the reply on
 * the job's own reply tube and only then deletes the job. A worker that dies leaves its job to
 * come back (connection closed or TTR expired); replies are keyed by job so the collector keeps
 * the first and ignores any duplicate.
 */

export interface BrokerAddress {
  host: string;
  port: number;
}

export function parseBroker(text: string): BrokerAddress {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) throw new BeError(`invalid broker '${text}': expected HOST:PORT`);
  return { host: m[1] ?? m[2], port };
}

const TUBE = /^[A-Za-z0-9+/;.$_()][A-Za-z0-9+/;.$_()-]{0,199}$/;
export function checkTube(name: string): string {
  if (!TUBE.test(name)) throw new BeError(`invalid tube '${name}': letters, digits and + / ; . $ _ ( ) -, at most 200, not starting with -`);
  return name;
}

export interface JobMessage {
  v: 1;
  /** hunt/release/run: what a reply answers. */
  key: string;
  hunt: string;
  release: string;
  run: number;
  method: Method;
  test: { name: string; argv: string[]; data: string; sha256: string };
  limits: { timeoutMs: number };
  install: InstallFlags;
  reply: string;
  ttr: number;
}

export interface ReplyMessage extends RunOutcome {
  v: 1;
  key: string;
  job: string;
  worker: string;
  prepared?: PreparedRecord;
  log: { host: string; path: string };
  /** The end of the run's output (a job must stay under beanstalkd's 64 KiB). */
  logTail: string;
}

export const TEST_DIR = '/var/tmp/be-hunt';
const LOG_TAIL = 24 * 1024;

export function jobKey(hunt: string, release: string, run: number): string {
  return `${hunt}/${release}/${run}`;
}

export function replyTube(hunt: string, release: string, run: number): string {
  return checkTube(`be-hunt-reply.${hunt}.${release}.${run}`);
}

export function makeJob(req: RunRequest, ttr: number): JobMessage {
  return {
    v: 1,
    key: jobKey(req.hunt, req.release, req.run),
    hunt: req.hunt,
    release: req.release,
    run: req.run,
    method: req.method,
    test: { name: req.test.name, argv: [`${TEST_DIR}/${req.test.name}`], data: req.test.data.toString('base64'), sha256: req.test.sha256 },
    limits: { timeoutMs: req.timeoutMs },
    install: req.install,
    reply: replyTube(req.hunt, req.release, req.run),
    ttr,
  };
}

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** A job from the tube, checked field by field: anything else is refused, never interpreted. */
export function parseJob(payload: Buffer | string): JobMessage {
  let j: JobMessage;
  try {
    j = JSON.parse(payload.toString());
  } catch {
    throw new BeError('job is not JSON');
  }
  const ok =
    j && j.v === 1 && typeof j.key === 'string' && typeof j.hunt === 'string' && typeof j.release === 'string' && /^[A-Za-z0-9_.:-]+$/.test(j.release) &&
    Number.isInteger(j.run) && ['chroot', 'jail', 'bhyve'].includes(j.method) && j.test && typeof j.test.name === 'string' && /^[A-Za-z0-9_.+-]+$/.test(j.test.name) &&
    isStrings(j.test.argv) && j.test.argv.length > 0 && typeof j.test.data === 'string' && j.limits && Number.isFinite(j.limits.timeoutMs) && j.limits.timeoutMs > 0 &&
    typeof j.reply === 'string' && TUBE.test(j.reply) && Number.isFinite(j.ttr) && j.ttr > 0 && j.install && typeof j.install === 'object';
  if (!ok) throw new BeError('job does not have the shape of a be hunt job');
  const i = j.install as Record<string, unknown>;
  const known = new Set(['source', 'arch', 'sets', 'cache', 'offline']);
  const installOk =
    Object.keys(i).every((k) => known.has(k)) &&
    ['source', 'arch', 'cache'].every((k) => i[k] === undefined || typeof i[k] === 'string') &&
    (i.sets === undefined || isStrings(i.sets)) &&
    (i.offline === undefined || typeof i.offline === 'boolean');
  if (!installOk) throw new BeError(`job ${j.key}: install flags are not source, arch, sets, cache, offline`);
  const data = Buffer.from(j.test.data, 'base64');
  if (createHash('sha256').update(data).digest('hex') !== j.test.sha256) throw new BeError(`job ${j.key}: test does not match its sha256`);
  return j;
}

async function connect(addr: BrokerAddress): Promise<JackdClient> {
  const { default: Jackd } = await import('jackd');
  const client = new (Jackd as unknown as new () => JackdClient)();
  try {
    await client.connect({ host: addr.host, port: addr.port });
  } catch (error) {
    throw new BeError(`cannot reach beanstalkd at ${addr.host}:${addr.port}: ${(error as Error).message}`);
  }
  return client;
}

async function close(client: JackdClient): Promise<void> {
  await client.quit().catch(() => {});
  client.socket.destroy();
}

/** YAML from stats-* as a flat map (the values we read are scalars). */
function yamlMap(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([a-z-]+):\s*(.*)$/.exec(line.trim());
    if (m) out[m[1]] = m[2].replace(/^"|"$/g, '');
  }
  return out;
}

async function jobState(client: JackdClient, id: string): Promise<string | undefined> {
  try {
    return yamlMap(await client.statsJob(id)).state;
  } catch {
    return undefined;
  }
}

async function readyReplies(client: JackdClient, tube: string): Promise<number> {
  try {
    const s = yamlMap(await client.statsTube(tube));
    return Number(s['current-jobs-ready'] ?? 0) + Number(s['current-jobs-reserved'] ?? 0) + Number(s['current-jobs-delayed'] ?? 0);
  } catch {
    return 0;
  }
}

function lastBytes(text: string, max: number): string {
  const b = Buffer.from(text);
  return b.length <= max ? text : b.subarray(b.length - max).toString();
}

// ---------------------------------------------------------------- collector

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
  const t0 = performance.now();
  const entry = { started: new Date().toISOString(), wallMs: 0, prepareMs: 0, runsDone: 0 };
  await store.update((s) => s.sessions.push(entry));
  try {
    entry.runsDone = (await collector.collect(pendingRuns(store))).length;
  } finally {
    entry.wallMs = Math.round(performance.now() - t0);
    await store.save().catch(() => {});
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

/** Jobs waiting on the tube and jobs workers hold (stats-tube). */
async function tubeCounts(client: JackdClient, tube: string): Promise<{ ready: number; reserved: number }> {
  try {
    const s = yamlMap(await client.statsTube(tube));
    return { ready: Number(s['current-jobs-ready'] ?? 0), reserved: Number(s['current-jobs-reserved'] ?? 0) };
  } catch {
    return { ready: 0, reserved: 0 };
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

// ---------------------------------------------------------------- worker

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
        const { createWriteStream } = await import('node:fs');
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
  const startedAt = new Date();
  const t0 = performance.now();
  let output = '';
  let end: TestEnd;
  let prepared: PreparedRecord | undefined;
  let failed = '';
  try {
    await mkdir(logDir, { recursive: true });
    prepared = await preparerFor(install).prepare(msg.release);
    const data = Buffer.from(msg.test.data, 'base64');
    const test: TestScript = { name: msg.test.name, data, sha256: msg.test.sha256 };
    const req: RunRequest = { hunt: msg.hunt, release: msg.release, run: msg.run, method: msg.method, test, timeoutMs: msg.limits.timeoutMs, install };
    const run = () =>
      opts.host.runTest(req, prepared!, (t) => {
        output += t;
      });
    end = msg.method === 'bhyve' ? await vmTurns(msg.key, run) : await run();
  } catch (error) {
    failed = `could not run: ${(error as Error).message.split('\n')[0]}`;
    output += `\nbe: ${failed}\n`;
    end = { status: null, signal: null, output, timedOut: false };
  } finally {
    clearInterval(timer);
  }
  await writeFile(logPath, output).catch(() => {});
  const c = failed ? { verdict: 'error' as const, reason: failed } : classify({ ...end, timeoutMs: msg.limits.timeoutMs });
  return {
    v: 1,
    key: msg.key,
    job: id,
    worker: me,
    release: msg.release,
    run: msg.run,
    verdict: c.verdict,
    status: end.status ?? null,
    signal: end.signal ?? null,
    reason: c.reason,
    metrics: parseMetrics(end.output || output),
    startedAt: startedAt.toISOString(),
    durationMs: Math.round(performance.now() - t0),
    prepared,
    log: { host: hostname(), path: logPath },
    logTail: lastBytes(output, LOG_TAIL),
  };
}
