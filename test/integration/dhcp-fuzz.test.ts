/**
 * 100,000 random and mutated DHCP packets (seed in BE_FUZZ_SEED, random otherwise and printed):
 * the server never crashes, and a valid client keeps getting its lease during and after.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Lan } from '../helpers/netns.js';
import { nsRun, parseUdhcpcLog, startServer, udhcpcScript, type Helpers, relayLab, type RelayLab } from '../helpers/dhcp.js';

let lab: RelayLab;
let lan: Lan;
let h: Helpers;
let dir: string;

beforeAll(async () => {
  lab = await relayLab('fuzz');
  ({ lan, h, dir } = lab);
});

afterAll(async () => lab?.destroy());

describe('DHCP fuzzing', () => {
  it('survives 100,000 hostile packets and keeps serving a valid client', async () => {
    const seed = Number(process.env.BE_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
    console.log(`dhcp fuzz seed ${seed} (BE_FUZZ_SEED=${seed} replays it)`);
    const validMac = '02:be:0f:00:00:01';
    const srv = await startServer(h, lan.servers[0], {
      serverIp: lan.serverIps[0], subnet: lan.subnet, range: `${lan.prefix}.10-${lan.prefix}.200`, leaseTime: 600,
      leaseFile: join(dir, 'leases'), bootFiles: { 0: 'pxelinux.0', 7: 'loader.efi' },
      reservations: [{ mac: validMac, ip: `${lan.prefix}.5`, hostname: 'valid' }],
    });
    try {
      const r = await nsRun(lan.client, [process.execPath, h.fuzz, `${lan.prefix}.254`, lan.serverIps[0], '100000', String(seed), '5000', validMac], { timeout: 180_000 });
      const summary = JSON.parse(String(r.stdout));
      expect(summary).toEqual({ sent: 100_000, valid: 20, validFailed: 0 });
      // after the storm, a real client still gets a lease
      await execa('ip', ['-n', lan.client, 'addr', 'flush', 'dev', 'br0']);
      const { script, log } = await udhcpcScript(dir);
      await nsRun(lan.client, ['busybox', 'udhcpc', '-q', '-n', '-f', '-i', 'br0', '-s', script, '-t', '5', '-T', '1']);
      const bound = parseUdhcpcLog(await readFile(log, 'utf8')).find((e) => e.event === 'bound');
      expect(bound?.env.serverid).toBe(lan.serverIps[0]);
    } finally {
      const stats = await srv.stop();
      console.log(`dhcp fuzz server stats ${JSON.stringify(stats)}`);
      expect(stats.received).toBeGreaterThan(50_000);
      expect(stats.malformed).toBeGreaterThan(1000);
    }
  });
});
