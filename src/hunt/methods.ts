import type { BeContext } from '../be/context.js';
import { BeError } from '../sys/errors.js';
import type { TestEnd } from './exec.js';
import type { Method } from './state.js';
import type { MethodRunner } from './be-host.js';
import { TEST_DIR } from './exec.js';
import { mountBe, umountBe } from '../be/access.js';
import { ChrootCommandMissing, runInChroot } from '../boot/chroot.js';
import { jailCleanupMounts, jailCreateArgv, jailName, jailParams, jailRemoveArgv, jexecArgv, removeJail, umountArgv } from '../boot/jail.js';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { bhyveArgv, bhyvectlDestroyArgv, bhyveloadArgv, HANDLE_LATER, loadLineWithHandleAtRunTime, nfsRootEnv, bhyveEnd, parseAddress } from '../boot/bhyve.js';
import { checkMemory, checkTap } from '../boot/method.js';
import { checkIpv4 as parseIpv4 } from '../share/spec.js';
import { formatIpv4 } from '../net/ipv4.js';
import { shareNfs, unshareNfs } from '../share/share.js';
import { getFileHandle } from '../share/mountproto.js';
import { runQemuBoot } from '../boot/qemu.js';
import { render } from '../render/index.js';
import { shJoin, shQuote } from '../sys/shell.js';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';

/**
 * chroot(8) into the clone: mounted here so the test can be put in first, then run by the boot
 * layer's runInChroot (proc/dev, clean environment, time limit), unmounted afterwards.
 */
const chrootRunner: MethodRunner = async (ctx, be, argv, opts) => {
  const dir = await mountBe(ctx, be);
  try {
    await opts.place(dir);
    const r = await runInChroot(ctx, be, argv, { env: opts.env, timeoutMs: opts.timeoutMs, onOutput: opts.onOutput, handleSignals: true, scriptStatus: opts.scriptStatus }).catch((error) => {
      // the test cannot start in this release: aborted, not judged (FreeBSD's chroot would exit 1)
      if (error instanceof ChrootCommandMissing) return { failure: error.message };
      throw error;
    });
    if ('failure' in r) return { status: null, signal: null, timedOut: false, output: '', failure: r.failure };
    return { status: r.signal ? null : r.status, signal: r.signal ?? null, timedOut: r.timedOut, output: r.output };
  } finally {
    await umountBe(ctx, be, true);
  }
};


/** One hunt run in a jail, as argv: create, run the test, remove, then what is left to unmount. */
export interface JailRunPlan {
  /** jail(8) -c of a persistent jail on the mounted clone (no command: it stands until removed). */
  create: string[];
  /** jexec(8) of the test in it: its exit status is the test's own. */
  exec: string[];
  /** jail(8) -r by name, which runs none of the jail's stop steps. */
  remove: string[];
  /** umount(8) of what the creation mounted (devfs on <clone>/dev), after the removal, before the clone's unmount. */
  umount: string[][];
}

/**
 * The plan of one hunt run in a jail (src/boot/jail.ts builders): `jail -c` with persist and no
 * command, `jexec NAME TEST` (usr.sbin/jexec/jexec.c execs the test, so its status is the
 * test's: jail(8) would turn any failed command= into "failed" and exit 1, usr.sbin/jail/command.c
 * finish_command), `jail -r NAME`, then `umount <clone>/dev` (jail -r by name leaves devfs).
 */
export async function jailRunPlan(be: string, path: string, argv: string[]): Promise<JailRunPlan> {
  const params = jailParams(be, path, {});
  const name = jailName(be);
  return { create: jailCreateArgv(params), exec: jexecArgv(name, argv), remove: jailRemoveArgv(name), umount: jailCleanupMounts(path, params).map(umountArgv) };
}

/**
 * A jexec run's end as the test's (usr.sbin/jexec/jexec.c): jexec execvp()s the test in its own
 * place, so the status or signal is the test's and is classified as is (125 skip, above 127
 * aborted). Only jexec's own failures (the jail gone, jail_attach, chdir, execvp) exit 1 with
 * an err(3) line `jexec: ...` last: those abort the run rather than count as "bad".
 */
