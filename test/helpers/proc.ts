/**
 * A long-running program under test (a server, a relay agent), with its output kept line by line
 * so a test can wait for the line that says it is ready, or that something happened.
 */
import { execa, type ResultPromise } from 'execa';

export interface Watched {
  proc: ResultPromise;
  /** Output lines so far. */
  lines: string[];
  /** The first line matching RE, printed already or still to come; rejects at MS or when the program exits without it. */
  waitFor(re: RegExp, ms?: number): Promise<string>;
  /** SIGTERM (or SIGNAL) unless it ended already; then its exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | undefined>;
  exited(): boolean;
}

/**
 * Run ARGV, splitting its output into lines: stdout and stderr together, or stdout alone (stderr
 * is then only shown when a wait fails). NAME prefixes the lines echoed with BE_TEST_VERBOSE=1.
 */
export function watch(argv: string[], opts: { stdoutOnly?: boolean; name?: string; timeoutMs?: number } = {}): Watched {
  const proc = execa(argv[0], argv.slice(1), { reject: false, buffer: false, all: !opts.stdoutOnly, stdin: 'ignore' });
  const lines: string[] = [];
  const waiters: Array<{ re: RegExp; resolve: (l: string) => void }> = [];
  let partial = '';
  let stderr = '';
  (opts.stdoutOnly ? proc.stdout! : proc.all!).on('data', (d: Buffer) => {
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop()!;
    for (const l of parts) {
      lines.push(l);
      if (process.env.BE_TEST_VERBOSE) process.stderr.write(`[${opts.name ?? argv[0]}] ${l}\n`);
      for (const w of [...waiters]) {
        if (!w.re.test(l)) continue;
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(l);
      }
    }
  });
  if (opts.stdoutOnly) proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const output = () => `${lines.join('\n')}${stderr ? `\n${stderr}` : ''}`;
  let done = false;
  void proc.then(() => (done = true));
  return {
    proc,
    lines,
    waitFor(re, ms = opts.timeoutMs ?? 20_000) {
      const seen = lines.find((l) => re.test(l));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const w = { re, resolve: (l: string) => { clearTimeout(t); resolve(l); } };
        const fail = (why: string) => {
          clearTimeout(t);
          if (waiters.includes(w)) waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`${opts.name ?? argv[0]} ${why}; output:\n${output()}`));
        };
        const t = setTimeout(() => fail(`printed no line matching ${re} within ${ms} ms`), ms);
        waiters.push(w);
        // the last lines may arrive just after the exit
        void proc.then(() => setTimeout(() => waiters.includes(w) && fail(`exited before printing a line matching ${re}`), 50));
      });
    },
    async stop(signal = 'SIGTERM') {
      if (!done) proc.kill(signal);
      return (await proc).exitCode;
    },
    exited: () => done,
  };
}
