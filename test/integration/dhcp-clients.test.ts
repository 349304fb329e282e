/**
 * The DHCP server against real clients (busybox udhcpc, ISC dhclient, the npm `dhcp` client), a
 * crafted relay agent and a proxyDHCP setup, in network namespaces this test creates.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeLan, type Lan } from '../helpers/netns.js';
import { buildHelpers, exchange, nsRun, parseUdhcpcLog, startServer, udhcpcScript, type Helpers, type ServerProcess } from '../helpers/dhcp.js';
import { decodePacket, encodePacket, messageType, MessageType, Opt, optIp, optString, type DhcpPacket } from '../../src/net/dhcp/index.js';

let lan: Lan;
let h: Helpers;
let dir: string;
let srv: ServerProcess;
const reservedMac = '02:be:00:00:00:42';

function ip(n: number): string {
  return `${lan.prefix}.${n}`;
}

async function br0(args: string[]): Promise<void> {
  await execa('ip', ['-n', lan.client, ...args]);
}

async function clientAddress(addr: string | null, mac: string): Promise<void> {
  await br0(['addr', 'flush', 'dev', 'br0']);
  await br0(['link', 'set', 'br0', 'address', mac]);
  if (addr) {
    await br0(['addr', 'add', `${addr}/24`, 'dev', 'br0']);
    await execa('ip', ['-n', lan.client, 'route', 'replace', 'default', 'dev', 'br0']);
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'be-dhcp-clients-'));
  h = await buildHelpers();
  lan = await makeLan(2);
  srv = await startServer(h, lan.servers[0], {
    serverIp: lan.serverIps[0], subnet: lan.subnet, range: `${ip(100)}-${ip(150)}`, router: ip(1), dns: ip(1),
    domain: 'lab.test', leaseTime: 600, leaseFile: join(dir, 'leases'), rootPath: `${ip(1)}:/be/root`,
    reservations: [{ mac: reservedMac, ip: ip(42), hostname: 'builder' }],
  });
});

afterAll(async () => {
  await srv?.stop().catch(() => {});
  await lan?.destroy();
  await h?.cleanup();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  await br0(['addr', 'flush', 'dev', 'br0']);
});

/** A udhcpc script that records the event and configures br0 like a real one would. */
async function configuringScript(): Promise<{ script: string; log: string }> {
  const s = await udhcpcScript(dir);
  const body = await readFile(s.script, 'utf8');
  await writeFile(s.script, `${body}case "$1" in bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/$mask" dev "$interface";; deconfig) ip addr flush dev "$interface";; esac\n`, { mode: 0o755 });
  return s;
}

async function waitForEvent(log: string, event: string, count = 1): Promise<Array<{ event: string; env: Record<string, string> }>> {
  for (let i = 0; i < 200; i++) {
    const text = await readFile(log, 'utf8').catch(() => '');
    const evs = parseUdhcpcLog(text).filter((e) => e.event === event);
    if (evs.length >= count) return evs;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`udhcpc never reported ${event} x${count}: ${await readFile(log, 'utf8').catch(() => '')}`);
}

