import type { Command } from 'commander';
import { changing, collect, context, print } from './common.js';
import { BeError } from '../sys/errors.js';
import type { PxeInput, PxeSettings } from '../pxe/settings.js';
import type { BeContext } from '../be/context.js';

/** The platform the settings are for (its defaults, e.g. the lease file): FreeBSD's in a FreeBSD plan. */
function planPlatform(ctx: BeContext): NodeJS.Platform | undefined {
  return ctx.flavour === 'freebsd' ? 'freebsd' : undefined;
}

/** The `be pxe serve` / `be sharepxe` flags (the config file takes the same names as keys). */
function serveFlags(cmd: Command): Command {
  return cmd
    .option('--address <ip>', 'the server address clients talk to (DHCP option 54, next-server, TFTP)')
    .option('--interface <if>', 'the interface DHCP answers on (default: the one holding --address); replies leave by it only; the subnet is derived from it when --subnet is absent')
    .option('--range <first-last>', 'dynamic addresses, e.g. 10.0.0.100-10.0.0.199')
    .option('--subnet <cidr>', 'client network (default: the subnet of the interface holding --address); one that does not hold --address is served through a DHCP relay agent and needs --router')
    .option('--router <ip>', 'default gateway for clients (option 3)')
    .option('--dns <ip>', 'DNS server for clients (option 6; repeatable)', collect)
    .option('--tftp-root <dir>', 'directory served read-only over TFTP')
    .option('--tftp-port-range <low:high>', 'UDP ports for TFTP transfers, for a firewall rule (default: any free port)')
    .option('--boot-bios <file>', 'boot file for BIOS PXE clients (default pxeboot)')
    .option('--boot-efi <file>', 'boot file for x64 UEFI clients (default loader.efi)')
    .option('--boot-ipxe <file|url>', 'boot file or URL for clients whose user class is iPXE (chain loading)')
    .option('--domain <name>', 'domain name for clients (option 15)')
    .option('--root-path <path>', 'option 17, e.g. 10.0.0.1:/be/default for an NFS root')
    .option('--host <mac=ip[,name]>', 'reserve an address (and host name) for a MAC (repeatable)', collect)
    .option('--proxy', 'proxyDHCP: only boot information, beside the network\'s own DHCP server (ports 67 and 4011)')
    .option('--lease-file <file>', 'lease journal (default /var/db/be/pxe/leases on FreeBSD, /var/lib/be/pxe/leases on Linux)')
    .option('--user <user>', 'run as this user once the ports are bound (default nobody)')
    .option('--config <file>', 'JSON (or .yaml) file with the same keys as these flags; flags override it')
    .option('--no-dhcp', 'serve TFTP only')
    .option('--no-tftp', 'serve DHCP only');
}

/** Flags given on the command line, as config keys. */
function flagInput(opts: Record<string, unknown>, cmd: Command): PxeInput {
  const fromCli = (k: string) => cmd.getOptionValueSource(k) === 'cli';
  return {
    address: opts.address,
    interface: opts.interface,
    range: opts.range,
    subnet: opts.subnet,
    router: opts.router,
    dns: opts.dns,
    'tftp-root': opts.tftpRoot,
    'tftp-port-range': opts.tftpPortRange,
    'boot-bios': opts.bootBios,
    'boot-efi': opts.bootEfi,
    'boot-ipxe': opts.bootIpxe,
    domain: opts.domain,
    'root-path': opts.rootPath,
    host: opts.host,
    proxy: opts.proxy,
    'lease-file': opts.leaseFile,
    user: opts.user,
    'no-dhcp': fromCli('dhcp') ? true : undefined,
    'no-tftp': fromCli('tftp') ? true : undefined,
  };
}

async function gatherInput(opts: Record<string, unknown>, cmd: Command): Promise<PxeInput> {
  const { readPxeConfig, mergePxeInput } = await import('../pxe/settings.js');
  const file = typeof opts.config === 'string' ? await readPxeConfig(opts.config) : {};
  return mergePxeInput(file, flagInput(opts, cmd));
}

