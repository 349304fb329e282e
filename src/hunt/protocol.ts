import { createHash } from 'node:crypto';
import Jackd, { type JackdClient } from 'jackd';
import { BeError } from '../sys/errors.js';
import type { InstallFlags, Method, PreparedRecord, RunOutcome } from './state.js';
import { TEST_DIR, type RunRequest } from './exec.js';

/**
 * The wire format of hunt runs over beanstalkd (collector.ts queues, worker.ts serves). A job is JSON (release, the test as argv + bytes, method, limits,
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

/** The end of a run's output that travels in its reply (a job must stay under beanstalkd's 64 KiB). */
export const LOG_TAIL = 24 * 1024;

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
    Number.isInteger(j.run) && ['chroot', 'jail', 'bhyve', 'qemu'].includes(j.method) && j.test && typeof j.test.name === 'string' && /^[A-Za-z0-9_.+-]+$/.test(j.test.name) &&
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

export async function connect(addr: BrokerAddress): Promise<JackdClient> {
  const client = new (Jackd as unknown as new () => JackdClient)();
  try {
    await client.connect({ host: addr.host, port: addr.port });
  } catch (error) {
    throw new BeError(`cannot reach beanstalkd at ${addr.host}:${addr.port}: ${(error as Error).message}`);
  }
  return client;
}

export async function close(client: JackdClient): Promise<void> {
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

export async function jobState(client: JackdClient, id: string): Promise<string | undefined> {
  try {
    return yamlMap(await client.statsJob(id)).state;
  } catch {
    return undefined;
  }
}

export async function readyReplies(client: JackdClient, tube: string): Promise<number> {
  try {
    const s = yamlMap(await client.statsTube(tube));
    return Number(s['current-jobs-ready'] ?? 0) + Number(s['current-jobs-reserved'] ?? 0) + Number(s['current-jobs-delayed'] ?? 0);
  } catch {
    return 0;
  }
}

export function lastBytes(text: string, max: number): string {
  const b = Buffer.from(text);
  return b.length <= max ? text : b.subarray(b.length - max).toString();
}

/** Jobs waiting on the tube and jobs workers hold (stats-tube). */
export async function tubeCounts(client: JackdClient, tube: string): Promise<{ ready: number; reserved: number }> {
  try {
    const s = yamlMap(await client.statsTube(tube));
    return { ready: Number(s['current-jobs-ready'] ?? 0), reserved: Number(s['current-jobs-reserved'] ?? 0) };
  } catch {
    return { ready: 0, reserved: 0 };
  }
}
