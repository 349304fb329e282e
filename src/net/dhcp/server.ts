/**
 * The DHCP server: RFC 2131 message handling and address allocation. Options are checked in
 * config.ts, replies built in replies.ts, sockets kept to one interface in sockets.ts. See
 * index.ts for the public contract.
 */
import type dgram from 'node:dgram';
import { dirname } from 'node:path';
import {
  BOOTREQUEST, DhcpPacket, MessageType, Opt, decodePacket, encodePacket, encodeWithOptions, intToIp, ipToInt, macString, messageType,
} from './codec.js';
import { checkConfig, type DhcpConfig, type DhcpServerOptions, type DhcpStats } from './config.js';
import { LeaseStore } from './journal.js';
import { bindRecord, clientKey, Lease, leaseKey } from './leases.js';
import { LoadGate, peekMessageType } from './load.js';
import { inNet } from './network.js';
import { optIp, optString } from './options.js';
import { isPxeClient, ReplyBuilder, sanitizeHostname, type Reply } from './replies.js';
import { DhcpSockets, type Kind } from './sockets.js';
import { rehearsalMac, rehearsalRequest } from './warm.js';

export type { DhcpServerOptions, DhcpStats, Reservation } from './config.js';
export { parseCidr } from './network.js';

interface Datagram {
  msg: Buffer;
  rinfo: dgram.RemoteInfo;
  kind: Kind;
}

interface Offer {
  ip: number;
  expires: number;
}

/**
 * Who sent a request. RFC 2131 §4.2: the client identifier (option 61), when present, names the
 * client, else chaddr; `key` is that name (see leases.ts `clientKey`). Reservations stay by MAC.
 */
interface Client {
  key: string;
  mac: string;
  clientId?: string;
}

export class DhcpServer {
  readonly stats: DhcpStats = { received: 0, malformed: 0, ignored: 0, offers: 0, acks: 0, naks: 0, releases: 0, declines: 0, informs: 0, sendErrors: 0, shed: 0, journalSyncs: 0 };
  private readonly serverIp: string;
  private readonly cfg: DhcpConfig;
  private readonly replies: ReplyBuilder;
  private readonly sockets: DhcpSockets;
  /** Outstanding offers and the address each holds, by client key. */
  private readonly offers = new Map<string, Offer>();
  private readonly offeredIps = new Map<number, string>();
  private readonly clock: () => number;
  private readonly log: (line: string) => void;
  private cursor: number;
  private store?: LeaseStore;
  private lastPrune = 0;
  /** DISCOVERs waiting for the end of the event-loop turn (see load.ts). */
  private readonly gate: LoadGate<Datagram>;
  /** A scratch server's replies are encoded and dropped (see `warmUp`). */
  private rehearsal = false;

  constructor(private readonly opts: DhcpServerOptions) {
    this.serverIp = opts.serverIp;
    this.cfg = checkConfig(opts);
    this.clock = opts.clock ?? Date.now;
    this.log = opts.logger ?? (() => {});
    this.cursor = this.cfg.rangeFirst;
    this.replies = new ReplyBuilder(opts, this.cfg);
    this.gate = new LoadGate<Datagram>((d) => this.process(d.msg, d.rinfo, d.kind), (n) => (this.stats.shed += n), () => this.store?.backlog ?? 0,
      { maxWaiting: opts.maxWaitingDiscovers, maxPendingCommits: opts.maxPendingCommits });
    this.sockets = new DhcpSockets(opts, this.cfg, (msg, rinfo, kind, offLink) => this.receive(msg, rinfo, kind, offLink), this.log, () => this.stats.sendErrors++,
      (left) => this.gate.drained(left));
  }

