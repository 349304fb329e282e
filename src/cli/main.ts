import { CommanderError } from 'commander';
import { buildProgram } from './program.js';

export async function main(argv: string[]): Promise<number> {
  // `be list | head`: a closed pipe ends the output quietly, as for any Unix tool.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
  const program = await buildProgram(argv);
  try {
    await program.parseAsync(argv);
    // A command that passes on a child's status (chroot, jail, hunt) sets process.exitCode.
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return 0;
      process.stderr.write(`be: ${error.message.replace(/^error: /, '')}\n`);
      return 2;
    }
    const e = error as { name?: string; message?: string; exitCode?: number; stack?: string };
    if (process.env.BE_DEBUG === '1') process.stderr.write(`${e.stack}\n`);
    const known = e.name === 'BeError' || e.name === 'UsageError' || e.name === 'CommandError';
    process.stderr.write(`be: ${(e.message ?? String(error)).split('\n')[0]}\n`);
    return known ? (e.exitCode ?? 1) : 1;
  }
}

process.exitCode = await main(process.argv);
