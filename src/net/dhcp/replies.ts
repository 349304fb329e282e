/**
 * Building replies (RFC 2131 §4.1, §4.3): the BOOTREPLY fields, the options a client asked for
 * (option 55) plus those PXE needs, and where the reply goes.
 */
import {
  BOOTREPLY, DhcpPacket, FLAG_BROADCAST, MessageType, Opt, encodeOptions, ipToInt,
} from './codec.js';
import type { DhcpConfig, DhcpServerOptions } from './config.js';
import { broadcastOf, inNet, toList } from './network.js';
import {
  clientArchs, ipBytes, optU16, pxeVendorOptions, PXE_DISCOVERY_CONTROL,
  stringBytes, u32Bytes, userClasses,
} from './options.js';

/** A reply ready to send. `to: undefined` is a broadcast (the sockets know where that goes). */
export interface Reply {
  packet: DhcpPacket;
  maxSize: number;
  to?: string;
  port: number;
  /** The socket that sends it: the DHCP port's, or the proxyDHCP port's (4011). */
  via: 'dhcp' | 'pxe';
  /** `packet.options` already encoded for `maxSize` (codec.ts, encodeWithOptions). */
  optionBytes?: Buffer;
}

const PXE_CLIENT = Buffer.from('PXEClient', 'latin1');

/** Option 60 starts with "PXEClient" (PXE 2.1 §2.2.5: "PXEClient:Arch:xxxxx:UNDI:yyyzzz"). */
export function isPxeClient(req: DhcpPacket): boolean {
  const v = req.options.get(Opt.VENDOR_CLASS);
  return v !== undefined && v.length >= PXE_CLIENT.length && PXE_CLIENT.compare(v, 0, PXE_CLIENT.length) === 0;
}

export function sanitizeHostname(h: string | undefined): string | undefined {
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
  reply.options = new Map(reply.options); // it may be a shared one (ReplyBuilder.reply)
  reply.options.delete(Opt.RELAY_AGENT_INFO);
  reply.options.set(Opt.RELAY_AGENT_INFO, info);
}

/** Option lists kept (ReplyBuilder.reply): an OFFER and an ACK for each of a few kinds of client. */
const OPTION_LISTS = 16;

/** One reply's options and what they were chosen by. */
interface OptionList {
  type: MessageType;
  lease: boolean;
  proxy: boolean;
  pxe: boolean;
  file: string | undefined;
  host: string | undefined;
  /** A copy of the request's option 55. */
  wanted: Buffer | undefined;
  options: Map<number, Buffer>;
  /** The options encoded (codec.ts, encodeOptions) for packets of at most `maxSize` bytes. */
  maxSize: number;
  bytes?: Buffer;
}

function sameBytes(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === undefined || b === undefined ? a === b : a.equals(b);
}

/** Option values that depend only on the configuration, encoded once. */
interface Fixed {
  serverId: Buffer;
  /** Options 1, 3, 6, 15, 17, 28 in this order (those configured). */
  network: Array<[number, Buffer]>;
  tftpServer: Buffer;
  vendorClass: Buffer;
  pxeVendor: Buffer;
  leaseTimes: [Buffer, Buffer, Buffer];
  nakMessage: Buffer;
  types: Buffer[];
}

export class ReplyBuilder {
  private readonly fixed: Fixed;
  /** Option 67 values by boot file name (a handful: one per architecture and user class). */
  private readonly bootFileBytes = new Map<string, Buffer>();
  private readonly hostBytes = new Map<string, Buffer>();
  /**
   * The option lists of recent replies, with everything each depends on (see `reply`): clients
   * of one kind (one firmware, one option 55) get the same list, built and encoded once. A list
   * here is shared and never changed: a reply that needs another option added copies it first
   * (echoRelayInfo).
   */
  private readonly recent: OptionList[] = [];
  private nextSlot = 0;

