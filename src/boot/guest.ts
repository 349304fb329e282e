/**
 * Running a command once in a guest VM and powering it off (the bhyve and QEMU methods' runTest):
 * the guest's /etc/rc.local (templates/hunt-rc.local.hbs) runs the command at the end of boot,
 * leaves its output and exit status in a directory of the BE, and powers the guest off; the host
 * reads both from the BE once the VM has exited. FreeBSD's libexec/rc/rc.d/local sources the file
 * (`. /etc/rc.local` in local_start), late in boot (REQUIRE: DAEMON, BEFORE: LOGIN).
 */
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { BeContext } from '../be/context.js';
import { render } from '../render/index.js';
import { shQuote } from '../sys/shell.js';
import type { TestRun, TestRunEnd } from './method.js';

/** Where a guest's command leaves its output and status: in DIR inside the BE (beside the command). */
export function guestFiles(dir: string): { output: string; status: string } {
  return { output: `${dir}/output`, status: `${dir}/status` };
}

/**
 * The guest's /etc/rc.local: run ARGV once with ENV, output to DIR/output, exit status to
 * DIR/status (via a temporary name and mv), power off (bhyve then exits 1,
 * usr.sbin/bhyve/amd64/vmexit.c; QEMU with -no-reboot exits). rc.d/local sources the file, so
 * the template never exits.
 */
export function guestRcLocal(dir: string, argv: string[], env: Record<string, string>): string {
  return render('hunt-rc.local', { dir, env, argv });
}

/** Put the guest-side runner into the BE mounted at ROOT, with no status of an earlier boot left. */
export async function installGuestRunner(ctx: BeContext, root: string, dir: string, argv: string[], env: Record<string, string>): Promise<void> {
  const etc = join(root, 'etc');
  await ctx.runner.act(`mkdir -p ${shQuote(etc)}`, () => mkdir(etc, { recursive: true }));
  await ctx.runner.writeFile(join(etc, 'rc.local'), guestRcLocal(dir, argv, env), { mode: 0o755 });
  const { status, output } = guestFiles(dir);
  const left = [status, `${status}.tmp`, output].map((f) => join(root, f));
  await ctx.runner.act(`rm -f ${left.map(shQuote).join(' ')}`, async () => {
    for (const f of left) await rm(f, { force: true });
  });
}

/** What the guest left in the BE mounted at ROOT, as a run's end (classified like a chroot run's). */
export async function readGuestResult(root: string, dir: string, timedOut = false): Promise<TestRunEnd> {
  const files = guestFiles(dir);
  const output = await readFile(join(root, files.output), 'utf8').catch(() => '');
  if (timedOut) return { status: null, signal: null, timedOut: true, output };
  const text = await readFile(join(root, files.status), 'utf8').catch(() => undefined);
  const end = { status: null, signal: null, timedOut: false, output };
  if (text === undefined) return { ...end, failure: `the guest wrote no ${files.status} (it did not boot, or the test did not end)` };
  const t = text.trim();
  if (!/^\d{1,3}$/.test(t) || Number(t) > 255) return { ...end, failure: `${files.status} holds '${t.slice(0, 20)}', not an exit status` };
  return { ...end, status: Number(t) };
}

/**
 * A plan whose own steps mount the BE at ROOT: the guest's status is read when the script runs
 * (255 when there is none), and RUN's lines print the verdict from it.
 */
export async function plannedGuestEnd(ctx: BeContext, root: string, run: Pick<TestRun, 'dir' | 'scriptStatus'>): Promise<TestRunEnd> {
  const status = join(root, guestFiles(run.dir).status);
  await ctx.runner.act(`be_status=$(cat ${shQuote(status)} 2>/dev/null) || be_status=255`, async () => {});
  for (const line of run.scriptStatus('be_status')) await ctx.runner.act(line, async () => {});
  return { status: 0, signal: null, timedOut: false, output: '' };
}
