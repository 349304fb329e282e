/**
 * TFTP packet codec (RFC 1350, option extension RFC 2347). Pure functions from bytes to typed
 * packets and back; nothing here touches the network or the filesystem.
 *
 *   RRQ/WRQ  | 01/02 | filename | 0 | mode | 0 | opt1 | 0 | value1 | 0 | ...
 *   DATA     | 03    | block (2) | data (0..blksize)
 *   ACK      | 04    | block (2)
 *   ERROR    | 05    | code (2) | message | 0
 *   OACK     | 06    | opt1 | 0 | value1 | 0 | ...
 */

export const Opcode = {
  RRQ: 1,
  WRQ: 2,
  DATA: 3,
  ACK: 4,
  ERROR: 5,
  OACK: 6,
} as const;

/** RFC 1350 and RFC 2347 error codes. */
export const ErrorCode = {
  NOT_DEFINED: 0,
  FILE_NOT_FOUND: 1,
  ACCESS_VIOLATION: 2,
  DISK_FULL: 3,
  ILLEGAL_OPERATION: 4,
  UNKNOWN_TID: 5,
  FILE_EXISTS: 6,
  NO_SUCH_USER: 7,
  OPTION_REFUSED: 8,
} as const;
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

export type TransferMode = 'octet' | 'netascii' | 'mail';

/** One option as it appeared on the wire; names are lower-cased, values kept as text. */
export interface TftpOption {
  name: string;
  value: string;
}

export interface RequestPacket {
  op: typeof Opcode.RRQ | typeof Opcode.WRQ;
  /** The file name exactly as sent (decoded as UTF-8, invalid sequences become U+FFFD). */
  filename: string;
  /** Lower-cased mode string; not validated here (see `transferMode`). */
  mode: string;
  options: TftpOption[];
}
export interface DataPacket {
  op: typeof Opcode.DATA;
  block: number;
  data: Buffer;
}
export interface AckPacket {
  op: typeof Opcode.ACK;
  block: number;
}
export interface ErrorPacket {
  op: typeof Opcode.ERROR;
  code: number;
  message: string;
}
export interface OackPacket {
  op: typeof Opcode.OACK;
  options: TftpOption[];
}
export type TftpPacket = RequestPacket | DataPacket | AckPacket | ErrorPacket | OackPacket;

/** Why a packet could not be decoded; `code` is the error to answer with. */
export class TftpDecodeError extends Error {
  readonly code: ErrorCodeValue;
  constructor(message: string, code: ErrorCodeValue = ErrorCode.ILLEGAL_OPERATION) {
    super(message);
    this.name = 'TftpDecodeError';
    this.code = code;
  }
}

/** Options past this count in one request are dropped (bounds the work one packet can cause). */
export const MAX_REQUEST_OPTIONS = 32;
/** Longest option name or value we keep; longer ones are dropped. */
const MAX_FIELD = 255;

/** Split a NUL-terminated string field starting at `pos`; returns the field and the next position. */
function readField(buf: Buffer, pos: number, what: string): [string, number, Buffer] {
  const end = buf.indexOf(0, pos);
  if (end < 0) throw new TftpDecodeError(`${what} not terminated`);
  const raw = buf.subarray(pos, end);
  return [raw.toString('utf8'), end + 1, raw];
}

function decodeRequest(op: typeof Opcode.RRQ | typeof Opcode.WRQ, buf: Buffer): RequestPacket {
  let pos = 2;
  const [filename, afterName, rawName] = readField(buf, pos, 'file name');
  if (rawName.length === 0) throw new TftpDecodeError('empty file name');
  pos = afterName;
  const [modeText, afterMode] = readField(buf, pos, 'mode');
  pos = afterMode;
  const mode = modeText.toLowerCase();
  const options: TftpOption[] = [];
  const seen = new Set<string>();
  while (pos < buf.length) {
    // Some clients pad the request with trailing NULs; an empty name ends the list.
    if (buf[pos] === 0) break;
    const [name, afterOptName] = readField(buf, pos, 'option name');
    const [value, afterValue] = readField(buf, afterOptName, 'option value');
    pos = afterValue;
    if (name.length > MAX_FIELD || value.length > MAX_FIELD) continue; // no option we know is that long
    const key = name.toLowerCase();
    if (seen.has(key)) continue; // the first occurrence wins
    seen.add(key);
    if (options.length < MAX_REQUEST_OPTIONS) options.push({ name: key, value });
  }
  return { op, filename, mode, options };
}