export function jexecEnd(r: { status: number | null; signal: string | null; timedOut: boolean; output: string }): TestEnd {
  const end: TestEnd = { status: r.status, signal: r.signal, timedOut: r.timedOut, output: r.output };
  if (r.status === 1 && !r.timedOut) {
    const m = /^jexec: (.+)$/.exec(r.output.trimEnd().split('\n').pop() ?? '');
    if (m) return { ...end, status: null, failure: `jexec could not start the test: ${m[1]}` };
  }
  return end;
}

/**
 * jail(8) on FreeBSD: the clone mounted, the test placed, a persistent jail created on it, the
 * test run by jexec with the time limit, then `jail -r` (which also ends whatever a timed-out
 * test left), the unmount of the jail's devfs and the clone's unmount.
 */
const jailRunner: MethodRunner = async (ctx, be, argv, opts) => {
  if (ctx.flavour !== 'freebsd') throw new BeError("method 'jail' needs FreeBSD's jail(8); use --method chroot here");
  const dir = await mountBe(ctx, be);
  const plan = await jailRunPlan(be, dir, argv);
  try {
    await opts.place(dir);
    await ctx.runner.change(plan.create);
    return jexecEnd(await ctx.runner.stream(plan.exec, opts));
  } finally {
    try {
      await removeJail(ctx, jailName(be), dir, jailParams(be, dir, {}));
    } finally {
      await umountBe(ctx, be, true);
    }
  }
};

/** Where a bhyve guest's test leaves its output and status, inside the clone (beside the test). */
export const GUEST_OUTPUT = `${TEST_DIR}/output`;
export const GUEST_STATUS = `${TEST_DIR}/status`;

/**
 * The guest's /etc/rc.local for a bhyve hunt run (templates/hunt-rc.local.hbs): run ARGV once with
 * ENV, output to GUEST_OUTPUT, exit status to GUEST_STATUS (via a temporary name and mv), power off
 * (bhyve then exits 1, usr.sbin/bhyve/amd64/vmexit.c). libexec/rc/rc.d/local sources the file
 * (`. /etc/rc.local`), so the template never exits.
 */
export function guestRcLocal(argv: string[], env: Record<string, string>): string {
  return render('hunt-rc.local', { dir: TEST_DIR, env, argv });
}

/** Put the guest-side runner into the clone mounted at ROOT, with no status of an earlier boot left. */
export async function installGuestRunner(ctx: BeContext, root: string, argv: string[], env: Record<string, string>): Promise<void> {
  const etc = join(root, 'etc');
  await ctx.runner.act(`mkdir -p ${shQuote(etc)}`, () => mkdir(etc, { recursive: true }));
  await ctx.runner.writeFile(join(etc, 'rc.local'), guestRcLocal(argv, env), { mode: 0o755 });
  const left = [GUEST_STATUS, `${GUEST_STATUS}.tmp`, GUEST_OUTPUT].map((f) => join(root, f));
  await ctx.runner.act(`rm -f ${left.map(shQuote).join(' ')}`, async () => {
    for (const f of left) await rm(f, { force: true });
  });
}

/** What the guest left in the clone mounted at ROOT, as a run's end (classified like a chroot run's). */
export async function readGuestResult(root: string, timedOut = false): Promise<TestEnd> {
  const output = await readFile(join(root, GUEST_OUTPUT), 'utf8').catch(() => '');
  if (timedOut) return { status: null, signal: null, timedOut: true, output };
  const text = await readFile(join(root, GUEST_STATUS), 'utf8').catch(() => undefined);
  const end = { status: null, signal: null, timedOut: false, output };
  if (text === undefined) return { ...end, failure: `the guest wrote no ${GUEST_STATUS} (it did not boot, or the test did not end)` };
  const t = text.trim();
  if (!/^\d{1,3}$/.test(t) || Number(t) > 255) return { ...end, failure: `${GUEST_STATUS} holds '${t.slice(0, 20)}', not an exit status` };
  return { ...end, status: Number(t) };
}

