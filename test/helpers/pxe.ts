/**
 * `be pxe serve` / `be sharepxe` as a process inside a network namespace, with its output lines.
 */
import { execa, type ResultPromise } from 'execa';
import { BE_BIN } from './cli.js';

export interface PxeProcess {
  proc: ResultPromise;
  lines: string[];
  /** The first output line matching RE (already printed or still to come). */
  waitFor(re: RegExp, ms?: number): Promise<string>;
  /** SIGTERM, then the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | undefined>;
  pid(): Promise<number>;
}

/** Run `be ARGS` in namespace NS (no namespace when NS is undefined). */
export function startBe(ns: string | undefined, args: string[], env: Record<string, string> = {}): PxeProcess {
  const argv = ns ? ['ip', 'netns', 'exec', ns, process.execPath, BE_BIN, ...args] : [process.execPath, BE_BIN, ...args];
  const proc = execa(argv[0], argv.slice(1), { reject: false, buffer: false, env, all: true });
  const lines: string[] = [];
  const waiters: Array<{ re: RegExp; resolve: (l: string) => void }> = [];
  let partial = '';
  proc.all!.on('data', (d: Buffer) => {
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop()!;
    for (const l of parts) {
      lines.push(l);
      if (process.env.BE_TEST_VERBOSE) process.stderr.write(`[be] ${l}\n`);
      for (const w of [...waiters]) if (w.re.test(l)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(l);
      }
    }
  });
  let exited = false;
  void proc.then(() => (exited = true));
  return {
    proc,
    lines,
    waitFor(re, ms = 20_000) {
      const seen = lines.find((l) => re.test(l));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const w = { re, resolve: (l: string) => { clearTimeout(t); resolve(l); } };
        const t = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`no line matching ${re} within ${ms} ms; output:\n${lines.join('\n')}`));
        }, ms);
        waiters.push(w);
        void proc.then(() => setTimeout(() => {
          if (waiters.includes(w)) {
            clearTimeout(t);
            waiters.splice(waiters.indexOf(w), 1);
            reject(new Error(`be exited before printing a line matching ${re}; output:\n${lines.join('\n')}`));
          }
        }, 50));
      });
    },
    async stop(signal = 'SIGTERM') {
      if (!exited) proc.kill(signal);
      const r = await proc;
      return r.exitCode;
    },
    async pid() {
      // `ip netns exec` execs the command, so the child's pid is node's pid
      return proc.pid!;
    },
  };
}
