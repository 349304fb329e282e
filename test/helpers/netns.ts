/**
 * Throw-away networks for tests: network namespaces joined by veth pairs to a bridge that lives
 * in the client namespace. Every address stays inside these namespaces.
 *
 *   client ns:  br0 (the client's interface) ── veth ── server ns 1: eth0 10.X.Y.1/24
 *                                            └─ veth ── server ns 2: eth0 10.X.Y.2/24 ...
 */
import { execa } from 'execa';
import { randomBytes, randomInt } from 'node:crypto';

export interface Lan {
  /** Namespace of the clients; the bridge `br0` is their interface. */
  client: string;
  /** One namespace per server, each with `eth0` at `serverIps[i]`. */
  servers: string[];
  serverIps: string[];
  /** e.g. "10.23.45" — the /24 is `${prefix}.0/24`. */
  prefix: string;
  subnet: string;
  destroy(): Promise<void>;
}

async function ip(args: string[]): Promise<void> {
  await execa('ip', args);
}

export async function makeLan(serverCount = 1): Promise<Lan> {
  const tag = randomBytes(3).toString('hex');
  const prefix = `10.${randomInt(100, 250)}.${randomInt(1, 250)}`;
  const client = `bec-${tag}`;
  const servers = Array.from({ length: serverCount }, (_, i) => `bes${i}-${tag}`);
  const serverIps = servers.map((_, i) => `${prefix}.${i + 1}`);
  const created: string[] = [];
  const lan: Lan = {
    client, servers, serverIps, prefix, subnet: `${prefix}.0/24`,
    async destroy() {
      for (const ns of created.reverse()) await execa('ip', ['netns', 'del', ns], { reject: false });
    },
  };
  try {
    await ip(['netns', 'add', client]);
    created.push(client);
    await ip(['-n', client, 'link', 'set', 'lo', 'up']);
    await ip(['-n', client, 'link', 'add', 'br0', 'type', 'bridge']);
    await ip(['-n', client, 'link', 'set', 'br0', 'up']);
    for (const [i, ns] of servers.entries()) {
      await ip(['netns', 'add', ns]);
      created.push(ns);
      await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      await ip(['-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `p${i}`, 'netns', client]);
      await ip(['-n', ns, 'addr', 'add', `${serverIps[i]}/24`, 'dev', 'eth0']);
      await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      await ip(['-n', client, 'link', 'set', `p${i}`, 'master', 'br0']);
      await ip(['-n', client, 'link', 'set', `p${i}`, 'up']);
    }
    return lan;
  } catch (e) {
    await lan.destroy();
    throw e;
  }
}

/** argv that runs `argv` inside namespace `ns`. */
export function inNs(ns: string, argv: string[]): [string, string[]] {
  return ['ip', ['netns', 'exec', ns, ...argv]];
}

/** A random locally administered unicast MAC. */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0] & 0xfc) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