  constructor(private readonly opts: DhcpServerOptions, private readonly cfg: DhcpConfig) {
    const net = cfg.net;
    const network: Array<[number, Buffer]> = [];
    if (net) network.push([Opt.SUBNET_MASK, u32Bytes(net.mask)]);
    const routers = toList(opts.router);
    if (routers.length) network.push([Opt.ROUTER, ipBytes(...routers)]);
    const dns = toList(opts.dns);
    if (dns.length) network.push([Opt.DNS, ipBytes(...dns)]);
    if (opts.domain) network.push([Opt.DOMAIN, stringBytes(opts.domain)]);
    if (opts.rootPath) network.push([Opt.ROOT_PATH, stringBytes(opts.rootPath)]);
    if (net && net.prefix < 31) network.push([Opt.BROADCAST, u32Bytes(broadcastOf(net))]);
    const secs = Math.round(cfg.leaseMs / 1000);
    this.fixed = {
      serverId: ipBytes(opts.serverIp),
      network,
      tftpServer: stringBytes(opts.nextServer ?? opts.serverIp),
      vendorClass: stringBytes('PXEClient'),
      pxeVendor: pxeVendorOptions([[PXE_DISCOVERY_CONTROL, Buffer.from([8])]]),
      leaseTimes: [u32Bytes(secs), u32Bytes(Math.floor(secs / 2)), u32Bytes(Math.floor((secs * 7) / 8))],
      nakMessage: stringBytes('address not available'),
      types: Array.from({ length: 9 }, (_, t) => Buffer.from([t])),
    };
  }

  private relayPort(): number {
    return this.opts.relayPort ?? (this.opts.port || 67);
  }

  private cached(cache: Map<string, Buffer>, s: string): Buffer {
    let b = cache.get(s);
    if (b === undefined) {
      b = stringBytes(s);
      if (cache.size < 4096) cache.set(s, b);
    }
    return b;
  }

