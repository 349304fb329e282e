import type { Command } from 'commander';
import { changing, context } from './common.js';
import { UsageError } from '../sys/errors.js';
import type { BeContext } from '../be/context.js';

function vmmOf(ctx: BeContext, opts: { vmm?: string }): 'bhyve' | 'qemu' {
  // the platform's own: bhyve where be drives FreeBSD (also BE_PLATFORM=freebsd plans), QEMU elsewhere
  const v = opts.vmm ?? (ctx.flavour === 'freebsd' ? 'bhyve' : 'qemu');
  if (v !== 'bhyve' && v !== 'qemu') throw new UsageError(`invalid --vmm '${v}': expected bhyve or qemu`);
  return v;
}

/** QEMU's flags on bootnfs and bootpxe. */
function qemuFlags(cmd: Command): Command {
  return cmd
    .option('--vm-memory <size>', 'qemu: guest memory', '512M')
    .option('--vm-cpus <n>', 'qemu: guest CPUs', '1')
    .option('--vm-firmware <fw>', 'qemu: bios (iPXE ROM) or uefi (OVMF)', 'bios')
    .option('--vm-boot-file <file>', "qemu: the boot file in the BE's /boot (default: pxeboot for BIOS, loader.efi for UEFI)")
    .option('--vm-console <file>', 'qemu: serial console into this file (default: the terminal)')
    .option('--vm-bridge <bridge>', 'qemu: put the guest on this existing bridge (where be sharepxe answers) instead of a private network');
}

/** bootnfs/bootpxe --vmm qemu: the boot registry's QEMU method, with the --vm-* flags. */
async function qemuBoot(ctx: BeContext, be: string, opts: Record<string, string | undefined>): Promise<void> {
  const { bootMethods, checkFirmware, checkCpus } = await import('../boot/index.js');
  const firmware = checkFirmware(opts.vmFirmware ?? 'bios');
  const cpus = checkCpus(opts.vmCpus ?? '1');
  const status = await bootMethods.qemu.boot(ctx, be, { firmware, cpus, memory: opts.vmMemory, mac: opts.mac, bootFile: opts.vmBootFile, console: opts.vmConsole, bridge: opts.vmBridge });
  ctx.runner.flushScript();
  if (status !== 0) process.exit(status);
}

