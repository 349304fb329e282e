import { InvalidArgumentError, type Command } from 'commander';
import { context, isDryRun, print } from './common.js';

function splitList(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)];
}

function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`invalid ${name} '${value}': expected a positive whole number`);
    return n;
  };
}

/** Flags shared by `hunt run` and `hunt bisect`, including the install flags passed on to `be install`. */
function huntFlags(cmd: Command): Command {
  cmd
    .requiredOption('--test <script>', 'test to run in each release (exit 0 good, 125 skip, 1-127 bad)')
    .option('--method <method>', 'chroot, jail, bhyve or qemu (default: jail on FreeBSD, chroot elsewhere)')
    .option('--timeout <duration>', 'limit per test run (e.g. 90s, 10m, 1h)', '10m')
    .option('--state <dir>', 'state directory (default /var/db/be/hunts/<id>)')
    .option('--fresh', 'forget finished runs in the state directory and start over')
    .option('-p, --source <dir|url>', 'mirror root for the releases (passed to be install -p)')
    .option('-a, --arch <arch>', 'architecture of the releases (passed to be install -a)')
    .option('--sets <list>', 'dist sets to install (passed to be install --sets)', splitList)
    .option('--cache <dir>', 'download cache (passed to be install --cache)')
    .option('--offline', 'install from the cache only (passed to be install --offline)')
    .option('--broker <host:port>', 'fan the runs out to `be worker`s through beanstalkd')
    .option('--tube <name>', 'beanstalkd tube for the jobs', 'be-hunt')
    .option('--ttr <seconds>', 'beanstalkd time-to-run of a job (workers touch it while running)', positiveInt('--ttr'), 120)
    .option('--wait <duration>', 'with --broker: give up after this long without progress (default: wait for workers)')
    .option('-q, --quiet', 'no progress output (the report is still printed)');
  return vmFlags(cmd);
}

/** The bhyve guest's network (--method bhyve): host-specific, so also on `be worker`. */
function vmFlags(cmd: Command): Command {
  return cmd
    .option('--vm-address <ip/mask>', 'bhyve: the guest address', '10.254.0.2/24')
    .option('--vm-server <ip>', "bhyve: this host's NFS address on the tap's network (default: .1 of the guest's network)")
    .option('--vm-tap <tapN>', 'bhyve: tap interface for the guest', 'tap0')
    .option('--vm-memory <size>', 'bhyve, qemu: guest memory', '512M')
    .option('--vm-cpus <n>', 'qemu: guest CPUs', positiveInt('--vm-cpus'), 1);
}

/** With --broker, flags that belong to the hosts running the tests are each `be worker`'s, not the hunt's. */
async function refuseWorkerFlags(opts: { broker?: string }, cmd: Command): Promise<void> {
  if (!opts.broker) return;
  for (const [key, flag] of [['jobs', '--jobs'], ['vmAddress', '--vm-address'], ['vmServer', '--vm-server'], ['vmTap', '--vm-tap'], ['vmMemory', '--vm-memory'], ['vmCpus', '--vm-cpus']]) {
    if (cmd.getOptionValueSource(key) === 'cli') {
      const { UsageError } = await import('../sys/errors.js');
      throw new UsageError(`${flag}: not used with --broker (give it to each be worker)`);
    }
  }
}

/** be hunt run|bisect|report, be worker. */
export function registerHuntCommands(program: Command): void {
  const hunt = program.command('hunt').description('hunt regressions across releases: a test run in a fresh clone of each release');

  huntFlags(hunt.command('run'))
    .description('run a test in every release (each run in a fresh clone of the release BE) and report')
    .requiredOption('--releases <list|file>', "releases: 13.2,14.0, a range 9.0..14.1, a file (one a line, # comments) or '-' for stdin")
    .option('-j, --jobs <n>', 'runs at a time', positiveInt('--jobs'), 1)
    .option('--runs <n>', 'runs per release (each in a fresh clone)', positiveInt('--runs'), 1)
    .option('--min-change <percent>', 'smallest change of a metric median that is flagged (default 5%)')
    .action(async (opts, cmd: Command) => {
      await refuseWorkerFlags(opts, cmd);
      const ctx = await context(cmd);
      if (isDryRun(cmd)) {
        const { planRun } = await import('./hunt-plan.js');
        await planRun(ctx, { ...opts, argv: process.argv.slice(2) });
        return;
      }
      const { huntRun } = await import('./hunt-run.js');
      print(await huntRun(ctx, { ...opts, argv: process.argv.slice(2) }));
    });

  huntFlags(hunt.command('bisect'))
    .description('binary search for the first bad release between a good and a bad one')
    .requiredOption('--good <release>', 'a release where the test passes')
    .requiredOption('--bad <release>', 'a later release where it fails')
    .option('--releases <list|file>', 'the ordered releases to search (default: the release table between good and bad)')
    .option('--runs <n>', 'runs per release tested (default 1, 5 with --metric)', positiveInt('--runs'))
    .option('--flaky <bad|good|skip>', 'how a release whose runs disagree counts (default bad)')
    .option('--metric <name>', 'search for the first release where this BE-METRIC moved beyond the noise')
    .option('--up', 'with --metric: the first release where it went up')
    .option('--down', 'with --metric: the first release where it went down')
    .option('--min-change <percent>', 'with --metric: the smallest change of the median that counts (default 5%)')
    .action(async (opts, cmd: Command) => {
      await refuseWorkerFlags(opts, cmd);
      const ctx = await context(cmd);
      if (isDryRun(cmd)) {
        const { planBisect } = await import('./hunt-plan.js');
        await planBisect(ctx, opts);
        return;
      }
      const { huntBisect } = await import('./hunt-run.js');
      const out = await huntBisect(ctx, { ...opts, argv: process.argv.slice(2) });
      print(out.trimEnd());
    });

  hunt
    .command('report')
    .description('report a hunt: table, json, junit (CI) or one self-contained html file')
    .option('--state <dir>', 'state directory (default: the newest hunt under /var/db/be/hunts)')
    .option('--format <format>', 'table, json, junit or html', 'table')
    .option('--out <file>', 'write to a file instead of standard output')
    .option('--min-change <percent>', 'smallest change of a metric median that is flagged (default: the hunt\'s, else 5%)')
    .action(async (opts) => {
      const { huntReport } = await import('./hunt-report.js');
      const text = await huntReport(opts);
      if (text !== undefined) process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    });

  vmFlags(program.command('worker'))
    .description('serve hunt runs from a beanstalkd tube (see be hunt run --broker)')
    .requiredOption('--broker <host:port>', 'beanstalkd address')
    .option('--tube <name>', 'tube to take jobs from', 'be-hunt')
    .option('-j, --jobs <n>', 'runs at a time', positiveInt('--jobs'), 1)
    .option('--state <dir>', 'where run logs are kept', '/var/db/be/hunts/worker')
    .option('-p, --source <dir|url>', 'mirror root to install from instead of the one in the jobs')
    .action(async (opts, cmd: Command) => {
      const { worker } = await import('./hunt-worker.js');
      await worker(await context(cmd), opts);
    });
  hunt.commands.forEach((c) => c.exitOverride().configureOutput({ outputError: () => {} }));
}