  private basePacket(req: DhcpPacket, yiaddr: string, ciaddr: string): DhcpPacket {
    // chaddr is copied into its 16-byte field by the encoder (the rest of the field stays zero)
    return {
      op: BOOTREPLY, htype: req.htype, hlen: req.hlen, hops: 0, xid: req.xid, secs: 0,
      flags: req.flags & FLAG_BROADCAST, ciaddr, yiaddr, siaddr: '0.0.0.0', giaddr: req.giaddr,
      chaddr: req.chaddr, sname: '', file: '', options: new Map(),
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

  /**
   * RFC 2131 §4.3.2: a NAK goes to the relay, or is broadcast (to 255.255.255.255 by default)
   * when the request was not relayed.
   */
  nak(req: DhcpPacket): Reply {
    const packet = this.basePacket(req, '0.0.0.0', '0.0.0.0');
    packet.options.set(Opt.MESSAGE_TYPE, this.fixed.types[MessageType.NAK]);
    packet.options.set(Opt.SERVER_ID, this.fixed.serverId);
    packet.options.set(Opt.MESSAGE, this.fixed.nakMessage);
    echoRelayInfo(req, packet);
    const giaddr = req.giaddr !== '0.0.0.0';
    if (giaddr) packet.flags |= FLAG_BROADCAST;
    return {
      packet, maxSize: 548, via: 'dhcp',
      ...(giaddr ? { to: req.giaddr } : {}),
      port: giaddr ? this.relayPort() : this.opts.clientPort ?? 68,
    };
  }

  reply(req: DhcpPacket, type: MessageType, yiaddr: string, mac: string, how: { lease: boolean; proxy?: boolean }): Reply {
    const { opts, cfg } = this;
    const net = cfg.net;
    const ciaddr = type === MessageType.ACK ? req.ciaddr : '0.0.0.0';
    const p = this.basePacket(req, yiaddr, ciaddr);
    const pxe = isPxeClient(req);
    const file = this.bootFileFor(req);
    const next = opts.nextServer ?? opts.serverIp;
    if (file !== undefined) {
      p.siaddr = next;
      if (Buffer.byteLength(file, 'latin1') < 128) p.file = file;
    }

    const host = how.proxy ? undefined : cfg.reservedByMac.get(mac)?.hostname;
    const uuid = pxe ? req.options.get(Opt.CLIENT_UUID) : undefined;
    const wanted = req.options.get(Opt.PARAM_REQUEST);
    const proxy = how.proxy === true;
    // A client's own UUID (PXE, option 97) makes its list its own; the rest is what `recent` compares.
    let list: OptionList | undefined;
    if (uuid === undefined) {
      for (const e of this.recent) {
        if (e.type === type && e.lease === how.lease && e.proxy === proxy && e.pxe === pxe && e.file === file && e.host === host && sameBytes(e.wanted, wanted)) {
          list = e;
          break;
        }
      }
    }
    if (list) {
      p.options = list.options;
    } else {
      this.fillOptions(p, type, how, pxe, file, host, uuid, wanted);
      if (uuid === undefined) {
        list = { type, lease: how.lease, proxy, pxe, file, host, wanted: wanted && Buffer.from(wanted), options: p.options, maxSize: 0 };
        this.recent[this.nextSlot] = list;
        this.nextSlot = (this.nextSlot + 1) % OPTION_LISTS;
      }
    }

    const giaddr = req.giaddr !== '0.0.0.0';
    let to: string | undefined;
    let port = opts.clientPort ?? 68;
    if (giaddr) {
      to = req.giaddr;
      port = this.relayPort();
    } else if (ciaddr !== '0.0.0.0' && net && inNet(net, ipToInt(ciaddr))) {
      to = ciaddr;
    }
    // Otherwise broadcast flag set, or a client without an address: unicasting to yiaddr would
    // need an ARP entry only raw sockets can create, so broadcast (RFC 2131 §4.1 allows it).
    echoRelayInfo(req, p);
    const max = optU16(req.options, Opt.MAX_SIZE);
    const maxSize = Math.min(1500, Math.max(548, (max ?? 576) - 28));
    const r: Reply = { packet: p, maxSize, port, via: 'dhcp' };
    if (to !== undefined) r.to = to;
    if (list && p.options === list.options) {
      // the shared list, unchanged: its encoding is kept too
      if (list.bytes === undefined || list.maxSize !== maxSize) {
        list.bytes = encodeOptions(list.options, maxSize);
        list.maxSize = maxSize;
      }
      r.optionBytes = list.bytes;
    }
    return r;
  }

  /** The options of a reply: its type, server and lease times, then what the client asked for (option 55) of what we have, plus what PXE needs. */
  private fillOptions(p: DhcpPacket, type: MessageType, how: { lease: boolean; proxy?: boolean }, pxe: boolean, file: string | undefined,
    host: string | undefined, uuid: Buffer | undefined, wanted: Buffer | undefined): void {
    // Values we could send, by option code.
    const fixed = this.fixed;
    const avail = new Map<number, Buffer>();
    if (!how.proxy) {
      // by code: 1, 3, 6, then a reservation's 12, then 15, 17, 28
      for (const [code, v] of fixed.network) {
        if (host && code > Opt.HOSTNAME && !avail.has(Opt.HOSTNAME)) avail.set(Opt.HOSTNAME, this.cached(this.hostBytes, host));
        avail.set(code, v);
      }
      if (host && !avail.has(Opt.HOSTNAME)) avail.set(Opt.HOSTNAME, this.cached(this.hostBytes, host));
    }
    if (file !== undefined) {
      avail.set(Opt.TFTP_SERVER, fixed.tftpServer);
      avail.set(Opt.BOOTFILE, this.cached(this.bootFileBytes, file));
    }
    const forced: number[] = [];
    if (pxe) {
      avail.set(Opt.VENDOR_CLASS, fixed.vendorClass);
      avail.set(Opt.VENDOR, fixed.pxeVendor);
      forced.push(Opt.VENDOR_CLASS, Opt.VENDOR);
      if (uuid && uuid.length <= 32) {
        avail.set(Opt.CLIENT_UUID, uuid);
        forced.push(Opt.CLIENT_UUID);
      }
      if (file !== undefined) forced.push(Opt.TFTP_SERVER, Opt.BOOTFILE);
    }

    p.options.set(Opt.MESSAGE_TYPE, fixed.types[type]);
    p.options.set(Opt.SERVER_ID, fixed.serverId);
    if (how.lease) {
      p.options.set(Opt.LEASE_TIME, fixed.leaseTimes[0]);
      p.options.set(Opt.RENEWAL_TIME, fixed.leaseTimes[1]);
      p.options.set(Opt.REBINDING_TIME, fixed.leaseTimes[2]);
    }
    if (wanted) {
      for (const code of wanted) {
        const v = avail.get(code);
        if (v && !p.options.has(code)) p.options.set(code, v);
      }
      for (const code of forced) {
        const v = avail.get(code);
        if (v && !p.options.has(code)) p.options.set(code, v);
      }
    } else {
      for (const [code, v] of avail) if (!p.options.has(code)) p.options.set(code, v);
    }
  }
}
