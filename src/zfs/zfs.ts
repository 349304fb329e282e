import type { Runner } from '../sys/run.js';
import { BeError, CommandError } from '../sys/errors.js';
import { PlannedZfs } from './planned.js';

import type { PropTable } from './props.js';
export type { PropTable, PropValue } from './props.js';

/**
 * Typed calls to zfs(8) and zpool(8). Reads use `-H -p` (tabs, exact numbers); pool properties
 * come from `zpool list -H -o` because zfs-fuse's `zpool get` has no -H. Knows nothing of BEs.
 */
export class Zfs {
  /** What the plan has made that zfs cannot show yet (changes recorded, not made); shared by the plan's steps. */
  readonly planned: PlannedZfs;

  constructor(
    private readonly runner: Runner,
    /** zfs-fuse mounts every clone at once, whatever canmount says; clones are made unmounted there. */
    private readonly fuse = false,
  ) {
    this.planned = runner.shared('zfs', () => new PlannedZfs());
  }

  /**
   * Run a changing zfs/zpool command. zfs-fuse answers "dataset is busy" for a moment after an
   * unmount (FUSE releases asynchronously), so there a busy refusal is retried a few times.
   * Returns whether the change is only pending (recorded into a plan, not made).
   */
  private async change(argv: string[], undo?: string[]): Promise<boolean> {
    // a script does the same where it counts, after an unmount: zfs destroy
    const attempt = () => this.runner.change(argv, { scriptRetryOn: this.fuse && argv[1] === 'destroy' ? 'busy' : undefined });
    const r = await this.retryBusy(attempt);
    if (undo) this.runner.onUndo(() => this.retryBusy(() => this.runner.change(undo)));
    return !!r.pending;
  }

