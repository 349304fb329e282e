/**
 * `be pxe serve`: the DHCP server (src/net/dhcp) and the TFTP server (src/net/tftp) run together
 * in the foreground for network boot, configured by flags and/or a JSON or YAML file with the
 * same keys. Binds its ports as root, then drops to an unprivileged user. Knows nothing of BEs:
 * `be sharepxe` (sharepxe.ts) fills in the TFTP root and root-path for a BE.
 */
import { readFile, stat, mkdir, readdir, chown } from 'node:fs/promises';
import { basename, dirname, extname, isAbsolute, resolve } from 'node:path';
import { isIPv4 } from 'node:net';
import type { Runner } from '../sys/run.js';
import { allInterfaces, runningInterfaces, type InterfaceTable } from '../sys/ifaddrs.js';
import type { TftpFileProvider } from '../net/tftp/index.js';
import { BeError } from '../sys/errors.js';
import { parse as parseYaml } from 'yaml';

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

/** Read a JSON (or, for .yaml/.yml, YAML) config file into raw values; unknown keys are refused. */
export async function readPxeConfig(file: string): Promise<PxeInput> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new BeError(`--config ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parsePxeConfig(text, file, isYaml(file) ? (t) => parseYaml(t) as unknown : undefined);
}

function isYaml(file: string): boolean {
  const ext = extname(file).toLowerCase();
  return ext === '.yaml' || ext === '.yml';
}

/** Parse config text (JSON, or YAML with PARSEYAML); every key must be a long flag name. */
export function parsePxeConfig(text: string, file: string, parseYaml?: (text: string) => unknown): PxeInput {
  let data: unknown;
  try {
    data = parseYaml ? parseYaml(text) : JSON.parse(text);
  } catch (e) {
    throw new BeError(`--config ${file}: not valid ${parseYaml ? 'YAML' : 'JSON'}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) throw new BeError(`--config ${file}: expected an object of settings`);
  const out: PxeInput = {};
  for (const [k, v] of Object.entries(data as Record<string, unknown>)) {
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

function ipInt(ip: string): number {
  return ip.split('.').reduce((a, p) => ((a << 8) | Number(p)) >>> 0, 0);
}

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
  if (!isIPv4(v)) throw new BeError(`--${key} ${v}: not an IPv4 address`);
  return v;
}

export interface Cidr {
  base: number;
  prefix: number;
  mask: number;
}

export function parseCidrFlag(key: string, v: string): Cidr {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(v);
  if (!m || !isIPv4(m[1]) || Number(m[2]) > 32 || Number(m[2]) < 1) throw new BeError(`--${key} ${v}: not a CIDR network (e.g. 192.168.2.0/24)`);
  const prefix = Number(m[2]);
  const mask = (0xffffffff << (32 - prefix)) >>> 0;
  const base = (ipInt(m[1]) & mask) >>> 0;
  if (base !== ipInt(m[1])) throw new BeError(`--${key} ${v}: host bits set (the network is ${intIp(base)}/${prefix})`);
  return { base, prefix, mask };
}

function intIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function inCidr(c: Cidr, ip: string): boolean {
  return ((ipInt(ip) & c.mask) >>> 0) === c.base;
}

/** True when SUBNET does not hold ADDRESS: the server reaches that network only through relays. */
export function relayedSubnet(address: string, subnet: string): boolean {
  return !inCidr(parseCidrFlag('subnet', subnet), address);
}

export function cidrString(c: Cidr): string {
  return `${intIp(c.base)}/${c.prefix}`;
}

/** MAC in any common spelling → "aa:bb:cc:dd:ee:ff". */
export function normalizeMac(v: string, key = 'mac'): string {
  const hex = v.trim().toLowerCase();
  let digits: string | undefined;
  if (/^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$/.test(hex)) digits = hex.replace(/[:-]/g, '');
  else if (/^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$/.test(hex)) digits = hex.replace(/\./g, '');
  else if (/^[0-9a-f]{12}$/.test(hex)) digits = hex;
  if (!digits) throw new BeError(`${key === 'mac' ? 'MAC' : `--${key}`} ${v}: not a MAC address (e.g. 52:54:00:12:34:56)`);
  return digits.match(/../g)!.join(':');
}

/** "MAC=IP[,NAME]" */
export function parseHost(v: string): PxeHost {
  const m = /^([^=]+)=([^,]+)(?:,(.*))?$/.exec(v.trim());
  if (!m) throw new BeError(`--host ${v}: expected MAC=IP[,NAME]`);
  const mac = normalizeMac(m[1], 'host');
  if (!isIPv4(m[2].trim())) throw new BeError(`--host ${v}: ${m[2]} is not an IPv4 address`);
  const name = m[3]?.trim();
  if (name !== undefined && !HOSTNAME.test(name)) throw new BeError(`--host ${v}: bad host name '${name}'`);
  return { mac, ip: m[2].trim(), ...(name ? { hostname: name } : {}) };
}

