import { existsSync, readFileSync } from 'node:fs';
import type { Runner } from './run.js';

/** Which ZFS implementation and host OS `be` drives. Only src/zfs/mount.ts branches on this. */
export type ZfsFlavour = 'freebsd' | 'openzfs-linux' | 'zfs-fuse';

export function zfsFlavour(env: NodeJS.ProcessEnv = process.env): ZfsFlavour {
  const forced = env.BE_PLATFORM;
  if (forced === 'freebsd' || forced === 'openzfs-linux' || forced === 'zfs-fuse') return forced;
  if (process.platform === 'freebsd') return 'freebsd';
  return existsSync('/dev/zfs') ? 'openzfs-linux' : 'zfs-fuse';
}

export interface MountEntry {
  source: string;
  target: string;
  fstype: string;
}

/** Unescape the octal escapes of /proc/self/mounts (\040 for space and friends). */
function unescapeMount(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * The command that prints the mount table where there is no /proc/self/mounts: FreeBSD's
 * `mount -p` (sbin/mount/mount.c: `-p` prints every mount through putfsent(), one fstab(5) line
 * each). Linux: none, the file is read. The mount table is a fact of the host `be` runs on, so
 * the reader follows the host's system, not the flavour whose plan is built: a FreeBSD plan
 * made on Linux (`BE_PLATFORM=freebsd be -n …`) reads /proc/self/mounts, which works there.
 */
export function mountTableArgv(host: NodeJS.Platform = process.platform): string[] | undefined {
  return host === 'freebsd' ? ['mount', '-p'] : undefined;
}

/** The host's mount table: /proc/self/mounts on Linux, `mount -p` (fstab format) on FreeBSD. */
export async function mountTable(runner: Runner, flavour: ZfsFlavour, host: NodeJS.Platform = process.platform): Promise<MountEntry[]> {
  const argv = mountTableArgv(host);
  const note = `mount table read from /proc/self/mounts of this ${host} host (on FreeBSD: mount -p)`;
  // said once in a FreeBSD plan made elsewhere
  if (!argv && flavour === 'freebsd' && runner.dryRun && !runner.scriptText().includes(`# ${note}\n`)) runner.note(note);
  const text = argv ? (await runner.query(argv)).stdout : readFileSync('/proc/self/mounts', 'utf8');
  return parseMountTable(text);
}

/** The dataset mounted at / (the running BE), if / is ZFS; of several mounts at /, the last one is seen. */
export function rootDataset(table: MountEntry[]): string | undefined {
  return table.filter((e) => e.target === '/' && isZfsMount(e)).pop()?.source;
}

/** fstab-format lines (FreeBSD's `mount -p`, Linux's /proc/self/mounts) into entries. */
export function parseMountTable(text: string): MountEntry[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line) => {
      const [source, target, fstype] = line.split(/[ \t]+/);
      return { source: unescapeMount(source), target: unescapeMount(target), fstype: fstype ?? '' };
    });
}

export function isZfsMount(entry: MountEntry): boolean {
  return entry.fstype === 'zfs' || entry.fstype === 'fuse.zfs';
}