/** -n: the servers are not started; the script shows the serve step with every setting spelled out. */
async function dryRun(ctx: BeContext, settings: PxeSettings): Promise<void> {
  const [{ lookupUser }, { pxeServeArgv }] = await Promise.all([import('../sys/privileges.js'), import('../pxe/settings.js')]);
  await lookupUser(ctx.runner, settings.user);
  await ctx.runner.change(['be', 'pxe', 'serve', ...pxeServeArgv(settings)]);
  ctx.runner.flushScript();
}

/** The network libraries' own errors (DhcpError from src/net/dhcp) reach the user as `be: …` lines, word for word. */
function asBeError(e: unknown): never {
  throw e instanceof Error && e.name === 'DhcpError' ? new BeError(e.message, { cause: e }) : e;
}

/** Network boot: pxe serve (DHCP + TFTP), sharepxe (a BE over PXE and NFS), wol. */
export function registerPxeCommands(program: Command): void {
  const pxe = program.command('pxe').description('network boot services: DHCP (with PXE and proxyDHCP) and TFTP');

  serveFlags(changing(pxe.command('serve')))
    .description('run the DHCP and TFTP servers in the foreground until SIGINT or SIGTERM')
    .action(async (opts, cmd: Command) => {
      const { checkPxeSettings } = await import('../pxe/settings.js');
      const ctx = await context(cmd);
      const settings = await checkPxeSettings(await gatherInput(opts, cmd), { runner: ctx.runner, platform: planPlatform(ctx) });
      if (ctx.runner.dryRun) return dryRun(ctx, settings);
      const { startPxe } = await import('../pxe/serve.js');
      const running = await startPxe(settings, { runner: ctx.runner }).catch(asBeError);
      await running.done;
    });

  serveFlags(changing(program.command('sharepxe')))
    .description("serve a BE over PXE: TFTP from its /boot, DHCP root-path to its NFS export (see sharenfs)")
    .argument('<be>')
    .action(async (name: string, opts, cmd: Command) => {
      const { checkPxeSettings } = await import('../pxe/settings.js');
      const { prepareSharePxe, bootFilesByRootPath } = await import('../boot/sharepxe.js');
      const input = await gatherInput(opts, cmd);
      const ctx = await context(cmd);
      // check the flags before touching the BE
      await checkPxeSettings({ ...input, 'tftp-root': input['tftp-root'] ?? '/', 'no-tftp': input['no-tftp'] }, { runner: ctx.runner, platform: planPlatform(ctx) });
      const plan = await prepareSharePxe(ctx, name, input);
      const settings = await checkPxeSettings(plan.input, { checkFiles: !(ctx.runner.dryRun && plan.mounted), runner: ctx.runner, platform: planPlatform(ctx) });
      if (ctx.runner.dryRun) {
        ctx.runner.note(`TFTP also serves ${plan.dir}/boot/* under those names (for TFTP-built loaders)`);
        return dryRun(ctx, settings);
      }
      const { startPxe } = await import('../pxe/serve.js');
      print(`sharing ${plan.be} from ${plan.dir}${plan.mounted ? ' (mounted now; left mounted)' : ''}: TFTP ${settings.tftpRoot ?? '-'}, root-path ${settings.rootPath ?? '-'}`);
      const running = await startPxe(settings, { runner: ctx.runner, files: bootFilesByRootPath(plan.dir) }).catch(asBeError);
      await running.done;
    });

  program
    .command('wol')
    .description('wake a machine: send a Wake-on-LAN magic packet for MAC')
    .argument('<mac>')
    .option('--broadcast <addr>', 'where to send it', '255.255.255.255')
    .option('--port <port>', 'UDP port (7 or 9)', '9')
    .action(async (mac: string, opts) => {
      const { wake } = await import('../boot/wol.js');
      const r = await wake(mac, { broadcast: opts.broadcast, port: opts.port });
      print(`sent magic packet for ${r.mac} to ${r.to}:${r.port}`);
    });
}
