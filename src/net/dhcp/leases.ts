/**
 * The lease table and the format of its journal.
 *
 * In memory: one entry per address (and so per client), plus quarantined (declined) addresses.
 * A client is its client identifier (option 61) when it sends one, else its hardware address
 * (RFC 2131 §4.2): two NICs sending the same identifier are one client, one NIC sending two
 * identifiers is two.
 * On disk: an append-only file of JSON lines, one per change:
 *   {"op":"bind","mac":"aa:bb:..","ip":"10.0.0.5","exp":1700000000000,"host":"pc1"}
 *   {"op":"bind","mac":"aa:bb:..","cid":"01aabb..","ip":"10.0.0.6","exp":1700000000000}
 *   {"op":"decline","ip":"10.0.0.7","until":1700000600000}
 * `cid` is the client identifier in hex; a record without it (every record written before
 * identifiers were kept) is keyed by `mac`, as it was.
 * A release is a bind whose `exp` is the release time (the client keeps its affinity to the
 * address). Replaying the lines in order rebuilds the table; an unparsable line (a write torn by
 * a crash) is skipped. The file is written by journal.ts.
 */
import { readFileSync, existsSync } from 'node:fs';
import { ipToInt, intToIp, isIp } from './codec.js';

export interface Lease {
  /** Client hardware address, "aa:bb:cc:dd:ee:ff" (of the last message that bound the lease). */
  mac: string;
  /** Client identifier (option 61) in hex, when the client sent one: then it, not `mac`, names the client. */
  clientId?: string;
  ip: string;
  /** Expiry, milliseconds since the epoch. A released lease has expired. */
  expires: number;
  hostname?: string;
}

export type JournalRecord =
  | { op: 'bind'; mac: string; cid?: string; ip: string; exp: number; host?: string }
  | { op: 'decline'; ip: string; until: number };

/** The key that names a client: "id:" + its identifier in hex, else its MAC. */
export function clientKey(mac: string, clientId?: string): string {
  return clientId ? `id:${clientId}` : mac;
}

/** The key of the client holding `lease`. */
export function leaseKey(lease: Lease): string {
  return clientKey(lease.mac, lease.clientId);
}

/** The in-memory table. Pure: no I/O, no clock. */
export class LeaseTable {
  private readonly byIp = new Map<number, Lease>();
  private readonly byClient = new Map<string, Lease>();
  private readonly declined = new Map<number, number>();

  get size(): number {
    return this.byIp.size;
  }

  byAddress(ip: number): Lease | undefined {
    return this.byIp.get(ip);
  }

  /** The lease of a client, by its key (see `clientKey`; a MAC for clients without option 61). */
  forClient(key: string): Lease | undefined {
    return this.byClient.get(key);
  }

  /** The lease of a client that sends no client identifier. */
  forMac(mac: string): Lease | undefined {
    return this.byClient.get(mac);
  }

  /** The quarantine end (ms) of a declined address, if any. */
  declinedUntil(ip: number): number | undefined {
    return this.declined.get(ip);
  }

  apply(rec: JournalRecord): void {
    if (rec.op === 'bind') {
      const ip = ipToInt(rec.ip);
      const key = clientKey(rec.mac, rec.cid);
      const old = this.byClient.get(key);
      if (old) this.byIp.delete(ipToInt(old.ip));
      const other = this.byIp.get(ip);
      if (other) this.byClient.delete(leaseKey(other));
      const lease: Lease = { mac: rec.mac, ip: rec.ip, expires: rec.exp };
      if (rec.cid) lease.clientId = rec.cid;
      if (rec.host) lease.hostname = rec.host;
      this.byIp.set(ip, lease);
      this.byClient.set(key, lease);
      this.declined.delete(ip);
    } else {
      const ip = ipToInt(rec.ip);
      const other = this.byIp.get(ip);
      if (other) {
        this.byIp.delete(ip);
        this.byClient.delete(leaseKey(other));
      }
      this.declined.set(ip, rec.until);
    }
  }

  /** Forget quarantines that ended before `now`. */
  pruneDeclined(now: number): void {
    for (const [ip, until] of this.declined) if (until <= now) this.declined.delete(ip);
  }

