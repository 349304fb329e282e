/**
 * Typed reading and writing of DHCP option values (RFC 2132, PXE 2.1, RFC 4578). Readers return
 * undefined for a missing or wrongly sized value instead of throwing: a hostile client only ever
 * makes an option disappear.
 */
import { ipToInt, intToIp, Opt } from './codec.js';

export type Options = Map<number, Buffer>;

export function optIp(opts: Options, code: number): string | undefined {
  const v = opts.get(code);
  return v && v.length === 4 ? intToIp(v.readUInt32BE(0)) : undefined;
}

export function optU16(opts: Options, code: number): number | undefined {
  const v = opts.get(code);
  return v && v.length === 2 ? v.readUInt16BE(0) : undefined;
}

export function optU32(opts: Options, code: number): number | undefined {
  const v = opts.get(code);
  return v && v.length === 4 ? v.readUInt32BE(0) : undefined;
}

export function optString(opts: Options, code: number): string | undefined {
  const v = opts.get(code);
  if (!v) return undefined;
  const nul = v.indexOf(0);
  return v.subarray(0, nul < 0 ? v.length : nul).toString('latin1');
}

/** Option 55: the codes the client asks for, in its order. */
export function requestedParams(opts: Options): number[] | undefined {
  const v = opts.get(Opt.PARAM_REQUEST);
  return v ? [...v] : undefined;
}

/** Option 93 (RFC 4578): the client system architectures, first one preferred. */
export function clientArchs(opts: Options): number[] {
  const v = opts.get(Opt.CLIENT_ARCH);
  if (!v || v.length < 2) return [];
  const out: number[] = [];
  for (let i = 0; i + 1 < v.length; i += 2) out.push(v.readUInt16BE(i));
  return out;
}

/**
 * Option 77 (RFC 3004): user classes. RFC 3004 encodes length-prefixed items, but iPXE and many
 * others send a bare string; both are accepted.
 */
export function userClasses(opts: Options): string[] {
  const v = opts.get(Opt.USER_CLASS);
  if (!v || v.length === 0) return [];
  const items: string[] = [];
  let i = 0;
  let rfc = true;
  while (i < v.length) {
    const len = v[i];
    if (len === 0 || i + 1 + len > v.length) {
      rfc = false;
      break;
    }
    items.push(v.subarray(i + 1, i + 1 + len).toString('latin1'));
    i += 1 + len;
  }
  const bare = v.toString('latin1').replace(/\0+$/, '');
  return rfc ? [...items, bare] : [bare];
}

export function ipBytes(...ips: string[]): Buffer {
  const b = Buffer.alloc(4 * ips.length);
  ips.forEach((ip, i) => b.writeUInt32BE(ipToInt(ip), 4 * i));
  return b;
}

export function u32Bytes(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

export function u16Bytes(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n & 0xffff, 0);
  return b;
}

export function stringBytes(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

/** PXE vendor sub-options (option 43) as code/value pairs, terminated by 255. */
export function pxeVendorOptions(sub: Array<[number, Buffer]>): Buffer {
  const parts: Buffer[] = [];
  for (const [code, value] of sub) parts.push(Buffer.from([code, value.length]), value);
  parts.push(Buffer.from([255]));
  return Buffer.concat(parts);
}

/** PXE sub-option 6, PXE_DISCOVERY_CONTROL: bit 3 = boot the file named in the offer directly. */
export const PXE_DISCOVERY_CONTROL = 6;
