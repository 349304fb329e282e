import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LeaseStore, readLeaseFile } from '../../src/net/dhcp/index.js';
import { recordLine, type JournalRecord } from '../../src/net/dhcp/leases.js';

let dir: string;
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'be-leases-')); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('lease journal', () => {
  it('makes committed leases durable before the callback and replays them', async () => {
    const file = join(dir, 'leases');
    const store = LeaseStore.open(file);
    const done: string[] = [];
    for (let i = 0; i < 50; i++) {
      store.commit({ op: 'bind', mac: `02:00:00:00:00:${i.toString(16).padStart(2, '0')}`, ip: `10.0.0.${i + 10}`, exp: 1000 + i }, (err) => {
        expect(err).toBeNull();
        // the record is already in the file when the callback runs
        expect(readFileSync(file, 'utf8')).toContain(`"10.0.0.${i + 10}"`);
        done.push(String(i));
      });
    }
    await store.drain();
    expect(done).toHaveLength(50);
    // one event-loop turn of commits shares a single write+fsync
    expect(store.syncs).toBe(1);
    await store.close();
    const { table } = readLeaseFile(file);
    expect(table.size).toBe(50);
    expect(table.forMac('02:00:00:00:00:05')?.ip).toBe('10.0.0.15');
  });

  it('skips a torn last line and appends cleanly after it', async () => {
    const file = join(dir, 'leases');
    writeFileSync(file, '{"op":"bind","mac":"02:00:00:00:00:01","ip":"10.0.0.5","exp":99}\n{"op":"bind","mac":"02:00:00:00:00:02","ip":"10.0');
    const store = LeaseStore.open(file);
    expect(store.table.size).toBe(1);
    store.commit({ op: 'bind', mac: '02:00:00:00:00:03', ip: '10.0.0.7', exp: 5 });
    await store.close();
    const { table, skipped } = readLeaseFile(file);
    expect(skipped).toBe(0);
    expect(table.leases().map((l) => l.ip).sort()).toEqual(['10.0.0.5', '10.0.0.7']);
  });

  it('compacts to one line per lease through a temp file and rename', async () => {
    const file = join(dir, 'leases');
    for (let i = 0; i < 3000; i++) appendFileSync(file, `${JSON.stringify({ op: 'bind', mac: '02:00:00:00:00:01', ip: `10.0.${i % 3}.1`, exp: i })}\n`);
    const store = LeaseStore.open(file);
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(1);
    expect(existsSync(`${file}.tmp`)).toBe(false);
    expect(store.table.forMac('02:00:00:00:00:01')).toMatchObject({ ip: '10.0.2.1', expires: 2999 });
    await store.close();
  });

  it('compacts while running once enough records were appended, keeping every lease', async () => {
    const file = join(dir, 'leases');
    const store = LeaseStore.open(file, () => {}, 20);
    const mac = (i: number) => `02:00:00:00:01:${(i % 5).toString(16).padStart(2, '0')}`;
    // 5 clients renewing over and over: 100 records, 5 leases
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 5; i++) store.commit({ op: 'bind', mac: mac(i), ip: `10.0.1.${i + 10}`, exp: 1000 + round });
      await store.drain();
    }
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    // without compaction the file would hold 100 lines
    expect(lines.length).toBeLessThanOrEqual(25);
    await store.close();
    const { table } = readLeaseFile(file);
    expect(table.leases().map((l) => [l.ip, l.expires]).sort()).toEqual([0, 1, 2, 3, 4].map((i) => [`10.0.1.${i + 10}`, 1019]));
  });

  it('compacts a big table beside the journal: leases committed meanwhile are made durable before it ends, and kept', async () => {
    const file = join(dir, 'leases');
    const store = LeaseStore.open(file, () => {}, 100);
    const mac = (i: number) => `02:00:00:${[16, 8, 0].map((s) => ((i >> s) & 255).toString(16).padStart(2, '0')).join(':')}`;
    const ip = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    const n = 50_000;
    // one round of 50,000 records: more than 100 since the last compaction, so one starts after it
    await new Promise<void>((resolve) => {
      for (let i = 0; i < n; i++) store.commit({ op: 'bind', mac: mac(i), ip: ip(i), exp: 1000 }, i === n - 1 ? () => resolve() : undefined);
    });
    const during = await new Promise<{ tmp: boolean; inFile: boolean }>((resolve) => {
      store.commit({ op: 'bind', mac: mac(n), ip: ip(n), exp: 2000 }, () => resolve({ tmp: existsSync(`${file}.tmp`), inFile: readFileSync(file, 'utf8').includes(`"${ip(n)}"`) }));
    });
    // the new lease was on disk (in the journal) while the compaction was still writing its temp file
    expect(during).toEqual({ tmp: true, inFile: true });
    store.commit({ op: 'bind', mac: mac(0), ip: ip(0), exp: 3000 });
    await store.drain();
    expect(existsSync(`${file}.tmp`)).toBe(false);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    // one line per lease (the last lease's renewal may follow the table once more)
    expect(lines.length).toBeGreaterThanOrEqual(n + 1);
    expect(lines.length).toBeLessThanOrEqual(n + 2);
    await store.close();
    const { table, skipped } = readLeaseFile(file);
    expect(skipped).toBe(0);
    expect(table.size).toBe(n + 1);
    expect(table.forMac(mac(n))).toMatchObject({ ip: ip(n), expires: 2000 });
    expect(table.forMac(mac(0))).toMatchObject({ ip: ip(0), expires: 3000 });
  });

  it('quarantines a declined address and a later bind lifts it', () => {
    const store = LeaseStore.open(undefined);
    store.commit({ op: 'bind', mac: '02:00:00:00:00:01', ip: '10.0.0.5', exp: 100 });
    store.commit({ op: 'decline', ip: '10.0.0.5', until: 500 });
    expect(store.table.byAddress(0x0a000005)).toBeUndefined();
    expect(store.table.declinedUntil(0x0a000005)).toBe(500);
    store.table.pruneDeclined(600);
    expect(store.table.declinedUntil(0x0a000005)).toBeUndefined();
  });

  it('ignores foreign lines instead of failing', () => {
    const file = join(dir, 'leases');
    writeFileSync(file, 'garbage\n{"op":"bind","mac":"zz","ip":"x","exp":1}\n[]\n{"op":"decline","ip":"10.0.0.9","until":7}\n');
    const { table, skipped } = readLeaseFile(file);
    expect(skipped).toBe(3);
    expect(table.declinedUntil(0x0a000009)).toBe(7);
  });

  it('writes each record as the JSON line JSON.stringify would, also for names that need escaping, and reads it back', async () => {
    const recs: JournalRecord[] = [
      { op: 'bind', mac: '02:00:00:00:00:01', ip: '10.0.0.5', exp: 1700000000123 },
      { op: 'bind', mac: '02:00:00:00:00:02', cid: '01020000000002', ip: '10.0.0.6', exp: 5, host: 'pc-2.lab' },
      // a journal from before hostnames were sanitized, or a reservation's name, may hold anything
      { op: 'bind', mac: '02:00:00:00:00:03', ip: '10.0.0.7', exp: 6, host: 'say "hi"\\\u00e9\n' },
      { op: 'decline', ip: '10.0.0.8', until: 1700000600000 },
    ];
    for (const r of recs) expect(recordLine(r)).toBe(`${JSON.stringify(r)}\n`);
    const file = join(dir, 'leases');
    const store = LeaseStore.open(file);
    for (const r of recs) store.commit(r);
    await store.close();
    const { table, skipped } = readLeaseFile(file);
    expect(skipped).toBe(0);
    expect(table.forMac('02:00:00:00:00:03')?.hostname).toBe('say "hi"\\\u00e9\n');
    expect(table.forClient('id:01020000000002')).toMatchObject({ ip: '10.0.0.6', hostname: 'pc-2.lab' });
    expect(table.declinedUntil(0x0a000008)).toBe(1700000600000);
  });
});