  leases(): Lease[] {
    return [...this.byIp.values()];
  }

  /** Records that rebuild this table. */
  records(): JournalRecord[] {
    return this.snapshot().map(snapshotRecord);
  }

  /**
   * The leases and quarantines now, as an array later changes to the table leave as it is (a lease
   * is never changed in place: `apply` makes a new one).
   */
  snapshot(): Array<Lease | [number, number]> {
    const out: Array<Lease | [number, number]> = [...this.byIp.values()];
    for (const d of this.declined) out.push(d);
    return out;
  }
}

/** The journal record of one entry of `LeaseTable.snapshot`. */
export function snapshotRecord(e: Lease | [number, number]): JournalRecord {
  return Array.isArray(e) ? { op: 'decline', ip: intToIp(e[0]), until: e[1] } : bindRecord(e, e.expires);
}

/** The journal record that binds `lease` until `exp`. */
export function bindRecord(lease: Omit<Lease, 'expires'>, exp: number): JournalRecord {
  // keys in the journal's order: op, mac, cid, ip, exp, host (recordLine, JSON.stringify)
  const rec: JournalRecord = lease.clientId ? { op: 'bind', mac: lease.mac, cid: lease.clientId, ip: lease.ip, exp } : { op: 'bind', mac: lease.mac, ip: lease.ip, exp };
  if (lease.hostname) rec.host = lease.hostname;
  return rec;
}

function validRecord(x: unknown): x is JournalRecord {
  if (!x || typeof x !== 'object') return false;
  const r = x as Record<string, unknown>;
  if (r.op === 'bind') {
    return typeof r.mac === 'string' && /^([0-9a-f]{2}:){0,15}[0-9a-f]{2}$/.test(r.mac) && typeof r.ip === 'string' && isIp(r.ip)
      && typeof r.exp === 'number' && Number.isFinite(r.exp) && (r.host === undefined || typeof r.host === 'string')
      && (r.cid === undefined || (typeof r.cid === 'string' && /^([0-9a-f]{2}){1,255}$/.test(r.cid)));
  }
  if (r.op === 'decline') return typeof r.ip === 'string' && isIp(r.ip) && typeof r.until === 'number' && Number.isFinite(r.until);
  return false;
}

/** Read a lease file into a table (what the server does at start). Torn or foreign lines are skipped. */
export function readLeaseFile(path: string): { table: LeaseTable; skipped: number } {
  const table = new LeaseTable();
  let skipped = 0;
  if (!existsSync(path)) return { table, skipped };
  const text = readFileSync(path, 'utf8');
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch {
      skipped++;
      continue;
    }
    if (validRecord(rec)) table.apply(rec);
    else skipped++;
  }
  return { table, skipped };
}

/** Text that needs no escaping in a JSON string (what the server writes: MACs, hex, addresses, sanitized names). */
const PLAIN = /^[0-9A-Za-z.:_-]*$/;

/**
 * One journal line: the JSON.stringify of `rec` (same keys, same order), written by hand when
 * every string in it is plain, as the server's own are (it is on every ACK's path).
 */
export function recordLine(rec: JournalRecord): string {
  if (rec.op === 'bind') {
    const { mac, cid, ip, exp, host } = rec;
    if (PLAIN.test(mac) && PLAIN.test(ip) && (cid === undefined || PLAIN.test(cid)) && (host === undefined || PLAIN.test(host)) && Number.isFinite(exp)) {
      return `{"op":"bind","mac":"${mac}"${cid !== undefined ? `,"cid":"${cid}"` : ''},"ip":"${ip}","exp":${exp}${host !== undefined ? `,"host":"${host}"` : ''}}\n`;
    }
  } else if (PLAIN.test(rec.ip) && Number.isFinite(rec.until)) {
    return `{"op":"decline","ip":"${rec.ip}","until":${rec.until}}\n`;
  }
  return `${JSON.stringify(rec)}\n`;
}

export function encodeRecords(recs: JournalRecord[]): string {
  return recs.map(recordLine).join('');
}

