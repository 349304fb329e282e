/** IPv4 networks as the DHCP server needs them, and which local interface serves clients. */
import { runningInterfaces, type InterfaceTable } from '../ifaddrs.js';
import { broadcastOf, formatIpv4, parseCidr as parseCidrText, parseIpv4, type Cidr } from '../ipv4.js';
import { DhcpError } from './errors.js';

export type Network = Cidr;
export { broadcastOf, inCidr as inNet } from '../ipv4.js';

export function toList(v: string | string[] | undefined): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter(Boolean);
}

export function needIp(what: string, v: string): number {
  const ip = parseIpv4(v);
  if (ip === undefined) throw new DhcpError(`${what}: bad IPv4 address ${JSON.stringify(v)}`);
  return ip;
}

/** "10.0.0.0/24" (host bits are cleared); throws `DhcpError` on anything else. */
export function parseCidr(cidr: string): Network {
  const c = parseCidrText(cidr.trim());
  if (!c) throw new DhcpError(`subnet: bad CIDR ${JSON.stringify(cidr)}`);
  return { base: c.base, mask: c.mask, prefix: c.prefix };
}

/** The subnet broadcast address, for subnets that have one (not /31, /32). */
export function subnetBroadcast(net: Network | undefined): string | undefined {
  return net && net.prefix < 31 ? formatIpv4(broadcastOf(net)) : undefined;
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
 * dnsmasq serves a range only on the interface whose subnet holds it), looked up in TABLE (default:
 * the running interfaces). Undefined when no interface there holds serverIp.
 */
export function servedInterface(serverIp: string, ifname: string | undefined, table: InterfaceTable = runningInterfaces()): ServedInterface | undefined {
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
