/**
 * bhyve(8) with an NFS root (the talk's slide 48): the BE's NFS file handle from mountd through
 * the MOUNT protocol, bhyveload(8) with the loader variables sys/nfs/nfs_diskless.c reads
 * (boot.netif.*, boot.nfsroot.*) and vfs.root.mountfrom, then bhyve(8) with virtio-net on a tap
 * and an nmdm(4) console, then `bhyvectl --destroy` when the guest exits.
 *
 * Follows FreeBSD's sources: usr.sbin/bhyveload/bhyveload.c (options `CSc:d:e:h:l:m:`, one
 * operand; `-h` is the host directory the loader reads /boot from; it exits 0 only from
 * cb_exec, when a kernel is loaded and the VM's registers are set), usr.sbin/bhyve/bhyverun.c
 * (options; `exit(4)` on its own errors, abort() on an unhandled VM exit),
 * usr.sbin/bhyve/amd64/vmexit.c `vmexit_suspend` (exit 0 the guest reset, 1 powered off, 2
 * halted, 3 triple fault), usr.sbin/bhyve/pci_virtio_net.c and net_backends.c (`virtio-net,tapN,
 * mac=…`), share/examples/bhyve/vmrun.sh (load and run again while bhyve exits 0, stop when
 * bhyveload fails) and sys/nfs/nfs_diskless.c (`nfs_setup_diskless`: the variables, the handle
 * as X<hex>X whose length must equal boot.nfsroot.nfshandlelen for NFSv3).
 */
import type { BeContext } from '../be/context.js';
import { mountedDatasets } from '../be/access.js';
import { BeError } from '../sys/errors.js';
import { defaultShareDir, shareNfs, unshareNfs } from '../share/share.js';
import { getFileHandle, loaderHandle, type MountClientOptions } from '../share/mountproto.js';
import { shJoin, shQuote } from '../sys/shell.js';
import { checkIpv4 } from '../share/spec.js';
import { formatIpv4, prefixMask } from '../net/ipv4.js';
import { requireFreeBSD, checkVmName, checkMemory, checkTap, checkMac, nmdmDevice, DEFAULT_VM, type BootMethod, type TestRun, type TestRunEnd, type VmSettings } from './method.js';
import { installGuestRunner, plannedGuestEnd, readGuestResult } from './guest.js';
import { createHash, randomBytes } from 'node:crypto';

export interface NfsBootOptions {
  vm: string;
  /** IP/prefix (192.168.2.10/24) or IP/netmask (192.168.2.10/255.255.255.0). */
  address: string;
  mac: string;
  gateway?: string;
  /** NFS server (default: the gateway). */
  server?: string;
  memory?: string;
  tap?: string;
  cpus?: number;
  /** nmdm unit for the console (default 0: /dev/nmdm0A, attach with cu -l /dev/nmdm0B). */
  nmdm?: number;
  /** Path exported on the server (default: where the BE is shared from). */
  path?: string;
  mount?: MountClientOptions;
}

export function parseAddress(text: string): { ip: string; netmask: string } {
  const slash = text.indexOf('/');
  if (slash < 0) throw new BeError(`invalid address '${text}': expected IP/MASK like 192.168.2.10/24`);
  const ip = formatIpv4(checkIpv4(text.slice(0, slash), 'address'));
  const mask = text.slice(slash + 1);
  if (/^\d{1,2}$/.test(mask) && Number(mask) <= 32) return { ip, netmask: formatIpv4(prefixMask(Number(mask))) };
  const m = checkIpv4(mask, 'netmask');
  if (!/^1*0*$/.test(m.toString(2).padStart(32, '0'))) throw new BeError(`invalid netmask '${mask}'`);
  return { ip, netmask: formatIpv4(m) };
}

/** The loader environment for an NFSv3 root (names as sys/nfs/nfs_diskless.c reads them). */
export function nfsRootEnv(o: { mac: string; ip: string; netmask: string; gateway?: string; server: string; path: string; handle: Buffer }): Array<[string, string]> {
  const env: Array<[string, string]> = [
    ['boot.netif.name', 'vtnet0'],
    ['boot.netif.hwaddr', o.mac],
    ['boot.netif.ip', o.ip],
    ['boot.netif.netmask', o.netmask],
  ];
  if (o.gateway) env.push(['boot.netif.gateway', o.gateway]);
  env.push(
    ['boot.nfsroot.server', o.server],
    ['boot.nfsroot.nfshandle', loaderHandle(o.handle)],
    ['boot.nfsroot.nfshandlelen', String(o.handle.length)],
    ['boot.nfsroot.path', o.path],
    ['vfs.root.mountfrom', `nfs:${o.server}:${o.path}`],
    ['vfs.root.mountfrom.options', 'rw'],
  );
  return env;
}

