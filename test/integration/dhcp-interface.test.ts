/**
 * One interface served, on a server with two (a lab NIC and an uplink that holds the default
 * route): replies leave by the lab interface only, broadcast ones to 255.255.255.255 (RFC 2131
 * §4.1) so that a client without an address receives them, and the uplink's clients get nothing.
 * Real clients (busybox udhcpc with and without -B, ISC dhclient) and a plain UDP socket bound to
 * 0.0.0.0:68 on an interface with no address. A client without an address on the uplink (source
 * 0.0.0.0, which no subnet check can place) reaches the server's sockets only if they are not bound
 * to the lab interface: it must neither get an answer nor hold an address a lab client then lacks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildHelpers, exchange, nsRun, parseUdhcpcLog, startServer, udhcpcScript, type Helpers, type ServerProcess } from '../helpers/dhcp.js';
import { makeTwoNets, type TwoNets } from '../helpers/dhcp-twonets.js';
import { watch, type Watched } from '../helpers/proc.js';
import {
  FLAG_BROADCAST, decodePacket, encodePacket, messageType, MessageType, Opt, readLeaseFile, type DhcpPacket,
} from '../../src/net/dhcp/index.js';

let nets: TwoNets;
let h: Helpers;
let dir: string;
let srv: ServerProcess;
/** Everything that reached 0.0.0.0:68 on the uplink while the tests ran. */
let upHeard: Watched;

const lab = (n: number) => `${nets.labPrefix}.${n}`;
const ipb = (s: string) => Buffer.from(s.split('.').map(Number));

async function setMac(ns: string, mac: string): Promise<void> {
  await execa('ip', ['-n', ns, 'addr', 'flush', 'dev', 'eth0']);
  await execa('ip', ['-n', ns, 'link', 'set', 'eth0', 'address', mac]);
}

function packet(type: MessageType, mac: string, flags: number, opts: Array<[number, Buffer]> = []): Buffer {
  const p: DhcpPacket = {
    op: 1, htype: 1, hlen: 6, hops: 0, xid: Math.floor(Math.random() * 0xffffffff), secs: 0, flags,
    ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: '0.0.0.0',
    chaddr: Buffer.from(mac.replace(/:/g, ''), 'hex'), sname: '', file: '',
    options: new Map<number, Buffer>([[Opt.MESSAGE_TYPE, Buffer.from([type])], ...opts]),
  };
  return encodePacket(p);
}

/** A plain UDP client bound to 0.0.0.0:68 in the lab, which has no address: what does it hear? */
async function plain(ns: string, p: Buffer, waitMs = 3000): Promise<DhcpPacket[]> {
  const got = await exchange(h, ns, { bind: '0.0.0.0', bindPort: 68, to: '255.255.255.255', toPort: 67, packet: p, waitMs });
  return got.map((r) => decodePacket(Buffer.from(r.hex, 'hex')));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bib-dhcp-if-'));
  h = await buildHelpers();
  nets = await makeTwoNets('bib');
  // No --interface: the interface is the one holding serverIp (the lab one).
  srv = await startServer(h, nets.server, { serverIp: lab(1), range: `${lab(100)}-${lab(150)}`, leaseTime: 600, leaseFile: join(dir, 'leases') });
  await srv.waitFor(new RegExp(`^DHCP server ${lab(1).replace(/\./g, '\\.')} serves interface ${nets.labIf}; replies leave from ${lab(1).replace(/\./g, '\\.')}$`));
  upHeard = watch(['ip', 'netns', 'exec', nets.up, process.execPath, h.listen], { stdoutOnly: true, name: 'uplink listener' });
  await upHeard.waitFor(/^LISTENING$/);
});

afterAll(async () => {
  await upHeard?.stop('SIGTERM').catch(() => {});
  await srv?.stop().catch(() => {});
  await nets?.destroy();
  await h?.cleanup();
  await rm(dir, { recursive: true, force: true });
});

