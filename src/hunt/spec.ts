import { readFile, stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import type { BeContext } from '../be/context.js';
import { BeError, UsageError } from '../sys/errors.js';
import { knownReleases, compareVersions, hostArch } from '../install/index.js';
import { resolveReleaseSpec, naturalCompare, type ReleaseTable } from './releases.js';
import { parseDuration } from './verdict.js';
import { parsePercent, fewestRuns, DEFAULT_MIN_CHANGE } from './stats.js';
import { bisectRange } from './bisect.js';
import type { HuntSpec, InstallFlags, Method } from './state.js';
import type { TestScript } from './exec.js';
import { DEFAULT_VM, type VmSettings } from '../boot/index.js';
import { requireFreeBSD } from '../boot/method.js';

/** The flags `be hunt run` and `be hunt bisect` share (src/cli/hunt.ts). */
export interface HuntFlags {
  test: string;
  method?: string;
  timeout: string;
  state?: string;
  fresh?: boolean;
  source?: string;
  arch?: string;
  sets?: string[];
  cache?: string;
  offline?: boolean;
  broker?: string;
  tube: string;
  ttr: number;
  wait?: string;
  vmAddress?: string;
  vmServer?: string;
  vmTap?: string;
  vmMemory?: string;
  vmCpus?: number;
  minChange?: string;
}

export type RunFlags = HuntFlags & { releases: string; jobs: number; runs: number };
export type BisectFlags = HuntFlags & { good: string; bad: string; releases?: string; runs?: number; flaky?: string; metric?: string; up?: boolean; down?: boolean };

/** A hunt as its flags describe it: what it runs (its identity) and what this host adds. */
export interface PlannedHunt {
  spec: HuntSpec;
  test: TestScript;
  vm: VmSettings;
  minChange?: number;
}

/** --min-change 5% → 0.05 (undefined when not given). */
export function minChangeOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const v = parsePercent(text);
  if (!Number.isFinite(v)) throw new UsageError(`invalid --min-change '${text}': expected a percentage such as 5%`);
  return v;
}