/** The subnet of the interface carrying ADDRESS; with IFNAME, of that interface (preferring the one holding ADDRESS). */
export function localSubnet(address: string, ifname: string | undefined, table: InterfaceTable): Cidr | undefined {
  const candidates: Cidr[] = [];
  for (const [name, cidrs] of table) {
    if (ifname && name !== ifname) continue;
    for (const cidr of cidrs) {
      if (cidr.split('/')[0] === address) return cidrOf(cidr);
      if (ifname && inCidr(cidrOf(cidr), address)) candidates.push(cidrOf(cidr));
    }
  }
  return candidates[0];
}

function cidrOf(cidr: string): Cidr {
  const [ip, p] = cidr.split('/');
  const prefix = Number(p);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { base: (ipInt(ip) & mask) >>> 0, prefix, mask };
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
    if (!m || !isIPv4(m[1]) || !isIPv4(m[2])) throw new BeError(`--range ${range}: expected FIRST-LAST (e.g. 10.0.0.100-10.0.0.199)`);
    if (ipInt(m[1]) > ipInt(m[2])) throw new BeError(`--range ${range}: ${m[1]} comes after ${m[2]}`);
    if (subnet && (!inCidr(subnet, m[1]) || !inCidr(subnet, m[2]))) throw new BeError(`--range ${range} is outside subnet ${cidrString(subnet)}`);
  }
  if (subnet && router !== undefined && !inCidr(subnet, router)) throw new BeError(`--router ${router} is outside subnet ${cidrString(subnet)}`);
  if (dhcp && !proxy && subnet && !inCidr(subnet, address) && router === undefined) {
    throw new BeError(`--router: needed for --subnet ${cidrString(subnet)}, which does not hold --address ${address} (a relayed network reaches the server through its router)`);
  }
  const seen = new Map<string, string>();
  for (const h of hosts) {
    if (subnet && !inCidr(subnet, h.ip)) throw new BeError(`--host ${h.mac}=${h.ip}: ${h.ip} is outside subnet ${cidrString(subnet)}`);
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
    address, ...(ifname ? { interface: ifname } : {}),
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

// ---------------------------------------------------------------------------------------------
// Privileges

export interface Account {
  name: string;
  uid: number;
  gid: number;
}

/** Look a user up with getent(1) (passwd database: files, NIS, LDAP alike). */
export async function lookupUser(runner: Runner, user: string): Promise<Account> {
  const r = await runner.query(['getent', 'passwd', user], { allowFailure: true });
  const fields = r.stdout.split('\n')[0]?.split(':') ?? [];
  if (r.status !== 0 || fields.length < 4) throw new BeError(`--user ${user}: no such user`);
  return { name: fields[0], uid: Number(fields[2]), gid: Number(fields[3]) };
}

/**
 * The lease file's directory is handed to the unprivileged user (compaction renames there), so it
 * must be a directory of its own: refuse one that holds anything but the journal.
 */
export async function prepareLeaseDir(leaseFile: string): Promise<void> {
  const dir = dirname(leaseFile);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const base = basename(leaseFile);
  const others = (await readdir(dir)).filter((n) => n !== base && n !== `${base}.tmp`);
  if (others.length > 0) throw new BeError(`--lease-file ${leaseFile}: ${dir} holds other files (${others[0]}); give the leases a directory of their own`);
}

/** chown PATHS to the account, then setgroups([]), setgid, setuid. No-op unless running as root. */
export async function dropPrivileges(account: Account, paths: string[]): Promise<boolean> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0 || account.uid === 0) return false;
  for (const p of paths) await chown(p, account.uid, account.gid);
  process.setgroups!([]);
  process.setgid!(account.gid);
  process.setuid!(account.uid);
  if (process.getuid() !== account.uid || process.geteuid!() !== account.uid) throw new BeError(`--user ${account.name}: could not drop privileges`);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Running

export interface RunningPxe {
  /** Resolves once both servers are stopped (after `stop()` or a signal). */
  done: Promise<void>;
  stop(): Promise<void>;
  /** Ports bound (for tests with port overrides). */
  ports: { dhcp?: number; proxy?: number; tftp?: number };
  account?: Account;
  dropped: boolean;
}

export interface StartOptions {
  runner: Runner;
  log?: (line: string) => void;
  /** Memory files for the TFTP server (e.g. a generated pxelinux.cfg/default). */
  files?: TftpFileProvider;
  /** Port overrides for tests; defaults 67, 4011, 69. */
  ports?: { dhcp?: number; proxy?: number; tftp?: number; client?: number };
  /** Stop on SIGINT/SIGTERM (default true). */
  handleSignals?: boolean;
}

