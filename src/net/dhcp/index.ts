/**
 * A standalone DHCP server (RFC 2131/2132) with PXE boot information and proxyDHCP, for lab
 * networks. Knows nothing of boot environments.
 *
 *   import { DhcpServer } from './net/dhcp/index.js';
 *   const server = new DhcpServer({
 *     serverIp: '10.0.0.1', subnet: '10.0.0.0/24', range: '10.0.0.100-10.0.0.199',
 *     router: '10.0.0.1', dns: ['10.0.0.1'], domain: 'lab', leaseTime: 3600,
 *     reservations: [{ mac: '52:54:00:12:34:56', ip: '10.0.0.10', hostname: 'builder' }],
 *     bootFiles: { 0: 'pxeboot', 7: 'loader.efi', 9: 'loader.efi' },
 *     userClassBootFiles: { iPXE: 'http://10.0.0.1/boot.ipxe' },
 *     rootPath: '10.0.0.1:/be/roots/default',
 *     leaseFile: '/var/db/be/dhcp/leases', logger: (l) => console.log(l),
 *   });
 *   await server.start();   // opens the lease journal, binds 0.0.0.0:67 and 10.0.0.1:67 (and 4011 with proxy)
 *   // now drop privileges; server.ownedPaths() must stay writable by the new user
 *   await server.stop();    // flushes the journal, closes the sockets
 *
 * Behaviour:
 * - DISCOVER → OFFER; REQUEST → ACK or NAK (SELECTING, INIT-REBOOT, RENEWING/REBINDING per RFC
 *   2131 §4.3.2; a REQUEST naming another server in option 54 drops our offer silently);
 *   RELEASE ends the lease; DECLINE quarantines the address for `declineTime`; INFORM gets an
 *   ACK with options only. Reservations by MAC always get their address (and option 12).
 * - Options 1, 3, 6, 12, 15, 17, 28, 51/58/59, 54, and for PXE clients (option 60 "PXEClient")
 *   60, 43 (PXE_DISCOVERY_CONTROL = 8: boot the named file), 66, 67, 97 (UUID echoed). Option 55
 *   selects and orders what is sent; option 57 caps the reply size. `siaddr`/`file` are set
 *   along with 66/67. The boot file comes from `userClassBootFiles` (option 77, e.g. iPXE), else
 *   `bootFiles[arch]` (option 93; 0 when a PXE client sends none), else `bootFiles.default`.
 * - Clients (RFC 2131 §4.2): a client is its client identifier (option 61) when it sends one,
 *   else its chaddr; offers, leases and the journal are keyed so. Reservations are by MAC.
 * - Interface: the server serves one interface, `interface` or else the running interface holding
 *   serverIp. It binds 0.0.0.0:67 for broadcasts plus that interface's address:67, and sends
 *   every reply from the latter, so replies leave by that interface only. Requests from clients
 *   that have an address off the interface's networks are dropped; relayed requests come by
 *   unicast to serverIp. See sockets.ts for what Node's dgram allows and what it does not.
 * - Replies (RFC 2131 §4.1): relayed requests (giaddr) go to the relay's port 67; NAKs are
 *   broadcast; a client with ciaddr gets unicast; everything else is broadcast to
 *   255.255.255.255:68 on the served interface, also when the client did not ask for it, because
 *   unicasting to an address that has no ARP entry yet needs raw sockets. Without an interface
 *   address to send from (an explicit `address`, or no interface holds serverIp) broadcasts go
 *   to the subnet broadcast address.
 * - proxyDHCP (`proxy: true`): answers only PXE clients, with boot information and yiaddr
 *   0.0.0.0, on port 67 (DISCOVER → OFFER) and 4011 (REQUEST → ACK to the sender), so it can run
 *   beside a network's own DHCP server.
 * - Leases: an append-only JSON-lines journal, fdatasync'd before the ACK leaves, in batches (all
 *   ACKs decided in one event-loop turn share one write+fsync); replayed at start (a torn last
 *   line is skipped) and compacted by temp file + fsync + rename. See leases.ts and journal.ts. The
 *   ACKs one sync releases together leave paced (pace.ts).
 * - Limits: node's dgram cannot bind to a device (SO_BINDTODEVICE) nor tell on which interface a
 *   datagram arrived, so a broadcast DISCOVER from a client without an address on another
 *   interface is still seen; its OFFER leaves by the served interface, where that client never
 *   hears it, so it never REQUESTs and gets no lease. Malformed packets are counted and dropped;
 *   pending offers are capped at the range size.
 */
export { DhcpServer, parseCidr } from './server.js';
export type { DhcpServerOptions, DhcpStats, Reservation } from './server.js';
export { DhcpError } from './errors.js';
export { warmUpExchanges, WARM_EXCHANGES } from './warm.js';
export { LeaseTable, clientKey, readLeaseFile } from './leases.js';
export { LeaseStore } from './journal.js';
export type { Lease } from './leases.js';
export {
  decodePacket, encodePacket, messageType, macString, parseMac, ipToInt, intToIp,
  MessageType, Opt, BOOTREQUEST, BOOTREPLY, FLAG_BROADCAST, DhcpParseError,
} from './codec.js';
export type { DhcpPacket } from './codec.js';
export {
  optIp, optString, optU16, optU32, requestedParams, clientArchs, userClasses,
  ipBytes, u32Bytes, u16Bytes, stringBytes, pxeVendorOptions,
} from './options.js';
