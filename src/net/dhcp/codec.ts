/**
 * DHCP/BOOTP wire format (RFC 2131 §2, RFC 2132, RFC 3396): the fixed 236-byte BOOTP header,
 * the magic cookie and the option area, including options carried in `file`/`sname` when the
 * sender overloads them (option 52). Parsing never throws on hostile input: it returns a
 * `DhcpParseError` reason instead, and every length is checked against the buffer end.
 */
import { parseIpv4 } from '../ipv4.js';
import { macBytes } from '../mac.js';

export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;
export const MAGIC_COOKIE = 0x63825363;
export const HEADER_LENGTH = 236;
/** Smallest packet we emit: BOOTP relays and old clients drop anything shorter than 300 bytes. */
export const MIN_PACKET = 300;
/** Largest packet we bother to parse; anything bigger is not DHCP. */
export const MAX_PACKET = 8192;
/** The broadcast bit of `flags` (RFC 2131 §2). */
export const FLAG_BROADCAST = 0x8000;

export enum MessageType {
  DISCOVER = 1,
  OFFER = 2,
  REQUEST = 3,
  DECLINE = 4,
  ACK = 5,
  NAK = 6,
  RELEASE = 7,
  INFORM = 8,
}

/** Option codes this library reads or writes (RFC 2132, RFC 4578, RFC 3004). */
export const Opt = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS: 6,
  HOSTNAME: 12,
  DOMAIN: 15,
  ROOT_PATH: 17,
  BROADCAST: 28,
  VENDOR: 43,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAM_REQUEST: 55,
  MESSAGE: 56,
  MAX_SIZE: 57,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  VENDOR_CLASS: 60,
  CLIENT_ID: 61,
  TFTP_SERVER: 66,
  BOOTFILE: 67,
  USER_CLASS: 77,
  RELAY_AGENT_INFO: 82,
  CLIENT_ARCH: 93,
  CLIENT_NDI: 94,
  CLIENT_UUID: 97,
  END: 255,
} as const;

/** One DHCP message. Options keep their raw bytes; see options.ts for typed access. */
export interface DhcpPacket {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  /** Dotted-quad strings; '0.0.0.0' when unset. */
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** Client hardware address: the first `hlen` (max 16) bytes of the chaddr field. */
  chaddr: Buffer;
  sname: string;
  file: string;
  /** Option code → value; repeated options are concatenated (RFC 3396). Insertion order kept. */
  options: Map<number, Buffer>;
}

export class DhcpParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DhcpParseError';
  }
}

/** Dotted quad → number (the rule of src/net/ipv4.ts); throws `DhcpParseError` on anything else. */
export function ipToInt(ip: string): number {
  const n = parseIpv4(ip);
  if (n === undefined) throw new DhcpParseError(`bad IPv4 address ${JSON.stringify(ip)}`);
  return n;
}

export { formatIpv4 as intToIp, isIpv4 as isIp } from '../ipv4.js';

