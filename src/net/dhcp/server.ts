/**
 * The DHCP server: RFC 2131 message handling, address allocation, PXE boot information and
 * proxyDHCP. See index.ts for the public contract.
 */
import dgram from 'node:dgram';
import { dirname } from 'node:path';
import { BeError } from '../../sys/errors.js';
import { runningInterfaces } from '../../sys/ifaddrs.js';
import {
  BOOTREPLY, BOOTREQUEST, DhcpPacket, FLAG_BROADCAST, MessageType, Opt,
  decodePacket, encodePacket, intToIp, ipToInt, isIp, macString, messageType, parseMac,
} from './codec.js';
import {
  clientArchs, ipBytes, optIp, optString, optU16, pxeVendorOptions, PXE_DISCOVERY_CONTROL,
  requestedParams, stringBytes, u32Bytes, userClasses,
} from './options.js';
import { Lease, LeaseStore } from './leases.js';

export interface Reservation {
  mac: string;
  ip: string;
  hostname?: string;
}

export interface DhcpServerOptions {
  /** The server's own address: option 54, and the default next-server. */
  serverIp: string;
  /** Address to bind (default 0.0.0.0, needed to receive broadcasts). */
  address?: string;
  /**
   * Interface to serve. Node cannot SO_BINDTODEVICE, so this only checks that the interface
   * exists and, when `subnet` is missing, derives it from the interface. Run one server per
   * network namespace (or per host) to keep interfaces apart.
   */
  interface?: string;
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
   * Destination of broadcast replies. Default: the subnet's broadcast address when the subnet is
   * known, else 255.255.255.255. A socket bound to the wildcard address sends 255.255.255.255 out
   * of the interface of the default route, which on a lab host is often not the lab's; the subnet
   * broadcast is routed out of the interface holding the subnet, and still reaches every station
   * (link-layer broadcast), address-less PXE and DHCP clients included.
   */
  broadcastAddress?: string;
  /** Cap on outstanding offers (default: range size, at most 65536). */
  maxPendingOffers?: number;
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
}

interface Network {
  base: number;
  mask: number;
  prefix: number;
}

interface Offer {
  ip: number;
  expires: number;
}

interface Reply {
  packet: DhcpPacket;
  maxSize: number;
  to: string;
  port: number;
  socket: dgram.Socket;
}

const MAX_RANGE = 1 << 20;

function toList(v: string | string[] | undefined): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter(Boolean);
}

function needIp(what: string, v: string): number {
  if (!isIp(v)) throw new BeError(`${what}: bad IPv4 address ${JSON.stringify(v)}`);
  return ipToInt(v);
}

export function parseCidr(cidr: string): Network {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(cidr.trim());
  if (!m || !isIp(m[1]) || Number(m[2]) > 32) throw new BeError(`subnet: bad CIDR ${JSON.stringify(cidr)}`);
  const prefix = Number(m[2]);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { base: (ipToInt(m[1]) & mask) >>> 0, mask, prefix };
}

function inNet(net: Network, ip: number): boolean {
  return ((ip & net.mask) >>> 0) === net.base;
}

function broadcastOf(net: Network): number {
  return (net.base | (~net.mask >>> 0)) >>> 0;
}

/** The subnet of the local interface carrying `ip` (or named `ifname`), if any. */
function localNetwork(ip: string | undefined, ifname: string | undefined): Network | undefined {
  for (const [name, cidrs] of runningInterfaces()) {
    if (ifname && name !== ifname) continue;
    const cidr = cidrs.find((c) => !ip || c.split('/')[0] === ip);
    if (cidr) return parseCidr(cidr);
  }
  return undefined;
}

function isPxeClient(req: DhcpPacket): boolean {
  return (optString(req.options, Opt.VENDOR_CLASS) ?? '').startsWith('PXEClient');
}

