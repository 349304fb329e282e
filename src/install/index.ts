import { existsSync, statSync } from 'node:fs';
import { mkdir, rename as renamePath, rm } from 'node:fs/promises';
import { dirname, join, resolve as resolvePath } from 'node:path';
import type { BeContext } from '../be/context.js';
import { mountedDatasets, mountBe, umountBe } from '../be/access.js';
import { BeError } from '../sys/errors.js';
import { shQuote } from '../sys/shell.js';
import {
  candidates,
  checkArchRelease,
  checkBranch,
  checksumFileOf,
  defaultSets,
  kernelLayoutOf,
  releaseDirName,
  splitSetLayout,
  archInfo,
  NEWEST_KNOWN,
  FIRST_KERNELS_DIR,
  type Branch,
  type Candidate,
  type Era,
} from './releases.js';
import { parseChecksums, parseManifest, splitPieces } from './manifest.js';
import { DistCache, NotFound, isRemote, obtain, readText, type Fetched, type SetFile } from './fetch.js';
import { assemblePieces, extractArchive } from './extract.js';
import { makeProgress, type Progress } from './progress.js';
import { guestFiles, parseRcPairs, checkHostname, defaultHostname } from './guest.js';
import { checkTemplateDir } from '../render/index.js';
import { runPool } from '../sys/pool.js';

export { knownReleases, compareVersions, expandReleases, eraOf, candidates, defaultSets, ARCHES } from './releases.js';
export type { Branch, Era } from './releases.js';

export interface InstallOptions {
  /** Mirror root (a pub/ tree) as a directory or http(s)/ftp URL; default: the official sites. */
  source?: string;
  /** Directory name of the OS under SOURCE (default FreeBSD). */
  os?: string;
  /** amd64, i386, arm64 (default: this machine's). */
  arch?: string;
  /** release (default), stable, current. */
  branch?: Branch | string;
  /** 11.1, 14.1, 5.4, 14.2-RC1 … */
  release: string;
  /** Sets to install (default base, kernel; base alone before 6.1, whose base holds the kernel). */
  sets?: string[];
  /** Download cache (default /var/cache/be). */
  cache?: string;
  /** Use only the cache; name what is missing. */
  offline?: boolean;
  /** No progress output. */
  quiet?: boolean;
  /** Guest hostname (default: the BE's last name component). */
  hostname?: string;
  /** Extra rc.conf entries: ['sshd_enable=YES', …] or { sshd_enable: 'YES' }. */
  rc?: string[] | Record<string, string>;
  /** A directory of *.hbs templates overriding templates/ (rc.conf, loader.conf, fstab). */
  templates?: string;
  /** Write /etc/rc.conf, /etc/fstab, /boot/loader.conf after extraction (default: when base is installed). */
  configure?: boolean;
  /** Where progress goes (default: bars on a terminal, lines otherwise, nothing with quiet). */
  progress?: Progress;
}

export interface InstallSummary {
  /** The release directory the sets came from. */
  from: string;
  name: string;
  era: Era;
  sets: string[];
  /** Bytes fetched over the network in this run. */
  downloaded: number;
  /** Guest files written (paths inside the BE). */
  configured: string[];
}

export const DEFAULT_CACHE = '/var/cache/be';

const SET_NAME = /^[a-z][a-z0-9_-]*$/;

export function hostArch(): string {
  return process.arch === 'ia32' ? 'i386' : process.arch === 'arm64' ? 'arm64' : 'amd64';
}

/** What a release directory holds, as read from its MANIFEST or CHECKSUM files. */
interface ReleaseIndex {
  dir: string;
  name: string;
  era: Era;
  /** Relative path of an index file (MANIFEST, base/CHECKSUM.SHA256) → its text. */
  files: Record<string, string>;
}

function indexFileFor(era: Era, set: string): string {
  if (era === 'txz') return 'MANIFEST';
  return `${splitSetLayout(set).dir}/${checksumFileOf(era).file}`;
}

