/**
 * `be pxe serve` behind a real DHCP relay agent (ISC dhcrelay), with busybox udhcpc on another
 * subnet, in three network namespaces this test creates:
 *
 *   client ns: eth0 (no address) ── router ns: lan0 LAN.1/24 (giaddr)   up0 NET.254/24 ── server ns: eth0 NET.1/24
 *              udhcpc                          dhcrelay -id lan0 -iu up0 NET.1, ip_forward    be pxe serve --subnet LAN.0/24
 *
 * The server holds no address in the network it serves: it reaches it only through the relay.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { randomBytes, randomInt } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomMac } from '../helpers/netns.js';
import { nsRun, parseUdhcpcLog, udhcpcScript } from '../helpers/dhcp.js';
import { startBe, type PxeProcess } from '../helpers/pxe.js';
import { watch, type Watched } from '../helpers/proc.js';

const tag = randomBytes(3).toString('hex');
const client = `berc-${tag}`;
const router = `berr-${tag}`;
const server = `bers-${tag}`;
const created: string[] = [];
// three different /24s: the relayed LAN, the server's network, and one the server does not serve
const seconds = new Set<number>();
const prefix = (): string => {
  let b: number;
  do b = randomInt(100, 250); while (seconds.has(b));
  seconds.add(b);
  return `10.${b}.${randomInt(1, 250)}`;
};
const lan = prefix();
const net = prefix();
const other = prefix();
const serverIp = `${net}.1`;
const giaddr = `${lan}.1`;

let dir: string;
let be: PxeProcess | undefined;
const running: Watched[] = [];

/** Run ARGV in namespace NS, keeping its output lines (stdout and stderr); stopped in afterAll. */
function inNs(ns: string, argv: string[]): Watched {
  const w = watch(['ip', 'netns', 'exec', ns, ...argv], { name: argv[0], timeoutMs: 30_000 });
  running.push(w);
  return w;
}

async function ipIn(ns: string, args: string[]): Promise<void> {
  await execa('ip', ['-n', ns, ...args]);
}

/** dhcrelay in the foreground, relaying from lan0 (downstream) to the server through up0 (upstream), adding its agent information (option 82, -a), which it strips from the replies. */
async function startRelay(): Promise<Watched> {
  const relay = inNs(router, ['dhcrelay', '-4', '-d', '--no-pid', '-a', '-id', 'lan0', '-iu', 'up0', serverIp]);
  // the last line of its start-up, once every interface is open
  await relay.waitFor(/^Sending on +Socket\/fallback/);
  return relay;
}

/** Datagrams the router forwarded (not relayed: dhcrelay sends its own): /proc/net/snmp Ip ForwDatagrams. */
async function forwarded(): Promise<number> {
  const { stdout } = await execa('ip', ['netns', 'exec', router, 'cat', '/proc/net/snmp']);
  const [names, values] = stdout.split('\n').filter((l) => l.startsWith('Ip:')).map((l) => l.trim().split(/\s+/));
  return Number(values[names.indexOf('ForwDatagrams')]);
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function events(log: string, event: string): Promise<Array<Record<string, string>>> {
  return parseUdhcpcLog(await readFile(log, 'utf8').catch(() => '')).filter((e) => e.event === event).map((e) => e.env);
}

function waitForEvent(log: string, event: string, count = 1): Promise<Array<Record<string, string>>> {
  return until(`udhcpc event ${event} x${count}`, async () => {
    const evs = await events(log, event);
    return evs.length >= count ? evs : undefined;
  });
}

/** A udhcpc script that records each event and configures eth0 as a real one would: address and default route. */
async function configuringScript(): Promise<{ script: string; log: string }> {
  const s = await udhcpcScript(dir);
  const body = await readFile(s.script, 'utf8');
  await writeFile(s.script, `${body}case "$1" in bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/$mask" dev "$interface"; ip route replace default via "$router" dev "$interface";; deconfig) ip addr flush dev "$interface";; esac\n`, { mode: 0o755 });
  return s;
}

const re = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'be-dhcp-relay-'));
  // the server drops to nobody, who must reach its lease directory
  await chmod(dir, 0o755);
  for (const ns of [client, router, server]) {
    await execa('ip', ['netns', 'add', ns]);
    created.push(ns);
    await ipIn(ns, ['link', 'set', 'lo', 'up']);
  }
  await ipIn(router, ['link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', client]);
  await ipIn(router, ['link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', server]);
  await ipIn(router, ['addr', 'add', `${giaddr}/24`, 'dev', 'lan0']);
  await ipIn(router, ['addr', 'add', `${net}.254/24`, 'dev', 'up0']);
  for (const [ns, dev] of [[router, 'lan0'], [router, 'up0'], [client, 'eth0'], [server, 'eth0']]) await ipIn(ns, ['link', 'set', dev, 'up']);
  await execa('ip', ['netns', 'exec', router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  await ipIn(server, ['addr', 'add', `${serverIp}/24`, 'dev', 'eth0']);
  // every other network (the relayed LAN, and any relay's giaddr) through the router
  await ipIn(server, ['route', 'add', 'default', 'via', `${net}.254`]);

  be = startBe(server, [
    'pxe', 'serve', '--address', serverIp, '--subnet', `${lan}.0/24`, '--range', `${lan}.100-${lan}.120`,
    '--router', giaddr, '--no-tftp', '--lease-file', join(dir, 'db', 'leases'),
  ]);
  await be.waitFor(/^running as nobody/, 30_000);
}, 60_000);