/** bhyveload(8): bhyveload [-c cons-dev] [-e name=value]... [-h host-path] [-m memsize] vmname */
export function bhyveloadArgv(o: { vm: string; hostPath: string; env: Array<[string, string]>; memory: string; console?: string }): string[] {
  const argv = ['bhyveload'];
  if (o.console) argv.push('-c', o.console);
  argv.push('-h', o.hostPath);
  for (const [k, v] of o.env) argv.push('-e', `${k}=${v}`);
  argv.push('-m', o.memory, o.vm);
  return argv;
}

/**
 * bhyve(8): -c cpus -m mem -A (ACPI) -H (yield on HLT) -P (exit on PAUSE), slot 0 hostbridge,
 * slot 1 lpc, slot 2 virtio-net on the tap, com1 on the nmdm console; a bootrom when given.
 */
export function bhyveArgv(o: { vm: string; memory: string; cpus?: number; tap: string; mac?: string; console: string; bootrom?: string }): string[] {
  const net = `2:0,virtio-net,${o.tap}${o.mac ? `,mac=${o.mac}` : ''}`;
  const argv = ['bhyve', '-c', String(o.cpus ?? 1), '-m', o.memory, '-A', '-H', '-P', '-s', '0:0,hostbridge', '-s', '1:0,lpc', '-s', net, '-l', `com1,${o.console}`];
  if (o.bootrom) argv.push('-l', `bootrom,${o.bootrom}`);
  argv.push(o.vm);
  return argv;
}

/** bhyvectl(8): free the VM's resources after bhyve exits. */
export function bhyvectlDestroyArgv(vm: string): string[] {
  return ['bhyvectl', '--destroy', `--vm=${vm}`];
}

/** How one bhyve run ended, by its exit status (usr.sbin/bhyve/amd64/vmexit.c, bhyverun.c). */
export type BhyveEnd = { kind: 'reboot' } | { kind: 'off'; how: 'powered off' | 'halted' } | { kind: 'failed'; why: string };

/**
 * bhyve's exit status read as its source writes it: `vmexit_suspend` exits 0 on VM_SUSPEND_RESET
 * (the guest rebooted: load and start it again), 1 on POWEROFF, 2 on HALT, 3 on TRIPLEFAULT and
 * 100 on an unknown reason; bhyverun.c exits 4 on its own errors (vm_create, vm_open, a bad
 * exit code, …) and 64/71 (EX_USAGE, EX_OSERR) on bad options or a failed sandbox; VMEXIT_ABORT
 * is abort(), a signal (the runner reports a signal as 128 or more).
 */
export function bhyveEnd(status: number): BhyveEnd {
  switch (status) {
    case 0:
      return { kind: 'reboot' };
    case 1:
      return { kind: 'off', how: 'powered off' };
    case 2:
      return { kind: 'off', how: 'halted' };
    case 3:
      return { kind: 'failed', why: 'the guest triple-faulted' };
    case 4:
      return { kind: 'failed', why: 'bhyve failed (see its message above)' };
    case 64:
      return { kind: 'failed', why: 'bhyve refused its options' };
    case 71:
      return { kind: 'failed', why: 'bhyve could not set up its sandbox or memory' };
    case 100:
      return { kind: 'failed', why: 'the guest suspended for a reason bhyve does not know' };
    default:
      return { kind: 'failed', why: status >= 128 ? 'bhyve was killed (it aborts on a VM exit it cannot handle)' : `bhyve exited ${status}` };
  }
}

/** The exit statuses bhyveEnd names one by one (any other is read by its default). */
const BHYVE_STATUSES = [0, 1, 2, 3, 4, 64, 71, 100];

/**
 * runVm's loop as /bin/sh, reading the statuses as bhyveEnd does: bhyveload and bhyve again while
 * bhyve exits 0, done on 1 and 2, `be: VM '…': why` and exit 1 otherwise (a signal gives 128 or
 * more there too); bhyveload's failure ends it as well. The VM is destroyed after every run.
 * LOAD is the bhyveload line (shell), if any.
 */
