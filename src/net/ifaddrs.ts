/**
 * The host's network interfaces and their IPv4 networks: what Node sees (running interfaces), and
 * parsers for `ip -o` (Linux) and `ifconfig -a` (FreeBSD) output, which also list interfaces that
 * are down. Shared by src/net/*; imports nothing outside src/net.
 */
import { networkInterfaces } from 'node:os';

/** Interface name → its IPv4 addresses as CIDR ("10.0.0.1/24"); interfaces without one map to []. */
export type InterfaceTable = Map<string, string[]>;

/** Running interfaces, as Node sees them. */
export function runningInterfaces(): InterfaceTable {
  const table: InterfaceTable = new Map();
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    table.set(name, (addrs ?? []).filter((a) => a.family === 'IPv4' && a.cidr).map((a) => a.cidr!));
  }
  return table;
}

/** `ip -o link show` and `ip -o -4 addr show` (one line per link / per address). */
export function parseIpOutput(links: string, addrs: string): InterfaceTable {
  const table: InterfaceTable = new Map();
  for (const line of links.split('\n')) {
    // "3: br0: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 ..."; a veth shows as "veth0@if2".
    const m = /^\d+:\s+([^:@\s]+)(?:@\S+)?:/.exec(line);
    if (m) table.set(m[1], []);
  }
  for (const line of addrs.split('\n')) {
    // "3: br0    inet 10.0.0.1/24 brd 10.0.0.255 scope global br0\       valid_lft forever ..."
    const m = /^\d+:\s+(\S+)\s+inet\s+(\d+\.\d+\.\d+\.\d+\/\d+)/.exec(line);
    if (!m) continue;
    const list = table.get(m[1]) ?? [];
    list.push(m[2]);
    table.set(m[1], list);
  }
  return table;
}

/** FreeBSD `ifconfig -a`: a block per interface, "inet A netmask 0xffffff00 ..." lines inside. */
export function parseIfconfig(text: string): InterfaceTable {
  const table: InterfaceTable = new Map();
  let current: string[] | undefined;
  for (const line of text.split('\n')) {
    const head = /^([A-Za-z0-9_.-]+): flags=/.exec(line);
    if (head) {
      current = [];
      table.set(head[1], current);
      continue;
    }
    const inet = /^\s+inet\s+(\d+\.\d+\.\d+\.\d+)\s+netmask\s+0x([0-9a-fA-F]{8})/.exec(line);
    if (inet && current) {
      const mask = parseInt(inet[2], 16) >>> 0;
      let prefix = 0;
      while (prefix < 32 && mask & (0x80000000 >>> prefix)) prefix++;
      current.push(`${inet[1]}/${prefix}`);
    }
  }
  return table;
}