function decodeOptionList(buf: Buffer, pos: number): TftpOption[] {
  const options: TftpOption[] = [];
  while (pos < buf.length && buf[pos] !== 0) {
    const [name, afterName] = readField(buf, pos, 'option name');
    const [value, afterValue] = readField(buf, afterName, 'option value');
    pos = afterValue;
    options.push({ name: name.toLowerCase(), value });
  }
  return options;
}

/** Decode one datagram. Throws `TftpDecodeError` for anything malformed. */
export function decodePacket(buf: Buffer): TftpPacket {
  if (buf.length < 2) throw new TftpDecodeError('packet shorter than an opcode');
  const op = buf.readUInt16BE(0);
  switch (op) {
    case Opcode.RRQ:
    case Opcode.WRQ:
      return decodeRequest(op, buf);
    case Opcode.DATA:
      if (buf.length < 4) throw new TftpDecodeError('DATA shorter than its header');
      return { op, block: buf.readUInt16BE(2), data: buf.subarray(4) };
    case Opcode.ACK:
      if (buf.length < 4) throw new TftpDecodeError('ACK shorter than its header');
      return { op, block: buf.readUInt16BE(2) };
    case Opcode.ERROR: {
      if (buf.length < 4) throw new TftpDecodeError('ERROR shorter than its header');
      const end = buf.indexOf(0, 4);
      const message = buf.subarray(4, end < 0 ? buf.length : end).toString('utf8');
      return { op, code: buf.readUInt16BE(2), message };
    }
    case Opcode.OACK:
      return { op, options: decodeOptionList(buf, 2) };
    default:
      throw new TftpDecodeError(`unknown opcode ${op}`);
  }
}

/** The transfer mode of a request, or undefined when the mode is not one RFC 1350 defines. */
export function transferMode(mode: string): TransferMode | undefined {
  return mode === 'octet' || mode === 'netascii' || mode === 'mail' ? mode : undefined;
}

export function encodeRequest(op: typeof Opcode.RRQ | typeof Opcode.WRQ, filename: string, mode: string, options: TftpOption[] = []): Buffer {
  const parts: Buffer[] = [u16(op), cstr(filename), cstr(mode)];
  for (const o of options) parts.push(cstr(o.name), cstr(o.value));
  return Buffer.concat(parts);
}

/** A DATA packet; copies `data` after the 4-byte header. */
export function encodeData(block: number, data: Uint8Array): Buffer {
  const buf = Buffer.allocUnsafe(4 + data.length);
  buf.writeUInt16BE(Opcode.DATA, 0);
  buf.writeUInt16BE(block & 0xffff, 2);
  buf.set(data, 4);
  return buf;
}

/** Write a DATA header (opcode + block number) into the first 4 bytes of `buf`. */
export function writeDataHeader(buf: Buffer, block: number, at = 0): void {
  buf[at] = 0;
  buf[at + 1] = Opcode.DATA;
  buf[at + 2] = (block >>> 8) & 0xff;
  buf[at + 3] = block & 0xff;
}

export function encodeAck(block: number): Buffer {
  const buf = Buffer.allocUnsafe(4);
  buf.writeUInt16BE(Opcode.ACK, 0);
  buf.writeUInt16BE(block & 0xffff, 2);
  return buf;
}

export function encodeError(code: number, message: string): Buffer {
  return Buffer.concat([u16(Opcode.ERROR), u16(code), cstr(message)]);
}

export function encodeOack(options: TftpOption[]): Buffer {
  const parts: Buffer[] = [u16(Opcode.OACK)];
  for (const o of options) parts.push(cstr(o.name), cstr(o.value));
  return Buffer.concat(parts);
}

/** Convert bytes to netascii (RFC 764 as used by RFC 1350): LF → CR LF, bare CR → CR NUL. */
export function toNetascii(data: Uint8Array): Buffer {
  let extra = 0;
  for (let i = 0; i < data.length; i++) if (data[i] === 0x0a || data[i] === 0x0d) extra++;
  const out = Buffer.allocUnsafe(data.length + extra);
  let j = 0;
  for (let i = 0; i < data.length; i++) {
    const c = data[i];
    if (c === 0x0a) {
      out[j++] = 0x0d;
      out[j++] = 0x0a;
    } else if (c === 0x0d) {
      out[j++] = 0x0d;
      out[j++] = 0x00;
    } else {
      out[j++] = c;
    }
  }
  return out;
}

function u16(n: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(n & 0xffff, 0);
  return b;
}

function cstr(s: string): Buffer {
  return Buffer.from(`${s}\0`, 'utf8');
}