export class DhcpServer {
  readonly stats: DhcpStats = { received: 0, malformed: 0, ignored: 0, offers: 0, acks: 0, naks: 0, releases: 0, declines: 0, informs: 0, sendErrors: 0 };
  private readonly serverIp: string;
  private readonly net?: Network;
  /** The subnet does not hold serverIp: it is reached through relays only. */
  private readonly relayedOnly: boolean;
  private readonly rangeFirst: number;
  private readonly rangeLast: number;
  private readonly reservedByMac = new Map<string, { ip: number; hostname?: string }>();
  private readonly reservedByIp = new Map<number, string>();
  private readonly offers = new Map<string, Offer>();
  private readonly offeredIps = new Map<number, string>();
  private readonly maxOffers: number;
  private readonly clock: () => number;
  private readonly log: (line: string) => void;
  private readonly leaseMs: number;
  private readonly offerMs: number;
  private readonly declineMs: number;
  private readonly excluded = new Set<number>();
  private cursor: number;
  private store?: LeaseStore;
  private socket?: dgram.Socket;
  private proxySocket?: dgram.Socket;
  private broadcastTo: string;
  private lastPrune = 0;

  constructor(private readonly opts: DhcpServerOptions) {
    this.serverIp = opts.serverIp;
    needIp('serverIp', opts.serverIp);
    if (opts.interface && !runningInterfaces().has(opts.interface)) throw new BeError(`interface: no such interface ${opts.interface}`);
    this.net = opts.subnet ? parseCidr(opts.subnet) : localNetwork(opts.serverIp, opts.interface);
    this.relayedOnly = !!this.net && !inNet(this.net, ipToInt(opts.serverIp));
    this.clock = opts.clock ?? Date.now;
    this.log = opts.logger ?? (() => {});
    this.leaseMs = (opts.leaseTime ?? 3600) * 1000;
    this.offerMs = (opts.offerTime ?? 60) * 1000;
    this.declineMs = (opts.declineTime ?? 600) * 1000;
    if (!(this.leaseMs > 0)) throw new BeError(`leaseTime: must be positive, not ${opts.leaseTime}`);
    const every = opts.leaseCompactAfter;
    if (every !== undefined && !(Number.isInteger(every) && every > 0)) throw new BeError(`leaseCompactAfter: must be a positive integer, not ${every}`);
    this.broadcastTo = opts.broadcastAddress ?? (this.net && this.net.prefix < 31 ? intToIp(broadcastOf(this.net)) : '255.255.255.255');
    needIp('broadcastAddress', this.broadcastTo);
    for (const k of ['router', 'dns'] as const) for (const ip of toList(opts[k])) needIp(k, ip);
    if (opts.nextServer) needIp('nextServer', opts.nextServer);
    for (const key of Object.keys(opts.bootFiles ?? {})) {
      if (key !== 'default' && !/^\d{1,5}$/.test(key)) throw new BeError(`bootFiles: bad architecture ${JSON.stringify(key)} (a number or "default")`);
    }

    let first = 1;
    let last = 0;
    if (opts.range !== undefined && !opts.proxy) {
      const [a, b] = Array.isArray(opts.range) ? opts.range : opts.range.split('-');
      first = needIp('range', (a ?? '').trim());
      last = needIp('range', (b ?? '').trim());
      if (first > last) throw new BeError(`range: ${intToIp(first)} comes after ${intToIp(last)}`);
      if (last - first + 1 > MAX_RANGE) throw new BeError(`range: more than ${MAX_RANGE} addresses`);
      if (!this.net) throw new BeError('subnet: needed with a range (no interface carries serverIp)');
      if (!inNet(this.net, first) || !inNet(this.net, last)) throw new BeError(`range: ${intToIp(first)}-${intToIp(last)} is outside subnet ${opts.subnet ?? ''}`.trim());
    }
    this.rangeFirst = first;
    this.rangeLast = last;
    this.cursor = first;
    for (const r of opts.reservations ?? []) {
      let mac: string;
      try {
        mac = macString(parseMac(r.mac));
      } catch {
        throw new BeError(`reservations: bad MAC address ${JSON.stringify(r.mac)}`);
      }
      const ip = needIp('reservations', r.ip);
      if (this.net && !inNet(this.net, ip)) throw new BeError(`reservations: ${r.ip} is outside the subnet`);
      if (this.reservedByIp.has(ip)) throw new BeError(`reservations: ${r.ip} is reserved twice`);
      this.reservedByMac.set(mac, { ip, ...(r.hostname ? { hostname: r.hostname } : {}) });
      this.reservedByIp.set(ip, mac);
    }
    this.excluded.add(ipToInt(opts.serverIp));
    for (const ip of toList(opts.router)) this.excluded.add(ipToInt(ip));
    if (this.net && this.net.prefix < 31) {
      this.excluded.add(this.net.base);
      this.excluded.add(broadcastOf(this.net));
    }
    const rangeSize = Math.max(0, last - first + 1);
    this.maxOffers = opts.maxPendingOffers ?? Math.max(16, Math.min(rangeSize + this.reservedByMac.size, 65536));
  }

