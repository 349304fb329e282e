import type { Command, CommanderError } from 'commander';
import type { BeContext } from '../be/context.js';
import { BeError } from '../sys/errors.js';

/** sysexits.h's EX_USAGE: what bectl's usage(false) returns (sbin/bectl/bectl.c). */
export const EX_USAGE = 64;

/** The verbs bectl(8) has (sbin/bectl/bectl.c command_map, aliases too): they exit as bectl does. */
const BECTL_VERBS = new Set(['activate', 'check', 'create', 'destroy', 'export', 'import', 'jail', 'list', 'mount', 'rename', 'ujail', 'unjail', 'umount', 'unmount']);

/**
 * bectl's statuses for the bectl verbs, which every other `be` command keeps at 1 and 2 (be.8):
 * a usage error (commander's or the verb's own) is EX_USAGE, as bectl's usage(false) returns; a
 * failure libbe has a number for exits with it, as bectl returns each verb's libbe result.
 */
export function bectlStatuses(program: Command): void {
  program.hook('preSubcommand', (_program, verb) => {
    if (!BECTL_VERBS.has(verb.name())) return;
    verb.exitOverride((error: CommanderError) => {
      if (error.exitCode === 0) throw error; // --help
      throw new BeError(error.message.replace(/^error: /, ''), { exitCode: EX_USAGE });
    });
  });
}

/** A bectl verb's action: what it throws carries bectl's exit status (see bectlStatuses). */
export function bectlAction<A extends unknown[]>(action: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await action(...args);
    } catch (error) {
      const e = error as Partial<BeError>;
      const status = e.name === 'UsageError' ? EX_USAGE : e.libbe;
      if (!(error instanceof BeError) || status === undefined) throw error;
      throw new BeError(error.message, { exitCode: status, command: error.command, cause: error });
    }
  };
}

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
