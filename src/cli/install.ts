import type { Command } from 'commander';
import { changing, collect, context, print } from './common.js';

function splitList(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)];
}

/** be install, be installerconfig, be image. */
export function registerInstallCommands(program: Command): void {
  changing(program.command('install'))
    .description('install a FreeBSD release (dist sets) into a boot environment')
    .argument('<be>', 'BE name: short (under the BE root) or a full dataset path')
    .option('-p, --source <dir|url>', 'mirror root holding FreeBSD/ and FreeBSD-Archive/ (a pub/ tree); default: download.freebsd.org, then ftp-archive.freebsd.org')
    .option('-o, --os <name>', 'OS directory under the source', 'FreeBSD')
    .option('-a, --arch <arch>', 'amd64, i386, arm64 (default: this machine)')
    .option('-b, --branch <branch>', 'release, stable or current (snapshots)', 'release')
    .option('-r, --release <X.Y>', 'release version, e.g. 11.1, 14.1, 8.4, 14.2-RC1')
    .option('--sets <list>', 'comma-separated sets (default base,kernel)', splitList)
    .option('--cache <dir>', 'download cache', '/var/cache/be')
    .option('--offline', 'use only the cache; name what is missing')
    .option('-q, --quiet', 'no progress output')
    .option('--hostname <name>', 'guest hostname (default: the BE name)')
    .option('--rc <key=value>', 'add an /etc/rc.conf entry (repeatable)', collect, [])
    .option('--templates <dir>', 'a directory of *.hbs templates overriding the packaged ones')
    .option('--no-configure', 'do not write /etc/rc.conf, /etc/fstab, /boot/loader.conf')
    .action(async (name: string, opts, cmd: Command) => {
      const ctx = await context(cmd);
      if (!opts.release) {
        const { UsageError } = await import('../sys/errors.js');
        throw new UsageError('install: -r RELEASE is required (e.g. -r 11.1)');
      }
      if (cmd.getOptionValueSource('os') === 'cli' && !opts.source) {
        // download.freebsd.org has no OS directory: -o only names one in a -p mirror
        const { UsageError } = await import('../sys/errors.js');
        throw new UsageError(`install: -o ${opts.os} names the OS directory of a -p mirror; give -p as well`);
      }
      const { requireBe } = await import('../be/context.js');
      const { installRelease } = await import('../install/index.js');
      const be = await requireBe(ctx, name);
      const summary = await installRelease(ctx, be, {
        source: opts.source,
        os: opts.os,
        arch: opts.arch,
        branch: opts.branch,
        release: opts.release,
        sets: opts.sets,
        cache: opts.cache,
        offline: opts.offline,
        quiet: opts.quiet || ctx.runner.dryRun,
        hostname: opts.hostname,
        rc: opts.rc,
        templates: opts.templates,
        configure: opts.configure === false ? false : undefined,
      });
      ctx.runner.flushScript();
      if (!ctx.runner.dryRun && !opts.quiet) print(`${be}: installed ${summary.name} (${summary.sets.join(', ')}) from ${summary.from}`);
    });

  changing(program.command('installerconfig'))
    .description('render a bsdinstall(8) script (installerconfig) from a config file and flags')
    .option('-c, --config <file>', 'JSON or YAML config')
    .option('-o, --output <file>', 'write here instead of stdout')
    .option('--disk <dev>', 'target disk (repeatable)', collect, [])
    .option('--fs <zfs|ufs>', 'root filesystem')
    .option('--vdev <type>', 'stripe, mirror, raid10, raidz1, raidz2, raidz3')
    .option('--pool <name>', 'ZFS pool name')
    .option('--swap <size>', 'swap per disk, e.g. 2g (0: none)')
    .option('--geli', 'refused: zfsboot asks for the GELI passphrase on the console')
    .option('--layout <name>', 'be layout for the boot environment datasets (freebsd, flat, shallow)')
    .option('--dist <list>', 'distribution sets, e.g. base,kernel', splitList)
    .option('--distsite <url>', 'BSDINSTALL_DISTSITE')
    .option('--hostname <name>', 'hostname of the installed system')
    .option('--rc <key=value>', 'rc.conf entry (repeatable)', collect, [])
    .option('--package <name>', 'package to install (repeatable)', collect, [])
    .option('--templates <dir>', 'a directory whose installerconfig.hbs overrides the packaged one')
    .action(async (opts, cmd: Command) => {
      const ic = await import('../install/installerconfig.js');
      const config = await ic.loadInstallerConfig(opts.config, ic.flagsToConfig(opts));
      const text = ic.renderInstallerConfig(config, { templateDir: opts.templates });
      if (opts.output) {
        // -n: the write is printed as a step of the script (the text in a here-document)
        const ctx = await context(cmd);
        await ctx.runner.writeFile(opts.output, text, { mode: 0o644 });
        ctx.runner.flushScript();
      } else process.stdout.write(text);
    });

  changing(program.command('image'))
    .description('make a bootable GPT disk image (BIOS and/or UEFI) from a boot environment and print how to boot it')
    .argument('<be>', 'the boot environment to put in the image')
    .argument('<out.img>', 'the image file to create (must not exist)')
    .option('-s, --size <size>', 'image size (K, M, G, T)', '10G')
    .option('--boot <kind>', 'bios, uefi or both', 'both')
    .option('--pool <name>', "the image's pool name (default: the image's file name, unique on this host)")
    .action(async (be: string, out: string, opts, cmd: Command) => {
      const ctx = await context(cmd);
      const { makeImage } = await import('../install/image.js');
      const boot = await makeImage(ctx, { be, out, size: opts.size, boot: opts.boot, pool: opts.pool });
      ctx.runner.flushScript();
      print(boot);
    });
}