  /**
   * Open the lease journal and bind the sockets (67, and 4011 in proxy mode). Needs root for
   * port 67; privileges can be dropped once it resolves (see `ownedPaths`).
   */
  async start(): Promise<void> {
    this.store = LeaseStore.open(this.opts.leaseFile, (m) => this.log(m), this.opts.leaseCompactAfter);
    try {
      this.socket = await this.bind(this.opts.port ?? 67, 'dhcp');
      if (this.opts.proxy) this.proxySocket = await this.bind(this.opts.proxyPort ?? 4011, 'pxe');
    } catch (e) {
      await this.stop();
      throw new BeError(`cannot bind DHCP port: ${(e as Error).message}`, { cause: e });
    }
    const mode = this.opts.proxy ? 'proxyDHCP' : 'DHCP';
    this.log(`${mode} server ${this.serverIp} listening on ${this.opts.address ?? '0.0.0.0'}:${this.port}${this.proxySocket ? ` and ${this.proxyPort}` : ''}`);
  }

  /** Ports actually bound (useful with port 0 in tests). */
  get port(): number {
    return this.socket?.address().port ?? 0;
  }

  get proxyPort(): number {
    return this.proxySocket?.address().port ?? 0;
  }

  /** Paths that must stay writable by the user the caller drops to: the lease file and its directory (compaction renames there). */
  ownedPaths(): string[] {
    return this.opts.leaseFile ? [dirname(this.opts.leaseFile), this.opts.leaseFile] : [];
  }

  /** Current leases (including expired ones still remembered for address affinity). */
  leases(): Lease[] {
    return this.store?.table.leases() ?? [];
  }

  /** Flush the journal and close the sockets. */
  async stop(): Promise<void> {
    const close = (s?: dgram.Socket) => new Promise<void>((resolve) => {
      if (!s) return resolve();
      try {
        s.close(() => resolve());
      } catch {
        resolve();
      }
    });
    await close(this.socket);
    await close(this.proxySocket);
    this.socket = undefined;
    this.proxySocket = undefined;
    await this.store?.close();
  }

  private bind(port: number, kind: 'dhcp' | 'pxe'): Promise<dgram.Socket> {
    return new Promise((resolve, reject) => {
      const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
      const onError = (e: Error) => reject(e);
      s.once('error', onError);
      s.bind(port, this.opts.address ?? '0.0.0.0', () => {
        s.off('error', onError);
        s.setBroadcast(true);
        s.on('error', (e) => this.log(`socket error: ${e.message}`));
        s.on('message', (msg, rinfo) => this.receive(msg, rinfo, kind, s));
        resolve(s);
      });
    });
  }

  /** Entry point for one datagram; never throws. */
  private receive(msg: Buffer, rinfo: dgram.RemoteInfo, kind: 'dhcp' | 'pxe', socket: dgram.Socket): void {
    this.stats.received++;
    let req: DhcpPacket;
    try {
      req = decodePacket(msg);
    } catch {
      this.stats.malformed++;
      return;
    }
    try {
      if (req.op !== BOOTREQUEST || req.hlen < 1 || req.hlen > 16 || req.hops > 16) {
        this.stats.ignored++;
        return;
      }
      this.handle(req, rinfo, kind, socket);
    } catch (e) {
      this.stats.malformed++;
      this.log(`dropped a packet from ${rinfo.address}: ${(e as Error).message}`);
    }
  }