describe('DHCP server with real clients', () => {
  it('busybox udhcpc gets a lease with the configured options, renews it and releases it', async () => {
    const mac = '02:be:00:00:01:01';
    await clientAddress(null, mac);
    const { script, log } = await configuringScript();
    const proc = execa('ip', ['netns', 'exec', lan.client, 'busybox', 'udhcpc', '-f', '-i', 'br0', '-s', script, '-t', '5', '-T', '1', '-O', 'rootpath'], { reject: false });
    try {
      const [bound] = await waitForEvent(log, 'bound');
      const leased = bound.env.ip;
      expect(Number(leased.split('.')[3])).toBeGreaterThanOrEqual(100);
      expect(bound.env).toMatchObject({ subnet: '255.255.255.0', router: ip(1), dns: ip(1), domain: 'lab.test', serverid: ip(1), lease: '600', rootpath: `${ip(1)}:/be/root` });
      await srv.waitFor(new RegExp(`^DHCPACK ${leased.replace(/\./g, '\\.')} to ${mac} for 600s$`));
      proc.kill('SIGUSR1');
      const renewed = await waitForEvent(log, 'renew');
      expect(renewed[0].env.ip).toBe(leased);
      await srv.waitFor(new RegExp(`^DHCPACK ${leased.replace(/\./g, '\\.')} to ${mac} .*\\[RENEWING\\]`));
      proc.kill('SIGUSR2');
      await srv.waitFor(new RegExp(`^DHCPRELEASE ${leased.replace(/\./g, '\\.')} from ${mac}`));
    } finally {
      proc.kill('SIGTERM');
      await proc;
    }
  });

  it('a reserved MAC gets its fixed address and hostname', async () => {
    await clientAddress(null, reservedMac);
    const { script, log } = await udhcpcScript(dir);
    await nsRun(lan.client, ['busybox', 'udhcpc', '-q', '-n', '-f', '-i', 'br0', '-s', script, '-t', '5', '-T', '1']);
    const [bound] = parseUdhcpcLog(await readFile(log, 'utf8')).filter((e) => e.event === 'bound');
    expect(bound.env).toMatchObject({ ip: ip(42), hostname: 'builder' });
  });

  it('ISC dhclient leases, reboots into the same lease, and is NAKed for an address of the wrong network', async () => {
    const mac = '02:be:00:00:02:02';
    await clientAddress(null, mac);
    const lf = join(dir, 'dhclient.leases');
    const pf = join(dir, 'dhclient.pid');
    const env = join(dir, 'dhclient.env');
    const script = join(dir, 'dhclient-script');
    await writeFile(script, `#!/bin/sh\necho "$reason $new_ip_address" >> ${env}\ncase "$reason" in BOUND|RENEW|REBIND|REBOOT) ip addr flush dev "$interface"; ip addr add "$new_ip_address/24" dev "$interface";; esac\nexit 0\n`, { mode: 0o755 });
    const dhclient = (...extra: string[]) => nsRun(lan.client, ['dhclient', '-1', '-sf', script, '-lf', lf, '-pf', pf, ...extra, 'br0'], { timeout: 60_000 });
    try {
      await dhclientSteps(dhclient, env, lf, mac);
    } finally {
      // never leave the daemon behind
      const pid = Number((await readFile(pf, 'utf8').catch(() => '')).trim());
      if (pid) try { process.kill(pid); } catch { /* gone */ }
    }
  });

  async function dhclientSteps(dhclient: (...extra: string[]) => Promise<unknown>, env: string, lf: string, mac: string): Promise<void> {
    await dhclient();
    const first = (await readFile(env, 'utf8')).trim().split('\n').pop()!;
    expect(first).toMatch(new RegExp(`^BOUND ${lan.prefix.replace(/\./g, '\\.')}\\.1[0-5]\\d$`));
    const leased = first.split(' ')[1];
    // stop without releasing; the next start asks for the remembered lease (INIT-REBOOT)
    await dhclient('-x');
    await br0(['addr', 'flush', 'dev', 'br0']);
    await dhclient();
    expect((await readFile(env, 'utf8')).trim().split('\n').pop()).toBe(`REBOOT ${leased}`);
    await srv.waitFor(new RegExp(`^DHCPACK ${leased.replace(/\./g, '\\.')} to ${mac} .*\\[INIT-REBOOT\\]`));
    await dhclient('-r');
    await srv.waitFor(new RegExp(`^DHCPRELEASE ${leased.replace(/\./g, '\\.')} from ${mac}`));
    // a lease file naming an address from another network: NAK, then a fresh lease
    await br0(['addr', 'flush', 'dev', 'br0']);
    await writeFile(lf, `lease {\n  interface "br0";\n  fixed-address 192.168.213.7;\n  option subnet-mask 255.255.255.0;\n  option dhcp-server-identifier ${ip(1)};\n  renew 4 2037/12/31 00:00:00;\n  rebind 4 2037/12/31 00:00:00;\n  expire 4 2037/12/31 00:00:00;\n}\n`);
    await dhclient();
    await srv.waitFor(new RegExp(`^DHCPNAK 192\\.168\\.213\\.7 to ${mac} \\[INIT-REBOOT\\]`));
    expect((await readFile(env, 'utf8')).trim().split('\n').pop()).toBe(`BOUND ${leased}`);
    await dhclient('-r');
  }

  it('the npm dhcp client completes DISCOVER/OFFER/REQUEST/ACK', async () => {
    const mac = '02:be:00:00:03:03';
    await clientAddress(ip(250), '02:be:00:00:03:99');
    const r = await nsRun(lan.client, [process.execPath, h.npmClient, mac]);
    const state = JSON.parse(String(r.stdout));
    expect(state.state).toBe('BOUND');
    expect(Number(state.address.split('.')[3])).toBeGreaterThanOrEqual(100);
    expect(state.server).toBe(ip(1));
    expect(state.options.netmask).toBe('255.255.255.0');
    await srv.waitFor(new RegExp(`^DHCPACK ${state.address.replace(/\./g, '\\.')} to ${mac}`));
  });

  it('answers a relayed request (giaddr) at the relay agent, port 67', async () => {
    const relayIp = ip(254);
    await clientAddress(relayIp, '02:be:00:00:04:99');
    const mac = Buffer.from('02be00000404', 'hex');
    const packet = (type: MessageType, opts: Array<[number, Buffer]>): Buffer => encodePacket({
      op: 1, htype: 1, hlen: 6, hops: 1, xid: 0xbe0004, secs: 0, flags: 0, ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0',
      giaddr: relayIp, chaddr: mac, sname: '', file: '', options: new Map([[Opt.MESSAGE_TYPE, Buffer.from([type])], ...opts]),
    });
    const [offerRaw] = await exchange(h, lan.client, { bind: relayIp, bindPort: 67, to: ip(1), toPort: 67, packet: packet(MessageType.DISCOVER, []) });
    expect(offerRaw).toMatchObject({ from: ip(1), port: 67 });
    const offer = decodePacket(Buffer.from(offerRaw.hex, 'hex'));
    expect(messageType(offer)).toBe(MessageType.OFFER);
    expect(offer.giaddr).toBe(relayIp);
    const [ackRaw] = await exchange(h, lan.client, {
      bind: relayIp, bindPort: 67, to: ip(1), toPort: 67,
      packet: packet(MessageType.REQUEST, [[Opt.SERVER_ID, Buffer.from(ip(1).split('.').map(Number))], [Opt.REQUESTED_IP, Buffer.from(offer.yiaddr.split('.').map(Number))]]),
    });
    const ack = decodePacket(Buffer.from(ackRaw.hex, 'hex'));
    expect(messageType(ack)).toBe(MessageType.ACK);
    expect(ack.yiaddr).toBe(offer.yiaddr);
  });

  it('in proxy mode adds boot information beside another DHCP server that hands out the address', async () => {
    const proxy = await startServer(h, lan.servers[1], { serverIp: lan.serverIps[1], proxy: true, bootFiles: { 0: 'pxelinux.0', 7: 'loader.efi' } });
    try {
      const clientIp = ip(251);
      await clientAddress(clientIp, '02:be:00:00:05:99');
      const pxeOpts: Array<[number, Buffer]> = [
        [Opt.VENDOR_CLASS, Buffer.from('PXEClient:Arch:00000:UNDI:002001')], [Opt.CLIENT_ARCH, Buffer.from([0, 0])],
        [Opt.PARAM_REQUEST, Buffer.from([1, 3, 43, 54, 60, 66, 67])],
      ];
      const discover = (opts: Array<[number, Buffer]>): DhcpPacket => ({
        op: 1, htype: 1, hlen: 6, hops: 0, xid: 0xbe0005, secs: 0, flags: 0x8000, ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0',
        giaddr: '0.0.0.0', chaddr: Buffer.from('02be00000505', 'hex'), sname: '', file: '',
        options: new Map([[Opt.MESSAGE_TYPE, Buffer.from([MessageType.DISCOVER])], ...opts]),
      });
      const replies = (await exchange(h, lan.client, { bind: '0.0.0.0', bindPort: 68, to: '255.255.255.255', toPort: 67, packet: encodePacket(discover(pxeOpts)), count: 2, waitMs: 10_000 }))
        .map((r) => decodePacket(Buffer.from(r.hex, 'hex')));
      expect(replies).toHaveLength(2);
      const fromProxy = replies.find((r) => optIp(r.options, Opt.SERVER_ID) === lan.serverIps[1])!;
      const fromDhcp = replies.find((r) => optIp(r.options, Opt.SERVER_ID) === lan.serverIps[0])!;
      expect(fromDhcp.yiaddr).not.toBe('0.0.0.0');
      expect(fromDhcp.file).toBe('');
      expect(fromProxy.yiaddr).toBe('0.0.0.0');
      expect(fromProxy.file).toBe('pxelinux.0');
      expect(fromProxy.siaddr).toBe(lan.serverIps[1]);
      expect(optString(fromProxy.options, Opt.VENDOR_CLASS)).toBe('PXEClient');
      expect(optString(fromProxy.options, Opt.BOOTFILE)).toBe('pxelinux.0');
      // boot server discovery on 4011, once the client has its address
      const request = discover(pxeOpts);
      request.options.set(Opt.MESSAGE_TYPE, Buffer.from([MessageType.REQUEST]));
      request.ciaddr = clientIp;
      const [ackRaw] = await exchange(h, lan.client, { bind: clientIp, bindPort: 68, to: lan.serverIps[1], toPort: 4011, packet: encodePacket(request) });
      const ack = decodePacket(Buffer.from(ackRaw.hex, 'hex'));
      expect(messageType(ack)).toBe(MessageType.ACK);
      expect(ack.file).toBe('pxelinux.0');
      // a client that is not PXE hears only the DHCP server
      const plain = await exchange(h, lan.client, { bind: '0.0.0.0', bindPort: 68, to: '255.255.255.255', toPort: 67, packet: encodePacket(discover([])), count: 2, waitMs: 1500 });
      expect(plain.map((r) => optIp(decodePacket(Buffer.from(r.hex, 'hex')).options, Opt.SERVER_ID))).toEqual([lan.serverIps[0]]);
    } finally {
      await proxy.stop();
    }
  });
});
