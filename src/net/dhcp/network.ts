/** IPv4 networks as the DHCP server needs them, and which local interface serves clients. */
import { runningInterfaces } from '../ifaddrs.js';
import { intToIp, ipToInt, isIp } from './codec.js';
import { DhcpError } from './errors.js';

export interface Network {
  base: number;
  mask: number;
  prefix: number;
}

export function toList(v: string | string[] | undefined): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter(Boolean);
}

export function needIp(what: string, v: string): number {
  if (!isIp(v)) throw new DhcpError(`${what}: bad IPv4 address ${JSON.stringify(v)}`);
  return ipToInt(v);
}

export function parseCidr(cidr: string): Network {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(cidr.trim());
  if (!m || !isIp(m[1]) || Number(m[2]) > 32) throw new DhcpError(`subnet: bad CIDR ${JSON.stringify(cidr)}`);
  const prefix = Number(m[2]);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { base: (ipToInt(m[1]) & mask) >>> 0, mask, prefix };
}

export function inNet(net: Network, ip: number): boolean {
  return ((ip & net.mask) >>> 0) === net.base;
}

export function broadcastOf(net: Network): number {
  return (net.base | (~net.mask >>> 0)) >>> 0;
}

/** The subnet broadcast address, for subnets that have one (not /31, /32). */
export function subnetBroadcast(net: Network | undefined): string | undefined {
  return net && net.prefix < 31 ? intToIp(broadcastOf(net)) : undefined;
}

/** The interface that serves clients, with its IPv4 networks and the address its socket binds. */
export interface ServedInterface {
  name: string;
  /** The interface's own address the server sends from: serverIp when it holds it, else its first. */
  address?: string;
  /** Every IPv4 network on the interface (clients with an address are on one of them). */
  nets: Network[];
  /** The network of `address`. */
  net?: Network;
  /** `address` is serverIp. */
  holdsServer: boolean;
}

/**
 * The interface named `ifname`, or without a name the running interface holding `serverIp` (as
 * dnsmasq serves a range only on the interface whose subnet holds it). Undefined when no running
 * interface holds serverIp.
 */
export function servedInterface(serverIp: string, ifname: string | undefined): ServedInterface | undefined {
  const table = runningInterfaces();
  let name = ifname;
  if (name === undefined) {
    for (const [n, cidrs] of table) if (cidrs.some((c) => c.split('/')[0] === serverIp)) name = n;
  }
  if (name === undefined) return undefined;
  const cidrs = table.get(name);
  if (cidrs === undefined) throw new DhcpError(`interface: no such interface ${name}`);
  const own = cidrs.find((c) => c.split('/')[0] === serverIp) ?? cidrs[0];
  const address = own?.split('/')[0];
  return { name, ...(own ? { address, net: parseCidr(own) } : {}), nets: cidrs.map(parseCidr), holdsServer: address === serverIp };
}
