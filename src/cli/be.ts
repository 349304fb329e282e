import type { Command } from 'commander';
import { bectlAction, changing, collect, context, print } from './common.js';
import { registerTransferCommands } from './transfer.js';

/**
 * bectl's verbs: create, list, mount, umount, destroy, rename, snapshot, rollback, activate,
 * check, export, import. bectl's exit statuses for its verbs (sbin/bectl/bectl.c): see
 * bectlStatuses (program.ts installs it for every group: jail and ujail are boot.ts's); snapshot and rollback are be's own and keep be's.
 */
export function registerBeCommands(program: Command): void {
  changing(program.command('create'))
    .description('create a boot environment from a layout, clone one from another BE, or snapshot a BE (BE@snap)')
    .usage('[-r] [-l layout | --layout-file file | -e be[@snap]] [-o prop=val]... <be | be@snap>')
    .argument('<be>', 'BE name: short (under the BE root) or a full dataset path; BE@snap makes a recursive snapshot of BE')
    .option('-l, --layout <name>', 'layout: freebsd, flat, shallow', 'freebsd')
    .option('--layout-file <file>', 'a layout of your own (JSON)')
    .option('-e, --source <be[@snap]>', 'clone this BE (or one of its snapshots) instead')
    .option('-o, --property <prop=val>', 'set a property on the new BE root (repeatable)', collect, [])
    .option('-r, --recursive', "bectl's deep BE: accepted and always so (be's BEs and their snapshots always take every child)")
    .action(bectlAction(async (name: string, opts, cmd: Command) => {
      const ctx = await context(cmd);
      const be = await import('../be/be.js');
      const { UsageError } = await import('../sys/errors.js');
      let made: string;
      if (name.includes('@')) {
        if (opts.source || opts.layoutFile || cmd.getOptionValueSource('layout') === 'cli' || opts.property.length) {
          throw new UsageError(`create: '${name}' makes a snapshot and takes no -e, -l, --layout-file or -o`);
        }
        made = await be.snapshotBe(ctx, name);
      } else if (opts.source) {
        if (opts.layoutFile || cmd.getOptionValueSource('layout') === 'cli') {
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
    }));

  // bectl_list.c: the last of -c/-C given wins
  let sort: { prop: string; descending: boolean } | undefined;
  program
    .command('list')
    .description("list boot environments with bectl's columns: BE, Active (N now, R on reboot, T next boot once), Mountpoint, Space, Created")
    .option('-a, --all', 'every dataset of each BE, its origin too')
    .option('-D', 'space as if every other BE were destroyed (adds the origin file system; ignored with -a or -s)')
    .option('-s, --snapshots', 'snapshots too')
    .option('-H', 'no header, tab-separated fields (for scripts)')
    .option('-c <prop>', 'sort by a property, ascending: name, creation, origin, used, usedds, usedsnap, usedrefreserv', (v: string) => ((sort = { prop: v, descending: false }), v))
    .option('-C <prop>', 'sort by a property, descending', (v: string) => ((sort = { prop: v, descending: true }), v))
    .option('--json', 'JSON output')
    .action(bectlAction(async (opts, cmd: Command) => {
      const list = await import('../be/list.js');
      if (sort) list.sortKey(sort.prop);
      const ctx = await context(cmd);
      if (opts.json) {
        const { listBes } = await import('../be/info.js');
        const { rows } = await listBes(ctx, { all: opts.all, snapshots: opts.snapshots });
        print(JSON.stringify(rows.map((r) => ({ ...r, created: r.created.toISOString() })), null, 2));
        return;
      }
      const bes = await list.listBectl(ctx, { all: opts.all, snapshots: opts.snapshots, space: opts.D, sort });
      const text = list.formatBectlList(bes, { scripted: !!opts.H, detail: !!(opts.all || opts.snapshots) });
      if (text) print(text);
    }));

  changing(program.command('mount'))
    .description('mount a BE and its children in rc.d/zfsbe order')
    .argument('<be>')
    .argument('[dir]', 'where to mount (default: a fresh directory under /tmp)')
    .action(bectlAction(async (name: string, dir: string | undefined, _opts, cmd: Command) => {
      const ctx = await context(cmd);
      const { requireBe } = await import('../be/context.js');
      const { mountBe } = await import('../be/access.js');
      const path = await mountBe(ctx, await requireBe(ctx, name), dir ? (await import('node:path')).resolve(dir) : undefined);
      ctx.runner.flushScript();
      if (!ctx.runner.dryRun) print(path);
    }));

  changing(program.command('umount').alias('unmount'))
    .description('unmount a BE and its children, deepest first')
    .argument('<be>')
    .option('-f, --force', 'force the unmount')
    .action(bectlAction(async (name: string, opts, cmd: Command) => {
      const ctx = await context(cmd);
      const { BE_ERR, requireBe } = await import('../be/context.js');
      const { umountBe } = await import('../be/access.js');
      // be_unmount (lib/libbe/be_access.c) opens the BE without be_exists: a missing one is BE_ERR_ZFSOPEN
      await umountBe(ctx, await requireBe(ctx, name, BE_ERR.ZFSOPEN), !!opts.force);
      ctx.runner.flushScript();
    }));

  changing(program.command('destroy'))
    .description('destroy a BE (never the active or the running one), promoting the BEs cloned from it first; or a snapshot of a BE (BE@snap) that no BE was cloned from')
    .argument('<be[@snap]>')
    .option('-F, --force', 'unmount first if mounted')
    .option('-o, --origin', 'also destroy the snapshot the BE was cloned from (without -o only an automatic one goes)')
    .action(bectlAction(async (name: string, opts, cmd: Command) => {
      const ctx = await context(cmd);
      const { destroyBe } = await import('../be/destroy.js');
      await destroyBe(ctx, name, { force: opts.force, origin: opts.origin, warn: (l) => process.stderr.write(`${l}\n`) });
      ctx.runner.flushScript();
    }));

  changing(program.command('rename'))
    .description('rename a BE')
    .argument('<old>')
    .argument('<new>')
    .action(bectlAction(async (from: string, to: string, _opts, cmd: Command) => {
      const ctx = await context(cmd);
      const { renameBe } = await import('../be/be.js');
      const dst = await renameBe(ctx, from, to);
      ctx.runner.flushScript();
      if (!ctx.runner.dryRun) print(dst);
    }));

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
    .usage('[-t | -T] [be]')
    .argument('[be]')
    .option('-t, --temporary', 'for the next boot only (zfsbootcfg)')
    .option('-T, --remove-temporary', 'remove a one-time activation (-t): the next boot takes bootfs')
    .action(bectlAction(async (name: string | undefined, opts, cmd: Command) => {
      const { UsageError } = await import('../sys/errors.js');
      if (opts.temporary && opts.removeTemporary) throw new UsageError('activate: -t and -T exclude each other');
      if (name === undefined && !opts.removeTemporary) throw new UsageError("missing required argument 'be'");
      const ctx = await context(cmd);
      const { activateBe, removeTemporaryActivation } = await import('../be/be.js');
      if (opts.removeTemporary) {
        await removeTemporaryActivation(ctx, name);
        ctx.runner.flushScript();
        if (!ctx.runner.dryRun) print('Temporary activation removed');
        return;
      }
      const be = await activateBe(ctx, name!, !!opts.temporary);
      ctx.runner.flushScript();
      if (!ctx.runner.dryRun) print(`${be} ${opts.temporary ? 'boots next' : 'is active'}`);
    }));

  program
    .command('check')
    .description('exit 0 where boot environments are supported and in use (a ZFS root, or the pool of -R), else 255, silently (bectl check)')
    .action(bectlAction(async (_opts, cmd: Command) => {
      const ctx = await context(cmd);
      const { beSupported } = await import('../be/be.js');
      if (!(await beSupported(ctx).catch(() => false))) process.exitCode = 255;
    }));

  registerTransferCommands(program);

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
