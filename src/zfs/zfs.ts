import type { Runner } from '../sys/run.js';
import { BeError, CommandError } from '../sys/errors.js';

export interface PropValue {
  value: string;
  source: string;
}
/** dataset name → property → value/source, in `zfs get` order (parents before children). */
export type PropTable = Map<string, Record<string, PropValue>>;

/**
 * Typed calls to zfs(8) and zpool(8). Reads use `-H -p` (tabs, exact numbers); pool properties
 * come from `zpool list -H -o` because zfs-fuse's `zpool get` has no -H. Knows nothing of BEs.
 */
export class Zfs {
  constructor(
    private readonly runner: Runner,
    /** zfs-fuse mounts every clone at once, whatever canmount says; clones are made unmounted there. */
    private readonly fuse = false,
  ) {}

  /**
   * Run a changing zfs/zpool command. zfs-fuse answers "dataset is busy" for a moment after an
   * unmount (FUSE releases asynchronously), so there a busy refusal is retried a few times.
   */
  private async change(argv: string[], undo?: string[]): Promise<void> {
    const attempt = () => this.runner.change(argv);
    await this.retryBusy(attempt);
    if (undo && !this.runner.dryRun) this.runner.onUndo(() => this.retryBusy(() => this.runner.change(undo)));
  }

  private async retryBusy<T>(op: () => Promise<T>): Promise<T> {
    for (let tries = 1; ; tries++) {
      try {
        return await op();
      } catch (error) {
        if (!this.fuse || tries >= 12 || !(error instanceof CommandError) || !/busy/.test(error.stderr)) throw error;
        await new Promise((r) => setTimeout(r, 50 * tries));
      }
    }
  }

  private async zfsQuery(args: string[], allowFailure = false) {
    try {
      return await this.runner.query(['zfs', ...args], { allowFailure });
    } catch (error) {
      throw translateMissing(error);
    }
  }

  /** Properties of datasets (and, with recursive, everything below them; snapshots only if asked). */
  async get(
    names: string[],
    props: string[],
    opts: { recursive?: boolean; snapshots?: boolean; sources?: string[]; /** a missing dataset gives an empty table */ missingOk?: boolean } = {},
  ): Promise<PropTable> {
    const args = ['get', '-H', '-p', '-o', 'name,property,value,source'];
    if (opts.recursive) args.push('-r');
    if (opts.sources) args.push('-s', opts.sources.join(','));
    args.push(props.join(','), ...names);
    const { stdout, stderr, status } = await this.zfsQuery(args, !!opts.missingOk);
    if (status !== 0) {
      if (/does not exist/.test(stderr)) return new Map();
      throw new CommandError(['zfs', ...args], status, stderr);
    }
    return parseGet(stdout, !!opts.snapshots);
  }

  async exists(name: string): Promise<boolean> {
    const { status } = await this.zfsQuery(['list', '-H', '-o', 'name', name], true);
    return status === 0;
  }

  /** Filesystems (or snapshots) under `root`, parents first. */
  async list(root: string, type: 'filesystem' | 'snapshot' = 'filesystem', depth?: number): Promise<string[]> {
    const args = ['list', '-H', '-o', 'name', '-t', type, '-r'];
    if (depth !== undefined) args.push('-d', String(depth));
    const { stdout } = await this.zfsQuery([...args, root]);
    return stdout.split('\n').filter(Boolean);
  }

  /** Filesystems and snapshots under `root` in one call, parents first. */
  async listWithSnapshots(root: string): Promise<{ filesystems: string[]; snapshots: string[] }> {
    const { stdout } = await this.zfsQuery(['list', '-H', '-o', 'name', '-t', 'filesystem,snapshot', '-r', root]);
    const names = stdout.split('\n').filter(Boolean);
    return { filesystems: names.filter((n) => !n.includes('@')), snapshots: names.filter((n) => n.includes('@')) };
  }

  async create(name: string, props: Record<string, string> = {}, opts: { parents?: boolean } = {}): Promise<void> {
    const args = ['zfs', 'create', ...(opts.parents ? ['-p'] : []), ...propArgs(props), name];
    await this.creating(name, () => this.change(args, ['zfs', 'destroy', name]));
  }

  /** A create that failed after making the dataset (e.g. its mount failed) leaves nothing behind. */
  private async creating(name: string, make: () => Promise<unknown>): Promise<void> {
    try {
      await make();
    } catch (error) {
      if (!this.runner.dryRun && (await this.exists(name))) await this.retryBusy(() => this.runner.query(['zfs', 'destroy', '-r', name]));
      throw error;
    }
  }

  async snapshot(name: string, opts: { recursive?: boolean } = {}): Promise<void> {
    const r = opts.recursive ? ['-r'] : [];
    await this.change(['zfs', 'snapshot', ...r, name], ['zfs', 'destroy', ...r, name]);
  }

