import type { Command } from 'commander';
import { changing, collect, context, print } from './common.js';

/** bectl's verbs: create, list, mount, umount, destroy, rename, snapshot, rollback, activate. */
export function registerBeCommands(program: Command): void {
  changing(program.command('create'))
    .description('create a boot environment from a layout, or clone one from another BE')
    .argument('<be>', 'BE name: short (under the BE root) or a full dataset path')
    .option('-l, --layout <name>', 'layout: freebsd, flat, shallow', 'freebsd')
    .option('--layout-file <file>', 'a layout of your own (JSON)')
    .option('-e, --source <be[@snap]>', 'clone this BE (or one of its snapshots) instead')
    .option('-o, --property <prop=val>', 'set a property on the new BE root (repeatable)', collect, [])
    .action(async (name: string, opts, cmd: Command) => {
      const ctx = await context(cmd);
      const be = await import('../be/be.js');
      let made: string;
      if (opts.source) {
        if (opts.layoutFile || cmd.getOptionValueSource('layout') === 'cli') {
          const { UsageError } = await import('../sys/errors.js');
          throw new UsageError('create: -e clones a BE and cannot be combined with -l/--layout-file');
        }
        made = await be.cloneBe(ctx, name, opts.source, opts.property);
      } else {
        const layouts = await import('../be/layouts.js');
        const layout = opts.layoutFile ? layouts.loadLayoutFile(opts.layoutFile) : layouts.loadLayout(opts.layout);
        made = await be.createFromLayout(ctx, name, layout, opts.property);
      }
      ctx.runner.flushScript();
      if (!ctx.runner.dryRun) print(made);
    });

  program
    .command('list')
    .description('list boot environments')
    .option('-a, --all', 'show every dataset of each BE')
    .option('-s, --snapshots', 'show snapshots too')
    .option('-H', 'no header, tab-separated fields (for scripts)')
    .option('--json', 'JSON output')
    .action(async (opts, cmd: Command) => {
      const [ctx, { listBes, humanSize, formatCreated }, { formatTable }] = await Promise.all([context(cmd), import('../be/info.js'), import('./table.js')]);
      const { rows } = await listBes(ctx, { all: opts.all, snapshots: opts.snapshots });
      if (opts.json) {
        print(JSON.stringify(rows.map((r) => ({ ...r, created: r.created.toISOString() })), null, 2));
        return;
      }
      const table = rows.map((r) => [r.name, r.active, r.mountpoint, humanSize(r.used), formatCreated(r.created)]);
      print(formatTable(['BE', 'Active', 'Mountpoint', 'Space', 'Created'], table, !!opts.H));
    });

  changing(program.command('mount'))
    .description('mount a BE and its children in rc.d/zfsbe order')
    .argument('<be>')
    .argument('[dir]', 'where to mount (default: a fresh directory under /tmp)')
    .action(async (name: string, dir: string | undefined, _opts, cmd: Command) => {
      const ctx = await context(cmd);
      const { requireBe } = await import('../be/context.js');
      const { mountBe } = await import('../be/access.js');
      const path = await mountBe(ctx, await requireBe(ctx, name), dir ? (await import('node:path')).resolve(dir) : undefined);
      ctx.runner.flushScript();
      if (!ctx.runner.dryRun) print(path);
    });

  changing(program.command('umount').alias('unmount'))
    .description('unmount a BE and its children, deepest first')
    .argument('<be>')
    .option('-f, --force', 'force the unmount')
    .action(async (name: string, opts, cmd: Command) => {
      const ctx = await context(cmd);
      const { requireBe } = await import('../be/context.js');
      const { umountBe } = await import('../be/access.js');
      await umountBe(ctx, await requireBe(ctx, name), !!opts.force);
      ctx.runner.flushScript();
    });

  changing(program.command('destroy'))
    .description('destroy a BE (never the active or the running one)')
    .argument('<be>')
    .option('-F, --force', 'unmount first if mounted')
    .option('-o, --origin', 'also destroy the snapshot the BE was cloned from')
    .action(async (name: string, opts, cmd: Command) => {
      const ctx = await context(cmd);
      const { destroyBe } = await import('../be/be.js');
      await destroyBe(ctx, name, { force: opts.force, origin: opts.origin });
      ctx.runner.flushScript();
    });

  changing(program.command('rename'))
    .description('rename a BE')
    .argument('<old>')
    .argument('<new>')
    .action(async (from: string, to: string, _opts, cmd: Command) => {
      const ctx = await context(cmd);
      const { renameBe } = await import('../be/be.js');
      const dst = await renameBe(ctx, from, to);
      ctx.runner.flushScript();
      if (!ctx.runner.dryRun) print(dst);
    });

  changing(program.command('snapshot'))
    .description('take a recursive snapshot of a BE (default name: the date and time)')
    .argument('<be[@snap]>')
    .action(async (spec: string, _opts, cmd: Command) => {
      const ctx = await context(cmd);
      const { snapshotBe } = await import('../be/be.js');
      const snap = await snapshotBe(ctx, spec);
      ctx.runner.flushScript();
      if (!ctx.runner.dryRun) print(snap);
    });

  changing(program.command('rollback'))
    .description('roll a BE and its children back to a snapshot')
    .argument('<be@snap>')
    .option('-r, --recursive', 'destroy snapshots newer than the one rolled back to')
    .action(async (spec: string, opts, cmd: Command) => {
      const ctx = await context(cmd);
      const { rollbackBe } = await import('../be/be.js');
      await rollbackBe(ctx, spec, !!opts.recursive);
      ctx.runner.flushScript();
    });

  changing(program.command('activate'))
    .description("make a BE the pool's boot file system (bootfs)")
    .argument('<be>')
    .option('-t, --temporary', 'for the next boot only (zfsbootcfg)')
    .action(async (name: string, opts, cmd: Command) => {
      const ctx = await context(cmd);
      const { activateBe } = await import('../be/be.js');
      const be = await activateBe(ctx, name, !!opts.temporary);
      ctx.runner.flushScript();
      if (!ctx.runner.dryRun) print(`${be} ${opts.temporary ? 'boots next' : 'is active'}`);
    });

  const pool = program.command('pool').description('file-backed pools for trying be without a spare disk');
  changing(pool.command('create'))
    .description('create a pool on a sparse file, with an altroot')
    .argument('<pool>')
    .requiredOption('--file <path>', 'the backing file (created)')
    .option('--size <size>', 'file size', '4G')
    .option('--altroot <dir>', 'altroot (default /tmp/be.<pool>)')
    .action(async (name: string, opts, cmd: Command) => {
      const ctx = await context(cmd);
      const { createFilePool } = await import('../be/pool.js');
      const { altroot } = await createFilePool(ctx, name, opts.file, opts.size, opts.altroot);
      ctx.runner.flushScript();
      if (!ctx.runner.dryRun) print(`${name} on ${opts.file}, altroot ${altroot}`);
    });
  changing(pool.command('destroy'))
    .description('destroy a pool (and its backing file when be made it)')
    .argument('<pool>')
    .action(async (name: string, _opts, cmd: Command) => {
      const ctx = await context(cmd);
      const { destroyPool } = await import('../be/pool.js');
      await destroyPool(ctx, name);
      ctx.runner.flushScript();
    });
}