/**
 * A run whose guest left no status says how bhyve ended (usr.sbin/bhyve/amd64/vmexit.c: 0 the
 * guest rebooted, e.g. after a panic, 3 a triple fault; 1 is the poweroff rc.local ends with).
 */
export function withBhyveEnd(end: TestEnd, bhyveStatus: number | undefined): TestEnd {
  if (!end.failure || bhyveStatus === undefined || bhyveStatus === 1) return end;
  const e = bhyveEnd(bhyveStatus);
  const why = e.kind === 'reboot' ? 'the guest rebooted instead of powering off' : e.kind === 'off' ? `the guest ${e.how}` : e.why;
  return { ...end, failure: `${end.failure}; bhyve exited ${bhyveStatus}: ${why}` };
}

/** The guest's network for bhyve hunt runs: its address, the NFS server (default: .1 of its network), the tap, memory. */
export interface VmSettings {
  address: string;
  server?: string;
  tap: string;
  memory: string;
  /** QEMU: the guest's CPUs. */
  cpus?: number;
}

export const DEFAULT_VM: VmSettings = { address: '10.254.0.2/24', tap: 'tap0', memory: '512M' };

export async function vmNetwork(vm: VmSettings): Promise<{ ip: string; netmask: string; server: string; tap: string; memory: string }> {
  const { ip, netmask } = parseAddress(vm.address);
  const server = vm.server ? formatIpv4(parseIpv4(vm.server, 'server')) : formatIpv4((((parseIpv4(ip) & parseIpv4(netmask)) >>> 0) + 1) >>> 0);
  return { ip, netmask, server, tap: checkTap(vm.tap), memory: checkMemory(vm.memory) };
}

/** A bhyve VM name for a run clone (at most 31 characters). */
export function vmNameFor(clone: string): string {
  return `hunt-${createHash('sha256').update(clone).digest('hex').slice(0, 12)}`;
}

/** The plan of a bhyve hunt run (guest console on stdio, into the run's log), from the boot layer's argv builders. */
export async function bhyveRunPlan(o: { vm: string; hostPath: string; env: Array<[string, string]>; memory?: string; tap?: string; mac?: string }): Promise<string[][]> {
  const memory = o.memory ?? '512M';
  return [
    bhyveloadArgv({ vm: o.vm, hostPath: o.hostPath, env: [['autoboot_delay', '0'], ...o.env], memory, console: 'stdio' }),
    bhyveArgv({ vm: o.vm, memory, tap: o.tap ?? 'tap0', mac: o.mac, console: 'stdio' }),
    bhyvectlDestroyArgv(o.vm),
  ];
}

/**
 * bhyve(8) on FreeBSD: the clone shared over NFS to the guest's address only (be sharenfs's
 * exports block, mountd reloaded), the test and the guest-side runner put in, the clone's file
 * handle asked from mountd, then the bootnfs plan: bhyveload with the NFS root variables, bhyve
 * until the guest powers off (or --timeout: the VM is destroyed), bhyvectl --destroy. The status
 * and output are then read from the still-mounted clone, and the share undone.
 */