  /**
   * Open the lease journal and bind the sockets (67, and 4011 in proxy mode). Needs root for
   * port 67; privileges can be dropped once it resolves (see `ownedPaths`).
   */
  async start(): Promise<void> {
    this.store = LeaseStore.open(this.opts.leaseFile, (m) => this.log(m), this.opts.leaseCompactAfter);
    if (this.opts.warmUp && !this.opts.proxy) {
      const t0 = performance.now();
      this.warmUp(this.opts.warmUp);
      this.log(`rehearsed ${this.opts.warmUp} exchanges on a scratch server in ${Math.round(performance.now() - t0)} ms (BE_DHCP_WARM)`);
    }
    try {
      await this.sockets.open();
    } catch (e) {
      await this.stop();
      throw e;
    }
    const mode = this.opts.proxy ? 'proxyDHCP' : 'DHCP';
    this.log(`${mode} server ${this.serverIp} listening on ${this.opts.address ?? '0.0.0.0'}:${this.port}${this.opts.proxy ? ` and ${this.proxyPort}` : ''}`);
    const iface = this.cfg.iface;
    if (iface) this.log(`${mode} server ${this.serverIp} serves interface ${iface.name}; replies leave from ${iface.address}`);
  }

  /** Ports actually bound (useful with port 0 in tests). */
  get port(): number {
    return this.sockets.port;
  }

  get proxyPort(): number {
    return this.sockets.proxyPort;
  }

  /** The interface served (see DhcpServerOptions.interface), if the server is bound to one. */
  get interfaceName(): string | undefined {
    return this.cfg.iface?.name;
  }

  /** Paths that must stay writable by the user the caller drops to: the lease file and its directory (compaction renames there). */
  ownedPaths(): string[] {
    return this.opts.leaseFile ? [dirname(this.opts.leaseFile), this.opts.leaseFile] : [];
  }

  /**
   * Run EXCHANGES DISCOVER/REQUEST exchanges through the packet path (decode, allocation, lease
   * table, replies) of a scratch server, so the first clients find it compiled (see warm.ts).
   * The scratch server has its own tables and no journal; its replies are encoded and dropped.
   */
  private warmUp(exchanges: number): void {
    const scratch = new DhcpServer({ ...this.opts, leaseFile: undefined, logger: undefined, warmUp: 0 });
    scratch.store = LeaseStore.open(undefined);
    scratch.rehearsal = true;
    // Clients on the server's network, or (a subnet served through relays only) behind a relay in it.
    const giaddr = this.cfg.relayedOnly ? this.cfg.rangeFirst : 0;
    const rinfo: dgram.RemoteInfo = { address: giaddr ? intToIp(giaddr) : '0.0.0.0', family: 'IPv4', port: giaddr ? 67 : 68, size: 0 };
    const clients = Math.max(1, Math.min(exchanges, Math.floor((this.cfg.rangeLast - this.cfg.rangeFirst + 1) / 2)));
    for (let i = 0; i < exchanges; i++) {
      const n = i % clients;
      scratch.process(rehearsalRequest(n, giaddr), rinfo, 'dhcp');
      const offered = scratch.offers.get(clientKey(macString(rehearsalMac(n))));
      if (offered) scratch.process(rehearsalRequest(n, giaddr, { ip: offered.ip, serverIp: this.serverIp }), rinfo, 'dhcp');
    }
  }

  /** Current leases (including expired ones still remembered for address affinity). */
  leases(): Lease[] {
    return this.store?.table.leases() ?? [];
  }

  /** Flush the journal and close the sockets. */
  async stop(): Promise<void> {
    this.gate.clear();
    await this.sockets.close();
    await this.store?.close();
    this.stats.journalSyncs = this.store?.syncs ?? 0;
  }

  /** Pick the boot file for this client: user class first, then architecture, then default. */
  bootFileFor(req: DhcpPacket): string | undefined {
    return this.replies.bootFileFor(req);
  }

  /** Entry point for one datagram; never throws. */
  private receive(msg: Buffer, rinfo: dgram.RemoteInfo, kind: Kind, offLink: boolean): void {
    this.stats.received++;
    if (offLink) return void this.stats.ignored++; // from another interface's network
    this.gate.arrived();
    // In a busy turn new exchanges wait for its end, newest first: REQUESTs before DISCOVERs.
    if (kind === 'dhcp' && !this.opts.proxy && this.gate.busy() && peekMessageType(msg) === MessageType.DISCOVER) return this.gate.defer({ msg, rinfo, kind });
    this.process(msg, rinfo, kind);
  }