function readIp(buf: Buffer, at: number): string {
  return `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
}

function readCString(buf: Buffer, at: number, len: number): string {
  if (buf[at] === 0) return ''; // the usual case: an empty field
  const field = buf.subarray(at, at + len);
  const nul = field.indexOf(0);
  return field.subarray(0, nul < 0 ? len : nul).toString('latin1');
}

/** Walk one option area, appending to `into`. Returns an error message, or null when well-formed. */
function readOptionArea(buf: Buffer, start: number, end: number, into: Map<number, Buffer>): string | null {
  let i = start;
  while (i < end) {
    const code = buf[i];
    if (code === Opt.PAD) {
      i++;
      continue;
    }
    if (code === Opt.END) return null;
    if (i + 1 >= end) return `option ${code} has no length byte`;
    const len = buf[i + 1];
    if (i + 2 + len > end) return `option ${code} (length ${len}) runs past the end of the packet`;
    // A view of the datagram, not a copy (the datagram is not reused; a concatenation is a copy).
    const value = buf.subarray(i + 2, i + 2 + len);
    const prev = into.get(code);
    into.set(code, prev ? Buffer.concat([prev, value]) : value);
    i += 2 + len;
  }
  // Running off the end without an END option is tolerated (many stacks pad instead).
  return null;
}

/** Decode a DHCP message. Throws `DhcpParseError` for anything that is not a well-formed one. */
export function decodePacket(buf: Buffer): DhcpPacket {
  if (buf.length < HEADER_LENGTH + 4) throw new DhcpParseError(`packet of ${buf.length} bytes is shorter than a DHCP header`);
  if (buf.length > MAX_PACKET) throw new DhcpParseError(`packet of ${buf.length} bytes is too large`);
  if (buf.readUInt32BE(HEADER_LENGTH) !== MAGIC_COOKIE) throw new DhcpParseError('bad magic cookie');
  const hlen = buf[2];
  const options = new Map<number, Buffer>();
  const err = readOptionArea(buf, HEADER_LENGTH + 4, buf.length, options);
  if (err) throw new DhcpParseError(err);
  // Option overload (RFC 2132 §9.3): `file` first, then `sname`. Each area is read once, so a
  // packet cannot make us loop; an overload option inside an overloaded area is ignored.
  const overload = options.get(Opt.OVERLOAD);
  let fileIsOptions = false;
  let snameIsOptions = false;
  if (overload && overload.length >= 1) {
    const v = overload[0];
    fileIsOptions = v === 1 || v === 3;
    snameIsOptions = v === 2 || v === 3;
    const extra = new Map<number, Buffer>();
    if (fileIsOptions) {
      const e = readOptionArea(buf, 108, 236, extra);
      if (e) throw new DhcpParseError(`in overloaded file field: ${e}`);
    }
    if (snameIsOptions) {
      const e = readOptionArea(buf, 44, 108, extra);
      if (e) throw new DhcpParseError(`in overloaded sname field: ${e}`);
    }
    for (const [code, value] of extra) {
      if (code === Opt.OVERLOAD) continue;
      const prev = options.get(code);
      options.set(code, prev ? Buffer.concat([prev, value]) : value);
    }
  }
  return {
    op: buf[0],
    htype: buf[1],
    hlen,
    hops: buf[3],
    xid: buf.readUInt32BE(4),
    secs: buf.readUInt16BE(8),
    flags: buf.readUInt16BE(10),
    ciaddr: readIp(buf, 12),
    yiaddr: readIp(buf, 16),
    siaddr: readIp(buf, 20),
    giaddr: readIp(buf, 24),
    chaddr: buf.subarray(28, 28 + Math.min(hlen, 16)),
    sname: snameIsOptions ? '' : readCString(buf, 44, 64),
    file: fileIsOptions ? '' : readCString(buf, 108, 128),
    options,
  };
}

/**
 * Encode a DHCP message. Options are written in map order, each split into 255-byte pieces when
 * longer (RFC 3396). Options that would not fit in `maxSize` bytes are left out, so callers put
 * the essential ones first. The packet is padded to at least 300 bytes.
 */
export function encodePacket(p: DhcpPacket, maxSize = 1500): Buffer {
  return encodeWithOptions(p, optionArea(p.options, maxSize));
}

/**
 * The option area `encodePacket` writes for OPTIONS in a packet of at most `maxSize` bytes,
 * without its END: a reply builder that sends the same options again and again keeps it
 * (replies.ts) and hands it to `encodeWithOptions`.
 */
export function encodeOptions(options: Map<number, Buffer>, maxSize = 1500): Buffer {
  return Buffer.from(optionArea(options, maxSize));
}

/** `encodeOptions` in a reused buffer: valid until the next call. */
function optionArea(options: Map<number, Buffer>, maxSize: number): Uint8Array {
  const limit = Math.max(MIN_PACKET, maxSize);
  if (scratch.length < limit) scratch = Buffer.alloc(limit);
  const buf = scratch;
  const start = HEADER_LENGTH + 4;
  let at = start;
  const room = limit - 1; // keep one byte for END
  for (const [code, value] of options) {
    if (code === Opt.PAD || code === Opt.END) continue;
    if (value.length <= 255) {
      // one piece (nearly every option): no view of it is made
      if (at + value.length + 2 > room) continue;
      buf[at++] = code;
      buf[at++] = value.length;
      buf.set(value, at);
      at += value.length;
      continue;
    }
    const pieces = Math.ceil(value.length / 255);
    const need = value.length + 2 * pieces;
    if (at + need > room) continue;
    for (let off = 0, n = 0; n < pieces; n++, off += 255) {
      const piece = value.subarray(off, off + 255);
      buf[at++] = code;
      buf[at++] = piece.length;
      buf.set(piece, at);
      at += piece.length;
    }
  }
  return buf.subarray(start, at);
}

/** The packet P with an option area from `encodeOptions` (and END, and the padding to 300 bytes). */
export function encodeWithOptions(p: DhcpPacket, optionBytes: Uint8Array): Buffer {
  const end = HEADER_LENGTH + 4 + optionBytes.length;
  const out = Buffer.allocUnsafe(Math.max(end + 1, MIN_PACKET));
  zero(out, 0, HEADER_LENGTH);
  out[0] = p.op;
  out[1] = p.htype;
  out[2] = p.hlen;
  out[3] = p.hops;
  out.writeUInt32BE(p.xid >>> 0, 4);
  out.writeUInt16BE(p.secs & 0xffff, 8);
  out.writeUInt16BE(p.flags & 0xffff, 10);
  out.writeUInt32BE(addressField(p.ciaddr), 12);
  out.writeUInt32BE(addressField(p.yiaddr), 16);
  out.writeUInt32BE(addressField(p.siaddr), 20);
  out.writeUInt32BE(addressField(p.giaddr), 24);
  out.set(p.chaddr.length > 16 ? p.chaddr.subarray(0, 16) : p.chaddr, 28);
  if (p.sname) out.write(p.sname.slice(0, 63), 44, 'latin1');
  if (p.file) out.write(p.file.slice(0, 127), 108, 'latin1');
  out.writeUInt32BE(MAGIC_COOKIE, HEADER_LENGTH);
  out.set(optionBytes, HEADER_LENGTH + 4);
  out[end] = Opt.END;
  zero(out, end + 1, out.length);
  return out;
}

/** Zero bytes FROM..TO of BUF (the typed array's own fill: Buffer's adds argument checks). */
function zero(buf: Buffer, from: number, to: number): void {
  if (from < to) Uint8Array.prototype.fill.call(buf, 0, from, to);
}

let scratch = Buffer.alloc(1500);

/** An address field's value: '0.0.0.0' (most of them, in most replies) without parsing it. */
function addressField(ip: string): number {
  return ip === '0.0.0.0' ? 0 : ipToInt(ip);
}

/** The message type (option 53), or 0 for plain BOOTP / malformed. */
export function messageType(p: DhcpPacket): number {
  const v = p.options.get(Opt.MESSAGE_TYPE);
  return v && v.length === 1 ? v[0] : 0;
}

export { macString } from '../mac.js';

/** Parse a MAC address (any spelling src/net/mac.ts accepts) into bytes; throws on anything else. */
export function parseMac(mac: string): Buffer {
  const bytes = macBytes(mac);
  if (!bytes) throw new DhcpParseError(`bad MAC address ${JSON.stringify(mac)}`);
  return bytes;
}
