/**
 * The QEMU boot method (Linux): the BE booted from the network in QEMU (qemu.ts), in a private
 * network of its own (vmnet.ts) or on an existing bridge where `be sharepxe` answers. `boot` is
 * `be bootnfs|bootpxe --vmm qemu`; `runTest` is the hunt's --method qemu, the test run once by the
 * guest's rc.local (guest.ts), its status read from the BE after the guest powers off.
 */
import type { BeContext } from '../be/context.js';
import { mountBe, mountedDatasets, umountBe } from '../be/access.js';
import { UsageError } from '../sys/errors.js';
import { DEFAULT_VM, type BootMethod, type TestRun, type TestRunEnd } from './method.js';
import { installGuestRunner, plannedGuestEnd, readGuestResult } from './guest.js';
import { runQemuBoot, type QemuBootOptions } from './qemu.js';
import { cleanupVmLeftovers } from './vmnet.js';

/** The boot file names a file in the BE's /boot: a relative path of plain characters. */
export function checkBootFile(text: string): string {
  if (!/^[A-Za-z0-9_.+-][A-Za-z0-9_.+/-]*$/.test(text)) throw new UsageError(`invalid --vm-boot-file '${text}'`);
  return text;
}

/** The BE mounted (if it is not), booted from the network in QEMU, unmounted again if it was not mounted; QEMU's exit status (1 for a signal). */
async function bootQemu(ctx: BeContext, be: string, opts: QemuBootOptions): Promise<number> {
  if (opts.bootFile !== undefined) checkBootFile(opts.bootFile);
  const wasMounted = (await mountedDatasets(ctx, be)).get(be);
  const dir = wasMounted ?? (await mountBe(ctx, be));
  let status: number | null = 0;
  try {
    status = (await runQemuBoot(ctx, dir, opts)).status;
  } finally {
    if (!wasMounted) await umountBe(ctx, be, true);
  }
  return status ?? 1;
}

/**
 * A test run in QEMU: the BE mounted, the test and the guest-side runner put in as for bhyve,
 * then the BE booted from the network in a private network of its own (its own namespace,
 * ganesha exporting the BE to the guest alone, `be pxe serve`) until the guest powers off; the
 * time limit ends QEMU (SIGTERM, then SIGKILL) and the run is aborted. The status and output are
 * read from the BE, then everything is removed and the BE unmounted.
 */
async function runTestInQemu(ctx: BeContext, be: string, argv: string[], run: TestRun): Promise<TestRunEnd> {
  const vm = run.vm ?? DEFAULT_VM;
  const dir = await mountBe(ctx, be);
  try {
    await run.place(dir);
    await installGuestRunner(ctx, dir, run.dir, argv, run.env);
    const t0 = performance.now();
    const r = await runQemuBoot(ctx, dir, { memory: vm.memory, cpus: vm.cpus, timeoutMs: run.timeoutMs, onOutput: run.onOutput, note: (line) => run.onOutput(`${line}\n`) });
    // the plan mounted the BE: the guest's status is read when the script runs
    if (ctx.zfs.planned.mounts.get(be)) return plannedGuestEnd(ctx, dir, run);
    const end = await readGuestResult(dir, run.dir, r.timedOut);
    run.onOutput(`be: QEMU ran ${Math.round(performance.now() - t0)} ms, exit ${r.status ?? r.signal}\n`);
    if (end.failure && r.status !== 0) return { ...end, failure: `${end.failure}; QEMU exited ${r.status ?? r.signal}` };
    return end;
  } finally {
    await umountBe(ctx, be, true);
  }
}

export const qemuMethod: BootMethod<QemuBootOptions> = {
  name: 'qemu',
  runsHere: (ctx) => ctx.flavour !== 'freebsd',
  boot: bootQemu,
  /** QEMU runs in the foreground of its `be`: what is left to stop are the VM networks of a `be` that was killed. */
  async stop(ctx) {
    await cleanupVmLeftovers(ctx);
  },
  runTest: runTestInQemu,
};