/** Boot a BE: chroot, jail/unjail, bootnfs (bhyve with NFS root), bootpxe (bhyve UEFI PXE); QEMU for both with --vmm qemu. Each looks its method up in the boot registry (src/boot/index.ts). */
export function registerBootCommands(program: Command): void {
  changing(program.command('chroot'))
    .description('run a command (default /bin/sh) inside the BE, mounted with its children; unmount afterwards')
    .argument('<be>')
    .argument('[command...]', 'after --: the command and its arguments')
    .action(async (name: string, command: string[], _opts, cmd: Command) => {
      const ctx = await context(cmd);
      const { requireBe } = await import('../be/context.js');
      const { bootMethods } = await import('../boot/index.js');
      const be = await requireBe(ctx, name);
      const status = await bootMethods.chroot.boot(ctx, be, { argv: command, inherit: true, handleSignals: true });
      ctx.runner.flushScript();
      if (status !== 0) process.exit(status);
    });

  // -o and -u in the order given (bectl_jail.c applies them in turn).
  const jailOps: Array<string | { unset: string }> = [];
  changing(program.command('jail'))
    .description('start the BE in a jail(8) and run a utility (default /bin/sh) in it; remove the jail, unmount its devfs and the BE afterwards (bectl jail)')
    .usage('[-bU] [-o param=value | -u param]... [--ip4 addr | --vnet interface] [--conf] <be> [-- utility [argument ...]]')
    .argument('<be>')
    .argument('[command...]', 'after --: the utility and its arguments')
    .option('-b, --batch', 'batch mode: no utility; the jail is left standing and the BE mounted (be unjail removes it)')
    .option('-U, --keep', 'leave the jail and the mount when the utility ends')
    .option('-o, --param <param=value>', 'set a jail(8) parameter (repeatable)', (v: string) => (jailOps.push(v), v))
    .option('-u, --unset <param>', 'unset a jail(8) parameter, a default too; host.hostname and path go back to the default (repeatable)', (v: string) => (jailOps.push({ unset: v }), v))
    .option('--ip4 <addr>', 'ip4.addr for the jail')
    .option('--vnet <interface>', 'own network stack with this interface')
    .option('--conf', 'print the jail as a jail.conf(5) block and exit')
    .action(async (name: string, command: string[], opts, cmd: Command) => {
      const ctx = await context(cmd);
      const { requireBe } = await import('../be/context.js');
      const boot = await import('../boot/index.js');
      const be = await requireBe(ctx, name);
      const jopts = { params: jailOps, ip4: opts.ip4, vnetInterface: opts.vnet, argv: command, batch: !!opts.batch, keep: !!opts.keep };
      if (opts.conf) {
        const { mountedDatasets } = await import('../be/access.js');
        const { defaultShareDir } = await import('../share/share.js');
        const path = boot.requestedPath(jopts) ?? (await mountedDatasets(ctx, be)).get(be) ?? (await defaultShareDir(ctx, be));
        process.stdout.write(boot.jailConf(boot.jailParams(be, path, jopts)));
        return;
      }
      const status = await boot.bootMethods.jail.boot(ctx, be, jopts);
      ctx.runner.flushScript();
      if (status !== 0) process.exit(status);
    });

  changing(program.command('ujail').alias('unjail'))
    .description("remove a BE's jail (by jail id, jail name or BE), unmount what it left and the BE (bectl unjail)")
    .usage('{jailId | jailName | be}')
    .argument('<target>', 'a BE (never read as a jail id), a jail id or a jail name')
    .action(async (target: string, _opts, cmd: Command) => {
      const ctx = await context(cmd);
      const { bootMethods } = await import('../boot/index.js');
      await bootMethods.jail.stop(ctx, target);
      ctx.runner.flushScript();
    });

  changing(program.command('bootnfs'))
    .description('boot the shared BE with its root on NFS: bhyve(8) (bhyveload, bhyve, bhyvectl --destroy) on FreeBSD, QEMU from the network in a private network on Linux (--vmm)')
    .argument('<be>')
    .option('--vmm <vmm>', 'bhyve or qemu (default: bhyve on FreeBSD, qemu elsewhere)')
    .option('--vm <name>', 'bhyve: VM name')
    .option('--address <ip/mask>', "bhyve: the guest's address, e.g. 192.168.2.10/24")
    .option('--mac <mac>', "the guest's MAC address")
    .option('--gateway <ip>', 'bhyve: default gateway')
    .option('--server <ip>', 'bhyve: NFS server (default: the gateway)')
    .option('--memory <size>', 'bhyve: guest memory', '1G')
    .option('--tap <tapN>', 'bhyve: tap interface (bridged to the NFS server)', 'tap0')
    .option('--nmdm <n>', 'bhyve: console on /dev/nmdmNA (attach: cu -l /dev/nmdmNB)', '0')
    .option('--path <path>', 'bhyve: server path of the BE (default: where it is shared from)')
    .action(async (name: string, opts, cmd: Command) => {
      const ctx = await context(cmd);
      const { requireBe } = await import('../be/context.js');
      if (vmmOf(ctx, opts) === 'qemu') return qemuBoot(ctx, await requireBe(ctx, name), opts);
      for (const f of ['vm', 'address', 'mac'] as const) if (!opts[f]) throw new UsageError(`bootnfs --vmm bhyve: --${f} is required`);
      const { bootMethods } = await import('../boot/index.js');
      const status = await bootMethods.bhyve.boot(ctx, await requireBe(ctx, name), {
        vm: opts.vm,
        address: opts.address,
        mac: opts.mac,
        gateway: opts.gateway,
        server: opts.server,
        memory: opts.memory,
        tap: opts.tap,
        nmdm: Number(opts.nmdm),
        path: opts.path,
      });
      ctx.runner.flushScript();
      if (status !== 0) process.exit(status);
    });

  changing(program.command('bootpxe'))
    .description('boot a VM from the network: bhyve UEFI firmware on a tap where be sharepxe answers (FreeBSD), or QEMU with its own namespace, ganesha and be pxe serve (Linux)')
    .argument('<be>')
    .option('--vmm <vmm>', 'bhyve or qemu (default: bhyve on FreeBSD, qemu elsewhere)')
    .option('--vm <name>', 'bhyve: VM name')
    .option('--tap <tapN>', 'bhyve: tap interface', 'tap0')
    .option('--memory <size>', 'bhyve: guest memory', '1G')
    .option('--mac <mac>', "the guest's MAC address")
    .option('--nmdm <n>', 'bhyve: console on /dev/nmdmNA', '0')
    .action(async (name: string, opts, cmd: Command) => {
      const ctx = await context(cmd);
      const { requireBe } = await import('../be/context.js');
      if (vmmOf(ctx, opts) === 'qemu') return qemuBoot(ctx, await requireBe(ctx, name), opts);
      if (!opts.vm) throw new UsageError('bootpxe --vmm bhyve: --vm is required');
      const { bootMethods } = await import('../boot/index.js');
      const status = await bootMethods.pxe.boot(ctx, await requireBe(ctx, name), { vm: opts.vm, tap: opts.tap, memory: opts.memory, mac: opts.mac, nmdm: Number(opts.nmdm) });
      ctx.runner.flushScript();
      if (status !== 0) process.exit(status);
    });

  for (const c of program.commands.filter((x) => x.name() === 'bootnfs' || x.name() === 'bootpxe')) qemuFlags(c);
}
