/**
 * The `be` command tree (no side effects: tests read it). Each group of commands is its own module,
 * loaded when needed: `be list` reads only be.ts's, `be --version` none, `be --help` (or a word
 * that is no command) all of them, in this order.
 */
import { Command } from 'commander';
import { VERSION } from '../sys/version.js';
import { bectlStatuses } from './common.js';

type Register = (program: Command) => void;

/** The groups, in the order `be --help` lists them, each with the top-level commands (and aliases) it registers. */
export const COMMAND_GROUPS: ReadonlyArray<{ load: () => Promise<Register>; commands: readonly string[] }> = [
  {
    load: async () => (await import('./be.js')).registerBeCommands,
    commands: ['create', 'list', 'mount', 'umount', 'unmount', 'destroy', 'rename', 'snapshot', 'rollback', 'activate', 'export', 'import', 'check', 'pool'],
  },
  { load: async () => (await import('./install.js')).registerInstallCommands, commands: ['install', 'installerconfig', 'image'] },
  { load: async () => (await import('./hunt.js')).registerHuntCommands, commands: ['hunt', 'worker'] },
  { load: async () => (await import('./share.js')).registerShareCommands, commands: ['sharenfs', 'unsharenfs', 'fstab', 'nfshandle'] },
  { load: async () => (await import('./boot.js')).registerBootCommands, commands: ['chroot', 'jail', 'ujail', 'unjail', 'bootnfs', 'bootpxe'] },
  { load: async () => (await import('./pxe.js')).registerPxeCommands, commands: ['pxe', 'sharepxe', 'wol'] },
];

/** The command word of ARGS (what follows `be`): the first operand after the global options, if any. */
export function commandWord(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') return undefined;
    if (a === '--root' || /^-[^-]*R$/.test(a)) i++; // -R DATASET, -nR DATASET
    else if (!a.startsWith('-')) return a;
  }
  return undefined;
}

/** The program for ARGV (node, script, args…): only the group of its command, or every group. */
export async function buildProgram(argv?: readonly string[]): Promise<Command> {
  const program = new Command('be')
    .description('nested ZFS boot environments: create, install, share, boot, hunt regressions')
    .version(VERSION, '-V, --version')
    .option('-n, --dry-run', 'print the steps as a /bin/sh script and change nothing')
    .option('-v, --verbose', 'echo each command to stderr')
    .option('-R, --root <dataset>', 'BE root for short BE names (default: $BE_ROOT, else the parent of bootfs, else zroot/ROOT)')
    .showHelpAfterError(false)
    .configureOutput({ outputError: () => {} })
    .exitOverride();
  // bectl's exit statuses for bectl's verbs, whichever group they are in
  bectlStatuses(program);
  const args = argv?.slice(2) ?? [];
  const word = commandWord(args);
  const versionOnly = args.length === 1 && (args[0] === '--version' || args[0] === '-V');
  const mine = COMMAND_GROUPS.filter((g) => word !== undefined && g.commands.includes(word));
  const groups = versionOnly ? [] : mine.length ? mine : COMMAND_GROUPS;
  for (const register of await Promise.all(groups.map((g) => g.load()))) register(program);
  program.commands.forEach((c) => c.exitOverride().configureOutput({ outputError: () => {} }));
  return program;
}