export function bhyveRunner(vm: VmSettings = DEFAULT_VM): MethodRunner {
  return async (ctx, be, argv, opts) => {
    if (ctx.flavour !== 'freebsd') throw new BeError("method 'bhyve' needs FreeBSD's bhyve(8) (use -n to see the plan); use --method chroot here");
    const net = await vmNetwork(vm);
    const name = vmNameFor(be);
    const mac = `02:${randomBytes(5).toString('hex').match(/../g)!.join(':')}`;
    const { paths } = await shareNfs(ctx, be, { host: [net.ip], maproot: 'root' });
    const dir = paths[0];
    try {
      await opts.place(dir);
      await installGuestRunner(ctx, dir, argv, opts.env);
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
      const [load, run, destroy] = await bhyveRunPlan({ vm: name, hostPath: dir, env, memory: net.memory, tap: net.tap, mac });
      if (planned) {
        const [ask, loadLine] = handle === HANDLE_LATER ? loadLineWithHandleAtRunTime(load, net.server, dir) : [':', shJoin(load)];
        await ctx.runner.act(ask, async () => {});
        await ctx.runner.act(`${loadLine} && { ${shJoin(['timeout', String(Math.max(1, Math.ceil(opts.timeoutMs / 1000))), ...run])} || true; }; ${shJoin(destroy)} || true`, async () => {});
        await ctx.runner.act(`be_status=$(cat ${shQuote(join(dir, GUEST_STATUS))} 2>/dev/null) || be_status=255`, async () => {});
        for (const line of opts.scriptStatus('be_status')) await ctx.runner.act(line, async () => {});
        return { status: 0, signal: null, timedOut: false, output: '' };
      }
      const hostEnv = { PATH: process.env.PATH ?? '/sbin:/bin:/usr/sbin:/usr/bin' };
      const t0 = Date.now();
      let timedOut = false;
      let bhyveStatus: number | undefined;
      try {
        const l = await ctx.runner.stream(load, { env: hostEnv, timeoutMs: opts.timeoutMs, onOutput: opts.onOutput });
        if (l.timedOut) timedOut = true;
        else if (l.status !== 0) throw new BeError(`bhyveload exited ${l.status ?? l.signal}`, { command: load });
        else {
          const r = await ctx.runner.stream(run, { env: hostEnv, timeoutMs: Math.max(1, opts.timeoutMs - (Date.now() - t0)), onOutput: opts.onOutput });
          timedOut = r.timedOut;
          bhyveStatus = r.status ?? 128;
        }
      } finally {
        await ctx.runner.change(destroy, { allowFailure: true });
      }
      return withBhyveEnd(await readGuestResult(dir, timedOut), bhyveStatus);
    } finally {
      await unshareNfs(ctx, be, {});
    }
  };
}

/**
 * QEMU on Linux (src/boot/qemu.ts): the clone mounted, the test and the guest-side runner put in
 * as for bhyve, then the clone booted from the network in a private network of its own (its own
 * namespace, ganesha exporting the clone to the guest alone, `be pxe serve`) until the guest
 * powers off; --timeout ends QEMU (SIGTERM, then SIGKILL) and the run is aborted. The status and
 * output are read from the clone, then everything is removed and the clone unmounted.
 */
export function qemuRunner(vm: VmSettings = DEFAULT_VM): MethodRunner {
  return async (ctx, be, argv, opts) => {
    const dir = await mountBe(ctx, be);
    try {
      await opts.place(dir);
      await installGuestRunner(ctx, dir, argv, opts.env);
      const t0 = performance.now();
      const run = await runQemuBoot(ctx, dir, { memory: vm.memory, cpus: vm.cpus, timeoutMs: opts.timeoutMs, onOutput: opts.onOutput, note: (line) => opts.onOutput(`${line}\n`) });
      if (ctx.zfs.planned.mounts.get(be)) {
        // the plan mounted the clone: the guest's status is read when the script runs
        const status = join(dir, GUEST_STATUS);
        await ctx.runner.act(`be_status=$(cat ${shQuote(status)} 2>/dev/null) || be_status=255`, async () => {});
        for (const line of opts.scriptStatus('be_status')) await ctx.runner.act(line, async () => {});
        return { status: 0, signal: null, timedOut: false, output: '' };
      }
      const end = await readGuestResult(dir, run.timedOut);
      opts.onOutput(`be: QEMU ran ${Math.round(performance.now() - t0)} ms, exit ${run.status ?? run.signal}\n`);
      if (end.failure && run.status !== 0) return { ...end, failure: `${end.failure}; QEMU exited ${run.status ?? run.signal}` };
      return end;
    } finally {
      await umountBe(ctx, be, true);
    }
  };
}

export function methodRunners(vm: VmSettings = DEFAULT_VM): Record<Method, MethodRunner | undefined> {
  return { chroot: chrootRunner, jail: jailRunner, bhyve: bhyveRunner(vm), qemu: qemuRunner(vm) };
}

export type { BeContext };
