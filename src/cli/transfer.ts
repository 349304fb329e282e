import type { Command } from 'commander';
import { BeError } from '../sys/errors.js';
import { EX_USAGE, bectlAction, changing, context, print } from './common.js';

/**
 * A byte counter on a terminal (cli-progress): bytes so far and the rate. Only when stderr is a
 * terminal; elsewhere no counting, and the stream goes straight between zfs and the file.
 */
async function terminalProgress(label: string, total: number): Promise<{ onBytes: (n: number) => void; stop: () => void } | undefined> {
  if (!process.stderr.isTTY) return undefined;
  const [{ default: cliProgress }, { humanBytes }] = await Promise.all([import('cli-progress'), import('../install/progress.js')]);
  const format = total > 0 ? ' {label} |{bar}| {percentage}% {doneh}/{totalh} {rate}/s' : ' {label} {doneh} {rate}/s';
  const bar = new cliProgress.SingleBar({ stream: process.stderr, format, hideCursor: true, barsize: 30, formatValue: (v) => String(v) }, cliProgress.Presets.shades_classic);
  const started = Date.now();
  bar.start(Math.max(total, 1), 0, { label, doneh: '0 B', totalh: humanBytes(total), rate: '0 B' });
  let last = 0;
  let bytes = 0;
  const draw = () => {
    const secs = Math.max((Date.now() - started) / 1000, 0.001);
    bar.update(total > 0 ? Math.min(bytes, total) : 0, { doneh: humanBytes(bytes), rate: humanBytes(bytes / secs) });
  };
  return {
    onBytes(n) {
      bytes = n;
      if (Date.now() - last < 100) return;
      last = Date.now();
      draw();
    },
    stop() {
      draw();
      bar.stop();
    },
  };
}

/** export / import: replication streams of whole BEs, to move them between hosts (bectl export/import). */
export function registerTransferCommands(program: Command): void {
  changing(program.command('export'))
    .description('write a replication stream of the whole BE (a fresh recursive snapshot, children and properties) to stdout or a file; never to a terminal')
    .argument('<be>')
    .option('-o, --output <file>', 'write the stream to FILE (made whole or not at all) instead of stdout')
    .action(bectlAction(async (name: string, opts, cmd: Command) => {
      if (!opts.output && process.stdout.isTTY && !cmd.optsWithGlobals().dryRun) {
        throw new BeError('export: refusing to write a replication stream to a terminal: redirect stdout or give -o FILE', { exitCode: EX_USAGE });
      }
      // loaded side by side: start-up is most of what be adds to the stream's own time
      const [ctx, { exportBe }] = await Promise.all([context(cmd), import('../be/transfer.js')]);
      if (ctx.runner.dryRun) {
        await exportBe(ctx, name, { end: 1, shell: opts.output });
        ctx.runner.flushScript();
        return;
      }
      const fs = await import('node:fs');
      const { dirname, basename, join } = await import('node:path');
      // a file is made whole or not at all (written beside it, renamed over it); what is there and
      // no file (a device such as /dev/null, a FIFO) is written as it is, never replaced
      const direct = opts.output !== undefined && fs.statSync(opts.output, { throwIfNoEntry: false })?.isFile() === false;
      const partial = opts.output && !direct ? join(dirname(opts.output), `.${basename(opts.output)}.be-partial.${(await import('node:crypto')).randomBytes(4).toString('hex')}`) : undefined;
      let fd = 1;
      if (opts.output) {
        try {
          fd = partial ? fs.openSync(partial, 'wx', 0o600) : fs.openSync(opts.output, 'w');
        } catch (error) {
          throw new BeError(`cannot write '${opts.output}': ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
        }
      }
      const progress = await terminalProgress(`export ${name}`, 0);
      const out = progress ? (opts.output ? fs.createWriteStream('', { fd, autoClose: false }) : process.stdout) : undefined;
      try {
        await exportBe(ctx, name, { end: out ?? fd, onBytes: progress?.onBytes });
        if (out && out !== process.stdout) await new Promise<void>((resolve, reject) => (out as NodeJS.WritableStream).end(() => resolve()).on('error', reject));
        if (partial) {
          fs.fsyncSync(fd);
          fs.closeSync(fd);
          fs.renameSync(partial, opts.output);
        } else if (direct) fs.closeSync(fd);
      } catch (error) {
        if (opts.output) fs.closeSync(fd);
        if (partial) fs.rmSync(partial, { force: true });
        throw error;
      } finally {
        progress?.stop();
      }
    }));

  changing(program.command('import'))
    .description('make a new BE under the BE root from a stream be export wrote (stdin or a file); never over an existing BE; a cut or corrupt stream leaves nothing behind')
    .argument('<be>')
    .option('-i, --input <file>', 'read the stream from FILE instead of stdin')
    .action(bectlAction(async (name: string, opts, cmd: Command) => {
      if (!opts.input && process.stdin.isTTY && !cmd.optsWithGlobals().dryRun) {
        throw new BeError('import: refusing to read a replication stream from a terminal: pipe one in or give -i FILE', { exitCode: EX_USAGE });
      }
      const [ctx, { importBe }] = await Promise.all([context(cmd), import('../be/transfer.js')]);
      if (ctx.runner.dryRun) {
        await importBe(ctx, name, { end: 0, shell: opts.input });
        ctx.runner.flushScript();
        return;
      }
      const fs = await import('node:fs');
      let fd = 0;
      let total = 0;
      if (opts.input) {
        try {
          fd = fs.openSync(opts.input, 'r');
          total = fs.fstatSync(fd).size;
        } catch (error) {
          throw new BeError(`cannot read '${opts.input}': ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
        }
      }
      const progress = await terminalProgress(`import ${name}`, total);
      const input = progress ? (opts.input ? fs.createReadStream('', { fd, autoClose: false }) : process.stdin) : undefined;
      try {
        print(await importBe(ctx, name, { end: input ?? fd, onBytes: progress?.onBytes }));
      } finally {
        progress?.stop();
        if (opts.input) fs.closeSync(fd);
      }
    }));
}