  async clone(snapshot: string, name: string, props: Record<string, string> = {}): Promise<void> {
    if (!this.fuse) {
      await this.creating(name, () => this.change(['zfs', 'clone', ...propArgs(props), snapshot, name], ['zfs', 'destroy', name]));
      return;
    }
    const { mountpoint, ...rest } = props;
    await this.creating(name, async () => {
      await this.change(['zfs', 'clone', ...propArgs({ ...rest, mountpoint: 'none' }), snapshot, name], ['zfs', 'destroy', name]);
      if (mountpoint !== undefined) await this.set(name, 'mountpoint', mountpoint);
      else await this.inherit(name, 'mountpoint');
    });
  }

  async destroy(name: string, opts: { recursive?: boolean; force?: boolean } = {}): Promise<void> {
    const args = ['zfs', 'destroy'];
    if (opts.recursive) args.push('-r');
    if (opts.force) args.push('-f');
    await this.change([...args, name]);
  }

  async rename(from: string, to: string): Promise<void> {
    await this.change(['zfs', 'rename', from, to], ['zfs', 'rename', to, from]);
  }

  async rollback(snapshot: string, opts: { destroyLater?: boolean } = {}): Promise<void> {
    await this.change(['zfs', 'rollback', ...(opts.destroyLater ? ['-r'] : []), snapshot]);
  }

  async promote(name: string): Promise<void> {
    await this.change(['zfs', 'promote', name]);
  }

  /** Set one property per call: zfs-fuse's `zfs set` takes a single prop=value. */
  async set(name: string, prop: string, value: string, undo?: { value: string; inherit: boolean }): Promise<void> {
    await this.change(['zfs', 'set', `${prop}=${value}`, name], undo ? (undo.inherit ? ['zfs', 'inherit', prop, name] : ['zfs', 'set', `${prop}=${undo.value}`, name]) : undefined);
  }

  async inherit(name: string, prop: string): Promise<void> {
    await this.change(['zfs', 'inherit', prop, name]);
  }

  async mount(name: string): Promise<void> {
    await this.change(['zfs', 'mount', name], ['zfs', 'umount', name]);
  }

  /**
   * Unmount. zfs-fuse turns -f into a lazy detach, after which its daemon spins in its unmount
   * handler until the last open file goes away, stalling every other mount: there a busy file
   * system is retried, never forced.
   */
  async umount(name: string, force = false): Promise<void> {
    await this.change(['zfs', 'umount', ...(force && !this.fuse ? ['-f'] : []), name]);
  }

  /** Pool properties through `zpool list -H -o`; undefined when the pool does not exist. */
  async poolProps(pool: string, props: string[]): Promise<Record<string, string> | undefined> {
    const all = await this.pools(props, [pool]);
    return all.get(pool);
  }

  /** name → props for every imported pool (or the named ones that exist). */
  async pools(props: string[], names: string[] = []): Promise<Map<string, Record<string, string>>> {
    const cols = ['name', ...props.filter((p) => p !== 'name')];
    let stdout: string;
    try {
      ({ stdout } = await this.runner.query(['zpool', 'list', '-H', '-o', cols.join(','), ...names], { allowFailure: names.length > 0 }));
    } catch (error) {
      throw translateMissing(error);
    }
    const map = new Map<string, Record<string, string>>();
    for (const line of stdout.split('\n').filter(Boolean)) {
      const fields = line.split('\t');
      const row: Record<string, string> = {};
      cols.forEach((c, i) => (row[c] = fields[i] ?? ''));
      map.set(row.name, row);
    }
    return map;
  }

  async setPool(pool: string, prop: string, value: string): Promise<void> {
    await this.change(['zpool', 'set', `${prop}=${value}`, pool]);
  }
}

export function propArgs(props: Record<string, string>): string[] {
  return Object.entries(props).flatMap(([k, v]) => ['-o', `${k}=${v}`]);
}

export function parseGet(stdout: string, snapshots: boolean): PropTable {
  const table: PropTable = new Map();
  for (const line of stdout.split('\n')) {
    if (!line) continue;
    const [name, property, value, source] = line.split('\t');
    if (!snapshots && name.includes('@')) continue;
    let row = table.get(name);
    if (!row) table.set(name, (row = {}));
    row[property] = { value: value ?? '', source: source ?? '' };
  }
  return table;
}

function translateMissing(error: unknown): unknown {
  if (error instanceof BeError && /command not found/.test(error.message)) {
    const program = error.command?.[0] ?? 'zfs';
    return new BeError(`${program} not found: install ZFS (FreeBSD base, OpenZFS or zfs-fuse)`);
  }
  if (error instanceof CommandError && /zfs-fuse daemon|failed to initialize ZFS library/.test(error.stderr)) {
    return new BeError(`${error.program}: the ZFS library is unavailable (is the zfs-fuse daemon running?)`);
  }
  return error;
}