export function vmLoopShell(vm: string, load: string | undefined, bhyve: string[]): string {
  const destroy = `${shJoin(bhyvectlDestroyArgv(vm))} || true`;
  // be's one-line error, with the status the script has in $be_status where TEXT says $?
  const fail = (text: string) => `echo ${text.split('$?').map((part) => (part ? shQuote(part) : '')).join('"$be_status"')} >&2; exit 1`;
  const lines = ['while :; do'];
  if (load) {
    lines.push('  be_status=0', `  ${load} || be_status=$?`);
    lines.push(`  if [ "$be_status" -ne 0 ]; then ${destroy}; ${fail(`be: bhyveload exited $?: the loader did not start a kernel in VM '${vm}'`)}; fi`);
  }
  lines.push('  be_status=0', `  ${shJoin(bhyve)} || be_status=$?`, `  ${destroy}`, '  case $be_status in');
  const arms = new Map<string, number[]>();
  for (const status of BHYVE_STATUSES) {
    const end = bhyveEnd(status);
    const arm = end.kind === 'reboot' ? '' : end.kind === 'off' ? 'break' : fail(`be: VM '${vm}': ${end.why}`);
    arms.set(arm, [...(arms.get(arm) ?? []), status]);
  }
  for (const [arm, statuses] of arms) lines.push(`    ${statuses.join('|')})${arm ? ` ${arm}` : ''} ;;`);
  const killed = bhyveEnd(128);
  const other = bhyveEnd(-1);
  if (killed.kind !== 'failed' || other.kind !== 'failed') throw new BeError('internal: bhyve statuses');
  lines.push(`    *) [ "$be_status" -lt 128 ] || { ${fail(`be: VM '${vm}': ${killed.why}`)}; }; ${fail(`be: VM '${vm}': ${other.why.replace('-1', '$?')}`)} ;;`);
  lines.push('  esac', 'done');
  return lines.join('\n');
}

/**
 * Run bhyve until the guest powers off or halts (returns 0); a reboot (exit 0) loads it again, as
 * vmrun.sh does. A triple fault, bhyve's own failure or a signal is a one-line error, as is a
 * bhyveload that did not load a kernel. The VM is destroyed after every run. A plan prints the
 * loop as /bin/sh (vmLoopShell), with LOADSHELL as its bhyveload line.
 */
export async function runVm(ctx: BeContext, vm: string, load: string[] | undefined, bhyve: string[], loadShell = load && shJoin(load)): Promise<number> {
  ctx.runner.note('bhyve exits 0 when the guest reboots (be loads and starts it again), 1 when it powers off, 2 when it halts; 3 (triple fault), 4 (error) end with an error');
  await ctx.runner.act(vmLoopShell(vm, loadShell, bhyve), async () => {
    for (;;) {
      let end: BhyveEnd;
      try {
        if (load) {
          const l = await ctx.runner.change(load, { inherit: true, allowFailure: true });
          if (l.status !== 0) throw new BeError(`bhyveload exited ${l.status}: the loader did not start a kernel in VM '${vm}'`, { command: load });
        }
        end = bhyveEnd((await ctx.runner.change(bhyve, { inherit: true, allowFailure: true })).status);
      } finally {
        await ctx.runner.change(bhyvectlDestroyArgv(vm), { allowFailure: true });
      }
      if (end.kind === 'off') return;
      if (end.kind === 'failed') throw new BeError(`VM '${vm}': ${end.why}`, { command: bhyve });
    }
  });
  return 0;
}

/**
 * The bhyveload line of a plan whose file handle is asked from mountd when the plan runs
 * (`be nfshandle` prints `X<hex>X LENGTH`): the dry run could not reach the server now.
 */
export function loadLineWithHandleAtRunTime(load: string[], server: string, path: string): string[] {
  const line = shJoin(load)
    .replace(`boot.nfsroot.nfshandle=${loaderHandle(HANDLE_LATER)}`, '"boot.nfsroot.nfshandle=${nfs% *}"')
    .replace(`boot.nfsroot.nfshandlelen=${HANDLE_LATER.length}`, '"boot.nfsroot.nfshandlelen=${nfs#* }"');
  return [`nfs=$(${shJoin(['be', 'nfshandle', server, path])})`, line];
}

/** Stands for the handle in a plan made without one (replaced by the shell's $nfs). */
export const HANDLE_LATER = Buffer.alloc(1);

