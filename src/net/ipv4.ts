/**
 * IPv4 addresses and CIDR networks as numbers: the one place `be` does this arithmetic (the DHCP
 * server, `be pxe serve`'s checks, exports(5) networks, bhyve's loader addresses all use it).
 * Nothing here throws: a parser returns undefined for text it does not accept, and each caller
 * words its own error. A dotted quad is read as FreeBSD's inet_pton(3) reads one
 * (lib/libc/inet/inet_pton.c, inet_pton4): exactly four decimal octets, each at most 255, no
 * leading zeros (inet_aton's octal "010" and short forms "10.1" are not addresses here).
 * Imports nothing outside src/net.
 */

/** A network: its number (host bits clear), prefix length and mask, all unsigned 32-bit. */
export interface Cidr {
  base: number;
  prefix: number;
  mask: number;
}

/** "192.168.2.1" → 0xc0a80201, or undefined for anything inet_pton4 refuses. One pass, no allocation. */
export function parseIpv4(text: string): number | undefined {
  const end = text.length;
  if (end < 7 || end > 15) return undefined;
  let n = 0;
  let i = 0;
  for (let part = 0; part < 4; part++) {
    if (part > 0) {
      if (text.charCodeAt(i) !== 46) return undefined; // '.'
      i++;
    }
    const start = i;
    let octet = 0;
    for (let c = text.charCodeAt(i); c >= 48 && c <= 57 && i - start < 3; c = text.charCodeAt(++i)) octet = octet * 10 + (c - 48);
    const digits = i - start;
    if (digits === 0 || (digits > 1 && text.charCodeAt(start) === 48) || octet > 255) return undefined;
    n = n * 256 + octet;
  }
  return i === end ? n >>> 0 : undefined;
}

export function isIpv4(text: string): boolean {
  return parseIpv4(text) !== undefined;
}

/** 0xc0a80201 → "192.168.2.1". */
export function formatIpv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** The netmask of a prefix length 0..32: 24 → 0xffffff00. */
export function prefixMask(prefix: number): number {
  return prefix <= 0 ? 0 : (0xffffffff << (32 - Math.min(prefix, 32))) >>> 0;
}

/** The prefix length of a netmask (0xffffff00 → 24), or undefined when its ones are not contiguous. */
export function maskPrefix(mask: number): number | undefined {
  const inverted = ~mask >>> 0;
  return (inverted & (inverted + 1)) === 0 ? 32 - Math.log2(inverted + 1) : undefined;
}

/** The network of ADDRESS with PREFIX (host bits cleared). */
export function cidrOf(address: number, prefix: number): Cidr {
  const mask = prefixMask(prefix);
  return { base: (address & mask) >>> 0, prefix, mask };
}

/** A parsed "ADDRESS/PREFIX": the network, and the address as written (host bits possibly set). */
export interface CidrText extends Cidr {
  address: number;
}

/** "192.168.2.7/24" → the network 192.168.2.0/24 and the address 192.168.2.7; undefined when not CIDR (prefix 0..32). */
export function parseCidr(text: string): CidrText | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const address = parseIpv4(text.slice(0, slash));
  const p = text.slice(slash + 1);
  if (address === undefined || !/^\d{1,2}$/.test(p) || Number(p) > 32) return undefined;
  return { ...cidrOf(address, Number(p)), address };
}

export function inCidr(net: Cidr, ip: number): boolean {
  return ((ip & net.mask) >>> 0) === net.base;
}

/** The all-ones host address of NET. */
export function broadcastOf(net: Cidr): number {
  return (net.base | (~net.mask >>> 0)) >>> 0;
}

/** "192.168.2.0/24". */
export function cidrString(net: Cidr): string {
  return `${formatIpv4(net.base)}/${net.prefix}`;
}
