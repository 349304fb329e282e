/**
 * bhyve(8) with an NFS root (the talk's slide 48): the BE's NFS file handle from mountd through
 * the MOUNT protocol, bhyveload(8) with the loader variables nfs_diskless.c reads
 * (boot.netif.*, boot.nfsroot.*) and vfs.root.mountfrom, then bhyve(8) with virtio-net on a tap
 * and an nmdm(4) console, then `bhyvectl --destroy` when the guest exits (bhyve exits 0 on a
 * guest reboot: the guest is loaded and started again).
 */
import type { BeContext } from '../be/context.js';
import { mountedDatasets } from '../be/access.js';
import { BeError } from '../sys/errors.js';
import { defaultShareDir } from '../share/share.js';
import { getFileHandle, loaderHandle, type MountClientOptions } from '../share/mountproto.js';
import { parseIpv4, formatIpv4, prefixMask } from '../share/spec.js';
import { requireFreeBSD, checkVmName, checkMemory, checkTap, checkMac, nmdmDevice, type BootMethod } from './method.js';

export interface NfsBootOptions {
  vm: string;
  /** IP/prefix (192.168.2.10/24) or IP/netmask (192.168.2.10/255.255.255.0). */
  address: string;
  mac: string;
  gateway?: string;
  /** NFS server (default: the gateway). */
  server?: string;
  memory?: string;
  tap?: string;
  cpus?: number;
  /** nmdm unit for the console (default 0: /dev/nmdm0A, attach with cu -l /dev/nmdm0B). */
  nmdm?: number;
  /** Path exported on the server (default: where the BE is shared from). */
  path?: string;
  mount?: MountClientOptions;
}

export function parseAddress(text: string): { ip: string; netmask: string } {
  const slash = text.indexOf('/');
  if (slash < 0) throw new BeError(`invalid address '${text}': expected IP/MASK like 192.168.2.10/24`);
  const ip = formatIpv4(parseIpv4(text.slice(0, slash), 'address'));
  const mask = text.slice(slash + 1);
  if (/^\d{1,2}$/.test(mask) && Number(mask) <= 32) return { ip, netmask: formatIpv4(prefixMask(Number(mask))) };
  const m = parseIpv4(mask, 'netmask');
  if (!/^1*0*$/.test(m.toString(2).padStart(32, '0'))) throw new BeError(`invalid netmask '${mask}'`);
  return { ip, netmask: formatIpv4(m) };
}

/** The loader environment for an NFSv3 root (names as sys/nfs/nfs_diskless.c reads them). */
export function nfsRootEnv(o: { mac: string; ip: string; netmask: string; gateway?: string; server: string; path: string; handle: Buffer }): Array<[string, string]> {
  const env: Array<[string, string]> = [
    ['boot.netif.name', 'vtnet0'],
    ['boot.netif.hwaddr', o.mac],
    ['boot.netif.ip', o.ip],
    ['boot.netif.netmask', o.netmask],
  ];
  if (o.gateway) env.push(['boot.netif.gateway', o.gateway]);
  env.push(
    ['boot.nfsroot.server', o.server],
    ['boot.nfsroot.nfshandle', loaderHandle(o.handle)],
    ['boot.nfsroot.nfshandlelen', String(o.handle.length)],
    ['boot.nfsroot.path', o.path],
    ['vfs.root.mountfrom', `nfs:${o.server}:${o.path}`],
    ['vfs.root.mountfrom.options', 'rw'],
  );
  return env;
}

/** bhyveload(8): bhyveload [-c cons-dev] [-e name=value]... [-h host-path] [-m memsize] vmname */
export function bhyveloadArgv(o: { vm: string; hostPath: string; env: Array<[string, string]>; memory: string; console?: string }): string[] {
  const argv = ['bhyveload'];
  if (o.console) argv.push('-c', o.console);
  argv.push('-h', o.hostPath);
  for (const [k, v] of o.env) argv.push('-e', `${k}=${v}`);
  argv.push('-m', o.memory, o.vm);
  return argv;
}