export async function bootNfs(ctx: BeContext, be: string, opts: NfsBootOptions): Promise<number> {
  requireFreeBSD(ctx, 'bhyve(8)');
  const vm = checkVmName(opts.vm);
  const { ip, netmask } = parseAddress(opts.address);
  const mac = checkMac(opts.mac);
  const gateway = opts.gateway === undefined ? undefined : formatIpv4(checkIpv4(opts.gateway, 'gateway'));
  const serverText = opts.server ?? gateway;
  if (!serverText) throw new BeError('bootnfs: give --server (the NFS server) or --gateway');
  const server = formatIpv4(checkIpv4(serverText, 'server'));
  const memory = checkMemory(opts.memory ?? '1G');
  const tap = checkTap(opts.tap ?? 'tap0');
  const console = nmdmDevice(opts.nmdm ?? 0);
  const path = opts.path ?? (await mountedDatasets(ctx, be)).get(be) ?? (await defaultShareDir(ctx, be));
  const bhyve = bhyveArgv({ vm, memory, cpus: opts.cpus, tap, mac, console });
  let handle: Buffer;
  try {
    handle = (await getFileHandle(server, path, opts.mount)).handle;
  } catch (error) {
    if (!(error instanceof BeError)) throw error;
    // A live run ends here with the error; a plan made where the server does not answer yet
    // still shows every step, asking mountd for the handle when it runs.
    ctx.runner.note(`no NFS file handle of ${server}:${path} now (${error.message}): the plan asks mountd for it when it runs`);
    const load = bhyveloadArgv({ vm, hostPath: path, env: nfsRootEnv({ mac, ip, netmask, gateway, server, path, handle: HANDLE_LATER }), memory, console });
    const [ask, line] = loadLineWithHandleAtRunTime(load, server, path);
    await ctx.runner.act(ask, async () => {
      throw error;
    });
    return runVm(ctx, vm, load, bhyve, line);
  }
  const env = nfsRootEnv({ mac, ip, netmask, gateway, server, path, handle });
  ctx.runner.note(`NFS file handle of ${server}:${path} from its mountd: ${loaderHandle(handle)} (${handle.length} bytes)`);
  const load = bhyveloadArgv({ vm, hostPath: path, env, memory, console });
  return runVm(ctx, vm, load, bhyve);
}

/** Stop a bhyve guest by destroying its VM (every bhyve boot method stops the same way). */
export async function stopVm(ctx: BeContext, _be: string, opts?: { vm?: string }): Promise<void> {
  requireFreeBSD(ctx, 'bhyvectl(8)');
  if (!opts?.vm) throw new BeError('which VM? (--vm)');
  await ctx.runner.change(bhyvectlDestroyArgv(checkVmName(opts.vm)));
}

/**
 * A run whose guest left no status says how bhyve ended (usr.sbin/bhyve/amd64/vmexit.c: 0 the
 * guest rebooted, e.g. after a panic, 3 a triple fault; 1 is the poweroff rc.local ends with).
 */
export function withBhyveEnd(end: TestRunEnd, bhyveStatus: number | undefined): TestRunEnd {
  if (!end.failure || bhyveStatus === undefined || bhyveStatus === 1) return end;
  const e = bhyveEnd(bhyveStatus);
  const why = e.kind === 'reboot' ? 'the guest rebooted instead of powering off' : e.kind === 'off' ? `the guest ${e.how}` : e.why;
  return { ...end, failure: `${end.failure}; bhyve exited ${bhyveStatus}: ${why}` };
}

/** A test guest's network: its address, the NFS server (default: .1 of its network), the tap, memory. */
export async function vmNetwork(vm: VmSettings): Promise<{ ip: string; netmask: string; server: string; tap: string; memory: string }> {
  const { ip, netmask } = parseAddress(vm.address);
  const server = vm.server ? formatIpv4(checkIpv4(vm.server, 'server')) : formatIpv4((((checkIpv4(ip) & checkIpv4(netmask)) >>> 0) + 1) >>> 0);
  return { ip, netmask, server, tap: checkTap(vm.tap), memory: checkMemory(vm.memory) };
}

/** A bhyve VM name for a test run's BE (at most 31 characters). */
export function vmNameFor(be: string): string {
  return `hunt-${createHash('sha256').update(be).digest('hex').slice(0, 12)}`;
}

