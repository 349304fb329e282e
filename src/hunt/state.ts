import { mkdir, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { BeError } from '../sys/errors.js';
import { writeFileAtomic } from '../sys/files.js';
import type { Verdict } from './verdict.js';

export const DEFAULT_HUNTS_DIR = '/var/db/be/hunts';
const STATE_FILE = 'hunt.json';

export type Method = 'chroot' | 'jail' | 'bhyve' | 'qemu';

/** Install flags a hunt passes on to `be install` for each release BE. */
export interface InstallFlags {
  source?: string;
  arch?: string;
  sets?: string[];
  cache?: string;
  offline?: boolean;
}

/** What was asked: a changed spec is a different hunt. */
export interface HuntSpec {
  kind: 'run' | 'bisect';
  releases: string[];
  test: { path: string; name: string; sha256: string };
  method: Method;
  runs: number;
  timeoutMs: number;
  install: InstallFlags;
  good?: string;
  bad?: string;
  /** bisect: how a flaky release (runs both good and bad) counts; absent means bad. */
  flaky?: 'bad' | 'good' | 'skip';
  /** bisect --metric: the first release where NAME moved beyond the noise in DIRECTION by at least MINCHANGE. */
  metric?: { name: string; direction: 'up' | 'down' | 'any'; minChange: number };
}

/** How one test run ended: what a local run records and what a worker replies alike. */
export interface RunOutcome {
  release: string;
  run: number;
  verdict: Verdict;
  status: number | null;
  signal: string | null;
  reason: string;
  metrics: Record<string, number>;
  startedAt: string;
  durationMs: number;
  /** Of durationMs, the time the run waited for its clone (made while the previous test ran, when it could be). */
  cloneMs?: number;
}

export interface RunRecord extends RunOutcome {
  /** Log of this run, relative to the state directory. */
  log: string;
  /** Who ran it, for broker hunts (host:pid), and the log on that host. */
  worker?: string;
  workerLog?: string;
}

export interface PreparedRecord {
  be: string;
  /** Time spent making the BE ready for this hunt (install + snapshot, or finding it ready). */
  prepareMs: number;
  installed: boolean;
}

export interface BisectResult {
  firstBad: string;
  lastGood: string;
  suspects: string[];
  aborted?: string;
  runs: number;
  bound: number;
  text: string;
  /** Releases whose runs disagreed, and how they were counted. */
  flaky?: string[];
}

export interface HuntState {
  version: 1;
  id: string;
  created: string;
  updated: string;
  command: string[];
  beVersion: string;
  spec: HuntSpec;
  prepared: Record<string, PreparedRecord>;
  runs: RunRecord[];
  bisect?: BisectResult;
  /** The smallest relative change of a metric's median the reports flag (--min-change; default 5%). */
  minChange?: number;
  /** Broker hunts: the beanstalkd job id queued for each run key, so a resumed collector does not queue twice. */
  broker?: { jobs: Record<string, string> };
  /** Wall time of each `be hunt` invocation on this state, with the part spent preparing BEs. */
  sessions: Array<{ started: string; wallMs: number; prepareMs: number; runsDone: number }>;
}

/** A hunt's identity: the same releases, test, method and install flags give the same id (so a rerun resumes). */
export function huntId(spec: HuntSpec): string {
  const h = createHash('sha256').update(JSON.stringify({ ...spec, test: { ...spec.test, path: undefined } })).digest('hex');
  return `${spec.kind}-${h.slice(0, 12)}`;
}

export function isFinished(run: RunRecord): boolean {
  return run.verdict !== 'error';
}

/** Directory names for a release/run log (release names are dataset-safe already). */
export function runLogName(release: string, run: number): string {
  return join('logs', release, `run-${run}.log`);
}
export function prepareLogName(release: string): string {
  return join('logs', release, 'prepare.log');
}

/**
 * The state directory of one hunt: hunt.json (written atomically after every finished run) and
 * logs/<release>/{prepare,run-N}.log beside it. Writes are queued so parallel runs never interleave.
 */
export class HuntStore {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly dir: string,
    public state: HuntState,
  ) {}

  static async read(dir: string): Promise<HuntState | undefined> {
    let text: string;
    try {
      text = await readFile(join(dir, STATE_FILE), 'utf8');
    } catch {
      return undefined;
    }
    try {
      const state = JSON.parse(text) as HuntState;
      if (state.version !== 1 || !state.spec || !Array.isArray(state.runs)) throw new Error('bad shape');
      state.sessions ??= [];
      return state;
    } catch {
      throw new BeError(`hunt state '${join(dir, STATE_FILE)}' is not a hunt state file`);
    }
  }

  /** Open the state in DIR for SPEC: resume it if it is the same hunt, start it when empty or fresh. */
  static async open(dir: string, spec: HuntSpec, meta: { command: string[]; beVersion: string; fresh?: boolean }): Promise<HuntStore> {
    const id = huntId(spec);
    const existing = meta.fresh ? undefined : await HuntStore.read(dir);
    if (existing && existing.id !== id) {
      throw new BeError(`state directory '${dir}' holds another hunt (${existing.id}: ${describeSpec(existing.spec)}); use --fresh to start over`);
    }
    const now = new Date().toISOString();
    const state: HuntState = existing ?? {
      version: 1,
      id,
      created: now,
      updated: now,
      command: meta.command,
      beVersion: meta.beVersion,
      spec,
      prepared: {},
      runs: [],
      sessions: [],
    };
    state.runs = state.runs.filter(isFinished);
    if (existing) {
      state.command = meta.command;
      state.beVersion = meta.beVersion;
    }
    await mkdir(join(dir, 'logs'), { recursive: true });
    const store = new HuntStore(dir, state);
    await store.save();
    return store;
  }

  finished(release: string, run: number): RunRecord | undefined {
    return this.state.runs.find((r) => r.release === release && r.run === run && isFinished(r));
  }

  /** Record a run (replacing an earlier aborted one); a duplicate of a finished run is ignored. */
  async recordRun(run: RunRecord): Promise<boolean> {
    if (this.finished(run.release, run.run)) return false;
    this.state.runs = this.state.runs.filter((r) => !(r.release === run.release && r.run === run.run));
    this.state.runs.push(run);
    await this.save();
    return true;
  }

  async recordPrepared(release: string, rec: PreparedRecord): Promise<void> {
    this.state.prepared[release] = rec;
    await this.save();
  }

  async update(change: (s: HuntState) => void): Promise<void> {
    change(this.state);
    await this.save();
  }

  async logDir(release: string): Promise<string> {
    const dir = join(this.dir, 'logs', release);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  path(relative: string): string {
    return join(this.dir, relative);
  }

  save(): Promise<void> {
    const next = this.queue.then(() => {
      this.state.updated = new Date().toISOString();
      return writeFileAtomic(join(this.dir, STATE_FILE), `${JSON.stringify(this.state, null, 2)}\n`);
    });
    this.queue = next.catch(() => {});
    return next;
  }
}

export function describeSpec(spec: HuntSpec): string {
  const rel = spec.releases.length > 4 ? `${spec.releases[0]}..${spec.releases[spec.releases.length - 1]} (${spec.releases.length})` : spec.releases.join(',');
  return `${spec.kind} ${rel} test ${spec.test.name} by ${spec.method}`;
}

/** The newest hunt under the hunts directory (for `be hunt report` without --state). */
export async function latestHunt(root = DEFAULT_HUNTS_DIR): Promise<string> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    throw new BeError(`no hunts in ${root} (use --state DIR)`);
  }
  let best: { dir: string; mtime: number } | undefined;
  for (const name of names) {
    const dir = join(root, name);
    const st = await stat(join(dir, STATE_FILE)).catch(() => undefined);
    if (st && (!best || st.mtimeMs > best.mtime)) best = { dir, mtime: st.mtimeMs };
  }
  if (!best) throw new BeError(`no hunts in ${root} (use --state DIR)`);
  return best.dir;
}
