/**
 * `be pxe serve`'s settings: the keys of its config file (the long flag names), flags overlaid on
 * a file, and every value checked — addresses and networks against each other and against this
 * host's interfaces — so that a bad setting is one `be: …` line before anything starts. Knows
 * nothing of BEs: `be sharepxe` (src/boot/sharepxe.ts) fills in the TFTP root and root-path.
 */
import { stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import type { Runner } from '../sys/run.js';
import { allInterfaces, runningInterfaces, type InterfaceTable } from '../sys/ifaddrs.js';
import { BeError } from '../sys/errors.js';
import { parseConfigText, readConfigFile } from '../sys/configfile.js';
import { cidrString, inCidr, isIpv4, parseCidr, parseIpv4, type Cidr } from '../net/ipv4.js';
import { parseMac } from '../net/mac.js';

/** Keys of the config file: the long flag names. */
export const PXE_KEYS = [
  'address', 'interface', 'range', 'subnet', 'router', 'dns', 'tftp-root', 'boot-bios', 'boot-efi',
  'root-path', 'host', 'proxy', 'lease-file', 'user', 'no-dhcp', 'no-tftp', 'tftp-port-range',
  'domain', 'boot-ipxe',
] as const;
export type PxeKey = (typeof PXE_KEYS)[number];
/** Values as they come from flags or a config file, not yet checked. */
export type PxeInput = Partial<Record<PxeKey, unknown>>;

export interface PxeHost {
  mac: string;
  ip: string;
  hostname?: string;
}

/** Checked settings. */
export interface PxeSettings {
  address: string;
  interface?: string;
  /** The host's interfaces the settings were checked against (every one, down or without carrier, when the running ones did not answer). */
  interfaces: InterfaceTable;
  subnet?: string;
  range?: string;
  router?: string;
  dns: string[];
  tftpRoot?: string;
  /** Transfer ports [low, high]; default: any free port. */
  tftpPortRange?: [number, number];
  bootBios: string;
  bootEfi: string;
  /** Boot file (or URL) for clients whose user class is iPXE: the second stage of a chain load. */
  bootIpxe?: string;
  /** Option 15. */
  domain?: string;
  rootPath?: string;
  hosts: PxeHost[];
  proxy: boolean;
  leaseFile?: string;
  user: string;
  dhcp: boolean;
  tftp: boolean;
}

export const DEFAULT_BOOT_BIOS = 'pxeboot';
export const DEFAULT_BOOT_EFI = 'loader.efi';
export const DEFAULT_USER = 'nobody';

/** Where leases live unless --lease-file says otherwise (a directory of their own). */
export function defaultLeaseFile(platform: NodeJS.Platform = process.platform): string {
  return platform === 'freebsd' ? '/var/db/be/pxe/leases' : '/var/lib/be/pxe/leases';
}

// ---------------------------------------------------------------------------------------------
// Config file

/** Read a config file (JSON or YAML, told apart as src/sys/configfile.ts says) into raw values; unknown keys are refused. */
export async function readPxeConfig(file: string): Promise<PxeInput> {
  return pxeInput(await readConfigFile(file), file);
}

/** Parse config text read from FILE; every key must be a long flag name. */
export function parsePxeConfig(text: string, file: string): PxeInput {
  return pxeInput(parseConfigText(text, file), file);
}

function pxeInput(data: Record<string, unknown>, file: string): PxeInput {
  const out: PxeInput = {};
  for (const [k, v] of Object.entries(data)) {
    if (!(PXE_KEYS as readonly string[]).includes(k)) throw new BeError(`--config ${file}: unknown key '${k}'`);
    out[k as PxeKey] = v;
  }
  return out;
}

/** File values overlaid by flag values (flags win; undefined means "not given"). */
export function mergePxeInput(file: PxeInput, flags: PxeInput): PxeInput {
  const out: PxeInput = { ...file };
  for (const [k, v] of Object.entries(flags)) if (v !== undefined) out[k as PxeKey] = v;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Checking

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IFNAME = /^[A-Za-z0-9_.:@-]{1,15}$/;
const BOOT_FILE = /^[\x21-\x7e]{1,127}$/;

function str(input: PxeInput, key: PxeKey): string | undefined {
  const v = input[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' && typeof v !== 'number') throw new BeError(`--${key}: expected a string, not ${JSON.stringify(v)}`);
  return String(v).trim();
}

function bool(input: PxeInput, key: PxeKey): boolean {
  const v = input[key];
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw new BeError(`--${key}: expected true or false, not ${JSON.stringify(v)}`);
  return v;
}

/** A string or an array of strings; each may itself be comma-separated (for --dns). */
function list(input: PxeInput, key: PxeKey, splitCommas: boolean): string[] {
  const v = input[key];
  if (v === undefined || v === null) return [];
  const items = Array.isArray(v) ? v : [v];
  const out: string[] = [];
  for (const item of items) {
    if (typeof item !== 'string') throw new BeError(`--${key}: expected a string, not ${JSON.stringify(item)}`);
    for (const part of splitCommas ? item.split(',') : [item]) if (part.trim()) out.push(part.trim());
  }
  return out;
}

function checkIp(key: string, v: string): string {
  if (!isIpv4(v)) throw new BeError(`--${key} ${v}: not an IPv4 address`);
  return v;
}

export function parseCidrFlag(key: string, v: string): Cidr {
  const c = /^\d+\.\d+\.\d+\.\d+\/\d{1,2}$/.test(v) ? parseCidr(v) : undefined;
  if (!c || c.prefix < 1) throw new BeError(`--${key} ${v}: not a CIDR network (e.g. 192.168.2.0/24)`);
  if (c.base !== c.address) throw new BeError(`--${key} ${v}: host bits set (the network is ${cidrString(c)})`);
  return { base: c.base, prefix: c.prefix, mask: c.mask };
}

/** True when SUBNET does not hold ADDRESS: the server reaches that network only through relays. */
export function relayedSubnet(address: string, subnet: string): boolean {
  return !inCidr(parseCidrFlag('subnet', subnet), parseIpv4(address)!);
}

/** MAC in any common spelling → "aa:bb:cc:dd:ee:ff". */
export function normalizeMac(v: string, key = 'mac'): string {
  const mac = parseMac(v);
  if (!mac) throw new BeError(`${key === 'mac' ? 'MAC' : `--${key}`} ${v}: not a MAC address (e.g. 52:54:00:12:34:56)`);
  return mac;
}

/** "MAC=IP[,NAME]" */
export function parseHost(v: string): PxeHost {
  const m = /^([^=]+)=([^,]+)(?:,(.*))?$/.exec(v.trim());
  if (!m) throw new BeError(`--host ${v}: expected MAC=IP[,NAME]`);
  const mac = normalizeMac(m[1], 'host');
  if (!isIpv4(m[2].trim())) throw new BeError(`--host ${v}: ${m[2]} is not an IPv4 address`);
  const name = m[3]?.trim();
  if (name !== undefined && !HOSTNAME.test(name)) throw new BeError(`--host ${v}: bad host name '${name}'`);
  return { mac, ip: m[2].trim(), ...(name ? { hostname: name } : {}) };
}

/** The subnet of the interface carrying ADDRESS; with IFNAME, of that interface (preferring the one holding ADDRESS). */
export function localSubnet(address: string, ifname: string | undefined, table: InterfaceTable): Cidr | undefined {
  const ip = parseIpv4(address)!;
  const candidates: Cidr[] = [];
  for (const [name, cidrs] of table) {
    if (ifname && name !== ifname) continue;
    for (const text of cidrs) {
      const cidr = parseCidr(text);
      if (!cidr) continue;
      const net = { base: cidr.base, prefix: cidr.prefix, mask: cidr.mask };
      if (cidr.address === ip) return net;
      if (ifname && inCidr(net, ip)) candidates.push(net);
    }
  }
  return candidates[0];
}

/**
 * Check every value; the first bad one is reported as one line naming it. File-system checks
 * (tftp root exists) are done here too, so a bad config starts nothing.
 */
export async function checkPxeSettings(input: PxeInput, opts: { platform?: NodeJS.Platform; checkFiles?: boolean; runner?: Runner } = {}): Promise<PxeSettings> {
  const platform = opts.platform ?? process.platform;
  // Running interfaces first; interfaces that are down or without carrier (a server started at boot
  // before its link, a bridge whose ports are not up yet) only when those do not answer.
  let interfaces = runningInterfaces();
  let everyInterface = false;
  const widen = async (): Promise<void> => {
    if (everyInterface || !opts.runner) return;
    everyInterface = true;
    // the interfaces are this host's, whichever platform the settings are for
    interfaces = await allInterfaces(opts.runner).catch(() => interfaces);
  };
  const address = str(input, 'address');
  if (!address) throw new BeError('--address: needed (the server address clients talk to)');
  checkIp('address', address);
  const dhcp = !bool(input, 'no-dhcp');
  const tftp = !bool(input, 'no-tftp');
  if (!dhcp && !tftp) throw new BeError('--no-dhcp and --no-tftp: nothing left to serve');
  const proxy = bool(input, 'proxy');

  const ifname = str(input, 'interface');
  if (ifname !== undefined) {
    if (!IFNAME.test(ifname)) throw new BeError(`--interface ${ifname}: not an interface name`);
    if (!interfaces.has(ifname)) await widen();
    if (!interfaces.has(ifname)) throw new BeError(`--interface ${ifname}: no such interface`);
  }
  const subnetText = str(input, 'subnet');
  // A --subnet that does not hold --address is a network served through a DHCP relay agent: its
  // requests arrive with giaddr in it, and its clients reach --address through their router.
  let subnet = subnetText !== undefined ? parseCidrFlag('subnet', subnetText) : undefined;

  const router = str(input, 'router');
  if (router !== undefined) checkIp('router', router);
  const dns = list(input, 'dns', true).map((d) => checkIp('dns', d));
  const hosts = list(input, 'host', false).map(parseHost);
  const range = str(input, 'range');

  if (dhcp && !proxy) {
    if (!subnet && !localSubnet(address, ifname, interfaces)) await widen();
    subnet ??= localSubnet(address, ifname, interfaces);
    if (!subnet) throw new BeError(`--subnet: needed (no interface carries ${address})`);
    if (range === undefined && hosts.length === 0) throw new BeError('--range: needed (or --host reservations, or --proxy)');
  }
  if (range !== undefined) {
    if (proxy) throw new BeError(`--range ${range}: not used with --proxy (the network's own DHCP server hands out addresses)`);
    const m = /^\s*([\d.]+)\s*-\s*([\d.]+)\s*$/.exec(range);
    if (!m || !isIpv4(m[1]) || !isIpv4(m[2])) throw new BeError(`--range ${range}: expected FIRST-LAST (e.g. 10.0.0.100-10.0.0.199)`);
    if (parseIpv4(m[1])! > parseIpv4(m[2])!) throw new BeError(`--range ${range}: ${m[1]} comes after ${m[2]}`);
    if (subnet && (!inCidr(subnet, parseIpv4(m[1])!) || !inCidr(subnet, parseIpv4(m[2])!))) throw new BeError(`--range ${range} is outside subnet ${cidrString(subnet)}`);
  }
  if (subnet && router !== undefined && !inCidr(subnet, parseIpv4(router)!)) throw new BeError(`--router ${router} is outside subnet ${cidrString(subnet)}`);
  if (dhcp && !proxy && subnet && !inCidr(subnet, parseIpv4(address)!) && router === undefined) {
    throw new BeError(`--router: needed for --subnet ${cidrString(subnet)}, which does not hold --address ${address} (a relayed network reaches the server through its router)`);
  }
  const seen = new Map<string, string>();
  for (const h of hosts) {
    if (subnet && !inCidr(subnet, parseIpv4(h.ip)!)) throw new BeError(`--host ${h.mac}=${h.ip}: ${h.ip} is outside subnet ${cidrString(subnet)}`);
    if (seen.has(h.ip)) throw new BeError(`--host ${h.mac}=${h.ip}: ${h.ip} is also reserved for ${seen.get(h.ip)}`);
    seen.set(h.ip, h.mac);
  }

  const bootBios = str(input, 'boot-bios') ?? DEFAULT_BOOT_BIOS;
  const bootEfi = str(input, 'boot-efi') ?? DEFAULT_BOOT_EFI;
  for (const [k, v] of [['boot-bios', bootBios], ['boot-efi', bootEfi]] as const) {
    if (!BOOT_FILE.test(v)) throw new BeError(`--${k} ${JSON.stringify(v)}: not a boot file name (printable, no spaces, under 128 bytes)`);
  }
  const bootIpxe = str(input, 'boot-ipxe');
  if (bootIpxe !== undefined && !BOOT_FILE.test(bootIpxe)) throw new BeError(`--boot-ipxe ${JSON.stringify(bootIpxe)}: not a boot file name or URL (printable, no spaces, under 128 bytes)`);
  const domain = str(input, 'domain');
  if (domain !== undefined && !HOSTNAME.test(domain)) throw new BeError(`--domain ${domain}: not a domain name`);
  const rootPath = str(input, 'root-path');
  if (rootPath !== undefined && !/^[\x21-\x7e]{1,255}$/.test(rootPath)) throw new BeError(`--root-path ${JSON.stringify(rootPath)}: not a root path (e.g. 10.0.0.1:/be/default)`);

  let tftpRoot = str(input, 'tftp-root');
  if (tftp) {
    if (!tftpRoot) throw new BeError('--tftp-root: needed (the directory served over TFTP), or --no-tftp');
    tftpRoot = resolve(tftpRoot);
    const st = opts.checkFiles === false ? { isDirectory: () => true } : await stat(tftpRoot).catch(() => undefined);
    if (!st) throw new BeError(`--tftp-root ${tftpRoot}: no such directory`);
    if (!st.isDirectory()) throw new BeError(`--tftp-root ${tftpRoot}: not a directory`);
  }
  const portRangeText = str(input, 'tftp-port-range');
  let tftpPortRange: [number, number] | undefined;
  if (portRangeText !== undefined) {
    // Transfers open their ports after root is dropped: reserved ports (below 1024) cannot be used.
    const m = /^\s*(\d{1,5})\s*:\s*(\d{1,5})\s*$/.exec(portRangeText);
    const [low, high] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
    if (!m || low < 1024 || high > 65535 || low > high) throw new BeError(`--tftp-port-range ${portRangeText}: expected LOW:HIGH within 1024-65535 (e.g. 49152:49407)`);
    tftpPortRange = [low, high];
  }

  let leaseFile = str(input, 'lease-file');
  if (leaseFile !== undefined) {
    if (!isAbsolute(leaseFile)) leaseFile = resolve(leaseFile);
    if (leaseFile.endsWith('/')) throw new BeError(`--lease-file ${leaseFile}: a file name, not a directory`);
  }
  if (dhcp && !proxy) leaseFile ??= defaultLeaseFile(platform);
  const user = str(input, 'user') ?? DEFAULT_USER;
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?$/.test(user)) throw new BeError(`--user ${user}: not a user name`);

  return {
    address, ...(ifname ? { interface: ifname } : {}), interfaces,
    ...(subnet ? { subnet: cidrString(subnet) } : {}),
    ...(range !== undefined ? { range } : {}),
    ...(router !== undefined ? { router } : {}),
    dns, ...(tftp ? { tftpRoot } : {}), ...(tftp && tftpPortRange ? { tftpPortRange } : {}), bootBios, bootEfi,
    ...(bootIpxe !== undefined ? { bootIpxe } : {}), ...(domain !== undefined ? { domain } : {}),
    ...(rootPath !== undefined ? { rootPath } : {}),
    hosts, proxy, ...(dhcp && leaseFile && !proxy ? { leaseFile } : {}), user, dhcp, tftp,
  };
}

/** Flags that reproduce SETTINGS (defaults written out): what `be -n pxe serve` prints. */
export function pxeServeArgv(s: PxeSettings): string[] {
  const out = ['--address', s.address];
  const opt = (flag: string, v: string | undefined) => {
    if (v !== undefined) out.push(flag, v);
  };
  opt('--interface', s.interface);
  if (s.dhcp) {
    opt('--subnet', s.subnet);
    opt('--range', s.range);
    opt('--router', s.router);
    for (const d of s.dns) out.push('--dns', d);
    opt('--domain', s.domain);
    out.push('--boot-bios', s.bootBios, '--boot-efi', s.bootEfi);
    opt('--boot-ipxe', s.bootIpxe);
    opt('--root-path', s.rootPath);
    for (const h of s.hosts) out.push('--host', `${h.mac}=${h.ip}${h.hostname ? `,${h.hostname}` : ''}`);
    if (s.proxy) out.push('--proxy');
    opt('--lease-file', s.leaseFile);
  } else out.push('--no-dhcp');
  if (s.tftp) {
    opt('--tftp-root', s.tftpRoot);
    if (s.tftpPortRange) out.push('--tftp-port-range', s.tftpPortRange.join(':'));
  } else out.push('--no-tftp');
  out.push('--user', s.user);
  return out;
}

/** The DHCP server's boot-file table: option 93 architecture → file. */
export function bootFileTable(s: Pick<PxeSettings, 'bootBios' | 'bootEfi'>): Record<string, string> {
  // 0: x86 BIOS; 6: x86 UEFI (32-bit); 7 and 9: x64 UEFI (RFC 4578, IANA processor architectures)
  return { 0: s.bootBios, 6: s.bootEfi, 7: s.bootEfi, 9: s.bootEfi, default: s.bootBios };
}