  private process(msg: Buffer, rinfo: dgram.RemoteInfo, kind: Kind): void {
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
      this.handle(req, rinfo, kind);
    } catch (e) {
      this.stats.malformed++;
      this.log(`dropped a packet from ${rinfo.address}: ${(e as Error).message}`);
    }
  }

  private handle(req: DhcpPacket, rinfo: dgram.RemoteInfo, kind: Kind): void {
    const type = messageType(req);
    const now = this.clock();
    if (now - this.lastPrune > 10_000) this.prune(now);
    const giaddr = ipToInt(req.giaddr);
    if (this.opts.proxy) return this.handleProxy(req, type, rinfo, kind);
    const net = this.cfg.net;
    if (giaddr !== 0 && !(net && inNet(net, giaddr))) return void this.stats.ignored++;
    // A subnet that does not hold the server is reached through relays only: a broadcast from a
    // client beside the server (no giaddr, no address of its own) is not for it.
    if (giaddr === 0 && this.cfg.relayedOnly && ipToInt(req.ciaddr) === 0) return void this.stats.ignored++;
    const mac = macString(req.chaddr);
    const id = req.options.get(Opt.CLIENT_ID);
    const clientId = id && id.length > 0 ? id.toString('hex') : undefined;
    const client: Client = { key: clientKey(mac, clientId), mac };
    if (clientId) client.clientId = clientId;
    switch (type) {
      case MessageType.DISCOVER:
        return this.discover(req, client, now);
      case MessageType.REQUEST:
        return this.request(req, client, now);
      case MessageType.RELEASE:
        return this.release(req, client, now);
      case MessageType.DECLINE:
        return this.decline(req, client, now);
      case MessageType.INFORM:
        return this.inform(req, client);
      default:
        this.stats.ignored++;
    }
  }

  // ---- address bookkeeping -------------------------------------------------------------

  private prune(now: number): void {
    this.lastPrune = now;
    for (const [key, o] of this.offers) if (o.expires <= now) this.dropOffer(key);
    this.store?.table.pruneDeclined(now);
  }

  private dropOffer(key: string): void {
    const o = this.offers.get(key);
    if (!o) return;
    this.offers.delete(key);
    if (this.offeredIps.get(o.ip) === key) this.offeredIps.delete(o.ip);
  }

  private inRange(ip: number): boolean {
    return ip >= this.cfg.rangeFirst && ip <= this.cfg.rangeLast;
  }

  /** May `c` have `ip` now? */
  private available(ip: number, c: Client, now: number): boolean {
    const reservedFor = this.cfg.reservedByIp.get(ip);
    if (reservedFor !== undefined) return reservedFor === c.mac;
    const own = this.cfg.reservedByMac.get(c.mac);
    if (own && own.ip !== ip) return false;
    if (!this.inRange(ip) || this.cfg.excluded.has(ip)) return false;
    const table = this.store!.table;
    const until = table.declinedUntil(ip);
    if (until !== undefined && until > now) return false;
    const lease = table.byAddress(ip);
    if (lease && leaseKey(lease) !== c.key && lease.expires > now) return false;
    const offeredTo = this.offeredIps.get(ip);
    if (offeredTo !== undefined && offeredTo !== c.key) {
      const o = this.offers.get(offeredTo);
      if (o && o.expires > now) return false;
    }
    return true;
  }

  /** The address to offer `c`, or undefined when none is free. */
  private choose(c: Client, requested: number | undefined, now: number): number | undefined {
    const res = this.cfg.reservedByMac.get(c.mac);
    if (res) return res.ip;
    const lease = this.store!.table.forClient(c.key);
    if (lease && this.available(ipToInt(lease.ip), c, now)) return ipToInt(lease.ip);
    const offer = this.offers.get(c.key);
    if (offer && this.available(offer.ip, c, now)) return offer.ip;
    if (requested !== undefined && this.available(requested, c, now)) return requested;
    // Prefer addresses nobody remembers; fall back to one whose lease expired.
    const { rangeFirst, rangeLast } = this.cfg;
    const size = rangeLast - rangeFirst + 1;
    let expired: number | undefined;
    for (let i = 0; i < size; i++) {
      const ip = this.cursor;
      this.cursor = ip >= rangeLast ? rangeFirst : ip + 1;
      if (!this.available(ip, c, now)) continue;
      const old = this.store!.table.byAddress(ip);
      if (!old || leaseKey(old) === c.key) return ip;
      if (expired === undefined) expired = ip;
    }
    return expired;
  }

  /**
   * The range is full: take back the oldest outstanding offer (an offer is not a lease), so a
   * flood of DISCOVERs from made-up MACs cannot lock real clients out for `offerTime`.
   */
  private reclaimOffer(c: Client, now: number): number | undefined {
    for (const [other, o] of this.offers) {
      if (other === c.key || !this.inRange(o.ip) || this.cfg.reservedByIp.has(o.ip)) continue;
      this.dropOffer(other);
      if (this.available(o.ip, c, now)) return o.ip;
    }
    return undefined;
  }

  private hostnameFor(c: Client, req: DhcpPacket): string | undefined {
    return this.cfg.reservedByMac.get(c.mac)?.hostname ?? sanitizeHostname(optString(req.options, Opt.HOSTNAME));
  }

  // ---- message handlers ------------------------------------------------------------------

  private discover(req: DhcpPacket, c: Client, now: number): void {
    const requested = optIp(req.options, Opt.REQUESTED_IP);
    let ip = this.choose(c, requested ? ipToInt(requested) : undefined, now);
    if (ip === undefined) ip = this.reclaimOffer(c, now);
    if (ip === undefined) {
      this.stats.ignored++;
      this.log(`DHCPDISCOVER from ${c.mac}: no free address`);
      return;
    }
    if (!this.offers.has(c.key) && this.offers.size >= this.cfg.maxOffers) {
      this.prune(now);
      const oldest = this.offers.keys().next();
      if (this.offers.size >= this.cfg.maxOffers && !oldest.done) this.dropOffer(oldest.value);
    }
    this.dropOffer(c.key);
    this.offers.set(c.key, { ip, expires: now + this.cfg.offerMs });
    this.offeredIps.set(ip, c.key);
    this.stats.offers++;
    this.send(this.replies.reply(req, MessageType.OFFER, intToIp(ip), c.mac, { lease: true }));
  }

  private request(req: DhcpPacket, c: Client, now: number): void {
    const serverId = optIp(req.options, Opt.SERVER_ID);
    const requestedOpt = optIp(req.options, Opt.REQUESTED_IP);
    let state: 'SELECTING' | 'INIT-REBOOT' | 'RENEWING';
    let ipStr: string | undefined;
    if (serverId !== undefined) {
      if (serverId !== this.serverIp) {
        // The client chose another server: forget our offer.
        this.dropOffer(c.key);
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
      const offer = this.offers.get(c.key);
      if (!offer) return void this.stats.ignored++;
      ipStr = intToIp(offer.ip);
      state = 'SELECTING';
    }
    const ip = ipToInt(ipStr);
    const known = this.store!.table.forClient(c.key) !== undefined || this.offers.has(c.key) || this.cfg.reservedByMac.has(c.mac);
    if (!this.available(ip, c, now)) {
      const net = this.cfg.net;
      if (state === 'SELECTING' || known || this.opts.authoritative !== false || !(net && inNet(net, ip))) {
        this.stats.naks++;
        this.log(`DHCPNAK ${ipStr} to ${c.mac} [${state}]`);
        this.send(this.replies.nak(req));
      } else {
        this.stats.ignored++;
      }
      return;
    }
    this.dropOffer(c.key);
    const hostname = this.hostnameFor(c, req);
    const reply = this.replies.reply(req, MessageType.ACK, ipStr, c.mac, { lease: true });
    const leaseMs = this.cfg.leaseMs;
    const rec = bindRecord({ mac: c.mac, clientId: c.clientId, ip: ipStr, hostname }, now + leaseMs);
    this.store!.commit(rec, (err) => {
      if (err) return; // not durable: stay silent, the client retries
      this.stats.acks++;
      this.stats.journalSyncs = this.store!.syncs;
      this.log(`DHCPACK ${ipStr} to ${c.mac}${hostname ? ` (${hostname})` : ''} for ${Math.round(leaseMs / 1000)}s${state === 'SELECTING' ? '' : ` [${state}]`}`);
      this.send(reply, true);
    });
  }

  private release(req: DhcpPacket, c: Client, now: number): void {
    const serverId = optIp(req.options, Opt.SERVER_ID);
    if (serverId !== undefined && serverId !== this.serverIp) return void this.stats.ignored++;
    const lease = this.store!.table.forClient(c.key);
    if (!lease || lease.ip !== req.ciaddr || lease.expires <= now) return void this.stats.ignored++;
    this.stats.releases++;
    this.store!.commit(bindRecord(lease, now));
    this.log(`DHCPRELEASE ${lease.ip} from ${c.mac}`);
  }

  private decline(req: DhcpPacket, c: Client, now: number): void {
    const serverId = optIp(req.options, Opt.SERVER_ID);
    if (serverId !== undefined && serverId !== this.serverIp) return void this.stats.ignored++;
    const ipStr = optIp(req.options, Opt.REQUESTED_IP);
    if (!ipStr) return void this.stats.ignored++;
    const ip = ipToInt(ipStr);
    const lease = this.store!.table.byAddress(ip);
    const offered = this.offers.get(c.key)?.ip === ip;
    if (!offered && !(lease && leaseKey(lease) === c.key)) return void this.stats.ignored++;
    this.dropOffer(c.key);
    this.stats.declines++;
    const declineMs = this.cfg.declineMs;
    this.store!.commit({ op: 'decline', ip: ipStr, until: now + declineMs });
    this.log(`DHCPDECLINE ${ipStr} from ${c.mac}: quarantined for ${Math.round(declineMs / 1000)}s`);
  }

  private inform(req: DhcpPacket, c: Client): void {
    const ciaddr = ipToInt(req.ciaddr);
    const net = this.cfg.net;
    if (ciaddr === 0 || !(net && inNet(net, ciaddr))) return void this.stats.ignored++;
    this.stats.informs++;
    this.send(this.replies.reply(req, MessageType.ACK, '0.0.0.0', c.mac, { lease: false }));
  }

  private handleProxy(req: DhcpPacket, type: number, rinfo: dgram.RemoteInfo, kind: Kind): void {
    if (!isPxeClient(req)) return void this.stats.ignored++;
    const mac = macString(req.chaddr);
    if (kind === 'dhcp') {
      if (type !== MessageType.DISCOVER) return void this.stats.ignored++;
      const r = this.replies.reply(req, MessageType.OFFER, '0.0.0.0', mac, { lease: false, proxy: true });
      if (!r.packet.file) return void this.stats.ignored++;
      this.stats.offers++;
      this.log(`proxyDHCP offer ${r.packet.file} to ${mac}`);
      return this.send(r);
    }
    // Port 4011: the client already has an address and asks the boot server directly.
    if (type !== MessageType.REQUEST && type !== MessageType.INFORM) return void this.stats.ignored++;
    const r = this.replies.reply(req, MessageType.ACK, '0.0.0.0', mac, { lease: false, proxy: true });
    if (!r.packet.file) return void this.stats.ignored++;
    r.to = rinfo.address;
    r.port = rinfo.port;
    r.via = 'pxe';
    this.stats.acks++;
    this.log(`proxyDHCP ack ${r.packet.file} to ${mac} at ${rinfo.address}`);
    this.send(r);
  }

  /** `released`: an ACK let go by a journal sync (see sockets.ts `send`). */
  private send(r: Reply, released = false): void {
    let buf: Buffer;
    try {
      buf = r.optionBytes ? encodeWithOptions(r.packet, r.optionBytes) : encodePacket(r.packet, r.maxSize);
    } catch (e) {
      this.stats.sendErrors++;
      this.log(`cannot encode reply: ${(e as Error).message}`);
      return;
    }
    if (!this.rehearsal) this.sockets.send(r, buf, released);
  }
}
