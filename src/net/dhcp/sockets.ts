/**
 * The server's sockets, and how they keep it to one interface:
 * - `main`, bound to 0.0.0.0:67 (or `address`), receives the broadcasts. On Linux it is bound to
 *   the served interface (SO_BINDTODEVICE, ../udpif.ts), so the kernel gives it only what
 *   arrived there; on FreeBSD a tap tells on which interface each one arrived (IP_RECVIF,
 *   ../arrival.ts) and what came in elsewhere is dropped. Either way a request from a client
 *   that already has an address is dropped unless that address is on one of the served
 *   interface's networks.
 * - `own`, bound to the served interface's address on the same port, receives what is unicast to
 *   that address (relay agents, renewing clients, from whichever interface they come), and sends
 *   every reply. A datagram to 255.255.255.255 from a socket bound to a local address leaves by
 *   the interface holding that address (Linux: ip_route_output_key_hash_rcu in
 *   net/ipv4/route.c, the "special hack" for limited broadcast), so broadcast replies go to
 *   255.255.255.255 on the served interface and no other, and an address-less client bound to
 *   0.0.0.0:68 receives them.
 * Both sockets share the port with SO_REUSEADDR; a bind without it (on the device, where there is
 * one) first checks that no other server holds the port there.
 * Without koffi's platform package (or on another system) the sockets are Node's alone, as
 * before: one warning line says that address-less clients of other interfaces are answered too.
 *
 * FreeBSD: the same two sockets (sys/netinet/in_pcb.c, in_pcbbind_setup: with SO_REUSEADDR the
 * port lookup is not a wildcard one, so only the same address and port conflict). IP_ONESBCAST
 * (udp_usrreq.c: the subnet broadcast goes out as 255.255.255.255) is not reachable from Node's
 * dgram, and sending to 255.255.255.255 is rewritten to the first interface's broadcast address
 * (in_pcbconnect_setup), so there broadcast replies go to the served interface's subnet
 * broadcast, which leaves by it (see config.ts).
 *
 * With koffi, replies leave by a direct sendto(2) (sendmmsg(2) on Linux) and, once Node has
 * delivered a second datagram in one turn (or while a burst goes on), what else waits on that
 * socket is read at once by recvfrom(2) (recvmmsg(2) on Linux; direct.ts), at most
 * DRAIN_PER_TURN a turn, each through the same checks as Node's. Not on FreeBSD's `main` with its
 * tap, which must pair each datagram Node reads with its copy.
 */
import dgram from 'node:dgram';
import { ipToInt } from './codec.js';
import type { DhcpConfig, DhcpServerOptions } from './config.js';
import { DhcpError } from './errors.js';
import { inNet, subnetBroadcast } from './network.js';
import type { Reply } from './replies.js';
import { directSocket, type DirectSocket } from './direct.js';
import { ArrivalTap } from '../arrival.js';
import { bindToDevice, interfaceHold } from '../udpif.js';
import { Pacer } from './pace.js';

export type Kind = 'dhcp' | 'pxe';
/** One datagram; `offLink`: it came from an address that is not on the served interface, or arrived on another (FreeBSD tap). */
export type Receiver = (msg: Buffer, rinfo: dgram.RemoteInfo, kind: Kind, offLink: boolean) => void;

/** Receive: a short queue (see load.ts: an answer that waited seconds in the kernel comes after its client gave up); send: room for bursts. */
const RECV_BUFFER = 512 << 10;
const SEND_BUFFER = 4 << 20;
/** Datagrams read directly in one event-loop turn, over all sockets, beyond those Node delivers. */
export const DRAIN_PER_TURN = 64;

