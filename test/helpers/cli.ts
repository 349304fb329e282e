import { execa } from 'execa';
import { fileURLToPath } from 'node:url';

export const BE_BIN = fileURLToPath(new URL('../../bin/be', import.meta.url));

export interface CliResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** Run the built `be` CLI exactly as a user would. */
export async function be(args: string[], opts: { env?: Record<string, string>; input?: string; cwd?: string } = {}): Promise<CliResult> {
  const r = await execa(BE_BIN, args, { reject: false, env: opts.env, input: opts.input, cwd: opts.cwd, stripFinalNewline: false });
  return { stdout: String(r.stdout), stderr: String(r.stderr), exitCode: r.exitCode ?? 1 };
}

/** Run `be` and fail the test with its stderr when it does not exit 0. */
export async function beOk(args: string[], opts: Parameters<typeof be>[1] = {}): Promise<string> {
  const r = await be(args, opts);
  if (r.exitCode !== 0) throw new Error(`be ${args.join(' ')} exited ${r.exitCode}: ${r.stderr}`);
  return r.stdout;
}
