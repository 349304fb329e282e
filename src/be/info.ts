import type { BeContext } from './context.js';
import { BE_ERR, resolveBeRoot } from './context.js';
import { BeError } from '../sys/errors.js';
import { mountTable, isZfsMount, rootDataset } from '../sys/platform.js';
import { poolOf } from '../zfs/names.js';

export interface BeRow {
  /** Short name for BEs (and full dataset for -a rows, name@snap for snapshots). */
  name: string;
  dataset: string;
  kind: 'be' | 'dataset' | 'snapshot';
  /** 'N' running now, 'R' active on reboot, 'NR' both, '-' neither. */
  active: string;
  mountpoint: string;
  used: number;
  created: Date;
  origin?: string;
}

/** One `zfs get` over the BE root, one `zpool list`, the mount table: every BE with its state. */
export async function listBes(ctx: BeContext, opts: { all?: boolean; snapshots?: boolean } = {}): Promise<{ root: string; rows: BeRow[] }> {
  const root = await resolveBeRoot(ctx);
  // Two processes, side by side: the pool's bootfs and every property of the BE root's tree.
  const [pools, props, table] = await Promise.all([
    ctx.zfs.pools(['bootfs'], []),
    ctx.zfs.get([root], ['used', 'creation', 'origin'], { recursive: true, snapshots: opts.snapshots, missingOk: true }),
    mountTable(ctx.runner, ctx.flavour),
  ]);
  if (!pools.has(poolOf(root))) throw new BeError(`pool '${poolOf(root)}' does not exist`, { libbe: BE_ERR.INIT });
  const bootfs = pools.get(poolOf(root))?.bootfs;
  const mountedAt = new Map<string, string>();
  for (const e of table) if (isZfsMount(e)) mountedAt.set(e.source, e.target);
  const running = rootDataset(table);
  const rows: BeRow[] = [];
  const depthOf = (n: string) => n.split('/').length;
  const rootDepth = depthOf(root);
  for (const [name, p] of props) {
    const base = name.split('@')[0];
    if (depthOf(base) <= rootDepth) continue;
    const be = base.split('/').slice(0, rootDepth + 1).join('/');
    const isSnap = name.includes('@');
    const isRoot = base === be;
    if (!isSnap && !isRoot && !opts.all) continue;
    if (isSnap && !isRoot && !opts.all) continue;
    const active = `${running === be ? 'N' : ''}${bootfs === be ? 'R' : ''}` || '-';
    rows.push({
      name: isRoot && !isSnap ? be.slice(root.length + 1) : name,
      dataset: name,
      kind: isSnap ? 'snapshot' : isRoot ? 'be' : 'dataset',
      active: isRoot && !isSnap ? active : '-',
      mountpoint: mountedAt.get(name) ?? '-',
      used: Number(p.used?.value ?? 0),
      created: new Date(Number(p.creation?.value ?? 0) * 1000),
      origin: p.origin?.value && p.origin.value !== '-' ? p.origin.value : undefined,
    });
  }
  return { root, rows };
}

export function humanSize(bytes: number): string {
  const units = ['B', 'K', 'M', 'G', 'T', 'P'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${bytes}B`;
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)}${units[i]}`;
}

export function formatCreated(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}
