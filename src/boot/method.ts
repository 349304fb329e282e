/**
 * One interface for every way `be` boots a BE (vm-bhyve's "backends as siblings"): each method
 * lives in its own module (chroot.ts, jail.ts, bhyve.ts, pxe.ts, qemuboot.ts) and exports a
 * BootMethod; index.ts is their one registry, used by the `be` verbs and by the hunt alike.
 * `boot` returns the exit status to hand back to the user (the command's, the guest's);
 * `stop` undoes what a boot left running (unmounts, a persistent jail, a VM); `runTest` runs a
 * command once in the BE (a hunt's test) and returns how it ended, without judging it.
 */
import type { BeContext } from '../be/context.js';
import { BeError } from '../sys/errors.js';
import { parseMac } from '../net/mac.js';

/** The network and size of a guest VM that runs a test (bhyve, QEMU). */
export interface VmSettings {
  /** The guest's address, IP/prefix or IP/netmask. */
  address: string;
  /** bhyve: the NFS server (default: .1 of the guest's network). */
  server?: string;
  /** bhyve: the tap bridged to the NFS server. */
  tap: string;
  memory: string;
  /** QEMU: the guest's CPUs. */
  cpus?: number;
}

export const DEFAULT_VM: VmSettings = { address: '10.254.0.2/24', tap: 'tap0', memory: '512M' };

/** One run of a command in a BE by a method (a hunt's test run in its clone). */
export interface TestRun {
  /** The command's environment (nothing of be's own is passed on). */
  env: Record<string, string>;
  /** After this long the command (or the guest) is ended and the run has timed out. */
  timeoutMs: number;
  /** The command's output (a guest's console) as it comes. */
  onOutput: (text: string) => void;
  /** Put the command into the BE's file tree, mounted at ROOT, before it starts. */
  place: (root: string) => Promise<void>;
  /** The directory inside the BE the command was placed in: a guest leaves its output and status there. */
  dir: string;
  /** In a printed plan: the shell lines that print the run's verdict from its exit status in VARIABLE. */
  scriptStatus: (variable: string) => string[];
  /** The guest, for the methods that boot a VM (default DEFAULT_VM). */
  vm?: VmSettings;
}

/** How a test run ended: its exit status or signal, or why it has none (`failure`: the run is aborted, not judged). */
export interface TestRunEnd {
  status: number | null;
  signal: string | null;
  timedOut: boolean;
  output: string;
  failure?: string;
}

export interface BootMethod<Options> {
  readonly name: string;
  /** Whether this method runs for real on the current platform (else only --dry-run plans it). */
  runsHere(ctx: BeContext): boolean;
  boot(ctx: BeContext, be: string, opts: Options): Promise<number>;
  stop(ctx: BeContext, be: string, opts?: Partial<Options>): Promise<void>;
  /** Run ARGV once in the BE (a full dataset name, not mounted), with RUN's environment and time limit. */
  runTest(ctx: BeContext, be: string, argv: string[], run: TestRun): Promise<TestRunEnd>;
}

/**
 * FreeBSD-only methods refuse to change anything on a host that cannot run FreeBSD's programs;
 * a plan (--dry-run) still shows every step, its script checking first that it runs on FreeBSD.
 */
export function requireFreeBSD(ctx: BeContext, what: string): void {
  ctx.runner.requireSystem('freebsd', what);
}

/**
 * A VM or jail name: letters, digits, '_', '-', '.', at most 31: the vmm name limit of
 * sys/amd64/include/vmm.h before 15.0 (VM_MAX_NAMELEN 32 with the NUL); later kernels allow more.
 */
export function checkVmName(name: string, what = 'VM name'): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}$/.test(name)) throw new BeError(`invalid ${what} '${name}': letters, digits, '_', '-', '.' (at most 31)`);
  return name;
}

export function checkMemory(text: string): string {
  if (!/^[1-9]\d*[KkMmGgTt]?$/.test(text)) throw new BeError(`invalid memory size '${text}': expected e.g. 512M or 1G`);
  return text;
}

export function checkTap(text: string): string {
  if (!/^tap\d+$/.test(text)) throw new BeError(`invalid tap interface '${text}': expected tapN`);
  return text;
}

/**
 * A guest NIC's MAC (any spelling src/net/mac.ts reads), in the colon form bhyve's mac= takes:
 * usr.sbin/bhyve/net_utils.c (net_parsemac) reads it with ether_aton(3), colon-separated hex
 * (lib/libc/net/ether_addr.c).
 */
export function checkMac(text: string): string {
  const mac = parseMac(text);
  if (!mac) throw new BeError(`invalid MAC address '${text}': expected 02:01:02:03:04:05`);
  return mac;
}

/** nmdm(4) console pair N: bhyve takes the A side, `cu -l /dev/nmdmNB` attaches to the guest. */
export function nmdmDevice(n: number, side: 'A' | 'B' = 'A'): string {
  if (!Number.isInteger(n) || n < 0 || n > 9999) throw new BeError(`invalid nmdm unit '${n}'`);
  return `/dev/nmdm${n}${side}`;
}