  private handle(req: DhcpPacket, rinfo: dgram.RemoteInfo, kind: 'dhcp' | 'pxe', socket: dgram.Socket): void {
    const type = messageType(req);
    const now = this.clock();
    if (now - this.lastPrune > 10_000) this.prune(now);
    const giaddr = ipToInt(req.giaddr);
    if (this.opts.proxy) return this.handleProxy(req, type, rinfo, kind, socket);
    if (giaddr !== 0 && !(this.net && inNet(this.net, giaddr))) return void this.stats.ignored++;
    // A subnet that does not hold the server is reached through relays only: a broadcast from a
    // client beside the server (no giaddr, no address of its own) is not for it.
    if (giaddr === 0 && this.relayedOnly && ipToInt(req.ciaddr) === 0) return void this.stats.ignored++;
    const mac = macString(req.chaddr);
    switch (type) {
      case MessageType.DISCOVER:
        return this.discover(req, mac, now, socket);
      case MessageType.REQUEST:
        return this.request(req, mac, now, socket);
      case MessageType.RELEASE:
        return this.release(req, mac, now);
      case MessageType.DECLINE:
        return this.decline(req, mac, now);
      case MessageType.INFORM:
        return this.inform(req, mac, socket);
      default:
        this.stats.ignored++;
    }
  }

  // ---- address bookkeeping -------------------------------------------------------------

  private prune(now: number): void {
    this.lastPrune = now;
    for (const [mac, o] of this.offers) if (o.expires <= now) this.dropOffer(mac);
    this.store?.table.pruneDeclined(now);
  }

  private dropOffer(mac: string): void {
    const o = this.offers.get(mac);
    if (!o) return;
    this.offers.delete(mac);
    if (this.offeredIps.get(o.ip) === mac) this.offeredIps.delete(o.ip);
  }

  private inRange(ip: number): boolean {
    return ip >= this.rangeFirst && ip <= this.rangeLast;
  }

  /** May `mac` have `ip` now? */
  private available(ip: number, mac: string, now: number): boolean {
    const reservedFor = this.reservedByIp.get(ip);
    if (reservedFor !== undefined) return reservedFor === mac;
    const own = this.reservedByMac.get(mac);
    if (own && own.ip !== ip) return false;
    if (!this.inRange(ip) || this.excluded.has(ip)) return false;
    const table = this.store!.table;
    const until = table.declinedUntil(ip);
    if (until !== undefined && until > now) return false;
    const lease = table.byAddress(ip);
    if (lease && lease.mac !== mac && lease.expires > now) return false;
    const offeredTo = this.offeredIps.get(ip);
    if (offeredTo !== undefined && offeredTo !== mac) {
      const o = this.offers.get(offeredTo);
      if (o && o.expires > now) return false;
    }
    return true;
  }

  /** The address to offer `mac`, or undefined when none is free. */
  private choose(mac: string, requested: number | undefined, now: number): number | undefined {
    const res = this.reservedByMac.get(mac);
    if (res) return res.ip;
    const lease = this.store!.table.forMac(mac);
    if (lease && this.available(ipToInt(lease.ip), mac, now)) return ipToInt(lease.ip);
    const offer = this.offers.get(mac);
    if (offer && this.available(offer.ip, mac, now)) return offer.ip;
    if (requested !== undefined && this.available(requested, mac, now)) return requested;
    // Prefer addresses nobody remembers; fall back to one whose lease expired.
    const size = this.rangeLast - this.rangeFirst + 1;
    let expired: number | undefined;
    for (let i = 0; i < size; i++) {
      const ip = this.cursor;
      this.cursor = ip >= this.rangeLast ? this.rangeFirst : ip + 1;
      if (!this.available(ip, mac, now)) continue;
      const old = this.store!.table.byAddress(ip);
      if (!old || old.mac === mac) return ip;
      if (expired === undefined) expired = ip;
    }
    return expired;
  }

