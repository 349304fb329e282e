/**
 * Leases survive kill -9 in the middle of a storm: every lease a client saw ACKed is in the lease
 * file afterwards, and the restarted server gives those clients the same addresses. Also when
 * hundreds of clients ask at once and their leases share one journal sync (group commit).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { linkSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Lan } from '../helpers/netns.js';
import { exchange, startServer, type Helpers, relayLab, type RelayLab, type ServerProcess } from '../helpers/dhcp.js';
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

/** Run the storm helper (count clients, `concurrency` at a time) and collect the leases it saw ACKed. */
function storm(count: number, concurrency: number, onAck: (acked: Map<string, string>) => void) {
  const proc = execa('ip', ['netns', 'exec', lan.client, process.execPath, h.storm, `${lan.prefix}.254`, lan.serverIps[0], String(count), String(concurrency)], { reject: false, buffer: false });
  const acked = new Map<string, string>();
  let partial = '';
  const take = (lines: string[]) => {
    for (const l of lines) {
      const m = /^ACK (\S+) (\S+)$/.exec(l);
      if (m) acked.set(m[1], m[2]);
    }
  };
  proc.stdout!.on('data', (d: Buffer) => {
    partial += d.toString();
    const lines = partial.split('\n');
    partial = lines.pop()!;
    take(lines);
    onAck(acked);
  });
  return {
    acked,
    async end(): Promise<void> {
      await proc;
      take(partial.split('\n'));
    },
    kill: () => proc.kill('SIGKILL'),
    proc,
  };
}

/** Start a storm, kill -9 the server once `killAt` leases are ACKed, and return those leases. */
async function killMidStorm(srv: ServerProcess, count: number, concurrency: number, killAt: number): Promise<Map<string, string>> {
  let killed = false;
  let done!: () => void;
  let fail!: (e: unknown) => void;
  const k = new Promise<void>((resolve, reject) => ((done = resolve), (fail = reject)));
  const s = storm(count, concurrency, (acked) => {
    if (!killed && acked.size >= killAt) {
      killed = true;
      srv.kill9().then(done, fail);
    }
  });
  void s.proc.then(() => { if (!killed) fail(new Error(`storm ended after ${s.acked.size} leases`)); });
  await k;
  // let replies already on the wire arrive, then stop the storm
  await new Promise((r) => setTimeout(r, 300));
  s.kill();
  await s.end();
  return s.acked;
}

describe('DHCP lease durability', () => {
  it('keeps every ACKed lease after kill -9 mid-storm, while the journal is being compacted', async () => {
    const leaseFile = join(dir, 'leases');
    // compacting every 10 records, the kill lands among compactions (temp file, fsync, rename)
    const opts = { serverIp: lan.serverIps[0], subnet: lan.subnet, range: `${lan.prefix}.10-${lan.prefix}.249`, leaseTime: 3600, leaseFile, leaseCompactAfter: 10 };
    const srv = await startServer(h, lan.servers[0], opts);
    // a second name for the file the server opened keeps its inode from being reused
    linkSync(leaseFile, `${leaseFile}.at-start`);
    const relay = `${lan.prefix}.254`;
    const acked = await killMidStorm(srv, 2000, 32, 120);
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

  it('commits many leases with one sync when hundreds of clients ask at once, and kill -9 among those batches loses none', async () => {
    // 240 addresses: room for every client of the first storm, and for the second one until the kill
    const range = `${lan.prefix}.10-${lan.prefix}.249`;
    const first = join(dir, 'batched', 'leases');
    await mkdir(join(dir, 'batched'));
    const srv = await startServer(h, lan.servers[0], { serverIp: lan.serverIps[0], subnet: lan.subnet, range, leaseTime: 3600, leaseFile: first });
    const s = storm(230, 230, () => {});
    await s.end();
    const stats = await srv.stop();
    expect(s.acked.size).toBeGreaterThanOrEqual(200);
    // each ACK left after its lease was synced, and the syncs were shared: several leases each
    expect(stats.acks).toBeGreaterThanOrEqual(s.acked.size);
    expect(stats.journalSyncs).toBeGreaterThan(0);
    expect(stats.journalSyncs).toBeLessThan(stats.acks / 4);
    const { table: all } = readLeaseFile(first);
    expect([...s.acked].filter(([mac, ip]) => all.forMac(mac)?.ip !== ip)).toEqual([]);

    const leaseFile = join(dir, 'batched-kill', 'leases');
    await mkdir(join(dir, 'batched-kill'));
    const victim = await startServer(h, lan.servers[0], { serverIp: lan.serverIps[0], subnet: lan.subnet, range, leaseTime: 3600, leaseFile });
    const acked = await killMidStorm(victim, 4000, 200, 150);
    expect(acked.size).toBeGreaterThanOrEqual(150);
    const { table } = readLeaseFile(leaseFile);
    expect([...acked].filter(([mac, ip]) => table.forMac(mac)?.ip !== ip)).toEqual([]);
  });
});
