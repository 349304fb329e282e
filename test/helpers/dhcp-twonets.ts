/**
 * A DHCP server host with two interfaces, each leading to a namespace of its own:
 *
 *   lab ns:  eth0 (no address)  ── veth ── server ns: <p>lab 10.L.M.1/24
 *   up ns:   eth0 (no address)  ── veth ── server ns: <p>up  10.U.V.1/24, default route via 10.U.V.254
 *
 * The server's default route leaves by the uplink, as on a lab server whose lab NIC is its second
 * one. Both client namespaces have a device route for 255.255.255.255 (and a default route) on
 * eth0 and no address, like a host whose DHCP client has not run yet. Namespaces and interfaces
 * are named after `prefix` (default "bdh").
 */
import { execa } from 'execa';
import { randomBytes, randomInt } from 'node:crypto';

export interface TwoNets {
  server: string;
  lab: string;
  up: string;
  /** The server's interfaces to the lab and to the uplink. */
  labIf: string;
  upIf: string;
  /** "10.L.M": the lab /24 is `${labPrefix}.0/24`, the server is `${labPrefix}.1` on `labIf`. */
  labPrefix: string;
  upPrefix: string;
  destroy(): Promise<void>;
}

async function ip(args: string[]): Promise<void> {
  await execa('ip', args);
}

export async function makeTwoNets(prefix = 'bdh'): Promise<TwoNets> {
  const tag = randomBytes(3).toString('hex');
  const a = randomInt(100, 250);
  const labPrefix = `10.${a}.${randomInt(1, 120)}`;
  const upPrefix = `10.${a}.${randomInt(130, 250)}`;
  const created: string[] = [];
  const nets: TwoNets = {
    server: `${prefix}s-${tag}`, lab: `${prefix}l-${tag}`, up: `${prefix}u-${tag}`, labIf: `${prefix}lab`, upIf: `${prefix}up`, labPrefix, upPrefix,
    async destroy() {
      for (const ns of created.reverse()) await execa('ip', ['netns', 'del', ns], { reject: false });
    },
  };
  try {
    for (const ns of [nets.server, nets.lab, nets.up]) {
      await ip(['netns', 'add', ns]);
      created.push(ns);
      await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    for (const [dev, ns, net] of [[nets.labIf, nets.lab, labPrefix], [nets.upIf, nets.up, upPrefix]] as const) {
      await ip(['-n', nets.server, 'link', 'add', dev, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      await ip(['-n', nets.server, 'addr', 'add', `${net}.1/24`, 'dev', dev]);
      await ip(['-n', nets.server, 'link', 'set', dev, 'up']);
      await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      await ip(['-n', ns, 'route', 'add', 'default', 'dev', 'eth0']);
    }
    await ip(['-n', nets.server, 'route', 'add', 'default', 'via', `${upPrefix}.254`, 'dev', nets.upIf]);
    return nets;
  } catch (e) {
    await nets.destroy();
    throw e;
  }
}