/**
 * bhyve(8): -c cpus -m mem -A (ACPI) -H (yield on HLT) -P (exit on PAUSE), slot 0 hostbridge,
 * slot 1 lpc, slot 2 virtio-net on the tap, com1 on the nmdm console; a bootrom when given.
 */
export function bhyveArgv(o: { vm: string; memory: string; cpus?: number; tap: string; mac?: string; console: string; bootrom?: string }): string[] {
  const net = `2:0,virtio-net,${o.tap}${o.mac ? `,mac=${o.mac}` : ''}`;
  const argv = ['bhyve', '-c', String(o.cpus ?? 1), '-m', o.memory, '-A', '-H', '-P', '-s', '0:0,hostbridge', '-s', '1:0,lpc', '-s', net, '-l', `com1,${o.console}`];
  if (o.bootrom) argv.push('-l', `bootrom,${o.bootrom}`);
  argv.push(o.vm);
  return argv;
}

/** bhyvectl(8): free the VM's resources after bhyve exits. */
export function bhyvectlDestroyArgv(vm: string): string[] {
  return ['bhyvectl', '--destroy', `--vm=${vm}`];
}

/** Run bhyve until the guest powers off or halts; reboot (exit 0) loads it again. Returns bhyve's last status. */
export async function runVm(ctx: BeContext, vm: string, load: string[] | undefined, bhyve: string[]): Promise<number> {
  if (ctx.runner.dryRun) {
    if (load) await ctx.runner.change(load);
    await ctx.runner.change(bhyve, { allowFailure: true });
    await ctx.runner.change(bhyvectlDestroyArgv(vm), { allowFailure: true });
    return 0;
  }
  for (;;) {
    let status: number;
    try {
      if (load) await ctx.runner.change(load, { inherit: true });
      status = (await ctx.runner.change(bhyve, { inherit: true, allowFailure: true })).status;
    } finally {
      await ctx.runner.change(bhyvectlDestroyArgv(vm), { allowFailure: true });
    }
    if (status !== 0) return status === 1 || status === 2 ? 0 : status;
  }
}

export async function bootNfs(ctx: BeContext, be: string, opts: NfsBootOptions): Promise<number> {
  requireFreeBSD(ctx, 'bhyve(8)');
  const vm = checkVmName(opts.vm);
  const { ip, netmask } = parseAddress(opts.address);
  const mac = checkMac(opts.mac);
  const gateway = opts.gateway === undefined ? undefined : formatIpv4(parseIpv4(opts.gateway, 'gateway'));
  const serverText = opts.server ?? gateway;
  if (!serverText) throw new BeError('bootnfs: give --server (the NFS server) or --gateway');
  const server = formatIpv4(parseIpv4(serverText, 'server'));
  const memory = checkMemory(opts.memory ?? '1G');
  const tap = checkTap(opts.tap ?? 'tap0');
  const console = nmdmDevice(opts.nmdm ?? 0);
  const path = opts.path ?? (await mountedDatasets(ctx, be)).get(be) ?? (await defaultShareDir(ctx, be));
  const fh = await getFileHandle(server, path, opts.mount);
  const env = nfsRootEnv({ mac, ip, netmask, gateway, server, path, handle: fh.handle });
  ctx.runner.note(`NFS file handle of ${server}:${path} from its mountd: ${loaderHandle(fh.handle)} (${fh.handle.length} bytes)`);
  const load = bhyveloadArgv({ vm, hostPath: path, env, memory, console });
  return runVm(ctx, vm, load, bhyveArgv({ vm, memory, cpus: opts.cpus, tap, mac, console }));
}

/** Stop a bhyve guest by destroying its VM (every bhyve boot method stops the same way). */
export async function stopVm(ctx: BeContext, _be: string, opts?: { vm?: string }): Promise<void> {
  requireFreeBSD(ctx, 'bhyvectl(8)');
  if (!opts?.vm) throw new BeError('which VM? (--vm)');
  await ctx.runner.change(bhyvectlDestroyArgv(checkVmName(opts.vm)));
}

export const bhyveNfsMethod: BootMethod<NfsBootOptions> = {
  name: 'bhyve-nfs',
  runsHere: (ctx) => ctx.flavour === 'freebsd',
  boot: bootNfs,
  stop: stopVm,
};