  /**
   * The range is full: take back the oldest outstanding offer (an offer is not a lease), so a
   * flood of DISCOVERs from made-up MACs cannot lock real clients out for `offerTime`.
   */
  private reclaimOffer(mac: string, now: number): number | undefined {
    for (const [other, o] of this.offers) {
      if (other === mac || !this.inRange(o.ip) || this.reservedByIp.has(o.ip)) continue;
      this.dropOffer(other);
      if (this.available(o.ip, mac, now)) return o.ip;
    }
    return undefined;
  }

  private hostnameFor(mac: string, req: DhcpPacket): string | undefined {
    return this.reservedByMac.get(mac)?.hostname ?? sanitizeHostname(optString(req.options, Opt.HOSTNAME));
  }

  // ---- message handlers ------------------------------------------------------------------

  private discover(req: DhcpPacket, mac: string, now: number, socket: dgram.Socket): void {
    const requested = optIp(req.options, Opt.REQUESTED_IP);
    let ip = this.choose(mac, requested ? ipToInt(requested) : undefined, now);
    if (ip === undefined) ip = this.reclaimOffer(mac, now);
    if (ip === undefined) {
      this.stats.ignored++;
      this.log(`DHCPDISCOVER from ${mac}: no free address`);
      return;
    }
    if (!this.offers.has(mac) && this.offers.size >= this.maxOffers) {
      this.prune(now);
      const oldest = this.offers.keys().next();
      if (this.offers.size >= this.maxOffers && !oldest.done) this.dropOffer(oldest.value);
    }
    this.dropOffer(mac);
    this.offers.set(mac, { ip, expires: now + this.offerMs });
    this.offeredIps.set(ip, mac);
    this.stats.offers++;
    this.send(this.reply(req, MessageType.OFFER, intToIp(ip), mac, socket, { lease: true }));
  }

  private request(req: DhcpPacket, mac: string, now: number, socket: dgram.Socket): void {
    const serverId = optIp(req.options, Opt.SERVER_ID);
    const requestedOpt = optIp(req.options, Opt.REQUESTED_IP);
    let state: 'SELECTING' | 'INIT-REBOOT' | 'RENEWING';
    let ipStr: string | undefined;
    if (serverId !== undefined) {
      if (serverId !== this.serverIp) {
        // The client chose another server: forget our offer.
        this.dropOffer(mac);
        this.stats.ignored++;
        return;
      }
      state = 'SELECTING';
      ipStr = requestedOpt ?? (req.ciaddr !== '0.0.0.0' ? req.ciaddr : undefined);
    } else if (req.ciaddr === '0.0.0.0') {
      state = 'INIT-REBOOT';
      ipStr = requestedOpt;
    } else {
      state = 'RENEWING'; // or REBINDING: same answer, and ciaddr tells where to send it
      ipStr = req.ciaddr;
    }
    if (ipStr === undefined) {
      // Neither option 50 nor ciaddr (some minimal clients): take it as accepting our offer.
      const offer = this.offers.get(mac);
      if (!offer) return void this.stats.ignored++;
      ipStr = intToIp(offer.ip);
      state = 'SELECTING';
    }
    const ip = ipToInt(ipStr);
    const known = this.store!.table.forMac(mac) !== undefined || this.offers.has(mac) || this.reservedByMac.has(mac);
    if (!this.available(ip, mac, now)) {
      if (state === 'SELECTING' || known || this.opts.authoritative !== false || !(this.net && inNet(this.net, ip))) {
        this.nak(req, mac, ipStr, socket, state);
      } else {
        this.stats.ignored++;
      }
      return;
    }
    this.dropOffer(mac);
    const hostname = this.hostnameFor(mac, req);
    const reply = this.reply(req, MessageType.ACK, ipStr, mac, socket, { lease: true });
    const expires = now + this.leaseMs;
    this.store!.commit({ op: 'bind', mac, ip: ipStr, exp: expires, ...(hostname ? { host: hostname } : {}) }, (err) => {
      if (err) return; // not durable: stay silent, the client retries
      this.stats.acks++;
      this.log(`DHCPACK ${ipStr} to ${mac}${hostname ? ` (${hostname})` : ''} for ${Math.round(this.leaseMs / 1000)}s${state === 'SELECTING' ? '' : ` [${state}]`}`);
      this.send(reply);
    });
  }

