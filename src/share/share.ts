/**
 * `be sharenfs`, `be unsharenfs`, `be fstab`: export a BE and its children over NFS and write the
 * guest's fstab. Where a BE is shared from: where it is mounted now; else --path; else
 * `/<dataset without pool>` below the pool's altroot (bd/be/head → /be/head, as in the talk;
 * zfs-fuse can mount only below the altroot, so a pool with one shares from there).
 */
import { readFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { BeContext } from '../be/context.js';
import type { Runner } from '../sys/run.js';
import { requireBe, requirePool } from '../be/context.js';
import { mountBe, mountOrder, mountedDatasets, umountBe } from '../be/access.js';
import { withoutAltroot } from '../zfs/mount.js';
import { poolOf } from '../zfs/names.js';
import { processAlive } from '../sys/lock.js';
import { BeError } from '../sys/errors.js';
import { shQuote } from '../sys/shell.js';
import { setBlock, listBlocks } from './blocks.js';
import { editExports, exportsBlock } from './exports.js';
import { ganeshaBlock, exportIds, usedExportIds, includeDirective, includesFile, pseudoPath } from './ganesha.js';
import { nfsFstabBlock, checkServer, checkMountOptions } from './fstab.js';
import { makeShareSpec, checkSharePath } from './spec.js';

/** User property on the BE root: the directory `be sharenfs` mounted it at (so unsharenfs unmounts). */
export const SHARED_PROP = 'be:sharenfs';

export const FREEBSD_EXPORTS = '/etc/exports';
export const GANESHA_CONF = '/etc/ganesha/ganesha.conf';
export const GANESHA_PID = '/run/ganesha/ganesha.pid';
/** mountd's pid file: _PATH_MOUNTDPID (usr.sbin/mountd/pathnames.h), `pidfile=` in libexec/rc/rc.d/mountd. */
export const MOUNTD_PID = '/var/run/mountd.pid';

export interface ShareTarget {
  /** --exports FILE: exports(5) syntax into FILE, nothing reloaded. */
  exportsFile?: string;
  /** ganesha.conf to include be's file from (Linux). */
  ganeshaConf?: string;
  /** ganesha's pid file, to signal a reload (Linux). */
  ganeshaPid?: string;
  /** mountd's pid file, to see that it runs before reloading it (FreeBSD). */
  mountdPid?: string;
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
  await ctx.runner.transaction(async () => {
    await mountBe(ctx, be, base);
    await ctx.zfs.set(be, SHARED_PROP, base, { value: '', inherit: true });
  });
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

/** Write (BODY) or remove (null) the BE's block and tell the NFS server. */
async function applyBlock(ctx: BeContext, be: string, target: ShareTarget, body: (current: string, file: string) => string | null): Promise<{ file: string; reloaded?: string }> {
  const backend = backendOf(ctx, target);
  if (backend !== 'ganesha') {
    const file = target.exportsFile ?? FREEBSD_EXPORTS;
    let usesUserRoot: string | undefined;
    await ctx.runner.updateFile(file,
      (old) => {
        const edit = editExports(old, be, body(old, file), file);
        usesUserRoot = edit.usesUserRoot;
        return edit.text;
      },
      { backup: `${file}.be-bak` },
    );
    if (usesUserRoot) ctx.runner.warn(`${file} has its own 'V4: ${usesUserRoot}' line: be's clients use that NFSv4 root`);
    if (backend === 'exports-file') return { file };
    return { file, reloaded: await reloadMountd(ctx.runner, target.mountdPid ?? MOUNTD_PID) };
  }
  const conf = target.ganeshaConf ?? GANESHA_CONF;
  const file = ganeshaExportsFile(conf);
  await ctx.runner.updateFile(file, (old) => setBlock(old, be, body(old, file), file), { backup: `${file}.be-bak` });
  await ctx.runner.updateFile(conf, (old) => (includesFile(old, file) ? old : setBlock(old, 'include', `${includeDirective(file)}\n`, conf)), { backup: `${conf}.be-bak` });
  const reloaded = await reloadByPid(ctx.runner, 'ganesha', target.ganeshaPid ?? GANESHA_PID, (pid) => ['kill', '-HUP', String(pid)]);
  return { file, reloaded };
}

/**
 * Make mountd re-read its exports files: `service mountd onereload`. rc.subr's run_rc_command
 * (libexec/rc/rc.subr) refuses a plain `reload` when mountd_enable is unset ("Cannot 'reload'
 * mountd. Set mountd_enable to YES ... or use 'onereload'") and exits 0 having done nothing, and
 * that is how most NFS servers run it: nfsd's precmd starts it with `force_depend mountd`
 * (libexec/rc/rc.d/nfsd). `onereload` skips that check and sends SIGHUP (rc.subr's default
 * sig_reload) to the pid in /var/run/mountd.pid (libexec/rc/rc.d/mountd `pidfile=`); mountd's
 * huphandler only sets a flag, and its main loop then runs get_exportlist(1)
 * (usr.sbin/mountd/mountd.c). Callers check the pid file first (reloadByPid).
 */
export function mountdReloadArgv(): string[] {
  return ['service', 'mountd', 'onereload'];
}


/** The live pid in PIDFILE, or undefined (no file, no number, or no such process). */
async function livePid(pidFile: string): Promise<number | undefined> {
  const pid = parseInt(await readText(pidFile), 10);
  return processAlive(pid) ? pid : undefined;
}

/**
 * Reload a server that re-reads its exports on a signal, if it runs: a server that does not run
 * reads them when it starts, so that is said in one line and nothing fails. ARGV is the reload
 * (for ganesha: SIGHUP to the pid read here).
 */
async function reloadByPid(runner: Runner, name: string, pidFile: string, argv: string[] | ((pid: number) => string[])): Promise<string | undefined> {
  const pid = await livePid(pidFile);
  if (pid === undefined) {
    runner.warn(`${name} is not running (no live pid in ${pidFile}); the exports apply when it starts`);
    return undefined;
  }
  await runner.change(typeof argv === 'function' ? argv(pid) : argv);
  return name;
}

/** mountd re-reads the exports (mountdReloadArgv) if its pid file names a live process. */
export function reloadMountd(runner: Runner, pidFile = MOUNTD_PID): Promise<string | undefined> {
  return reloadByPid(runner, 'mountd', pidFile, mountdReloadArgv());
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
    if (backend !== 'ganesha') return exportsBlock(paths, spec);
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
    await ctx.runner.updateFile(file, (old) => setBlock(old, 'nfs', relatives.length > 0 ? lines : null, file), { mode: 0o644 });
  } finally {
    if (weMount) await umountBe(ctx, be);
  }
  return { be, file, lines };
}