afterAll(async () => {
  for (const w of running) await w.stop();
  await be?.stop().catch(() => undefined);
  for (const ns of created.reverse()) await execa('ip', ['netns', 'del', ns], { reject: false });
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('DHCP through a relay agent (ISC dhcrelay)', () => {
  it('be pxe serve says it serves the LAN through relays', async () => {
    await be!.waitFor(new RegExp(`^dhcp ${re(lan)}\\.0/24 does not hold ${re(serverIp)}: it is served through DHCP relay agents`));
    await be!.waitFor(new RegExp(`^dhcp DHCP server ${re(serverIp)} listening on 0\\.0\\.0\\.0:67$`));
  });

  it('udhcpc on the relayed LAN is bound, renews and releases straight with the server, through the router', async () => {
    const relay = await startRelay();
    const mac = randomMac();
    await ipIn(client, ['link', 'set', 'eth0', 'address', mac]);
    const { script, log } = await configuringScript();
    const udhcpc = inNs(client, ['busybox', 'udhcpc', '-f', '-i', 'eth0', '-s', script, '-t', '10', '-T', '2']);
    try {
      const [bound] = await waitForEvent(log, 'bound');
      const leased = bound.ip;
      const host = Number(leased.split('.')[3]);
      expect(leased.startsWith(`${lan}.`)).toBe(true);
      expect(host).toBeGreaterThanOrEqual(100);
      expect(host).toBeLessThanOrEqual(120);
      expect(bound).toMatchObject({ subnet: '255.255.255.0', router: giaddr, serverid: serverIp, lease: '3600' });
      await be!.waitFor(new RegExp(`^dhcp DHCPACK ${re(leased)} to ${mac} for 3600s$`));
      // the server's replies reached the client through the relay, not the router
      await relay.waitFor(new RegExp(`^Forwarded BOOTREQUEST for ${mac} to ${re(serverIp)}$`));
      await relay.waitFor(new RegExp(`^Forwarded BOOTREPLY for ${mac} to ${re(leased)}$`));
      expect(await forwarded()).toBe(0);

      // RENEWING: unicast from the leased address to the server id, routed (not relayed) by the
      // router, and the ACK unicast back to ciaddr. dhcrelay, listening on lan0 with a packet
      // socket, also relays a copy of that unicast request, so the server ACKs it twice; the
      // router's forwarding counter shows the direct exchange did take place.
      const before = await forwarded();
      udhcpc.proc.kill('SIGUSR1');
      const [renewed] = await waitForEvent(log, 'renew');
      expect(renewed).toMatchObject({ ip: leased, serverid: serverIp, router: giaddr });
      await be!.waitFor(new RegExp(`^dhcp DHCPACK ${re(leased)} to ${mac} for 3600s \\[RENEWING\\]$`));
      await until('the renewal request and its ACK forwarded by the router', async () => ((await forwarded()) >= before + 2 ? true : undefined));

      const beforeRelease = await forwarded();
      udhcpc.proc.kill('SIGUSR2');
      await be!.waitFor(new RegExp(`^dhcp DHCPRELEASE ${re(leased)} from ${mac}$`));
      await waitForEvent(log, 'deconfig', 2);
      await until('the release forwarded by the router', async () => ((await forwarded()) > beforeRelease ? true : undefined));
      expect(be!.lines.filter((l) => l.includes(mac)).filter((l) => l.includes('DHCPRELEASE'))).toHaveLength(1);
    } finally {
      await udhcpc.stop();
      await relay.stop();
    }
  });

  it('a request relayed with a giaddr outside the served subnet gets no answer', async () => {
    // the router's LAN now is another network: the relay stamps that giaddr on the request
    await ipIn(router, ['addr', 'flush', 'dev', 'lan0']);
    await ipIn(router, ['addr', 'add', `${other}.1/24`, 'dev', 'lan0']);
    const relay = await startRelay();
    try {
      const mac = randomMac();
      await ipIn(client, ['addr', 'flush', 'dev', 'eth0']);
      await ipIn(client, ['link', 'set', 'eth0', 'address', mac]);
      const { script, log } = await udhcpcScript(dir);
      const r = await nsRun(client, ['busybox', 'udhcpc', '-q', '-n', '-f', '-i', 'eth0', '-s', script, '-t', '3', '-T', '1'], { reject: false, timeout: 60_000 });
      expect(r.exitCode).toBe(1);
      expect(String(r.stderr)).toMatch(/no lease, failing/);
      expect(await events(log, 'bound')).toEqual([]);
      // the requests did reach the server (dhcrelay forwarded them), which stayed silent
      await relay.waitFor(new RegExp(`^Forwarded BOOTREQUEST for ${mac} to ${re(serverIp)}$`));
      expect(relay.lines.filter((l) => /BOOTREPLY/.test(l))).toEqual([]);
      expect(be!.lines.filter((l) => l.includes(mac))).toEqual([]);
    } finally {
      await relay.stop();
    }
  });
});