function releaseTable(arch?: string): ReleaseTable {
  const compare = (a: string, b: string) => {
    try {
      return compareVersions(a.replace(/-.*$/, ''), b.replace(/-.*$/, '')) || naturalCompare(a, b);
    } catch {
      return naturalCompare(a, b);
    }
  };
  return { known: knownReleases(arch ?? hostArch()), compare };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const fileIo = {
  async readFile(path: string) {
    const st = await stat(path).catch(() => undefined);
    if (!st?.isFile()) return undefined;
    return readFile(path, 'utf8');
  },
  readStdin,
};

/** --releases as the ordered release names (a list, a range, a file or '-' for standard input). */
function releasesOf(text: string, arch?: string): Promise<string[]> {
  return resolveReleaseSpec(text, releaseTable(arch), fileIo);
}

export async function loadTest(path: string): Promise<TestScript> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (error) {
    throw new BeError(`cannot read test '${path}': ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const name = basename(path).replace(/[^A-Za-z0-9_.+-]/g, '_') || 'test';
  return { name, data, sha256: createHash('sha256').update(data).digest('hex') };
}

function method(ctx: BeContext, opts: HuntFlags): Method {
  const m = opts.method ?? (ctx.flavour === 'freebsd' ? 'jail' : 'chroot');
  if (m !== 'chroot' && m !== 'jail' && m !== 'bhyve' && m !== 'qemu') throw new UsageError(`invalid method '${m}': expected chroot, jail, bhyve or qemu`);
  return m;
}

function installFlags(opts: HuntFlags): InstallFlags {
  const flags: InstallFlags = {};
  if (opts.source) flags.source = /^[a-z]+:\/\//i.test(opts.source) ? opts.source : resolve(opts.source);
  if (opts.arch) flags.arch = opts.arch;
  if (opts.sets?.length) flags.sets = opts.sets;
  if (opts.cache) flags.cache = resolve(opts.cache);
  if (opts.offline) flags.offline = true;
  return flags;
}

/** The bhyve guest's network and memory (host-specific: not part of the hunt's identity). */
export function vmSettings(opts: Pick<HuntFlags, 'vmAddress' | 'vmServer' | 'vmTap' | 'vmMemory' | 'vmCpus'>): VmSettings {
  return { address: opts.vmAddress ?? DEFAULT_VM.address, server: opts.vmServer, tap: opts.vmTap ?? DEFAULT_VM.tap, memory: opts.vmMemory ?? DEFAULT_VM.memory, cpus: opts.vmCpus };
}

/** bhyve runs need FreeBSD (refused here before anything is changed; -n still plans them); one VM at a time. */
export function checkMethod(ctx: BeContext, m: Method, jobs: number): void {
  if (m !== 'bhyve') return;
  requireFreeBSD(ctx, 'hunt --method bhyve (bhyve(8))');
  if (jobs > 1) throw new UsageError('--method bhyve runs one VM at a time: drop --jobs (or use more workers)');
}

/** --wait as milliseconds (undefined when not given). */
export function waitMs(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (!Number.isFinite(ms)) throw new UsageError(`invalid --wait '${text}': expected e.g. 90s, 10m, 1h`);
  return ms;
}

function timeoutMs(text: string): number {
  const ms = parseDuration(text);
  if (!Number.isFinite(ms)) throw new UsageError(`invalid --timeout '${text}': expected e.g. 90s, 10m, 1h`);
  return ms;
}

/** `be hunt run`: every release of --releases, --runs times each. */
export async function runHunt(ctx: BeContext, opts: RunFlags): Promise<PlannedHunt> {
  const releases = await releasesOf(opts.releases, opts.arch);
  const test = await loadTest(opts.test);
  const spec: HuntSpec = { kind: 'run', releases, test: { path: resolve(opts.test), name: test.name, sha256: test.sha256 }, method: method(ctx, opts), runs: opts.runs, timeoutMs: timeoutMs(opts.timeout), install: installFlags(opts) };
  return { spec, test, vm: vmSettings(opts), minChange: minChangeOf(opts.minChange) };
}

/** `be hunt bisect`: its flags checked (each bad one named before anything is read), its search range resolved. */
export async function bisectHunt(ctx: BeContext, opts: BisectFlags): Promise<PlannedHunt> {
  const minChange = minChangeOf(opts.minChange);
  if (opts.flaky !== undefined && !['bad', 'good', 'skip'].includes(opts.flaky)) throw new UsageError(`invalid --flaky '${opts.flaky}': expected bad, good or skip`);
  if (opts.up && opts.down) throw new UsageError('--up and --down: give one direction (or neither, for a move either way)');
  if (!opts.metric) {
    for (const [given, flag] of [[opts.up, '--up'], [opts.down, '--down'], [minChange !== undefined, '--min-change']] as const) if (given) throw new UsageError(`${flag}: only with --metric NAME`);
  } else {
    if (!/^[A-Za-z_][A-Za-z0-9_.:-]*$/.test(opts.metric)) throw new UsageError(`invalid --metric '${opts.metric}': expected a BE-METRIC name (letters, digits, _ . : -)`);
    if (opts.flaky !== undefined) throw new UsageError('--flaky: not used with --metric (a metric bisect measures every run)');
    if (opts.runs !== undefined && opts.runs < fewestRuns()) throw new UsageError(`--runs ${opts.runs}: too few runs to tell a change from the noise; --metric needs at least ${fewestRuns()} per release`);
  }
  const runs = opts.runs ?? (opts.metric ? 5 : 1);
  const releases = await releasesOf(opts.releases ?? `${opts.good}..${opts.bad}`, opts.arch);
  for (const r of [opts.good, opts.bad]) if (!releases.includes(r)) throw new BeError(`release '${r}' is not among the releases to search`);
  bisectRange(releases, opts.good, opts.bad);
  const test = await loadTest(opts.test);
  const spec: HuntSpec = {
    kind: 'bisect',
    releases,
    test: { path: resolve(opts.test), name: test.name, sha256: test.sha256 },
    method: method(ctx, opts),
    runs,
    timeoutMs: timeoutMs(opts.timeout),
    install: installFlags(opts),
    good: opts.good,
    bad: opts.bad,
    ...(opts.flaky && opts.flaky !== 'bad' ? { flaky: opts.flaky as 'good' | 'skip' } : {}),
    ...(opts.metric ? { metric: { name: opts.metric, direction: opts.up ? ('up' as const) : opts.down ? ('down' as const) : ('any' as const), minChange: minChange ?? DEFAULT_MIN_CHANGE } } : {}),
  };
  return { spec, test, vm: vmSettings(opts), minChange };
}
