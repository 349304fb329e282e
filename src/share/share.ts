/**
 * `be sharenfs`, `be unsharenfs`, `be fstab`: export a BE and its children over NFS and write the
 * guest's fstab. Where a BE is shared from: where it is mounted now; else --path; else
 * `/<dataset without pool>` below the pool's altroot (bd/be/head → /be/head, as in the talk;
 * zfs-fuse can mount only below the altroot, so a pool with one shares from there).
 */
import { readFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { BeContext } from '../be/context.js';
import { requireBe, requirePool } from '../be/context.js';
import { mountBe, mountOrder, mountedDatasets, umountBe } from '../be/access.js';
import { withoutAltroot } from '../zfs/mount.js';
import { poolOf } from '../zfs/names.js';
import { BeError } from '../sys/errors.js';
import { shQuote } from '../sys/shell.js';
import { setBlock, listBlocks } from './blocks.js';
import { updateFile } from './lockedfile.js';
import { exportsBlock, parseExports } from './exports.js';
import { ganeshaBlock, exportIds, usedExportIds, includeDirective, includesFile, pseudoPath } from './ganesha.js';
import { nfsFstabBlock, checkServer, checkMountOptions } from './fstab.js';
import { makeShareSpec, checkSharePath, type ShareSpec } from './spec.js';

/** User property on the BE root: the directory `be sharenfs` mounted it at (so unsharenfs unmounts). */
export const SHARED_PROP = 'be:sharenfs';

export const FREEBSD_EXPORTS = '/etc/exports';
export const GANESHA_CONF = '/etc/ganesha/ganesha.conf';
export const GANESHA_PID = '/run/ganesha/ganesha.pid';

export interface ShareTarget {
  /** --exports FILE: exports(5) syntax into FILE, nothing reloaded. */
  exportsFile?: string;
  /** ganesha.conf to include be's file from (Linux). */
  ganeshaConf?: string;
  /** ganesha's pid file, to signal a reload (Linux). */
  ganeshaPid?: string;
}

export interface ShareOptions extends ShareTarget {
  network?: string[];
  host?: string[];
  maproot?: string;
  ro?: boolean;
  v4Root?: string;
  /** Where to mount the BE for sharing (default: see the file comment). */
  path?: string;
  /** Write the export lines for the BE's share path without mounting it (a file for another server). */
  noMount?: boolean;
}

export interface ShareResult {
  be: string;
  paths: string[];
  file: string;
  reloaded: string | undefined;
}

/** The directory a BE is shared from when it is not mounted and no --path is given. */
export async function defaultShareDir(ctx: BeContext, be: string): Promise<string> {
  const { altroot = '-' } = await requirePool(ctx, poolOf(be));
  const rel = `/${be.slice(poolOf(be).length + 1)}`;
  return altroot === '-' || altroot === '/' ? rel : join(altroot, rel);
}

/** Where each file system of the BE would be mounted below BASE, in rc.d/zfsbe order. */
async function plannedPaths(ctx: BeContext, be: string, base: string): Promise<string[]> {
  const { altroot = '-' } = await requirePool(ctx, poolOf(be));
  const props = await ctx.zfs.get([be], ['mountpoint', 'canmount'], { recursive: true });
  for (const p of props.values()) if (p.mountpoint) p.mountpoint = { ...p.mountpoint, value: withoutAltroot(p.mountpoint.value, altroot) };
  const steps = mountOrder(be, props);
  if (steps.length === 0 || steps[0].dataset !== be) throw new BeError(`boot environment '${be}' has no mountable root (canmount=off or mountpoint=none)`);
  return steps.map((s) => (s.relative === '/' ? base : join(base, s.relative)));
}

/** The mounted file systems of the BE, root first then by path (zfsbe order). */
async function mountedPaths(ctx: BeContext, be: string): Promise<string[]> {
  const mounted = await mountedDatasets(ctx, be);
  const root = mounted.get(be);
  if (root === undefined) return [];
  const rest = [...mounted.entries()].filter(([ds]) => ds !== be).map(([, dir]) => dir).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return [root, ...rest];
}

/** Mount the BE for sharing unless it is mounted; returns the exported paths. */
async function ensureShared(ctx: BeContext, be: string, opts: ShareOptions): Promise<string[]> {
  const now = await mountedPaths(ctx, be);
  if (now.length > 0) return now;
  const base = opts.path ? checkSharePath(opts.path) : await defaultShareDir(ctx, be);
  checkSharePath(base);
  if (opts.noMount) return plannedPaths(ctx, be, base);
  const planned = await plannedPaths(ctx, be, base);
  await ctx.runner.transaction(async () => {
    await mountBe(ctx, be, base);
    await ctx.zfs.set(be, SHARED_PROP, base, { value: '', inherit: true });
  });
  if (ctx.runner.dryRun) return planned;
  return mountedPaths(ctx, be);
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw new BeError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

type Backend = 'exports-file' | 'mountd' | 'ganesha';

function backendOf(ctx: BeContext, target: ShareTarget): Backend {
  if (target.exportsFile) return 'exports-file';
  return ctx.flavour === 'freebsd' ? 'mountd' : 'ganesha';
}

/** be's own ganesha file: be-exports.conf next to ganesha.conf. */
export function ganeshaExportsFile(conf: string): string {
  return join(dirname(conf), 'be-exports.conf');
}

/** exports(5) refuses two V4: lines with different roots. */
function checkV4(text: string, be: string, spec: ShareSpec, file: string): void {
  if (!spec.v4Root) return;
  const others = setBlock(text, be, null, file);
  for (const line of parseExports(others)) {
    if (line.v4 && line.paths[0] !== spec.v4Root) throw new BeError(`${file} already has 'V4: ${line.paths[0]}': cannot add a V4 root ${spec.v4Root}`);
  }
}

/** Write (BODY) or remove (null) the BE's block and tell the NFS server. */
async function applyBlock(ctx: BeContext, be: string, target: ShareTarget, body: (current: string, file: string) => string | null): Promise<{ file: string; reloaded?: string }> {
  const backend = backendOf(ctx, target);
  if (backend !== 'ganesha') {
    const file = target.exportsFile ?? FREEBSD_EXPORTS;
    await updateFile(ctx.runner, file, (old) => setBlock(old, be, body(old, file), file), { backup: `${file}.be-bak` });
    if (backend === 'exports-file') return { file };
    await ctx.runner.change(mountdReloadArgv());
    return { file, reloaded: 'mountd' };
  }
  const conf = target.ganeshaConf ?? GANESHA_CONF;
  const file = ganeshaExportsFile(conf);
  await updateFile(ctx.runner, file, (old) => setBlock(old, be, body(old, file), file), { backup: `${file}.be-bak` });
  await updateFile(ctx.runner, conf, (old) => (includesFile(old, file) ? old : setBlock(old, 'include', `${includeDirective(file)}\n`, conf)), { backup: `${conf}.be-bak` });
  const reloaded = await reloadGanesha(ctx, target.ganeshaPid ?? GANESHA_PID);
  return { file, reloaded };
}

/** `service mountd reload` (FreeBSD): mountd re-reads /etc/exports. */
export function mountdReloadArgv(): string[] {
  return ['service', 'mountd', 'reload'];
}

/** SIGHUP makes ganesha re-read its exports; a ganesha that is not running picks them up at start. */
async function reloadGanesha(ctx: BeContext, pidFile: string): Promise<string | undefined> {
  const pid = parseInt(await readText(pidFile), 10);
  let running = false;
  if (Number.isInteger(pid) && pid > 0) {
    try {
      process.kill(pid, 0);
      running = true;
    } catch {
      running = false;
    }
  }
  if (!running) {
    ctx.runner.note(`ganesha is not running (no live pid in ${pidFile}): the exports apply when it starts`);
    if (!ctx.runner.dryRun) process.stderr.write(`be: ganesha is not running (no live pid in ${pidFile}); the exports apply when it starts\n`);
    return undefined;
  }
  await ctx.runner.change(['kill', '-HUP', String(pid)]);
  return 'ganesha';
}

export async function shareNfs(ctx: BeContext, name: string, opts: ShareOptions): Promise<ShareResult> {
  const spec = makeShareSpec(opts);
  if (opts.path) checkSharePath(opts.path);
  const be = await requireBe(ctx, name);
  const paths = await ensureShared(ctx, be, opts);
  for (const p of paths) checkSharePath(p, 'mount directory');
  const backend = backendOf(ctx, opts);
  const passwd = backend === 'ganesha' ? await readText('/etc/passwd') : '';
  const { file, reloaded } = await applyBlock(ctx, be, opts, (old, f) => {
    if (backend !== 'ganesha') {
      checkV4(old, be, spec, f);
      return exportsBlock(paths, spec);
    }
    const mine = listBlocks(old, f).find((b) => b.id === be)?.body ?? '';
    const others = setBlock(old, be, null, f);
    return ganeshaBlock(
      paths.map((p) => ({ path: p, pseudo: pseudoPath(p, spec.v4Root) })),
      spec,
      passwd,
      exportIds(mine),
      usedExportIds(others),
    );
  });
  return { be, paths, file, reloaded };
}

export async function unshareNfs(ctx: BeContext, name: string, target: ShareTarget & { keepMounted?: boolean }): Promise<{ be: string; unmounted: boolean }> {
  const be = await requireBe(ctx, name);
  await applyBlock(ctx, be, target, () => null);
  if (target.keepMounted) return { be, unmounted: false };
  const shared = (await ctx.zfs.get([be], [SHARED_PROP])).get(be)?.[SHARED_PROP];
  if (!shared || shared.source !== 'local') return { be, unmounted: false };
  const mounted = await mountedDatasets(ctx, be);
  if (mounted.get(be) === shared.value) await umountBe(ctx, be);
  await ctx.zfs.inherit(be, SHARED_PROP);
  return { be, unmounted: mounted.has(be) };
}

export interface FstabOptions {
  server: string;
  pathPrefix?: string;
  options?: string;
}

/**
 * Write the NFS lines for the BE's children into the BE's own /etc/fstab (inside a block named
 * `nfs`; the rest of the file is kept). The BE is mounted for the write if it is not.
 */
export async function writeGuestFstab(ctx: BeContext, name: string, opts: FstabOptions): Promise<{ be: string; file: string; lines: string }> {
  const server = checkServer(opts.server);
  const options = checkMountOptions(opts.options ?? 'rw,noatime,async');
  const be = await requireBe(ctx, name);
  let root = (await mountedDatasets(ctx, be)).get(be);
  const prefix = opts.pathPrefix ? checkSharePath(opts.pathPrefix, 'path prefix') : root ?? (await defaultShareDir(ctx, be));
  const relatives = (await plannedPaths(ctx, be, '/')).slice(1);
  const lines = nfsFstabBlock(server, prefix, relatives, options);
  const weMount = root === undefined;
  if (weMount) root = await mountBe(ctx, be);
  const file = join(root!, 'etc', 'fstab');
  try {
    await ctx.runner.act(`mkdir -p ${shQuote(join(root!, 'etc'))}`, () => mkdir(join(root!, 'etc'), { recursive: true }));
    await updateFile(ctx.runner, file, (old) => setBlock(old, 'nfs', relatives.length > 0 ? lines : null, file), { mode: 0o644 });
  } finally {
    if (weMount) await umountBe(ctx, be);
  }
  return { be, file, lines };
}
