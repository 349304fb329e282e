/**
 * The host's network interfaces and their IPv4 networks, including interfaces that are down or
 * have no carrier yet. Node's os.networkInterfaces() lists only running interfaces, so a PXE server
 * started at boot before its link is up (or on a bridge whose ports are not up yet) would not find
 * its own interface there. Asks `ip` on Linux and `ifconfig` on FreeBSD; the table type and the
 * parsers live in src/net/ifaddrs.ts.
 */
import type { Runner } from './run.js';
import { parseIfconfig, parseIpOutput, type InterfaceTable } from '../net/ifaddrs.js';

export { parseIfconfig, parseIpOutput, runningInterfaces, type InterfaceTable } from '../net/ifaddrs.js';

/** Every interface, up or down: `ip -o addr show` / `ip -o link show` on Linux, `ifconfig -a` on FreeBSD. */
export async function allInterfaces(runner: Runner, platform: NodeJS.Platform = process.platform): Promise<InterfaceTable> {
  if (platform === 'freebsd') return parseIfconfig((await runner.query(['ifconfig', '-a'])).stdout);
  const [links, addrs] = await Promise.all([runner.query(['ip', '-o', 'link', 'show']), runner.query(['ip', '-o', '-4', 'addr', 'show'])]);
  return parseIpOutput(links.stdout, addrs.stdout);
}