  private async retryBusy<T>(op: () => Promise<T>): Promise<T> {
    for (let tries = 1; ; tries++) {
      try {
        return await op();
      } catch (error) {
        if (!this.fuse || tries >= 20 || !(error instanceof CommandError) || !/busy/.test(error.stderr)) throw error;
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
    // datasets only the plan has made are not there to ask about
    const onHost = this.planned.empty ? names : names.filter((n) => !this.planned.exists(n, false));
    let table: PropTable = new Map();
    if (onHost.length > 0) {
      const { stdout, stderr, status } = await this.zfsQuery([...args, props.join(','), ...onHost], !!opts.missingOk);
      if (status !== 0) {
        if (!/does not exist/.test(stderr)) throw new CommandError(['zfs', ...args, props.join(','), ...onHost], status, stderr);
      } else table = parseGet(stdout, !!opts.snapshots);
    }
    return this.planned.get(table, names, props, opts);
  }

  async exists(name: string): Promise<boolean> {
    if (this.planned.exists(name, false)) return true;
    const { status } = await this.zfsQuery(['list', '-H', '-o', 'name', name], true);
    return this.planned.exists(name, status === 0);
  }

  /** Filesystems (or snapshots) under `root`, parents first. */
  async list(root: string, type: 'filesystem' | 'snapshot' = 'filesystem', depth?: number): Promise<string[]> {
    const args = ['list', '-H', '-o', 'name', '-t', type, '-r'];
    if (depth !== undefined) args.push('-d', String(depth));
    const names = await this.names([...args, root], root);
    return this.planned.list(root, names, { filesystems: type === 'filesystem', snapshots: type === 'snapshot' }, depth);
  }

  /** Filesystems and snapshots under `root` in one call, parents first. */
  async listWithSnapshots(root: string): Promise<{ filesystems: string[]; snapshots: string[] }> {
    const real = await this.names(['list', '-H', '-o', 'name', '-t', 'filesystem,snapshot', '-r', root], root);
    const names = this.planned.list(root, real, { filesystems: true, snapshots: true });
    return { filesystems: names.filter((n) => !n.includes('@')), snapshots: names.filter((n) => n.includes('@')) };
  }

  /** Names a `zfs list` prints; none for a ROOT only the plan has made. */
  private async names(args: string[], root: string): Promise<string[]> {
    if (this.planned.exists(root, false)) return [];
    const { stdout } = await this.zfsQuery(args);
    return stdout.split('\n').filter(Boolean);
  }

  async create(name: string, props: Record<string, string> = {}, opts: { parents?: boolean } = {}): Promise<void> {
    const args = ['zfs', 'create', ...(opts.parents ? ['-p'] : []), ...propArgs(props), name];
    const missing: string[] = [];
    if (opts.parents) for (let p = name.slice(0, name.lastIndexOf('/')); p.includes('/') && !(await this.exists(p)); p = p.slice(0, p.lastIndexOf('/'))) missing.unshift(p);
    await this.creating(name, async () => {
      if (!(await this.change(args, ['zfs', 'destroy', name]))) return;
      for (const p of missing) this.planned.create(p, {});
      this.planned.create(name, props);
    });
  }

  /** A create that failed after making the dataset (e.g. its mount failed) leaves nothing behind. */
  private async creating(name: string, make: () => Promise<unknown>): Promise<void> {
    try {
      await make();
    } catch (error) {
      if (await this.exists(name)) await this.retryBusy(() => this.runner.query(['zfs', 'destroy', '-r', name]));
      throw error;
    }
  }

  async snapshot(name: string, opts: { recursive?: boolean } = {}): Promise<void> {
    const r = opts.recursive ? ['-r'] : [];
    const [fs, snap] = name.split('@');
    const below = opts.recursive ? await this.list(fs) : [fs];
    if (await this.change(['zfs', 'snapshot', ...r, name], ['zfs', 'destroy', ...r, name])) for (const f of below) this.planned.create(`${f}@${snap}`, {});
  }

  async clone(snapshot: string, name: string, props: Record<string, string> = {}): Promise<void> {
    if (!this.fuse) {
      await this.creating(name, async () => {
        if (await this.change(['zfs', 'clone', ...propArgs(props), snapshot, name], ['zfs', 'destroy', name])) this.planned.create(name, props, snapshot);
      });
      return;
    }
    const { mountpoint, ...rest } = props;
    await this.creating(name, async () => {
      const made = { ...rest, mountpoint: 'none' };
      if (await this.change(['zfs', 'clone', ...propArgs(made), snapshot, name], ['zfs', 'destroy', name])) this.planned.create(name, made, snapshot);
      if (mountpoint !== undefined) await this.set(name, 'mountpoint', mountpoint);
      else await this.inherit(name, 'mountpoint');
    });
  }

  async destroy(name: string, opts: { recursive?: boolean; force?: boolean } = {}): Promise<void> {
    const args = ['zfs', 'destroy'];
    if (opts.recursive) args.push('-r');
    if (opts.force) args.push('-f');
    // what a recursive destroy takes is only needed for a plan, where the host is still as it was
    if (await this.change([...args, name])) this.planned.destroy(opts.recursive && !name.includes('@') ? await this.below(name) : [name]);
  }

  async rename(from: string, to: string): Promise<void> {
    if (await this.change(['zfs', 'rename', from, to], ['zfs', 'rename', to, from])) this.planned.rename(from, to, await this.below(from));
  }

  /** NAME, its descendants and their snapshots. */
  private async below(name: string): Promise<string[]> {
    const { filesystems, snapshots } = await this.listWithSnapshots(name).catch(() => ({ filesystems: [name], snapshots: [] as string[] }));
    return [...filesystems, ...snapshots];
  }

  async rollback(snapshot: string, opts: { destroyLater?: boolean } = {}): Promise<void> {
    await this.change(['zfs', 'rollback', ...(opts.destroyLater ? ['-r'] : []), snapshot]);
  }

  /**
   * Promote a clone (undone by promoting its old origin's file system back). A promote only
   * planned tells the plan what zfs would do: the origin's snapshots up to the clone's move to
   * the clone, the clones of those follow them, and the two file systems swap origins.
   */
  async promote(name: string): Promise<void> {
    const origin = (await this.get([name], ['origin'])).get(name)?.origin?.value ?? '-';
    const parent = origin.split('@')[0];
    if (!(await this.change(['zfs', 'promote', name], origin === '-' ? undefined : ['zfs', 'promote', parent]))) return;
    if (origin === '-') return;
    const table = await this.get([poolName(name)], ['origin', 'createtxg'], { recursive: true, snapshots: true });
    const limit = Number(table.get(origin)?.createtxg?.value ?? Infinity);
    const moved = new Map<string, string>();
    for (const [n, p] of table) {
      if (n.startsWith(`${parent}@`) && Number(p.createtxg?.value ?? 0) <= limit) moved.set(n, name + n.slice(parent.length));
    }
    for (const [n, p] of table) {
      const to = moved.get(p.origin?.value ?? '');
      if (!n.includes('@') && n !== name && to) this.planned.set(n, 'origin', to);
    }
    for (const [from, to] of moved) {
      this.planned.rename(from, to, [from]);
      this.planned.set(to, 'createtxg', table.get(from)?.createtxg?.value ?? '0');
    }
    this.planned.set(name, 'origin', table.get(parent)?.origin?.value ?? '-');
    this.planned.set(parent, 'origin', moved.get(origin) ?? origin);
  }

  /** Set one property per call: zfs-fuse's `zfs set` takes a single prop=value. */
  async set(name: string, prop: string, value: string, undo?: { value: string; inherit: boolean }): Promise<void> {
    const pending = await this.change(['zfs', 'set', `${prop}=${value}`, name], undo ? (undo.inherit ? ['zfs', 'inherit', prop, name] : ['zfs', 'set', `${prop}=${undo.value}`, name]) : undefined);
    if (pending) this.planned.set(name, prop, value);
  }

  async inherit(name: string, prop: string): Promise<void> {
    if (await this.change(['zfs', 'inherit', prop, name])) this.planned.set(name, prop, null);
  }

  /** Mount at the dataset's mountpoint, which is DIR (the plan remembers where). */
  async mount(name: string, dir: string): Promise<void> {
    if (await this.change(['zfs', 'mount', name], ['zfs', 'umount', name])) this.planned.mounted(name, dir);
  }

  /**
   * Unmount. zfs-fuse turns -f into a lazy detach, after which its daemon spins in its unmount
   * handler until the last open file goes away, stalling every other mount: there a busy file
   * system is retried, never forced.
   */
  async umount(name: string, force = false): Promise<void> {
    if (await this.change(['zfs', 'umount', ...(force && !this.fuse ? ['-f'] : []), name])) this.planned.unmounted(name);
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

function poolName(dataset: string): string {
  return dataset.split('/')[0];
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
