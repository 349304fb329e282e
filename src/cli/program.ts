/** The `be` command tree (no side effects: tests read it). */
import { Command } from 'commander';
import { registerBeCommands } from './be.js';
import { registerInstallCommands } from './install.js';
import { registerHuntCommands } from './hunt.js';
import { registerShareCommands } from './share.js';
import { registerBootCommands } from './boot.js';
import { registerPxeCommands } from './pxe.js';
import { VERSION } from '../sys/version.js';

export function buildProgram(): Command {
  const program = new Command('be')
    .description('nested ZFS boot environments: create, install, share, boot, hunt regressions')
    .version(VERSION, '-V, --version')
    .option('-n, --dry-run', 'print the steps as a /bin/sh script and change nothing')
    .option('-v, --verbose', 'echo each command to stderr')
    .option('-R, --root <dataset>', 'BE root for short BE names (default: $BE_ROOT, else the parent of bootfs, else zroot/ROOT)')
    .showHelpAfterError(false)
    .configureOutput({ outputError: () => {} })
    .exitOverride();
  registerBeCommands(program);
  registerInstallCommands(program);
  registerHuntCommands(program);
  registerShareCommands(program);
  registerBootCommands(program);
  registerPxeCommands(program);
  program.commands.forEach((c) => c.exitOverride().configureOutput({ outputError: () => {} }));
  return program;
}
