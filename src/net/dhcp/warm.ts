/**
 * The requests a server rehearses before it binds its sockets (server.ts `warmUp`): after a power
 * cut the lab's machines and its boot server come back together, so the first second a server
 * runs can be its busiest. Until V8 has run the packet path a few thousand times it runs it as
 * bytecode, several times slower, and compiles it on a thread that takes the other core; the
 * storm's first second then loses replies. Measured with bench/dhcp at 10,000 exchanges/s offered
 * on two cores: of a cold run's unanswered DISCOVERs, nearly all fell in its first second (1,583 of
 * 1,648; after a warm-up run of real traffic, 1). With this rehearsal the first second lost 3-151
 * DISCOVERs in 9 runs, against 165-1,583 cold; its lost REQUESTs did not change.
 *
 * The rehearsal runs on a scratch server (its own tables, no journal, replies encoded and thrown
 * away): nothing of it reaches the wire, the lease file or the real server's state.
 */
import { BOOTREQUEST, encodePacket, intToIp, MessageType, Opt } from './codec.js';
import { DhcpError } from './errors.js';
import { ipBytes, u32Bytes } from './options.js';

/** Exchanges rehearsed by default (`be pxe serve`): a quarter of a second at start-up. */
export const WARM_EXCHANGES = 10_000;

/** What a PXE client asks for in option 55 (subnet mask, router, DNS, host and domain name, boot file). */
const PARAMS = Buffer.from([1, 3, 6, 12, 15, 66, 67]);

/** Client I's hardware address: locally administered (02:…), never a real NIC's. */
export function rehearsalMac(i: number): Buffer {
  return Buffer.from([0x02, 0x62, 0x65, (i >>> 16) & 0xff, (i >>> 8) & 0xff, i & 0xff]);
}

/**
 * A DISCOVER, or a REQUEST for `ip` from `serverIp` (SELECTING), from client I, relayed through
 * `giaddr` (0 for a client on the server's own network).
 */
export function rehearsalRequest(i: number, giaddr: number, request?: { ip: number; serverIp: string }): Buffer {
  const options = new Map<number, Buffer>([[Opt.MESSAGE_TYPE, Buffer.from([request ? MessageType.REQUEST : MessageType.DISCOVER])]]);
  if (request) {
    options.set(Opt.REQUESTED_IP, u32Bytes(request.ip));
    options.set(Opt.SERVER_ID, ipBytes(request.serverIp));
  }
  options.set(Opt.PARAM_REQUEST, PARAMS);
  return encodePacket({
    op: BOOTREQUEST, htype: 1, hlen: 6, hops: giaddr ? 1 : 0, xid: (0x62650000 + i) >>> 0, secs: 0, flags: 0,
    ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: intToIp(giaddr),
    chaddr: rehearsalMac(i), sname: '', file: '', options,
  });
}

/** Exchanges `be pxe serve` rehearses: BE_DHCP_WARM (0 turns it off), else WARM_EXCHANGES. */
export function warmUpExchanges(env: NodeJS.ProcessEnv): number {
  const v = env.BE_DHCP_WARM;
  if (v === undefined || v === '') return WARM_EXCHANGES;
  if (!/^\d{1,7}$/.test(v)) throw new DhcpError(`BE_DHCP_WARM=${v}: not a number of exchanges (0 to 9999999)`);
  return Number(v);
}
