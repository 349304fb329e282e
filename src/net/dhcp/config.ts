/** The DHCP server's options, and their checking into the values the server runs with. */
import { intToIp, ipToInt, macString, parseMac } from './codec.js';
import { DhcpError } from './errors.js';
import type { InterfaceTable } from '../ifaddrs.js';
import { broadcastOf, inNet, needIp, parseCidr, servedInterface, subnetBroadcast, toList, type Network, type ServedInterface } from './network.js';

export interface Reservation {
  mac: string;
  ip: string;
  hostname?: string;
}

export interface DhcpServerOptions {
  /** The server's own address: option 54, and the default next-server. */
  serverIp: string;
  /**
   * Address to bind. Default: 0.0.0.0 (broadcasts) plus the served interface's own address (the
   * socket replies leave from, so they leave by that interface); another address binds that one
   * socket only, and replies leave by the routing table.
   */
  address?: string;
  /**
   * Interface to serve (default: the running interface holding serverIp). Requests from clients
   * with an address off its networks are dropped, replies leave by it, and broadcast replies go to
   * 255.255.255.255 on it. When `subnet` is missing it is derived from the interface.
   */
  interface?: string;
  /**
   * The host's interfaces and their networks (default: the running ones, as Node sees them). Give
   * every interface (../ifaddrs.ts parsers) to serve one that has no carrier yet: a bridge whose
   * ports are not up, a server started at boot before its link.
   */
  interfaces?: InterfaceTable;
  /** Client network as CIDR ("10.0.0.0/24"); derived from the interface holding serverIp when absent. */
  subnet?: string;
  /** Dynamic range "FIRST-LAST" or [first, last]; without it only reservations get addresses. */
  range?: string | [string, string];
  router?: string | string[];
  dns?: string | string[];
  domain?: string;
  /** Lease length in seconds (default 3600). */
  leaseTime?: number;
  /** How long an offered address is held for the client, seconds (default 60). */
  offerTime?: number;
  /** How long a declined address is quarantined, seconds (default 600). */
  declineTime?: number;
  reservations?: Reservation[];
  /**
   * Boot file by client architecture (option 93): keys are architecture numbers (0 BIOS,
   * 6 ia32 EFI, 7 and 9 x64 UEFI, ...) or "default".
   */
  bootFiles?: Record<string, string>;
  /** Boot file (or URL) by user class (option 77), e.g. { iPXE: "http://10.0.0.1/boot.ipxe" }; wins over bootFiles. */
  userClassBootFiles?: Record<string, string>;
  /** Option 17, e.g. "10.0.0.1:/be/roots/13.2" for an NFS root. */
  rootPath?: string;
  /** TFTP server for siaddr and option 66 (default serverIp). */
  nextServer?: string;
  /** proxyDHCP: answer PXE clients only, with boot information and no address; also listens on 4011. */
  proxy?: boolean;
  /** NAK requests for addresses that are wrong for this network even without a record of the client (default true). */
  authoritative?: boolean;
  /** Lease journal path; without it leases live in memory only. */
  leaseFile?: string;
  /** Compact the journal after this many records (default: 1000, or 4× the leases if more). */
  leaseCompactAfter?: number;
  /** One line per lease event (and per problem). */
  logger?: (line: string) => void;
  /** Milliseconds since the epoch; injected by tests. */
  clock?: () => number;
  /** Ports (defaults 67, 68, 4011). Relayed replies go to `relayPort` (default: `port`, or 67 when 0). */
  port?: number;
  clientPort?: number;
  proxyPort?: number;
  relayPort?: number;
  /**
   * Destination of broadcast replies. Default on Linux: 255.255.255.255 (RFC 2131 §4.1), sent from
   * the served interface's address so that it leaves by that interface. On FreeBSD, and without
   * such an address (an explicit `address`, or no running interface holds serverIp), the default
   * is the subnet's broadcast address when the subnet is known: 255.255.255.255 would leave by the
   * interface of the default route (Linux, wildcard socket) or the first interface (FreeBSD).
   */
  broadcastAddress?: string;
  /** The kernel whose broadcast rules apply (default: process.platform); see broadcastAddress. */
  platform?: NodeJS.Platform;
  /** Cap on outstanding offers (default: range size, at most 65536). */
  maxPendingOffers?: number;
  /** Overload control (see load.ts): DISCOVERs kept waiting at most (default 1024) ... */
  maxWaitingDiscovers?: number;
  /** ... and leases waiting for their journal sync beyond which no new exchange starts (default 4096). */
  maxPendingCommits?: number;
  /** Exchanges rehearsed on a scratch server by `start`, before the sockets are bound (see warm.ts; default 0). */
  warmUp?: number;
}

export interface DhcpStats {
  received: number;
  malformed: number;
  ignored: number;
  offers: number;
  acks: number;
  naks: number;
  releases: number;
  declines: number;
  informs: number;
  sendErrors: number;
  /** DISCOVERs dropped unread because the server was overloaded (see load.ts). */
  shed: number;
  /** Journal writes, each one fdatasync for every lease committed since the last (group commit). */
  journalSyncs: number;
}

