/**
 * Leases survive kill -9 in the middle of a storm: every lease a client saw ACKed is in the lease
 * file afterwards, and the restarted server gives those clients the same addresses.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { linkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Lan } from '../helpers/netns.js';
import { exchange, startServer, type Helpers, relayLab, type RelayLab } from '../helpers/dhcp.js';
import { decodePacket, encodePacket, MessageType, Opt, readLeaseFile } from '../../src/net/dhcp/index.js';

let lab: RelayLab;
let lan: Lan;
let h: Helpers;
let dir: string;

beforeAll(async () => {
  lab = await relayLab('kill');
  ({ lan, h, dir } = lab);
});

afterAll(async () => lab?.destroy());

describe('DHCP lease durability', () => {
  it('keeps every ACKed lease after kill -9 mid-storm, while the journal is being compacted', async () => {
    const leaseFile = join(dir, 'leases');
    // compacting every 10 records, the kill lands among compactions (temp file, fsync, rename)
    const opts = { serverIp: lan.serverIps[0], subnet: lan.subnet, range: `${lan.prefix}.10-${lan.prefix}.249`, leaseTime: 3600, leaseFile, leaseCompactAfter: 10 };
    const srv = await startServer(h, lan.servers[0], opts);
    // a second name for the file the server opened keeps its inode from being reused
    linkSync(leaseFile, `${leaseFile}.at-start`);
    const relay = `${lan.prefix}.254`;
    const storm = execa('ip', ['netns', 'exec', lan.client, process.execPath, h.storm, relay, lan.serverIps[0], '2000', '32'], { reject: false, buffer: false });
    const acked = new Map<string, string>();
    let partial = '';
    let killed = false;
    await new Promise<void>((resolve, reject) => {
      storm.stdout!.on('data', (d: Buffer) => {
        partial += d.toString();
        const lines = partial.split('\n');
        partial = lines.pop()!;
        for (const l of lines) {
          const m = /^ACK (\S+) (\S+)$/.exec(l);
          if (m) acked.set(m[1], m[2]);
        }
        if (!killed && acked.size >= 120) {
          killed = true;
          srv.kill9().then(resolve, reject);
        }
      });
      void storm.then(() => { if (!killed) reject(new Error(`storm ended after ${acked.size} leases`)); });
    });
    // let replies already on the wire arrive, then stop the storm
    await new Promise((r) => setTimeout(r, 300));
    storm.kill('SIGKILL');
    await storm;
    for (const l of partial.split('\n')) {
      const m = /^ACK (\S+) (\S+)$/.exec(l);
      if (m) acked.set(m[1], m[2]);
    }
    expect(acked.size).toBeGreaterThanOrEqual(120);
    // the file was compacted while the storm ran: it is a new file, not the one opened at start
    expect(statSync(leaseFile).ino).not.toBe(statSync(`${leaseFile}.at-start`).ino);

    const { table } = readLeaseFile(leaseFile);
    const missing = [...acked].filter(([mac, ip]) => table.forMac(mac)?.ip !== ip);
    expect(missing).toEqual([]);
    for (const mac of acked.keys()) expect(table.forMac(mac)!.expires).toBeGreaterThan(Date.now());

    // the restarted server honours them
    const again = await startServer(h, lan.servers[0], opts);
    try {
      const [mac, ip] = [...acked][0];
      const discover = encodePacket({
        op: 1, htype: 1, hlen: 6, hops: 1, xid: 77, secs: 0, flags: 0, ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0',
        giaddr: relay, chaddr: Buffer.from(mac.replace(/:/g, ''), 'hex'), sname: '', file: '', options: new Map([[Opt.MESSAGE_TYPE, Buffer.from([MessageType.DISCOVER])]]),
      });
      const [offer] = await exchange(h, lan.client, { bind: relay, bindPort: 67, to: lan.serverIps[0], toPort: 67, packet: discover });
      expect(decodePacket(Buffer.from(offer.hex, 'hex')).yiaddr).toBe(ip);
    } finally {
      await again.stop();
    }
  });
});
