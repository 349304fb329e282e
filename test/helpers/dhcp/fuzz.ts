/**
 * Throws `count` random and mutated DHCP packets at a server (seeded PRNG, so a failure can be
 * replayed), and every `every` packets checks that a valid client, the reserved MAC, still gets
 * its lease. Prints one JSON summary line. argv: relayIp serverIp count seed every reservedMac
 */
import { encodePacket, Opt, type DhcpPacket } from '../../../src/net/dhcp/index.js';
import { RelayClient } from './relay-client.js';
import { prng } from '../prng.js';

const [relayIp, serverIp, countArg, seedArg, everyArg, reservedMac] = process.argv.slice(2);

const rnd = prng(Number(seedArg));
const int = (n: number) => Math.floor(rnd() * n);
const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
const pick = <T>(xs: T[]) => xs[int(xs.length)];
const ipOf = () => pick(['0.0.0.0', relayIp, serverIp, '255.255.255.255', `${int(256)}.${int(256)}.${int(256)}.${int(256)}`, relayIp.replace(/\d+$/, String(int(256)))]);

function validish(): DhcpPacket {
  const opts = new Map<number, Buffer>();
  opts.set(Opt.MESSAGE_TYPE, Buffer.from([int(10)]));
  const n = int(12);
  for (let i = 0; i < n; i++) {
    const code = pick([1, 3, 12, 43, 50, 51, 52, 54, 55, 57, 60, 61, 77, 93, 97, int(256)]);
    let v: Buffer;
    if (code === 60) v = Buffer.from(pick(['PXEClient', 'PXEClient:Arch:00007:UNDI:003016', 'udhcp', '']));
    else if (code === 52) v = Buffer.from([int(5)]);
    else if (code === 57) v = Buffer.from([int(256), int(256)]);
    else if (code === 93) v = bytes(pick([0, 1, 2, 3, 4]));
    else if (code === 50 || code === 54) v = Buffer.from(ipOf().split('.').map(Number));
    else v = bytes(int(40));
    opts.set(code, v);
  }
  return {
    op: pick([1, 1, 1, 2, 0, 255]), htype: pick([1, 1, 0, 6, 255]), hlen: pick([6, 6, 0, 16, 17, 255]), hops: int(20), xid: int(2 ** 32),
    secs: int(65536), flags: pick([0, 0x8000, int(65536)]), ciaddr: ipOf(), yiaddr: ipOf(), siaddr: ipOf(), giaddr: ipOf(),
    chaddr: bytes(16), sname: '', file: '', options: opts,
  };
}

function mutate(buf: Buffer): Buffer {
  const b = Buffer.from(buf);
  const kind = int(6);
  if (kind === 0) for (let i = 0, n = 1 + int(8); i < n; i++) b[int(b.length)] = int(256); // flip bytes
  else if (kind === 1) return b.subarray(0, int(b.length)); // truncate
  else if (kind === 2) for (let i = 240; i < b.length; i += 1 + int(6)) b[i] = pick([0, 52, 255, 1, 255]); // option soup
  else if (kind === 3) return Buffer.concat([b, bytes(int(2000))]); // trailing junk
  else if (kind === 4) b.fill(0, 240); // all pads, no end
  else if (kind === 5) { b[240] = 52; b[241] = 1; b[242] = 3; b.fill(52, 44, 236); } // overload loops
  return b;
}

function fuzzPacket(): Buffer {
  const r = int(10);
  if (r === 0) return bytes(int(600)); // noise
  if (r === 1) return bytes(int(20000)); // huge
  let buf: Buffer;
  try {
    buf = encodePacket(validish(), 1500);
  } catch {
    return bytes(300);
  }
  return r < 5 ? buf : mutate(buf);
}

const client = new RelayClient(relayIp, serverIp);
await client.bind();
const mac = Buffer.from(reservedMac.replace(/:/g, ''), 'hex');
let sent = 0;
let valid = 0;
let validFailed = 0;
const count = Number(countArg);
const every = Number(everyArg);
while (sent < count) {
  const burst = Math.min(every, count - sent);
  for (let i = 0; i < burst; i++) {
    await client.sendRaw(fuzzPacket());
    sent++;
    if (i % 200 === 199) await new Promise((r) => setImmediate(r));
  }
  if (await client.lease(mac, 5, 1000)) valid++;
  else validFailed++;
}
process.stdout.write(`${JSON.stringify({ sent, valid, validFailed })}\n`);
client.close();
