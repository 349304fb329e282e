import type { Command } from 'commander';
import { changing, collect, context, print } from './common.js';

/** NFS: sharenfs, unsharenfs, fstab (the guest's NFS mounts), nfshandle (MOUNT protocol). */
export function registerShareCommands(program: Command): void {
  const ganesha = (cmd: Command) =>
    cmd
      .option('--ganesha-conf <file>', "Linux: ganesha's configuration (be's exports go to be-exports.conf beside it)", '/etc/ganesha/ganesha.conf')
      .option('--ganesha-pid <file>', "Linux: ganesha's pid file, to make it reload", '/run/ganesha/ganesha.pid')
      .option('--mountd-pid <file>', "FreeBSD: mountd's pid file, to see that it runs before reloading it", '/var/run/mountd.pid');

  ganesha(changing(program.command('sharenfs')))
    .description('export a BE and its children over NFS (FreeBSD: /etc/exports + mountd; Linux: nfs-ganesha)')
    .argument('<be>')
    .option('--network <cidr>', 'allow this network, e.g. 192.168.2.0/24 (repeatable)', collect, [])
    .option('--host <addr>', 'allow this host (repeatable)', collect, [])
    .option('--maproot <user>', 'map root to this user (root: no squashing)')
    .option('--ro', 'export read-only')
    .option('--v4-root <path>', 'NFSv4 tree root: be writes the exports(5) V4: lines once for all BEs')
    .option('--exports <file>', 'write exports(5) lines into FILE instead, reload nothing')
    .option('--path <dir>', 'mount the BE here for sharing (default /<dataset without pool> below the altroot)')
    .option('--no-mount', 'do not mount the BE, only write the lines (a file for another server)')
    .action(async (name: string, opts, cmd: Command) => {
      const ctx = await context(cmd);
      const { shareNfs } = await import('../share/share.js');
      const r = await shareNfs(ctx, name, {
        network: opts.network,
        host: opts.host,
        maproot: opts.maproot,
        ro: opts.ro,
        v4Root: opts.v4Root,
        exportsFile: opts.exports,
        path: opts.path,
        noMount: opts.mount === false,
        ganeshaConf: opts.ganeshaConf,
        ganeshaPid: opts.ganeshaPid,
        mountdPid: opts.mountdPid,
      });
      ctx.runner.flushScript();
      if (!ctx.runner.dryRun) for (const p of r.paths) print(p);
    });

  ganesha(changing(program.command('unsharenfs')))
    .description("remove a BE's exports (and unmount it if sharenfs mounted it)")
    .argument('<be>')
    .option('--exports <file>', 'remove the lines from FILE instead, reload nothing')
    .option('--keep-mounted', 'leave the BE mounted')
    .action(async (name: string, opts, cmd: Command) => {
      const ctx = await context(cmd);
      const { unshareNfs } = await import('../share/share.js');
      await unshareNfs(ctx, name, { exportsFile: opts.exports, ganeshaConf: opts.ganeshaConf, ganeshaPid: opts.ganeshaPid, mountdPid: opts.mountdPid, keepMounted: opts.keepMounted });
      ctx.runner.flushScript();
    });

  changing(program.command('fstab'))
    .description("write the BE's /etc/fstab so its children are NFS-mounted from SERVER at boot")
    .argument('<be>')
    .requiredOption('--server <addr>', 'the NFS server the guest mounts from')
    .option('--path-prefix <path>', 'server path of the BE (default: where it is shared from)')
    .option('--options <opts>', 'mount options', 'rw,noatime,async')
    .action(async (name: string, opts, cmd: Command) => {
      const ctx = await context(cmd);
      const { writeGuestFstab } = await import('../share/share.js');
      const r = await writeGuestFstab(ctx, name, { server: opts.server, pathPrefix: opts.pathPrefix, options: opts.options });
      ctx.runner.flushScript();
      if (!ctx.runner.dryRun) process.stdout.write(r.lines);
    });

  program
    .command('nfshandle')
    .description("ask SERVER's mountd (MOUNT protocol v3) for the NFS file handle of PATH")
    .argument('<server>')
    .argument('<path>')
    .option('--tcp', 'use TCP (default: UDP when offered)')
    .option('--json', 'JSON output')
    .action(async (server: string, path: string, opts) => {
      const { getFileHandle, loaderHandle } = await import('../share/mountproto.js');
      const fh = await getFileHandle(server, path, { transport: opts.tcp ? 'tcp' : undefined });
      if (opts.json) print(JSON.stringify({ server, path, handle: fh.handle.toString('hex'), length: fh.handle.length, transport: fh.transport, flavors: fh.flavors }));
      else print(`${loaderHandle(fh.handle)} ${fh.handle.length}`);
    });
}