/** The DHCP server's boot-file table: option 93 architecture → file. */
export function bootFileTable(s: Pick<PxeSettings, 'bootBios' | 'bootEfi'>): Record<string, string> {
  // 0: x86 BIOS; 6: x86 UEFI (32-bit); 7 and 9: x64 UEFI (RFC 4578, IANA processor architectures)
  return { 0: s.bootBios, 6: s.bootEfi, 7: s.bootEfi, 9: s.bootEfi, default: s.bootBios };
}

/** Start TFTP then DHCP, drop privileges, and serve until a signal or `stop()`. */
export async function startPxe(s: PxeSettings, o: StartOptions): Promise<RunningPxe> {
  const log = o.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const account = await lookupUser(o.runner, s.user);
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (s.leaseFile && root && account.uid !== 0) await prepareLeaseDir(s.leaseFile);
  else if (s.leaseFile) await mkdir(dirname(s.leaseFile), { recursive: true });

  const { createTftpServer, TftpError } = await import('../net/tftp/index.js');
  const { DhcpServer } = await import('../net/dhcp/index.js');
  // The TFTP library's own errors become `be: …` lines with the same text.
  const tftpError = (e: unknown): unknown => (e instanceof TftpError ? new BeError(e.message, { cause: e }) : e);
  let tftp: ReturnType<typeof createTftpServer> | undefined;
  try {
    if (s.tftp) tftp = createTftpServer({ root: s.tftpRoot, address: s.address, port: o.ports?.tftp ?? 69, portRange: s.tftpPortRange, files: o.files, log: (line) => log(line) });
  } catch (e) {
    throw tftpError(e);
  }
  const dhcp = s.dhcp
    ? new DhcpServer({
      serverIp: s.address,
      // Checked above, also without carrier yet; DHCP binds to it once running (before, to the one
      // holding the address), and the subnet derived from it stands in meanwhile.
      interface: s.interface && runningInterfaces().has(s.interface) ? s.interface : undefined,
      subnet: s.subnet,
      range: s.range,
      router: s.router,
      dns: s.dns.length ? s.dns : undefined,
      domain: s.domain,
      reservations: s.hosts.map((h) => ({ mac: h.mac, ip: h.ip, hostname: h.hostname })),
      bootFiles: bootFileTable(s),
      ...(s.bootIpxe !== undefined ? { userClassBootFiles: { iPXE: s.bootIpxe } } : {}),
      rootPath: s.rootPath,
      nextServer: s.address,
      proxy: s.proxy,
      leaseFile: s.leaseFile,
      logger: (line) => log(`dhcp ${line}`),
      port: o.ports?.dhcp,
      proxyPort: o.ports?.proxy,
      clientPort: o.ports?.client,
    })
    : undefined;

  const ports: RunningPxe['ports'] = {};
  try {
    if (tftp) ports.tftp = (await tftp.start()).port;
    if (dhcp) {
      await dhcp.start();
      ports.dhcp = dhcp.port;
      if (s.proxy) ports.proxy = dhcp.proxyPort;
    }
  } catch (e) {
    await dhcp?.stop().catch(() => {});
    await tftp?.stop().catch(() => {});
    throw tftpError(e);
  }
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  let stopping: Promise<void> | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    log(`${sig}: stopping`);
    void stop();
  };
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (o.handleSignals !== false) {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      await tftp?.stop();
      await dhcp?.stop();
      const n = dhcp && !s.proxy ? dhcp.leases().length : undefined;
      log(`stopped${n !== undefined ? `; ${n} lease${n === 1 ? '' : 's'} kept in ${s.leaseFile}` : ''}`);
      finish();
    })();
    return stopping;
  };
  // from here on a signal stops cleanly (before anything is announced)
  if (o.handleSignals !== false) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }

  if (tftp) log(`tftp serving ${s.tftpRoot} on ${s.address}:${ports.tftp}`);
  if (dhcp && !s.proxy && s.subnet && relayedSubnet(s.address, s.subnet)) {
    log(`dhcp ${s.subnet} does not hold ${s.address}: it is served through DHCP relay agents (requests whose giaddr is in it)`);
  }

  let dropped = false;
  try {
    dropped = await dropPrivileges(account, dhcp?.ownedPaths() ?? []);
  } catch (e) {
    await stop().catch(() => {});
    throw e instanceof BeError ? e : new BeError(`--user ${s.user}: ${(e as Error).message}`);
  }
  if (dropped) log(`running as ${account.name} (uid ${account.uid})`);

  return { done, stop, ports, account, dropped };
}
