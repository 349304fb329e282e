/** What `be sharenfs` was asked for, validated once: every bad value is a one-line BeError. */
import { BeError } from '../sys/errors.js';
import { cidrOf, formatIpv4, parseIpv4, prefixMask } from '../net/ipv4.js';

export interface Network {
  /** The network number, host bits cleared. */
  address: string;
  prefix: number;
}

export interface ShareSpec {
  networks: Network[];
  hosts: string[];
  /** exports(5) -maproot: a user name or uid[:gid[:gid...]]. */
  maproot?: string;
  ro: boolean;
  /** The NFSv4 tree root (the exports(5) `V4:` line). */
  v4Root?: string;
}

/** A dotted quad as a number; a bad one is a one-line BeError naming WHAT. */
export function checkIpv4(text: string, what = 'address'): number {
  const n = parseIpv4(text);
  if (n === undefined) throw new BeError(`invalid ${what} '${text}': expected an IPv4 address like 192.168.2.1`);
  return n;
}

/** 192.168.2.0/24 (host bits are cleared: 192.168.2.7/24 means 192.168.2.0/24). */
export function parseNetwork(text: string): Network {
  const slash = text.indexOf('/');
  if (slash < 0) throw new BeError(`invalid network '${text}': expected CIDR like 192.168.2.0/24`);
  const addr = checkIpv4(text.slice(0, slash), 'network');
  const p = text.slice(slash + 1);
  if (!/^\d{1,2}$/.test(p) || Number(p) > 32) throw new BeError(`invalid network '${text}': prefix length must be 0..32`);
  const prefix = Number(p);
  return { address: formatIpv4(cidrOf(addr, prefix).base), prefix };
}

export function netmaskOf(n: Network): string {
  return formatIpv4(prefixMask(n.prefix));
}

const HOST = /^[A-Za-z0-9]([A-Za-z0-9.:-]*[A-Za-z0-9])?$/;

export function checkHost(text: string): string {
  if (!HOST.test(text) || text.length > 253) throw new BeError(`invalid host '${text}': expected a host name or an address`);
  return text;
}

export function checkMaproot(text: string): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)*$/.test(text)) {
    throw new BeError(`invalid maproot '${text}': expected a user name or uid[:gid...]`);
  }
  return text;
}

/** An absolute path that exports(5), ganesha and fstab can all carry without quoting. */
export function checkSharePath(text: string, what = 'path'): string {
  if (!text.startsWith('/') || /[\s"'\\#;{}]/.test(text) || text.includes('//') || text.split('/').some((c) => c === '..' || c === '.')) {
    throw new BeError(`invalid ${what} '${text}': expected an absolute path without spaces, quotes or '..'`);
  }
  return text.length > 1 ? text.replace(/\/$/, '') : text;
}

export function makeShareSpec(opts: { network?: string[]; host?: string[]; maproot?: string; ro?: boolean; v4Root?: string }): ShareSpec {
  return {
    networks: (opts.network ?? []).map(parseNetwork),
    hosts: (opts.host ?? []).map(checkHost),
    maproot: opts.maproot === undefined ? undefined : checkMaproot(opts.maproot),
    ro: !!opts.ro,
    v4Root: opts.v4Root === undefined ? undefined : checkSharePath(opts.v4Root, 'NFSv4 root'),
  };
}