function checkSource(source: string | undefined): string | undefined {
  if (source === undefined || source === '') return undefined;
  if (isRemote(source)) {
    try {
      new URL(source);
    } catch {
      throw new BeError(`bad source URL '${source}'`);
    }
    return source.replace(/\/+$/, '');
  }
  if (/^[a-z]+:\/\//i.test(source)) throw new BeError(`unsupported source '${source}' (use a directory, http://, https:// or ftp://)`);
  const dir = resolvePath(source);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new BeError(`source directory '${source}' does not exist`);
  return dir;
}

/**
 * Find the release: the cached index for a release branch (releases never change), else the
 * first candidate directory whose index file exists.
 */
async function locateRelease(
  ctx: BeContext,
  q: { source?: string; os: string; arch: string; branch: Branch; release: string },
  sets: string[],
  cache: DistCache,
  offline: boolean,
  progress: Progress,
): Promise<ReleaseIndex> {
  const list: Candidate[] = candidates(q);
  const { name, snapshot } = releaseDirName(q.branch, q.release);
  const era = list[0].era;
  const remote = q.source === undefined || isRemote(q.source);
  const key = `${q.source ?? 'official'}|${q.os}|${q.arch}|${name}`;
  const needed = [...new Set(sets.map((s) => indexFileFor(era, s)))];
  const what = `${name} (${q.arch})`;

  let index: ReleaseIndex | undefined;
  if (remote && (!snapshot || offline)) index = await cache.readRecord<ReleaseIndex>(key);
  if (!index) {
    if (offline && remote) throw new BeError(`--offline: release ${what} from ${q.source ?? 'the official mirrors'} is not in the cache ${cache.root}`);
    const tried: string[] = [];
    for (const c of list) {
      const probe = needed[0];
      const location = `${c.dir}/${probe}`;
      try {
        const text = await readText(location, ctx.runner);
        index = { dir: c.dir, name: c.name, era: c.era, files: { [probe]: text } };
        break;
      } catch (error) {
        if (!(error instanceof NotFound)) throw error;
        tried.push(c.dir);
      }
    }
    if (!index) throw new BeError(`release ${what} not found; looked in ${tried.join(', ')}`);
    progress.info(`release ${what}: ${index.dir}`);
  }
  let changed = false;
  for (const rel of needed) {
    if (index.files[rel] !== undefined) continue;
    if (offline && remote) throw new BeError(`--offline: ${rel} of release ${what} is not in the cache ${cache.root}`);
    try {
      index.files[rel] = await readText(`${index.dir}/${rel}`, ctx.runner);
      changed = true;
    } catch (error) {
      if (error instanceof NotFound) throw new BeError(`set '${rel.split('/')[0]}' is not in release ${what} (no ${index.dir}/${rel})`);
      throw error;
    }
  }
  if (remote && (changed || !(await cache.readRecord(key)))) {
    // be's own record of the release's index: a printed plan keeps no record (its fetches re-read nothing)
    await ctx.runner.act(`# ${what}: index kept in the cache ${cache.root}`, () => cache.writeRecord(key, index));
  }
  return index;
}

interface PlannedSet {
  set: string;
  files: SetFile[];
  /** Directory inside the BE it extracts into. */
  target: string;
  /** A directory the set makes that then replaces another (/boot/GENERIC → /boot/kernel). */
  rename?: { from: string; to: string };
}

function planSets(index: ReleaseIndex, sets: string[], arch: string): PlannedSet[] {
  const what = `${index.name} (${arch})`;
  if (index.era === 'txz') {
    const manifest = parseManifest(index.files.MANIFEST, `${index.dir}/MANIFEST`);
    return sets.map((set) => {
      const entry = manifest.find((e) => e.file === `${set}.txz`);
      if (!entry) throw new BeError(`set '${set}' is not in release ${what} (MANIFEST has: ${manifest.map((e) => e.file.replace(/\.txz$/, '')).join(', ')})`);
      return { set, target: '/', files: [{ label: entry.file, set, location: `${index.dir}/${entry.file}`, expected: { algo: 'sha256' as const, digest: entry.sha256 } }] };
    });
  }
  const { algo } = checksumFileOf(index.era);
  return sets.map((set) => {
    const layout = splitSetLayout(set);
    const rel = indexFileFor(index.era, set);
    const sums = parseChecksums(index.files[rel], algo, `${index.dir}/${rel}`);
    const pieces = splitPieces(sums, layout.prefix);
    if (pieces.length === 0) throw new BeError(`set '${set}' of release ${what}: ${rel} lists no ${layout.prefix}.?? pieces`);
    return {
      set,
      target: layout.target,
      rename: layout.rename,
      files: pieces.map((p) => ({ label: `${layout.dir}/${p}`, set, location: `${index.dir}/${layout.dir}/${p}`, expected: { algo, digest: sums.get(p)! } })),
    };
  });
}

/** base first (it makes the directories), then the rest in the order asked. */
function orderSets(sets: string[]): string[] {
  const unique = [...new Set(sets)];
  return unique.includes('base') ? ['base', ...unique.filter((s) => s !== 'base')] : unique;
}

/**
 * The sets for VERSION: the era's default when none were named; before 6.1, where the kernel is
 * part of base (the change that took the kernel out of the base tarball and added kernels/ was
 * made for RELENG_6 and shipped from 6.1), a `kernel` asked for is base (NOTE says so).
 */
function setsFor(version: string, asked: string[] | undefined, note: (line: string) => void): string[] {
  if (!asked || asked.length === 0) return orderSets(defaultSets(version));
  if (kernelLayoutOf(version) !== 'in-base' || !asked.includes('kernel')) return orderSets(asked);
  note(`releases before ${FIRST_KERNELS_DIR} have no kernel set: the kernel comes with base`);
  return orderSets(asked.map((s) => (s === 'kernel' ? 'base' : s)));
}

/**
 * Make what a split set unpacked into the directory it belongs in, as the 6.1-8.x installers do
 * (freebsd-src release/scripts/kernels-install.sh, usr.sbin/sysinstall/install.c):
 * kernels-install.sh keeps an earlier /boot/GENERIC as GENERIC.sav before it unpacks (BEFORE);
 * sysinstall's installFixupKernel then runs `rm -rf /boot/kernel; mv /boot/GENERIC /boot/kernel`
 * (AFTER). An earlier /boot/kernel is not kept: installFixupKernel removes it.
 */
async function renameStep(ctx: BeContext, root: string, rename: { from: string; to: string }, when: 'before' | 'after', what: string): Promise<void> {
  const runner = ctx.runner;
  const from = join(root, rename.from);
  const to = join(root, rename.to);
  if (when === 'before') {
    const sav = `${from}.sav`;
    await runner.act(`if [ -e ${shQuote(from)} ]; then rm -rf ${shQuote(sav)} && mv ${shQuote(from)} ${shQuote(sav)}; fi`, async () => {
      if (!existsSync(from)) return;
      await rm(sav, { recursive: true, force: true });
      await renamePath(from, sav);
    });
    return;
  }
  const missing = `${what} made no ${rename.from}: a kernels/ set of 6.1-8.x is a tarball rooted at ${rename.from.split('/').pop()}/`;
  await runner.act(`[ -d ${shQuote(from)} ] || { echo ${shQuote(`be: ${missing}`)} >&2; exit 1; }`, async () => {
    if (!(existsSync(from) && statSync(from).isDirectory())) throw new BeError(missing);
  });
  await runner.act(`rm -rf ${shQuote(to)}`, () => rm(to, { recursive: true, force: true }));
  await runner.act(`mv ${shQuote(from)} ${shQuote(to)}`, () => renamePath(from, to));
}

/**
 * A download as /bin/sh: curl into the cache's .part file, checked with the platform's digest
 * program (FreeBSD's sha256(1)/md5(1) -q, coreutils' sha256sum/md5sum elsewhere), then renamed.
 */
function fetchShell(flavour: string, url: string, path: string, expected: { algo: string; digest: string }): string {
  const part = `${path}.part`;
  const program = expected.algo === 'md5' ? 'md5' : 'sha256';
  const digest = flavour === 'freebsd' ? `${program} -q ${shQuote(part)}` : `${program}sum < ${shQuote(part)} | cut -d' ' -f1`;
  return [
    `mkdir -p ${shQuote(dirname(path))}`,
    `curl -fsSL -o ${shQuote(part)} ${shQuote(url)}`,
    `[ "$(${digest})" = ${expected.digest} ] || { echo ${shQuote(`be: checksum mismatch for ${url}`)} >&2; rm -f ${shQuote(part)}; exit 1; }`,
    `mv ${shQuote(part)} ${shQuote(path)}`,
  ].join(' && ');
}

/**
 * Install a FreeBSD release into the boot environment BE (a full dataset name): locate the
 * release, fetch and verify every set (nothing is extracted unless all match), mount the BE
 * (unless it is mounted already), extract, write the guest configuration, unmount. Where the
 * sets are and where they go follows releases.ts (freebsd-src
 * usr.sbin/bsdinstall/scripts/mirrorselect, release/Makefile, release/scripts/kernels-install.sh,
 * usr.sbin/sysinstall/install.c and dist.c).
 */
export async function installRelease(ctx: BeContext, be: string, opts: InstallOptions): Promise<InstallSummary> {
  // Everything the user gave is checked before anything happens.
  const source = checkSource(opts.source);
  const os = opts.os ?? 'FreeBSD';
  const arch = opts.arch ?? hostArch();
  archInfo(arch);
  const branch = checkBranch(opts.branch ?? 'release');
  if (!opts.release) throw new BeError('no release given (-r X.Y)');
  for (const s of opts.sets ?? []) if (!SET_NAME.test(s)) throw new BeError(`bad set name '${s}'`);
  const { version, name: dirName, snapshot } = releaseDirName(branch, opts.release);
  const known = checkArchRelease(arch, version);
  const hostname = opts.hostname ?? defaultHostname(be);
  checkHostname(hostname);
  const rc = parseRcPairs(opts.rc ?? []);
  if (opts.templates) checkTemplateDir(opts.templates);
  const cache = new DistCache(resolvePath(opts.cache ?? DEFAULT_CACHE));
  const offline = !!opts.offline;
  const progress = opts.progress ?? (await makeProgress({ quiet: opts.quiet }));
  const runner = ctx.runner;
  const note = (line: string) => {
    progress.info(line);
    runner.note(line);
  };
  // A release newer than the table (or one it lacks) is looked for as given, as
  // freebsd-update -r does: the mirror decides whether it exists.
  if (!known && !snapshot) note(`${dirName} is not in be's release table (newest known: ${NEWEST_KNOWN}); looking for it as given`);
  const sets = setsFor(version, opts.sets, note);

  try {
    if (!(await ctx.zfs.exists(be))) throw new BeError(`boot environment '${be}' does not exist`);
    const query = { source, os, arch, branch, release: opts.release };
    const index = await locateRelease(ctx, query, sets, cache, offline, progress);
    const planned = planSets(index, sets, arch);
    // The guest files are rendered before anything is fetched or mounted: a template that does
    // not render stops the install with the BE untouched.
    const configure = opts.configure ?? sets.includes('base');
    const guest = configure ? guestFiles({ dataset: be, hostname, rc, release: `${index.name} ${arch}`, templates: opts.templates }) : [];

    // Fetch and verify every piece of every set before extracting a byte (two at a time).
    const fetched = new Map<string, Fetched[]>();
    let downloaded = 0;
    const jobs = planned.flatMap((p) => p.files.map((f, i) => ({ set: p.set, i, f })));
    const results = await runPool(jobs, 2, async ({ f }): Promise<Fetched> => {
      const get = () =>
        obtain(f, {
          cache,
          runner,
          offline,
          fetchTask: (label, size) => progress.task(label, size),
          verifyTask: (label, size) => progress.task(label, size),
        });
      if (isRemote(f.location) && !cache.has(f.location, f.expected) && !offline) {
        // a download, as the plan's own steps: fetch into the cache, then check it
        const path = cache.pathFor(f.location, f.expected);
        let got: Fetched | undefined;
        await runner.act(fetchShell(ctx.flavour, f.location, path, f.expected), async () => void (got = await get()));
        return got ?? { ...f, path, downloaded: 0 };
      }
      return get();
    });
    jobs.forEach((j, k) => {
      downloaded += results[k].downloaded;
      fetched.set(j.set, [...(fetched.get(j.set) ?? []), results[k]]);
    });

    const already = (await mountedDatasets(ctx, be)).get(be);
    const root = already ?? (await mountBe(ctx, be));
    const configured: string[] = [];
    try {
      for (const p of planned) {
        const files = fetched.get(p.set)!;
        const target = p.target === '/' ? root : join(root, p.target);
        const task = progress.task(`extract ${p.set}`, files.reduce((sum, f) => sum + (existsSync(f.path) ? statSync(f.path).size : 0), 0));
        if (p.target !== '/') await runner.act(`mkdir -p ${shQuote(target)}`, () => mkdir(target, { recursive: true, mode: 0o755 }));
        const what = `set '${p.set}' (${files.length === 1 ? files[0].label : `${files[0].label} … ${files[files.length - 1].label}`})`;
        if (index.era === 'txz') {
          await extractArchive(runner, ctx.flavour, files[0].path, target, what);
        } else {
          const whole = await assemblePieces(runner, files.map((f) => f.path), p.set);
          try {
            if (p.rename) await renameStep(ctx, root, p.rename, 'before', what);
            await extractArchive(runner, ctx.flavour, whole.path, target, what);
            if (p.rename) await renameStep(ctx, root, p.rename, 'after', what);
          } finally {
            await whole.release();
          }
        }
        task.finish('done');
      }
      if (configure) {
        for (const file of guest) {
          const path = join(root, file.path);
          await runner.act(`mkdir -p ${shQuote(join(path, '..'))}`, () => mkdir(join(path, '..'), { recursive: true, mode: 0o755 }));
          await runner.writeFile(path, file.content, { mode: file.mode });
          configured.push(file.path);
        }
        progress.info(`configured ${configured.join(' ')}`);
      }
    } catch (error) {
      // Unmount what we mounted, but report the failure that got us here.
      if (already === undefined) {
        await umountBe(ctx, be).catch((e: Error) => progress.info(`be: unmount after failure: ${e.message}`));
      }
      throw error;
    }
    if (already === undefined) {
      await umountBe(ctx, be);
    }
    return { from: index.dir, name: index.name, era: index.era, sets, downloaded, configured };
  } finally {
    progress.stop();
  }
}