/** A socket on `address:port`; with `device`, one that receives and sends on that interface only (udpif.ts). */
function bindSocket(port: number, address: string, reuseAddr: boolean, device?: string): Promise<dgram.Socket> {
  if (device !== undefined) return bindToDevice({ device, address, port, reuseAddr, recvBufferSize: RECV_BUFFER, sendBufferSize: SEND_BUFFER });
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket({ type: 'udp4', reuseAddr, recvBufferSize: RECV_BUFFER, sendBufferSize: SEND_BUFFER });
    const onError = (e: Error) => {
      s.close();
      reject(e);
    };
    s.once('error', onError);
    s.bind(port, address, () => {
      s.off('error', onError);
      s.setBroadcast(true);
      resolve(s);
    });
  });
}

function closeSocket(s?: dgram.Socket): Promise<void> {
  return new Promise<void>((resolve) => {
    if (!s) return resolve();
    try {
      s.close(() => resolve());
    } catch {
      resolve();
    }
  });
}

export class DhcpSockets {
  private main?: dgram.Socket;
  private own?: dgram.Socket;
  private proxy?: dgram.Socket;
  /** FreeBSD: tells on which interface each broadcast `main` receives arrived (arrival.ts). */
  private tap?: ArrivalTap;
  private broadcastTo: string;
  /** Each socket's direct calls (direct.ts), where koffi loads. */
  private readonly direct = new Map<dgram.Socket, DirectSocket>();
  /** Datagrams still to read directly this turn, and those Node delivered in it. */
  private drainLeft = DRAIN_PER_TURN;
  private delivered = 0;
  private turnReset = false;
  /** The last direct read found datagrams: a burst is under way. */
  private bursting = false;
  /** ACKs leave through it: those a slow journal sync releases at once go out as a flow (pace.ts). */
  private readonly pacer = new Pacer<{ r: Reply; buf: Buffer }>(({ r, buf }) => this.transmit(r, buf), () => this.onSendError());

  /** `drained(left)`: after a direct read, whether datagrams were left waiting in the kernel (load.ts). */
  constructor(
    private readonly opts: DhcpServerOptions,
    private readonly cfg: DhcpConfig,
    private readonly receive: Receiver,
    private readonly log: (line: string) => void,
    private readonly onSendError: () => void,
    private readonly drained: (left: boolean) => void = () => {},
  ) {
    this.broadcastTo = cfg.broadcastTo;
  }

  get port(): number {
    return this.main?.address().port ?? 0;
  }

  get proxyPort(): number {
    return this.proxy?.address().port ?? 0;
  }

  /** Bind 67 (plus the interface's address) and, in proxy mode, 4011. Throws DhcpError. */
  async open(): Promise<void> {
    const address = this.opts.address ?? '0.0.0.0';
    const ownAddress = this.cfg.iface?.address;
    const name = this.cfg.iface?.name;
    const hold = name === undefined ? undefined : await interfaceHold();
    const device = hold === 'device' ? name : undefined;
    try {
      let port = this.opts.port ?? 67;
      if (ownAddress !== undefined && port !== 0) await closeSocket(await bindSocket(port, address, false, device));
      this.main = this.listen(await bindSocket(port, address, ownAddress !== undefined, device), 'dhcp', ownAddress !== undefined);
      port = this.main.address().port;
      if (ownAddress !== undefined) this.own = this.listen(await bindSocket(port, ownAddress, true), 'dhcp', false);
      if (hold === 'arrival') await this.openTap(name!, address, port);
      if (this.opts.proxy) this.proxy = this.listen(await bindSocket(this.opts.proxyPort ?? 4011, address, false, device), 'pxe', false);
    } catch (e) {
      await this.close();
      throw new DhcpError(`cannot bind DHCP port: ${(e as Error).message}`, { cause: e });
    }
    if (typeof hold === 'object') this.warn(hold.why, name!);
  }

  /** The FreeBSD tap beside `main`; without it the server runs as it would without koffi. */
  private async openTap(name: string, address: string, port: number): Promise<void> {
    try {
      const tap = await ArrivalTap.open({ device: name, address, port });
      if (typeof tap === 'string') this.warn(tap, name);
      else this.tap = tap;
    } catch (e) {
      this.warn(`IP_RECVIF: ${(e as Error).message}`, name);
    }
  }

