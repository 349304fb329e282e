import { spawn } from 'node:child_process';
import { BeError, CommandError } from './errors.js';

export interface RunOptions {
  input?: string | Buffer;
  /** Keep stdout/stderr attached to the terminal (interactive programs such as a chroot shell). */
  inherit?: boolean;
  cwd?: string;
  /** Do not raise on a non-zero exit; the caller inspects `status`. */
  allowFailure?: boolean;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  status: number;
  /** The change was recorded into the plan, not made (a script's step): what it makes is not on the host yet. */
  pending?: boolean;
}

/**
 * Run ARGV to its end with its output collected (stdin from OPTS.input, or the terminal with
 * inherit): the one place a short program is spawned. A program that is missing, is killed or
 * exits non-zero is an error unless OPTS.allowFailure.
 */
export async function runCollected(argv: string[], opts: RunOptions, env?: Record<string, string>): Promise<RunResult> {
  const result = await new Promise<RunResult & { signal?: string | null; error?: NodeJS.ErrnoException }>((resolve) => {
    const child = spawn(argv[0], argv.slice(1), {
      cwd: opts.cwd,
      env: env ? { ...process.env, ...env } : process.env,
      stdio: [opts.inherit ? 'inherit' : opts.input !== undefined ? 'pipe' : 'ignore', opts.inherit ? 'inherit' : 'pipe', opts.inherit ? 'inherit' : 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    let spawnError: NodeJS.ErrnoException | undefined;
    child.on('error', (e) => (spawnError = e));
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input);
    }
    child.on('close', (code, signal) =>
      resolve({
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        status: code ?? 128,
        signal,
        error: spawnError,
      }),
    );
  });
  if (result.error) {
    if (result.error.code === 'ENOENT') throw new BeError(`${argv[0]}: command not found`, { command: argv });
    throw new BeError(`cannot run ${argv[0]}: ${result.error.message}`, { command: argv });
  }
  if (result.signal && !opts.allowFailure) throw new BeError(`${argv[0]} killed by ${result.signal}`, { command: argv });
  if (result.status !== 0 && !opts.allowFailure) throw new CommandError(argv, result.status, result.stderr);
  return { stdout: result.stdout, stderr: result.stderr, status: result.status };
}