/** The plan of a bhyve test run (guest console on stdio, into the run's output), from the argv builders above. */
export async function bhyveRunPlan(o: { vm: string; hostPath: string; env: Array<[string, string]>; memory?: string; tap?: string; mac?: string }): Promise<string[][]> {
  const memory = o.memory ?? '512M';
  return [
    bhyveloadArgv({ vm: o.vm, hostPath: o.hostPath, env: [['autoboot_delay', '0'], ...o.env], memory, console: 'stdio' }),
    bhyveArgv({ vm: o.vm, memory, tap: o.tap ?? 'tap0', mac: o.mac, console: 'stdio' }),
    bhyvectlDestroyArgv(o.vm),
  ];
}

/**
 * A test run in bhyve: the BE shared over NFS to the guest's address only (be sharenfs's exports
 * block, mountd reloaded), the test and the guest-side runner (guest.ts) put in, the BE's file
 * handle asked from mountd, then the bootnfs plan: bhyveload with the NFS root variables, bhyve
 * until the guest powers off (or the time limit: the VM is destroyed), bhyvectl --destroy. The
 * status and output are then read from the still-mounted BE, and the share undone.
 */
async function runTestInBhyve(ctx: BeContext, be: string, argv: string[], run: TestRun): Promise<TestRunEnd> {
  if (ctx.flavour !== 'freebsd') throw new BeError("method 'bhyve' needs FreeBSD's bhyve(8) (use -n to see the plan); use --method chroot here");
  const net = await vmNetwork(run.vm ?? DEFAULT_VM);
  const name = vmNameFor(be);
  const mac = `02:${randomBytes(5).toString('hex').match(/../g)!.join(':')}`;
  const { paths } = await shareNfs(ctx, be, { host: [net.ip], maproot: 'root' });
  const dir = paths[0];
  try {
    await run.place(dir);
    await installGuestRunner(ctx, dir, run.dir, argv, run.env);
    // a plan made where mountd does not answer yet asks it for the handle when it runs
    const planned = !!ctx.zfs.planned.mounts.get(be);
    const handle = await getFileHandle(net.server, dir).then(
      (fh) => fh.handle,
      (error) => {
        if (!planned || !(error instanceof BeError)) throw error;
        ctx.runner.note(`no NFS file handle of ${net.server}:${dir} now (${error.message}): the plan asks mountd for it when it runs`);
        return HANDLE_LATER;
      },
    );
    const env = nfsRootEnv({ mac, ip: net.ip, netmask: net.netmask, server: net.server, path: dir, handle });
    const [load, bhyve, destroy] = await bhyveRunPlan({ vm: name, hostPath: dir, env, memory: net.memory, tap: net.tap, mac });
    if (planned) {
      const [ask, loadLine] = handle === HANDLE_LATER ? loadLineWithHandleAtRunTime(load, net.server, dir) : [':', shJoin(load)];
      await ctx.runner.act(ask, async () => {});
      await ctx.runner.act(`${loadLine} && { ${shJoin(['timeout', String(Math.max(1, Math.ceil(run.timeoutMs / 1000))), ...bhyve])} || true; }; ${shJoin(destroy)} || true`, async () => {});
      return plannedGuestEnd(ctx, dir, run);
    }
    const hostEnv = { PATH: process.env.PATH ?? '/sbin:/bin:/usr/sbin:/usr/bin' };
    const t0 = Date.now();
    let timedOut = false;
    let bhyveStatus: number | undefined;
    try {
      const l = await ctx.runner.stream(load, { env: hostEnv, timeoutMs: run.timeoutMs, onOutput: run.onOutput });
      if (l.timedOut) timedOut = true;
      else if (l.status !== 0) throw new BeError(`bhyveload exited ${l.status ?? l.signal}`, { command: load });
      else {
        const r = await ctx.runner.stream(bhyve, { env: hostEnv, timeoutMs: Math.max(1, run.timeoutMs - (Date.now() - t0)), onOutput: run.onOutput });
        timedOut = r.timedOut;
        bhyveStatus = r.status ?? 128;
      }
    } finally {
      await ctx.runner.change(destroy, { allowFailure: true });
    }
    return withBhyveEnd(await readGuestResult(dir, run.dir, timedOut), bhyveStatus);
  } finally {
    await unshareNfs(ctx, be, {});
  }
}

/** bhyve with an NFS root: `be bootnfs --vmm bhyve`, and the hunt's --method bhyve. */
export const bhyveNfsMethod: BootMethod<NfsBootOptions> = {
  name: 'bhyve',
  runsHere: (ctx) => ctx.flavour === 'freebsd',
  boot: bootNfs,
  stop: stopVm,
  runTest: runTestInBhyve,
};