describe('DHCP on one interface of two', () => {
  for (const [name, flags] of [['set', FLAG_BROADCAST], ['clear', 0]] as const) {
    it(`a plain socket client without an address receives OFFER, ACK and NAK (broadcast flag ${name})`, async () => {
      const mac = flags ? '02:bd:00:00:01:01' : '02:bd:00:00:01:02';
      await setMac(nets.lab, mac);
      const [offer] = await plain(nets.lab, packet(MessageType.DISCOVER, mac, flags));
      expect(offer && messageType(offer)).toBe(MessageType.OFFER);
      expect(offer.flags & FLAG_BROADCAST).toBe(flags);
      const [ack] = await plain(nets.lab, packet(MessageType.REQUEST, mac, flags, [[Opt.SERVER_ID, ipb(lab(1))], [Opt.REQUESTED_IP, ipb(offer.yiaddr)]]));
      expect(ack && messageType(ack)).toBe(MessageType.ACK);
      expect(ack.yiaddr).toBe(offer.yiaddr);
      // INIT-REBOOT for an address of another network: NAK (RFC 2131 §4.3.2), broadcast as well
      const [nak] = await plain(nets.lab, packet(MessageType.REQUEST, mac, flags, [[Opt.REQUESTED_IP, ipb('192.168.213.7')]]));
      expect(nak && messageType(nak)).toBe(MessageType.NAK);
    });
  }

  for (const flag of [[], ['-B']]) {
    it(`busybox udhcpc ${flag.length ? 'with' : 'without'} -B (broadcast flag) gets a lease`, async () => {
      const mac = flag.length ? '02:bd:00:00:02:02' : '02:bd:00:00:02:01';
      await setMac(nets.lab, mac);
      const { script, log } = await udhcpcScript(dir);
      await nsRun(nets.lab, ['busybox', 'udhcpc', '-q', '-n', '-f', '-i', 'eth0', '-s', script, '-t', '5', '-T', '1', ...flag]);
      const bound = parseUdhcpcLog(await readFile(log, 'utf8')).find((e) => e.event === 'bound');
      expect(bound?.env.ip).toMatch(new RegExp(`^${nets.labPrefix.replace(/\./g, '\\.')}\\.1[0-5]\\d$`));
      await srv.waitFor(new RegExp(`^DHCPACK ${bound!.env.ip.replace(/\./g, '\\.')} to ${mac} `));
    });
  }

  it('ISC dhclient (broadcast flag clear on Linux) gets a lease', async () => {
    const mac = '02:bd:00:00:03:01';
    await setMac(nets.lab, mac);
    const env = join(dir, 'dhclient.env');
    const script = join(dir, 'dhclient-script');
    const pf = join(dir, 'dhclient.pid');
    await writeFile(script, `#!/bin/sh\necho "$reason $new_ip_address" >> ${env}\nexit 0\n`, { mode: 0o755 });
    try {
      await nsRun(nets.lab, ['dhclient', '-1', '-sf', script, '-lf', join(dir, 'dhclient.leases'), '-pf', pf, 'eth0'], { timeout: 60_000 });
      const last = (await readFile(env, 'utf8')).trim().split('\n').pop()!;
      expect(last).toMatch(new RegExp(`^BOUND ${nets.labPrefix.replace(/\./g, '\\.')}\\.1[0-5]\\d$`));
    } finally {
      const pid = Number((await readFile(pf, 'utf8').catch(() => '')).trim());
      if (pid) try { process.kill(pid); } catch { /* gone */ }
    }
  });

  it('a client without an address on the uplink is not heard: no offer, no lease, nothing held from the lab', async () => {
    // what reaches 0.0.0.0:68 on the lab meanwhile
    const labHeard = watch(['ip', 'netns', 'exec', nets.lab, process.execPath, h.listen], { stdoutOnly: true, name: 'lab listener' });
    await labHeard.waitFor(/^LISTENING$/);
    try {
      const offerTo = (mac: string) => labHeard.lines.filter((l) => l !== 'LISTENING')
        .map((l) => decodePacket(Buffer.from((JSON.parse(l) as { hex: string }).hex, 'hex')))
        .filter((p) => p.chaddr.subarray(0, 6).equals(Buffer.from(mac.replace(/:/g, ''), 'hex')));
      // DISCOVER from 0.0.0.0:68 on the uplink asking for lab .141: no answer anywhere, no offer held
      const upDiscover = '02:bd:00:00:05:01';
      await setMac(nets.up, upDiscover);
      expect(await plain(nets.up, packet(MessageType.DISCOVER, upDiscover, FLAG_BROADCAST, [[Opt.REQUESTED_IP, ipb(lab(141))]]), 2000)).toEqual([]);
      // ... so a lab client asking for the same address is offered it
      const labFirst = '02:bd:00:00:05:02';
      await setMac(nets.lab, labFirst);
      const [offer] = await plain(nets.lab, packet(MessageType.DISCOVER, labFirst, FLAG_BROADCAST, [[Opt.REQUESTED_IP, ipb(lab(141))]]));
      expect(offer && messageType(offer)).toBe(MessageType.OFFER);
      expect(offer.yiaddr).toBe(lab(141));
      // REQUEST (SELECTING) from 0.0.0.0 on the uplink for lab .142, naming the server: no ACK, no lease
      const upRequest = '02:bd:00:00:05:03';
      await setMac(nets.up, upRequest);
      expect(await plain(nets.up, packet(MessageType.REQUEST, upRequest, FLAG_BROADCAST, [[Opt.SERVER_ID, ipb(lab(1))], [Opt.REQUESTED_IP, ipb(lab(142))]]), 2000)).toEqual([]);
      // ... so .142 is still free for a lab client
      const labSecond = '02:bd:00:00:05:04';
      await setMac(nets.lab, labSecond);
      const [ack] = await plain(nets.lab, packet(MessageType.REQUEST, labSecond, FLAG_BROADCAST, [[Opt.SERVER_ID, ipb(lab(1))], [Opt.REQUESTED_IP, ipb(lab(142))]]));
      expect(ack && messageType(ack)).toBe(MessageType.ACK);
      expect(ack.yiaddr).toBe(lab(142));
      await srv.waitFor(new RegExp(`^DHCPACK ${lab(142).replace(/\./g, '\\.')} to ${labSecond} `));
      // nothing was sent on the lab for the uplink's clients either
      expect(offerTo(upDiscover)).toEqual([]);
      expect(offerTo(upRequest)).toEqual([]);
      expect(upHeard.lines.filter((l) => l !== 'LISTENING')).toEqual([]);
    } finally {
      await labHeard.stop('SIGTERM').catch(() => {});
    }
  });

  it('answers nobody on the uplink and hands out no lease there', async () => {
    // a client without an address (busybox udhcpc): no offer reaches it
    const quiet = '02:bd:00:00:04:01';
    await setMac(nets.up, quiet);
    const { script, log } = await udhcpcScript(dir);
    const r = await nsRun(nets.up, ['busybox', 'udhcpc', '-q', '-n', '-f', '-i', 'eth0', '-s', script, '-t', '3', '-T', '1'], { reject: false });
    expect(r.exitCode).not.toBe(0);
    expect(parseUdhcpcLog(await readFile(log, 'utf8').catch(() => '')).filter((e) => e.event === 'bound')).toEqual([]);
    // a host with an address on the uplink asking for a lab address, naming the server: no answer
    const addressed = '02:bd:00:00:04:02';
    await setMac(nets.up, addressed);
    await execa('ip', ['-n', nets.up, 'addr', 'add', `${nets.upPrefix}.7/24`, 'dev', 'eth0']);
    const replies = await exchange(h, nets.up, {
      bind: `${nets.upPrefix}.7`, bindPort: 68, to: '255.255.255.255', toPort: 67, waitMs: 2000,
      packet: packet(MessageType.REQUEST, addressed, FLAG_BROADCAST, [[Opt.SERVER_ID, ipb(lab(1))], [Opt.REQUESTED_IP, ipb(lab(140))]]),
    });
    expect(replies).toEqual([]);
    // nothing the server sent, to anyone, reached the uplink's port 68
    expect(upHeard.lines.filter((l) => l !== 'LISTENING')).toEqual([]);
    const stats = await srv.stop();
    const leased = readLeaseFile(join(dir, 'leases')).table.leases().map((l) => l.mac);
    expect(leased).not.toContain(quiet);
    expect(leased).not.toContain(addressed);
    expect(leased).not.toContain('02:bd:00:00:05:01');
    expect(leased).not.toContain('02:bd:00:00:05:03');
    expect(leased.length).toBeGreaterThanOrEqual(5);
    // the server's sockets are bound to the lab interface: nothing from the uplink reached it to be dropped
    expect(stats.ignored).toBe(0);
  });
});