  private nak(req: DhcpPacket, mac: string, ip: string, socket: dgram.Socket, state: string): void {
    this.stats.naks++;
    this.log(`DHCPNAK ${ip} to ${mac} [${state}]`);
    const packet = this.basePacket(req, '0.0.0.0', '0.0.0.0');
    packet.options.set(Opt.MESSAGE_TYPE, Buffer.from([MessageType.NAK]));
    packet.options.set(Opt.SERVER_ID, ipBytes(this.serverIp));
    packet.options.set(Opt.MESSAGE, stringBytes('address not available'));
    echoRelayInfo(req, packet);
    const giaddr = req.giaddr !== '0.0.0.0';
    if (giaddr) packet.flags |= FLAG_BROADCAST;
    this.send({
      packet, maxSize: 548, socket,
      to: giaddr ? req.giaddr : this.broadcastTo,
      port: giaddr ? this.relayPort() : this.opts.clientPort ?? 68,
    });
  }

  private release(req: DhcpPacket, mac: string, now: number): void {
    const serverId = optIp(req.options, Opt.SERVER_ID);
    if (serverId !== undefined && serverId !== this.serverIp) return void this.stats.ignored++;
    const lease = this.store!.table.forMac(mac);
    if (!lease || lease.ip !== req.ciaddr || lease.expires <= now) return void this.stats.ignored++;
    this.stats.releases++;
    this.store!.commit({ op: 'bind', mac, ip: lease.ip, exp: now, ...(lease.hostname ? { host: lease.hostname } : {}) });
    this.log(`DHCPRELEASE ${lease.ip} from ${mac}`);
  }

  private decline(req: DhcpPacket, mac: string, now: number): void {
    const serverId = optIp(req.options, Opt.SERVER_ID);
    if (serverId !== undefined && serverId !== this.serverIp) return void this.stats.ignored++;
    const ipStr = optIp(req.options, Opt.REQUESTED_IP);
    if (!ipStr) return void this.stats.ignored++;
    const ip = ipToInt(ipStr);
    const lease = this.store!.table.byAddress(ip);
    const offered = this.offers.get(mac)?.ip === ip;
    if (!offered && !(lease && lease.mac === mac)) return void this.stats.ignored++;
    this.dropOffer(mac);
    this.stats.declines++;
    this.store!.commit({ op: 'decline', ip: ipStr, until: now + this.declineMs });
    this.log(`DHCPDECLINE ${ipStr} from ${mac}: quarantined for ${Math.round(this.declineMs / 1000)}s`);
  }

  private inform(req: DhcpPacket, mac: string, socket: dgram.Socket): void {
    const ciaddr = ipToInt(req.ciaddr);
    if (ciaddr === 0 || !(this.net && inNet(this.net, ciaddr))) return void this.stats.ignored++;
    this.stats.informs++;
    this.send(this.reply(req, MessageType.ACK, '0.0.0.0', mac, socket, { lease: false }));
  }

