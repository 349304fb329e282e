// `be -n hunt run|bisect`: the hunt itself driven against the script host, its changes recorded
// as a /bin/sh script that, run on this machine, does what the live hunt does and prints each
// run's verdict. Loaded by src/cli/hunt.ts when one of these commands is a dry run.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BeContext } from '../be/context.js';
import { BeError, UsageError } from '../sys/errors.js';
import { VERSION } from '../sys/version.js';
import { HuntStore, huntId } from '../hunt/state.js';
import { Preparer, runOnce, type RunRequest } from '../hunt/exec.js';
import { bisectRange, bisectScript, bisectStep } from '../hunt/bisect.js';
import { shVerdict } from '../hunt/verdict.js';
import { bisectHunt, checkMethod, type BisectFlags, type RunFlags } from '../hunt/spec.js';
import { huntRun, localHost } from './hunt-run.js';
import { print } from './common.js';

/**
 * `be -n hunt run`: the hunt itself, with every change recorded. Its bookkeeping goes to a state
 * of its own that goes away; a run that could not be planned (its release not found, say) fails
 * the plan, naming it.
 */
export async function planRun(ctx: BeContext, opts: RunFlags & { argv: string[] }): Promise<void> {
  const state = await mkdtemp(join(tmpdir(), 'be-hunt-plan.'));
  let unplanned: string | undefined;
  try {
    await huntRun(ctx, { ...opts, state, fresh: true, progress: () => {} });
    const run = (await HuntStore.read(state))?.runs.find((r) => r.verdict === 'error');
    if (run) unplanned = `${run.release} run ${run.run}: ${run.reason.replace(/^could not run: /, '')}`;
  } finally {
    await rm(state, { recursive: true, force: true });
  }
  if (unplanned) throw new BeError(`cannot plan ${unplanned}`);
  ctx.runner.flushScript();
}

/**
 * `be -n hunt bisect`: each release between --good and --bad gets its runs recorded (clone, test,
 * verdict, teardown, and its install the first time) by the one run pipeline against the script
 * host, each kept as a shell function; the search itself is printed in sh (bisectScript), so
 * the script tests only the releases the live bisect would, in the same order. The release the
 * search starts with is recorded first: what a plan does once (the BE root, say) is then in the
 * function every run of the script calls first.
 */
export async function planBisect(ctx: BeContext, opts: BisectFlags): Promise<void> {
  if (opts.broker) throw new UsageError('--broker: a printed bisect runs its steps on this host; drop --broker (or -n)');
  if (opts.metric) throw new UsageError('--metric: a printed bisect cannot weigh the medians of runs against the noise; bisect live, or print the runs with be -n hunt run --runs N');
  const { spec, test, vm } = await bisectHunt(ctx, opts);
  checkMethod(ctx, spec.method, 1);
  const host = await localHost(ctx, vm, () => {});
  const range = bisectRange(spec.releases, spec.good!, spec.bad!);
  const start = bisectStep({ ordered: spec.releases, good: spec.good!, bad: spec.bad!, verdicts: new Map() });
  const order = start.done ? [] : [start.next, ...range.slice(1, -1).filter((r) => r !== start.next)];
  const preparer = new Preparer(host, spec.install, async () => () => {});
  const preamble = ctx.runner.scriptText();
  let before = preamble;
  const runs = new Map<string, string[][]>();
  for (const release of order) {
    const recorded: string[][] = [];
    for (let run = 1; run <= spec.runs; run++) {
      const req: RunRequest = { hunt: huntId(spec), release, run, method: spec.method, test, timeoutMs: spec.timeoutMs, install: spec.install };
      let output = '';
      const { outcome } = await runOnce(host, preparer, req, (t) => void (output += t));
      // its clone's teardown belongs to its run: nothing of it may be left to a later function
      const left = await host.settle();
      const cannot = (why: string) => new BeError(`cannot plan ${release} run ${run}: ${why}`);
      if (outcome.verdict === 'error') throw cannot(outcome.reason.replace(/^could not run: /, ''));
      const retried = /^be: (.*); trying once more$/m.exec(output);
      if (retried) throw cannot(retried[1]);
      if (left.length) throw cannot(left[0]);
      const now = ctx.runner.scriptText();
      if (!now.startsWith(before)) throw new BeError('internal: the plan was rewritten while a run was recorded');
      const lines = now.slice(before.length).replace(/\n$/, '');
      before = now;
      if (!lines.includes(shVerdict('be_status', `${release} run ${run}`).join('\n'))) throw cannot(`its method leaves no verdict in $be_status`);
      recorded.push(lines.split('\n'));
    }
    runs.set(release, recorded);
  }
  const script = bisectScript({ range, runs, runsEach: spec.runs, flaky: spec.flaky ?? 'bad', test: test.name, method: spec.method, beVersion: VERSION });
  print([preamble.trimEnd(), ...script].join('\n'));
}
