import type { Command } from 'commander';
import type { BeContext } from '../be/context.js';

export interface GlobalOptions {
  dryRun?: boolean;
  verbose?: boolean;
  root?: string;
}

/** Options every command that changes something takes. */
export function changing(cmd: Command): Command {
  return cmd.option('-n, --dry-run', 'print the steps as a /bin/sh script and change nothing');
}

/** A context built from the global and command options. */
export async function context(cmd: Command): Promise<BeContext> {
  const opts = cmd.optsWithGlobals() as GlobalOptions;
  const { makeContext } = await import('../be/context.js');
  return makeContext({ dryRun: opts.dryRun, verbose: opts.verbose, beRoot: opts.root });
}

/** Whether the command is to print its plan (-n) rather than carry it out. */
export function isDryRun(cmd: Command): boolean {
  return !!(cmd.optsWithGlobals() as GlobalOptions).dryRun;
}

/** Collect a repeatable option into an array. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function print(line: string): void {
  process.stdout.write(`${line}\n`);
}