  private handleProxy(req: DhcpPacket, type: number, rinfo: dgram.RemoteInfo, kind: 'dhcp' | 'pxe', socket: dgram.Socket): void {
    if (!isPxeClient(req)) return void this.stats.ignored++;
    const mac = macString(req.chaddr);
    if (kind === 'dhcp') {
      if (type !== MessageType.DISCOVER) return void this.stats.ignored++;
      const r = this.reply(req, MessageType.OFFER, '0.0.0.0', mac, socket, { lease: false, proxy: true });
      if (!r.packet.file) return void this.stats.ignored++;
      this.stats.offers++;
      this.log(`proxyDHCP offer ${r.packet.file} to ${mac}`);
      return this.send(r);
    }
    // Port 4011: the client already has an address and asks the boot server directly.
    if (type !== MessageType.REQUEST && type !== MessageType.INFORM) return void this.stats.ignored++;
    const r = this.reply(req, MessageType.ACK, '0.0.0.0', mac, socket, { lease: false, proxy: true });
    if (!r.packet.file) return void this.stats.ignored++;
    r.to = rinfo.address;
    r.port = rinfo.port;
    this.stats.acks++;
    this.log(`proxyDHCP ack ${r.packet.file} to ${mac} at ${rinfo.address}`);
    this.send(r);
  }

  // ---- replies ---------------------------------------------------------------------------

  private relayPort(): number {
    return this.opts.relayPort ?? (this.opts.port || 67);
  }

  private basePacket(req: DhcpPacket, yiaddr: string, ciaddr: string): DhcpPacket {
    const chaddr = Buffer.alloc(16);
    req.chaddr.copy(chaddr);
    return {
      op: BOOTREPLY, htype: req.htype, hlen: req.hlen, hops: 0, xid: req.xid, secs: 0,
      flags: req.flags & FLAG_BROADCAST, ciaddr, yiaddr, siaddr: '0.0.0.0', giaddr: req.giaddr,
      chaddr, sname: '', file: '', options: new Map(),
    };
  }

  /** Pick the boot file for this client: user class first, then architecture, then default. */
  bootFileFor(req: DhcpPacket): string | undefined {
    const byClass = this.opts.userClassBootFiles ?? {};
    for (const c of userClasses(req.options)) if (byClass[c] !== undefined) return byClass[c];
    const files = this.opts.bootFiles ?? {};
    const archs = clientArchs(req.options);
    const arch = archs.length ? archs[0] : isPxeClient(req) ? 0 : undefined;
    if (arch !== undefined && files[String(arch)] !== undefined) return files[String(arch)];
    return files.default;
  }