// FreeBSD has no SO_BINDTODEVICE: there a tap beside the server's socket reads where each broadcast
// arrived (IP_RECVIF, src/net/arrival.ts). The same code runs here with Linux's IP_PKTINFO.
describe('where a broadcast arrived (the FreeBSD tap, run with IP_PKTINFO)', () => {
  it('tells the served interface from the other, datagram by datagram', async () => {
    const port = 10067;
    const tap = watch(['ip', 'netns', 'exec', nets.server, process.execPath, h.arrival, nets.labIf, String(port)], { stdoutOnly: true, name: 'arrival tap' });
    try {
      const ready = await tap.waitFor(/^LISTENING \d+$/);
      const { stdout } = await execa('ip', ['-n', nets.server, '-o', 'link', 'show', 'dev', nets.labIf]);
      expect(Number(ready.split(' ')[1])).toBe(Number(stdout.split(':')[0]));
      const sent: Array<[string, string, string]> = [];
      for (const [ns, where] of [[nets.lab, 'here'], [nets.up, 'elsewhere'], [nets.lab, 'here'], [nets.up, 'elsewhere']] as const) {
        const p = packet(MessageType.DISCOVER, '02:bd:00:00:06:01', FLAG_BROADCAST, [[Opt.HOSTNAME, Buffer.from(`n${sent.length}`)]]);
        await exchange(h, ns, { bind: '0.0.0.0', bindPort: 0, to: '255.255.255.255', toPort: port, packet: p, waitMs: 100 });
        sent.push([p.toString('hex'), where, ns]);
      }
      // the same bytes from both sides: only the interface tells them apart
      const same = packet(MessageType.DISCOVER, '02:bd:00:00:06:02', 0);
      for (const [ns, where] of [[nets.up, 'elsewhere'], [nets.lab, 'here']] as const) {
        await exchange(h, ns, { bind: '0.0.0.0', bindPort: 68, to: '255.255.255.255', toPort: port, packet: same, waitMs: 100 });
        sent.push([same.toString('hex'), where, ns]);
      }
      const deadline = Date.now() + 5000;
      while (tap.lines.length < sent.length + 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const got = tap.lines.slice(1).map((l) => JSON.parse(l) as { from: string; hex: string; arrival: string });
      expect(got.map((g) => [g.hex, g.arrival])).toEqual(sent.map(([hex, where]) => [hex, where]));
    } finally {
      await tap.stop('SIGTERM').catch(() => {});
    }
  });
});