  /** One line: the sockets are not held to the served interface. */
  private warn(why: string, name: string): void {
    this.log(`warning: ${why}: a client without an address on another interface than ${name} is answered too`);
  }

  private listen(s: dgram.Socket, kind: Kind, filter: boolean): dgram.Socket {
    const nets = this.cfg.iface?.nets ?? [];
    s.on('error', (e) => this.log(`socket error: ${e.message}`));
    // the last sender's answer, kept: a relay agent (or 0.0.0.0) sends request after request
    let lastFrom = '0.0.0.0';
    let lastFromElsewhere = false;
    const elsewhere = (address: string): boolean => {
      if (address !== lastFrom) {
        lastFrom = address;
        lastFromElsewhere = address !== '0.0.0.0' && !nets.some((n) => inNet(n, ipToInt(address)));
      }
      return lastFromElsewhere;
    };
    const deliver = (msg: Buffer, rinfo: dgram.RemoteInfo) => {
      const offLink = filter && (elsewhere(rinfo.address) || this.tap?.where(msg, rinfo) === 'elsewhere');
      this.receive(msg, rinfo, kind, offLink);
    };
    const direct = directSocket(s);
    if (direct) this.direct.set(s, direct);
    s.on('message', (msg, rinfo) => {
      deliver(msg, rinfo);
      if (!direct || (this.tap && s === this.main)) return;
      this.countTurn();
      // A second datagram from Node in one turn, or a burst still under way: read the rest now.
      // (A lone datagram is not followed by a read that would find nothing.)
      if (this.drainLeft > 0 && (this.delivered > 1 || this.bursting)) this.drain(direct, deliver);
    });
    return s;
  }

  private countTurn(): void {
    this.delivered++;
    if (this.turnReset) return;
    this.turnReset = true;
    setImmediate(() => {
      this.turnReset = false;
      this.drainLeft = DRAIN_PER_TURN;
      this.delivered = 0;
    });
  }

  /** Read the rest of a burst on one socket now (bounded per turn). */
  private drain(direct: DirectSocket, deliver: (msg: Buffer, rinfo: dgram.RemoteInfo) => void): void {
    const { read, empty } = direct.drain(this.drainLeft, deliver);
    this.drainLeft -= read;
    this.bursting = read > 0;
    this.drained(!empty);
  }

  async close(): Promise<void> {
    for (const d of this.direct.values()) d.close();
    this.direct.clear();
    await closeSocket(this.main);
    await closeSocket(this.own);
    await closeSocket(this.proxy);
    this.tap?.close();
    this.pacer.clear();
    this.main = this.own = this.proxy = this.tap = undefined;
  }

  /**
   * Send a reply; `released`: one of the replies a journal sync let go together, which leave
   * paced. (Other replies are made one at a time as requests are read, so they are paced already.)
   */
  send(r: Reply, buf: Buffer, released = false): void {
    if (released) this.pacer.push({ r, buf });
    else this.transmit(r, buf);
  }

  private transmit(r: Reply, buf: Buffer): void {
    const socket = r.via === 'pxe' ? this.proxy : this.own ?? this.main;
    const attempt = (to: string, retry: boolean) => {
      try {
        socket!.send(buf, r.port, to, (err) => {
          if (!err) return;
          const fallback = subnetBroadcast(this.cfg.net);
          if (retry && to === this.broadcastTo && fallback && fallback !== to && (err as NodeJS.ErrnoException).code === 'ENETUNREACH') {
            // No route for 255.255.255.255 (no default route): use the subnet broadcast from now on.
            this.broadcastTo = fallback;
            attempt(fallback, false);
            return;
          }
          this.onSendError();
        });
      } catch {
        this.onSendError(); // socket closed while a reply was waiting for its fsync
      }
    };
    const to = r.to ?? this.broadcastTo;
    if (socket && this.direct.get(socket)?.send(buf, to, r.port, () => attempt(to, true))) return;
    attempt(to, true);
  }
}