  private reply(req: DhcpPacket, type: MessageType, yiaddr: string, mac: string, socket: dgram.Socket, how: { lease: boolean; proxy?: boolean }): Reply {
    const ciaddr = type === MessageType.ACK ? req.ciaddr : '0.0.0.0';
    const p = this.basePacket(req, yiaddr, ciaddr);
    const pxe = isPxeClient(req);
    const file = this.bootFileFor(req);
    const next = this.opts.nextServer ?? this.serverIp;
    if (file !== undefined) {
      p.siaddr = next;
      if (Buffer.byteLength(file, 'latin1') < 128) p.file = file;
    }

    // Values we could send, by option code.
    const avail = new Map<number, Buffer>();
    if (!how.proxy) {
      if (this.net) avail.set(Opt.SUBNET_MASK, u32Bytes(this.net.mask));
      const routers = toList(this.opts.router);
      if (routers.length) avail.set(Opt.ROUTER, ipBytes(...routers));
      const dns = toList(this.opts.dns);
      if (dns.length) avail.set(Opt.DNS, ipBytes(...dns));
      const host = this.reservedByMac.get(mac)?.hostname;
      if (host) avail.set(Opt.HOSTNAME, stringBytes(host));
      if (this.opts.domain) avail.set(Opt.DOMAIN, stringBytes(this.opts.domain));
      if (this.opts.rootPath) avail.set(Opt.ROOT_PATH, stringBytes(this.opts.rootPath));
      if (this.net && this.net.prefix < 31) avail.set(Opt.BROADCAST, u32Bytes(broadcastOf(this.net)));
    }
    if (file !== undefined) {
      avail.set(Opt.TFTP_SERVER, stringBytes(next));
      avail.set(Opt.BOOTFILE, stringBytes(file));
    }
    const forced: number[] = [];
    if (pxe) {
      avail.set(Opt.VENDOR_CLASS, stringBytes('PXEClient'));
      avail.set(Opt.VENDOR, pxeVendorOptions([[PXE_DISCOVERY_CONTROL, Buffer.from([8])]]));
      forced.push(Opt.VENDOR_CLASS, Opt.VENDOR);
      const uuid = req.options.get(Opt.CLIENT_UUID);
      if (uuid && uuid.length <= 32) {
        avail.set(Opt.CLIENT_UUID, uuid);
        forced.push(Opt.CLIENT_UUID);
      }
      if (file !== undefined) forced.push(Opt.TFTP_SERVER, Opt.BOOTFILE);
    }

    p.options.set(Opt.MESSAGE_TYPE, Buffer.from([type]));
    p.options.set(Opt.SERVER_ID, ipBytes(this.serverIp));
    if (how.lease) {
      const secs = Math.round(this.leaseMs / 1000);
      p.options.set(Opt.LEASE_TIME, u32Bytes(secs));
      p.options.set(Opt.RENEWAL_TIME, u32Bytes(Math.floor(secs / 2)));
      p.options.set(Opt.REBINDING_TIME, u32Bytes(Math.floor((secs * 7) / 8)));
    }
    const wanted = requestedParams(req.options);
    const order = wanted ? [...wanted, ...forced] : [...avail.keys()];
    for (const code of order) {
      const v = avail.get(code);
      if (v && !p.options.has(code)) p.options.set(code, v);
    }

    const giaddr = req.giaddr !== '0.0.0.0';
    let to: string;
    let port = this.opts.clientPort ?? 68;
    if (giaddr) {
      to = req.giaddr;
      port = this.relayPort();
    } else if (ciaddr !== '0.0.0.0' && this.net && inNet(this.net, ipToInt(ciaddr))) {
      to = ciaddr;
    } else {
      // Broadcast flag set, or a client without an address: unicasting to yiaddr would need an
      // ARP entry only raw sockets can create, so broadcast (RFC 2131 §4.1 allows it).
      to = this.broadcastTo;
    }
    echoRelayInfo(req, p);
    const max = optU16(req.options, Opt.MAX_SIZE);
    const maxSize = Math.min(1500, Math.max(548, (max ?? 576) - 28));
    return { packet: p, maxSize, to, port, socket };
  }

  private send(r: Reply): void {
    let buf: Buffer;
    try {
      buf = encodePacket(r.packet, r.maxSize);
    } catch (e) {
      this.stats.sendErrors++;
      this.log(`cannot encode reply: ${(e as Error).message}`);
      return;
    }
    const attempt = (to: string, retry: boolean) => {
      try {
        r.socket.send(buf, r.port, to, (err) => {
          if (!err) return;
          const fallback = this.net && this.net.prefix < 31 ? intToIp(broadcastOf(this.net)) : undefined;
          if (retry && to === this.broadcastTo && fallback && fallback !== to && (err as NodeJS.ErrnoException).code === 'ENETUNREACH') {
            // No route for 255.255.255.255 (no default route): use the subnet broadcast from now on.
            this.broadcastTo = fallback;
            attempt(fallback, false);
            return;
          }
          this.stats.sendErrors++;
        });
      } catch {
        this.stats.sendErrors++; // socket closed while a reply was waiting for its fsync
      }
    };
    attempt(r.to, true);
  }
}

function sanitizeHostname(h: string | undefined): string | undefined {
  if (!h) return undefined;
  const clean = h.replace(/[^A-Za-z0-9.-]/g, '').slice(0, 63);
  return clean || undefined;
}

/**
 * RFC 3046 §2.2: a relay agent's information option (82) is echoed, whole and last, in every
 * reply to a relayed request, so the agent can forward the reply by it and strip it.
 */
function echoRelayInfo(req: DhcpPacket, reply: DhcpPacket): void {
  const info = req.options.get(Opt.RELAY_AGENT_INFO);
  if (!info || req.giaddr === '0.0.0.0') return;
  reply.options.delete(Opt.RELAY_AGENT_INFO);
  reply.options.set(Opt.RELAY_AGENT_INFO, info);
}