/** What the server runs with, checked. */
export interface DhcpConfig {
  net?: Network;
  /** The subnet does not hold serverIp: it is reached through relays only. */
  relayedOnly: boolean;
  /** The interface served, when the server binds one (see `address`). */
  iface?: ServedInterface;
  rangeFirst: number;
  rangeLast: number;
  reservedByMac: Map<string, { ip: number; hostname?: string }>;
  reservedByIp: Map<number, string>;
  excluded: Set<number>;
  broadcastTo: string;
  leaseMs: number;
  offerMs: number;
  declineMs: number;
  maxOffers: number;
}

const MAX_RANGE = 1 << 20;

/** Check `opts` (throws DhcpError naming the bad value) and derive the network, range and reservations. */
export function checkConfig(opts: DhcpServerOptions): DhcpConfig {
  needIp('serverIp', opts.serverIp);
  const wildcard = opts.address === undefined || opts.address === '0.0.0.0';
  const iface = servedInterface(opts.serverIp, opts.interface, opts.interfaces);
  const net = opts.subnet ? parseCidr(opts.subnet) : iface?.holdsServer ? iface.net : undefined;
  const relayedOnly = !!net && !inNet(net, ipToInt(opts.serverIp));
  const leaseMs = (opts.leaseTime ?? 3600) * 1000;
  if (!(leaseMs > 0)) throw new DhcpError(`leaseTime: must be positive, not ${opts.leaseTime}`);
  const every = opts.leaseCompactAfter;
  if (every !== undefined && !(Number.isInteger(every) && every > 0)) throw new DhcpError(`leaseCompactAfter: must be a positive integer, not ${every}`);
  const bound = wildcard && iface?.address !== undefined;
  // Linux sends 255.255.255.255 out of the interface holding the socket's address (see sockets.ts);
  // FreeBSD rewrites it to the first interface's broadcast address (sys/netinet/in_pcb.c,
  // in_pcbconnect_setup), so there the served interface's subnet broadcast is what leaves by it.
  const allOnes = bound && (opts.platform ?? process.platform) === 'linux';
  const broadcastTo = opts.broadcastAddress ?? (allOnes ? '255.255.255.255' : subnetBroadcast(bound ? iface!.net : net) ?? '255.255.255.255');
  needIp('broadcastAddress', broadcastTo);
  for (const k of ['router', 'dns'] as const) for (const ip of toList(opts[k])) needIp(k, ip);
  if (opts.nextServer) needIp('nextServer', opts.nextServer);
  for (const key of Object.keys(opts.bootFiles ?? {})) {
    if (key !== 'default' && !/^\d{1,5}$/.test(key)) throw new DhcpError(`bootFiles: bad architecture ${JSON.stringify(key)} (a number or "default")`);
  }

  let first = 1;
  let last = 0;
  if (opts.range !== undefined && !opts.proxy) {
    const [a, b] = Array.isArray(opts.range) ? opts.range : opts.range.split('-');
    first = needIp('range', (a ?? '').trim());
    last = needIp('range', (b ?? '').trim());
    if (first > last) throw new DhcpError(`range: ${intToIp(first)} comes after ${intToIp(last)}`);
    if (last - first + 1 > MAX_RANGE) throw new DhcpError(`range: more than ${MAX_RANGE} addresses`);
    if (!net) throw new DhcpError('subnet: needed with a range (no interface carries serverIp)');
    if (!inNet(net, first) || !inNet(net, last)) throw new DhcpError(`range: ${intToIp(first)}-${intToIp(last)} is outside subnet ${opts.subnet ?? ''}`.trim());
  }
  const reservedByMac = new Map<string, { ip: number; hostname?: string }>();
  const reservedByIp = new Map<number, string>();
  for (const r of opts.reservations ?? []) {
    let mac: string;
    try {
      mac = macString(parseMac(r.mac));
    } catch {
      throw new DhcpError(`reservations: bad MAC address ${JSON.stringify(r.mac)}`);
    }
    const ip = needIp('reservations', r.ip);
    if (net && !inNet(net, ip)) throw new DhcpError(`reservations: ${r.ip} is outside the subnet`);
    if (reservedByIp.has(ip)) throw new DhcpError(`reservations: ${r.ip} is reserved twice`);
    reservedByMac.set(mac, { ip, ...(r.hostname ? { hostname: r.hostname } : {}) });
    reservedByIp.set(ip, mac);
  }
  const excluded = new Set<number>([ipToInt(opts.serverIp)]);
  for (const ip of toList(opts.router)) excluded.add(ipToInt(ip));
  if (net && net.prefix < 31) {
    excluded.add(net.base);
    excluded.add(broadcastOf(net));
  }
  const rangeSize = Math.max(0, last - first + 1);
  return {
    ...(net ? { net } : {}), relayedOnly, ...(bound ? { iface } : {}),
    rangeFirst: first, rangeLast: last, reservedByMac, reservedByIp, excluded, broadcastTo, leaseMs,
    offerMs: (opts.offerTime ?? 60) * 1000,
    declineMs: (opts.declineTime ?? 600) * 1000,
    maxOffers: opts.maxPendingOffers ?? Math.max(16, Math.min(rangeSize + reservedByMac.size, 65536)),
  };
}
